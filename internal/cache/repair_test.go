package cache

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// The repair loop tests run the whole Store in a synctest bubble, so the
// loop's ticker and the breaker's clock run on fake time: time.Sleep moves
// it on at once, and synctest.Wait returns once the loop has done what the
// tick made it do. Redis cannot run in a bubble (its client's network
// deadlines would be on fake time); the deployed embedded pair can: an
// SQLite store (opened outside the bubble) and the memory cache, wrapped in
// flakyCache to make it fail.

const repairInterval = time.Second

// cached returns what the cache itself holds for the entity id of g.
func cached(t *testing.T, c *flakyCache, g feature.Group, id string) string {
	t.Helper()
	es, err := c.Cache.Get(t.Context(), []string{cacheKey(g, id)})
	if err != nil {
		t.Fatalf("direct Get: %v", err)
	}
	return state(es[0])
}

// TestRepairLoop: a write while the cache fails marks its key dirty; while
// the cache stays down the loop tries once per interval (the breaker's
// probe) and nothing in between; once the cache answers, the next tick
// repairs the key.
func TestRepairLoop(t *testing.T) {
	t.Parallel()
	inner := newSQLite(t)
	synctest.Test(t, func(t *testing.T) {
		c := &flakyCache{Cache: NewMemory(MemoryOptions{})}
		obs := newCountingObserver()
		s := wrap(t, inner, c, WrapOptions{Observer: obs, RetryInterval: repairInterval})
		g := mustPut(t, s, moviesGroup("movies"), base)
		keys := keysOf("movies", "a")
		mustWrite(t, s, movie("movies", "a", at(1), at(1), "a1"))
		mustLatest(t, s, keys...) // fills the cache with a1
		if got := cached(t, c, g, "a"); got != "a1" {
			t.Fatalf("test setup: cache holds %s, want a1", got)
		}

		c.failing.Store(true)
		a2 := movie("movies", "a", at(2), at(2), "a2")
		mustWrite(t, s, a2)
		if s.Dirty() != 1 {
			t.Fatalf("Dirty = %d after a failed write-through, want 1", s.Dirty())
		}
		calls := c.calls.Load()
		for i := range 3 {
			time.Sleep(repairInterval / 2)
			synctest.Wait()
			if n := c.calls.Load() - calls; n != int64(i) {
				t.Fatalf("%d calls reached the failing cache half an interval after tick %d, want %d", n, i, i)
			}
			time.Sleep(repairInterval / 2)
			synctest.Wait()
			if n := c.calls.Load() - calls; n != int64(i+1) {
				t.Fatalf("%d calls reached the failing cache after %d intervals, want one per interval", n, i+1)
			}
			if s.Dirty() != 1 {
				t.Fatalf("Dirty = %d while the cache fails, want 1", s.Dirty())
			}
			// Meanwhile reads bypass the dirty key, and the cache.
			if got := mustLatest(t, s, keys...)[0]; got == nil || got.Values["title"] != "a2" {
				t.Fatalf("read while the cache fails = %+v, want a2", got)
			}
		}
		if n := obs.errorCount("memory/set"); n != 4 {
			t.Errorf("%d failed sets counted, want 4 (the write-through and 3 repairs)", n)
		}

		// The cache answers again, still holding a1. Nothing happens until
		// the next tick; then the key is repaired.
		c.failing.Store(false)
		time.Sleep(repairInterval / 2)
		synctest.Wait()
		if s.Dirty() != 1 || cached(t, c, g, "a") != "a1" {
			t.Fatalf("repaired before the tick: Dirty %d, cache holds %s", s.Dirty(), cached(t, c, g, "a"))
		}
		time.Sleep(repairInterval / 2)
		synctest.Wait()
		if s.Dirty() != 0 {
			t.Fatalf("Dirty = %d after the tick that followed the cache's return, want 0", s.Dirty())
		}
		if got := cached(t, c, g, "a"); got != "a2" {
			t.Errorf("cache after the repair holds %s, want a2", got)
		}
		h0, _ := obs.counts("memory/movies")
		if got := mustLatest(t, s, keys...)[0]; got == nil || got.Values["title"] != "a2" {
			t.Errorf("read after the repair = %+v, want a2", got)
		}
		if h, _ := obs.counts("memory/movies"); h != h0+1 {
			t.Errorf("read after the repair: %d hits, want 1", h-h0)
		}
	})
}

// TestRepairLoopClear: past MaxDirty the cache is distrusted; while it stays
// down the loop tries to clear it once per interval; once it answers, the
// next tick clears it (the stale rows with it) and trusts it again.
func TestRepairLoopClear(t *testing.T) {
	t.Parallel()
	inner := newSQLite(t)
	synctest.Test(t, func(t *testing.T) {
		c := &flakyCache{Cache: NewMemory(MemoryOptions{})}
		obs := newCountingObserver()
		s := wrap(t, inner, c, WrapOptions{Observer: obs, RetryInterval: repairInterval, MaxDirty: 1})
		g := mustPut(t, s, moviesGroup("movies"), base)
		ids := []string{"a", "b"}
		keys := keysOf("movies", ids...)
		mustWrite(t, s, rowsOf("movies", ids, 1, "1")...)
		mustLatest(t, s, keys...) // fills the cache

		c.failing.Store(true)
		mustWrite(t, s, rowsOf("movies", ids, 2, "2")...)
		if s.Trusted() || s.Dirty() != 0 {
			t.Fatalf("2 dirty keys, 1 allowed: trusted %v, dirty %d; want false, 0", s.Trusted(), s.Dirty())
		}
		for i := range 2 {
			time.Sleep(repairInterval)
			synctest.Wait()
			if n := obs.errorCount("memory/clear"); n != i+1 {
				t.Fatalf("%d failed clears after %d intervals, want one per interval", n, i+1)
			}
			if s.Trusted() {
				t.Fatal("trusted again though the clear failed")
			}
		}

		c.failing.Store(false)
		calls := c.calls.Load()
		if got := mustLatest(t, s, keys...); got[0].Values["title"] != "a2" || got[1].Values["title"] != "b2" {
			t.Fatalf("read while distrusted = %v, %v; want a2, b2", got[0].Values["title"], got[1].Values["title"])
		}
		if n := c.calls.Load(); n != calls {
			t.Errorf("%d calls reached the distrusted cache", n-calls)
		}
		time.Sleep(repairInterval)
		synctest.Wait()
		if !s.Trusted() {
			t.Fatal("not trusted again after a tick with the cache back")
		}
		for _, id := range ids {
			if got := cached(t, c, g, id); got != "miss" {
				t.Errorf("%s after the clear: cache holds %s, want nothing", id, got)
			}
		}
		if got := mustLatest(t, s, keys...); got[0].Values["title"] != "a2" || got[1].Values["title"] != "b2" {
			t.Errorf("read after the clear = %v, %v; want a2, b2", got[0].Values["title"], got[1].Values["title"])
		}
		if got := cached(t, c, g, "a"); got != "a2" {
			t.Errorf("cache after a read that followed the clear holds %s, want a2", got)
		}
	})
}
