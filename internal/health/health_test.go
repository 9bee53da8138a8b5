package health

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/store"
)

// countingChecker counts the checks of a real component (the in-process
// cache) and can hold them until released.
type countingChecker struct {
	inner store.HealthChecker
	calls atomic.Int64
	gate  chan struct{} // nil: no wait
}

func (c *countingChecker) Health(ctx context.Context) store.Component {
	c.calls.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return c.inner.Health(ctx)
}

type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestCacheChecksOncePerMaxAge is the finding "every anonymous /health
// runs live checks including a Redis write (2,264 calls in 10 s → 3,807
// Postgres transactions)": however many callers ask, and however often,
// the dependencies are checked at most once per MaxAge; callers that
// arrive while a check runs share it.
func TestCacheChecksOncePerMaxAge(t *testing.T) {
	t.Parallel()
	mem := cache.NewMemory(cache.MemoryOptions{})
	cc := &countingChecker{inner: mem, gate: make(chan struct{})}
	clk := &settableClock{t: time.Unix(1_000_000, 0)}
	c := &Cache{Checker: &Checker{Components: []Component{{Name: "memory", Critical: true, Checker: cc}}, Now: clk.Now},
		MaxAge: 2 * time.Second, Now: clk.Now}

	const callers = 50
	var wg sync.WaitGroup
	reports := make(chan Report, callers)
	for range callers {
		wg.Go(func() { reports <- c.Check(context.Background()) })
	}
	// Every caller waits on the one check, which is held until released.
	for cc.calls.Load() == 0 {
		time.Sleep(time.Millisecond) // polling for the check to start
	}
	close(cc.gate)
	wg.Wait()
	close(reports)
	for r := range reports {
		if r.Status != store.HealthUp {
			t.Fatalf("report %+v", r)
		}
	}
	if n := cc.calls.Load(); n != 1 {
		t.Errorf("%d concurrent callers ran %d checks, want 1", callers, n)
	}

	for range 1000 {
		c.Check(context.Background())
	}
	clk.Advance(1999 * time.Millisecond)
	c.Check(context.Background())
	if n := cc.calls.Load(); n != 1 {
		t.Errorf("%d checks within the max age, want 1", n)
	}
	clk.Advance(time.Millisecond)
	c.Check(context.Background())
	if n := cc.calls.Load(); n != 2 {
		t.Errorf("%d checks once the report is 2s old, want 2", n)
	}
}

// TestCacheCallerLeavesEarly: a caller whose context ends while the check
// runs gets the previous report at once, and does not cancel the check
// for the others.
func TestCacheCallerLeavesEarly(t *testing.T) {
	t.Parallel()
	cc := &countingChecker{inner: cache.NewMemory(cache.MemoryOptions{})}
	clk := &settableClock{t: time.Unix(1_000_000, 0)}
	c := &Cache{Checker: &Checker{Components: []Component{{Name: "memory", Critical: true, Checker: cc}}, Now: clk.Now}, Now: clk.Now}
	first := c.Check(context.Background())
	clk.Advance(time.Hour)
	cc.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := c.Check(ctx); !got.CheckedAt.Equal(first.CheckedAt) {
		t.Errorf("a caller that left got %v, want the previous report of %v", got.CheckedAt, first.CheckedAt)
	}
	close(cc.gate)
	if got := c.Check(context.Background()); !got.CheckedAt.After(first.CheckedAt) {
		t.Errorf("the check the caller left went on: got %v", got.CheckedAt)
	}
}
