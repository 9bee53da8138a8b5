package crawl

import (
	"context"
	"math"
	"sync"
	"time"
)

// Limiter is a token bucket: it lets through burst requests at once and
// rate requests per second on average, so over any interval T at most
// burst + rate×T requests start. Callers that find the bucket empty take a
// reservation and wait their turn (first come, first served). It is safe for
// concurrent use; the zero value is not usable, build one with NewLimiter.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64

	mu     sync.Mutex
	tokens float64 // may go negative: reservations of waiting callers
	last   time.Time
}

// NewLimiter returns a limiter of rate requests per second (> 0) with the
// given burst (at least 1). The bucket starts full.
func NewLimiter(rate float64, burst int) *Limiter {
	b := float64(max(burst, 1))
	return &Limiter{rate: rate, burst: b, tokens: b}
}

// Wait blocks until the caller may send one request, or ctx ends (the
// reservation is then given back). It returns how long it waited.
func (l *Limiter) Wait(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := time.Now()
	l.mu.Lock()
	if !l.last.IsZero() {
		l.tokens = math.Min(l.burst, l.tokens+float64(now.Sub(l.last))*l.rate/float64(time.Second))
	}
	l.last = now
	l.tokens--
	deficit := -l.tokens
	l.mu.Unlock()
	if deficit <= 0 {
		return 0, nil
	}
	// Round up: never a nanosecond early.
	wait := time.Duration(math.Ceil(deficit * float64(time.Second) / l.rate))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return wait, nil
	case <-ctx.Done():
		l.mu.Lock()
		l.tokens++
		l.mu.Unlock()
		return 0, ctx.Err()
	}
}
