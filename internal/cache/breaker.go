package cache

import (
	"sync/atomic"
	"time"
)

// breaker is the circuit breaker in front of the cache. It is
//
//   - closed while the cache answers: every call may go to it;
//   - open for interval after a failure: no call goes to it;
//   - half-open once the interval has passed: the first caller to ask takes
//     the probe, and that re-arms the interval, so the other callers stay
//     away until the probe reports. A probe that fails opens the breaker
//     for another interval; one that succeeds closes it.
//
// One failure opens it. A dead cache so costs one call (one timeout) per
// interval, whoever makes it: a read, a write or the repair loop.
//
// Any success closes the breaker, even of a call that began before the
// failure that opened it: the cache answered, so it is worth trying.
type breaker struct {
	now      func() time.Time
	interval time.Duration
	// until is 0 while closed; otherwise the unix nanoseconds before which
	// no call goes to the cache, and from which the next one probes.
	until atomic.Int64
}

func newBreaker(now func() time.Time, interval time.Duration) *breaker {
	return &breaker{now: now, interval: interval}
}

// allow reports whether the caller may call the cache: always while the
// breaker is closed; while it is open, only the first caller once the
// interval has passed (the probe), which must then report its outcome with
// success or failure.
func (b *breaker) allow() bool {
	until := b.until.Load()
	if until == 0 {
		return true
	}
	now := b.now().UnixNano()
	return now >= until && b.until.CompareAndSwap(until, now+int64(b.interval))
}

// ready is allow without taking the probe's turn: for a caller that may yet
// find it has nothing to ask the cache.
func (b *breaker) ready() bool {
	until := b.until.Load()
	return until == 0 || b.now().UnixNano() >= until
}

// success closes the breaker and reports whether it was open.
func (b *breaker) success() bool {
	if b.until.Load() == 0 {
		return false // the common case, without a write to the shared word
	}
	return b.until.Swap(0) != 0
}

// failure opens the breaker for interval from now, or re-arms it, and
// reports whether it was closed.
func (b *breaker) failure() bool {
	return b.until.Swap(b.now().UnixNano()+int64(b.interval)) == 0
}
