// Package health aggregates the health of the service's dependencies: the
// system of record (critical: the service is DOWN without it) and the online
// cache (not critical: without it reads are slower, so the service is
// DEGRADED). It also feeds the dependency up/latency metrics.
package health

import (
	"context"
	"sync"
	"time"

	"github.com/featurestore/featurestore/internal/store"
)

// Component is one checked dependency.
type Component struct {
	// Name is the dependency: postgres, sqlite, redis or memory.
	Name string
	// Critical dependencies make the service DOWN when they are down;
	// others make it DEGRADED.
	Critical bool
	Checker  store.HealthChecker
}

// Report is the body of GET /health.
type Report struct {
	Status     store.HealthStatus         `json:"status"`
	Components map[string]store.Component `json:"components"`
	CheckedAt  time.Time                  `json:"checked_at"`
	DurationMS float64                    `json:"duration_ms"`
}

// Observer receives each dependency's state after a check.
type Observer interface {
	SetDependency(dep string, up bool, latency time.Duration)
}

// Checker checks every component concurrently, each within Timeout.
type Checker struct {
	Components []Component
	Timeout    time.Duration
	Observer   Observer
	Now        func() time.Time
}

// Check runs every component's check concurrently and aggregates them.
func (c *Checker) Check(ctx context.Context) Report {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	start := now()
	results := make([]store.Component, len(c.Components))
	latencies := make([]time.Duration, len(c.Components))
	var wg sync.WaitGroup
	for i, comp := range c.Components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			t0 := now()
			results[i] = comp.Checker.Health(cctx)
			latencies[i] = now().Sub(t0)
		}()
	}
	wg.Wait()
	rep := Report{Status: store.HealthUp, Components: make(map[string]store.Component, len(c.Components)), CheckedAt: start.UTC()}
	for i, comp := range c.Components {
		r := results[i]
		if r.Status != store.HealthUp {
			r.Status = store.HealthDown
			if comp.Critical {
				rep.Status = store.HealthDown
			} else if rep.Status == store.HealthUp {
				rep.Status = store.HealthDegraded
			}
		}
		rep.Components[comp.Name] = r
		if c.Observer != nil {
			c.Observer.SetDependency(comp.Name, r.Status == store.HealthUp, latencies[i])
		}
	}
	rep.DurationMS = float64(now().Sub(start).Microseconds()) / 1000
	return rep
}

// Run checks every interval until ctx ends, so the dependency metrics stay
// current even when nobody calls /health.
func (c *Checker) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Cache answers health reports from the last check while it is younger
// than MaxAge, and otherwise runs one check for all the callers asking at
// that moment: however often /health is called, the dependencies are
// checked at most once per MaxAge (each check writes to Redis and runs
// Postgres queries; anonymous callers must not be able to multiply them).
// Run keeps it fresh in the background as well.
type Cache struct {
	Checker *Checker
	// MaxAge is the age past which a report is re-checked; 2s when 0.
	MaxAge time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	mu       sync.Mutex
	last     *Report
	at       time.Time
	inflight chan struct{} // closed when the running check ends
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) maxAge() time.Duration {
	if c.MaxAge > 0 {
		return c.MaxAge
	}
	return 2 * time.Second
}

// Check returns the cached report, or a new one when it is too old. A
// caller whose ctx ends while it waits for the check gets the previous
// report if there is one; the check itself runs to its own timeouts.
func (c *Cache) Check(ctx context.Context) Report {
	c.mu.Lock()
	if c.last != nil && c.now().Sub(c.at) < c.maxAge() {
		rep := *c.last
		c.mu.Unlock()
		return rep
	}
	done := c.startLocked()
	c.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return Report{Status: store.HealthDown, Components: map[string]store.Component{}, CheckedAt: c.now().UTC()}
	}
	return *c.last
}

// startLocked starts a check unless one is running; it returns the channel
// closed when the check ends. c.mu is held.
func (c *Cache) startLocked() chan struct{} {
	if c.inflight != nil {
		return c.inflight
	}
	done := make(chan struct{})
	c.inflight = done
	go func() {
		defer close(done)
		// Not the caller's context: a caller that leaves must not cancel
		// the check the others wait for. Each component has its timeout.
		rep := c.Checker.Check(context.Background())
		c.mu.Lock()
		defer c.mu.Unlock()
		c.last, c.at, c.inflight = &rep, c.now(), nil
	}()
	return done
}

// Run refreshes the report every interval until ctx ends, so the
// dependency metrics stay current even when nobody calls /health.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.mu.Lock()
		done := c.startLocked()
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-done:
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
