package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/storetest"
	"github.com/featurestore/featurestore/internal/testenv"
)

var rowOpts = cmp.Options{cmpopts.EquateEmpty()}

func TestContract(t *testing.T) {
	t.Parallel()
	t.Run("postgres+redis", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) store.Store {
			return wrap(t, newPostgres(t), newRedisCache(t, RedisOptions{}), WrapOptions{})
		})
	})
	t.Run("sqlite+memory", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) store.Store {
			return wrap(t, newSQLite(t), NewMemory(MemoryOptions{}), WrapOptions{})
		})
	})
	t.Run("postgres+memory", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) store.Store {
			return wrap(t, newPostgres(t), NewMemory(MemoryOptions{}), WrapOptions{})
		})
	})
}

// eachWrapped runs fn against the two deployed pairs, Wrap(postgres, redis)
// and Wrap(sqlite, memory), handing it the inner store and the cache too.
func eachWrapped(t *testing.T, opts WrapOptions, fn func(t *testing.T, s *Store, inner store.Store, c Cache)) {
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		inner, c := newPostgres(t), newRedisCache(t, RedisOptions{})
		fn(t, wrap(t, inner, c, opts), inner, c)
	})
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		inner, c := newSQLite(t), NewMemory(MemoryOptions{})
		fn(t, wrap(t, inner, c, opts), inner, c)
	})
}

func mustPut(t *testing.T, s store.Store, g feature.Group, now time.Time) feature.Group {
	t.Helper()
	out, err := s.PutGroup(t.Context(), g, now)
	if err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	return out
}

func mustWrite(t *testing.T, s store.Store, rows ...feature.Row) {
	t.Helper()
	if err := s.WriteRows(t.Context(), rows); err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
}

func mustLatest(t *testing.T, s store.Store, keys ...feature.Key) []*feature.Row {
	t.Helper()
	rows, err := s.GetLatest(t.Context(), keys)
	if err != nil {
		t.Fatalf("GetLatest: %v", err)
	}
	return rows
}

func keysOf(group string, ids ...string) []feature.Key {
	keys := make([]feature.Key, len(ids))
	for i, id := range ids {
		keys[i] = feature.Key{Group: group, EntityID: id}
	}
	return keys
}

// cacheKey is the cache key the wrapper uses for an entity of g.
func cacheKey(g feature.Group, id string) string { return keyPrefix(g) + id }

func TestReadThroughAndWriteThrough(t *testing.T) {
	t.Parallel()
	obs := newCountingObserver()
	eachWrapped(t, WrapOptions{Observer: obs}, func(t *testing.T, s *Store, inner store.Store, c Cache) {
		// Each subtest has its own group name: the observer is shared.
		name := "movies_" + c.Name()
		g := mustPut(t, s, moviesGroup(name), base)
		m1 := movie(name, "m1", at(1), at(1), "one")
		mustWrite(t, s, m1)
		label := c.Name() + "/" + name

		keys := keysOf(name, "m1", "none")
		want := []*feature.Row{&m1, nil}
		if diff := cmp.Diff(want, mustLatest(t, s, keys...), rowOpts); diff != "" {
			t.Errorf("first read (-want +got):\n%s", diff)
		}
		if h, m := obs.counts(label); h != 0 || m != 2 {
			t.Errorf("first read: %d hits, %d misses; want 0, 2 (the write left only a fence)", h, m)
		}
		if diff := cmp.Diff(want, mustLatest(t, s, keys...), rowOpts); diff != "" {
			t.Errorf("second read (-want +got):\n%s", diff)
		}
		if h, m := obs.counts(label); h != 2 || m != 2 {
			t.Errorf("second read: %d hits, %d misses in all; want 2, 2", h, m)
		}

		// A write through replaces the cached row and the cached absence:
		// the next read hits and sees them.
		m1b := movie(name, "m1", at(2), at(2), "one, later")
		none := movie(name, "none", at(1), at(1), "now there")
		mustWrite(t, s, m1b, none)
		es, err := c.Get(t.Context(), []string{cacheKey(g, "m1"), cacheKey(g, "none")})
		if err != nil {
			t.Fatal(err)
		}
		if !es[0].Found || !es[1].Found || es[0].Row == nil || es[1].Row == nil {
			t.Fatalf("cache after write-through = %+v, want both rows", es)
		}
		if diff := cmp.Diff([]*feature.Row{&m1b, &none}, mustLatest(t, s, keys...), rowOpts); diff != "" {
			t.Errorf("read after write (-want +got):\n%s", diff)
		}
		if h, m := obs.counts(label); h != 4 || m != 2 {
			t.Errorf("read after write: %d hits, %d misses in all; want 4, 2", h, m)
		}
	})
}

// TestLateOlderWrite is why a written row is cached only over an existing
// entry: with the cache empty, a late-arriving older event, which the store
// keeps in history only, must not become the cached latest.
func TestLateOlderWrite(t *testing.T) {
	t.Parallel()
	eachWrapped(t, WrapOptions{}, func(t *testing.T, s *Store, inner store.Store, c Cache) {
		mustPut(t, s, moviesGroup("movies"), base)
		newer := movie("movies", "m1", at(20), at(20), "newer")
		mustWrite(t, inner, newer) // written behind the cache's back, as by an expired entry
		late := movie("movies", "m1", at(10), at(30), "late")
		mustWrite(t, s, late)
		for i := range 2 {
			if got := mustLatest(t, s, keysOf("movies", "m1")...)[0]; got == nil || got.Values["title"] != "newer" {
				t.Errorf("read %d after a late older write = %+v, want the newer row", i, got)
			}
		}
	})
}

func TestGroupIncarnation(t *testing.T) {
	t.Parallel()
	eachWrapped(t, WrapOptions{RetryInterval: 10 * time.Millisecond}, func(t *testing.T, s *Store, inner store.Store, c Cache) {
		ctx := t.Context()
		for i, recreated := range []time.Time{at(100), base} {
			name := fmt.Sprintf("g%d", i)
			mustPut(t, s, moviesGroup(name), base)
			mustWrite(t, s, movie(name, "m1", at(1), at(1), "old"))
			mustLatest(t, s, keysOf(name, "m1")...)
			if got := mustLatest(t, s, keysOf(name, "m1")...)[0]; got == nil {
				t.Fatalf("row not there before delete")
			}
			if err := s.DeleteGroup(ctx, name); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetLatest(ctx, keysOf(name, "m1")); feature.ErrorCode(err) != feature.CodeNotFound {
				t.Errorf("GetLatest of a deleted group: %v, want not found", err)
			}
			// Re-created, with a later CreatedAt or (a clock that stood
			// still) the same one: the old cached row must not come back.
			mustPut(t, s, moviesGroup(name), recreated)
			if got := mustLatest(t, s, keysOf(name, "m1")...)[0]; got != nil {
				t.Errorf("re-created at %v: old row came back: %+v", recreated, got)
			}
		}
		testenv.Eventually(t, 10*time.Second, "the cache trusted again", func() (bool, string) { return s.Trusted(), "" })
		if got := mustLatest(t, s, keysOf("g1", "m1")...)[0]; got != nil {
			t.Errorf("after the clear: old row came back: %+v", got)
		}

		// A group created behind the wrapper's back is learned on first use.
		other := Wrap(nopClose{inner}, c, withEpochs(inner, WrapOptions{}))
		defer other.Close()
		mustPut(t, other, moviesGroup("late"), base)
		mustWrite(t, other, movie("late", "m1", at(1), at(1), "x"))
		if got := mustLatest(t, s, keysOf("late", "m1")...)[0]; got == nil || got.Values["title"] != "x" {
			t.Errorf("read of a group the wrapper did not know = %+v", got)
		}
		mustPut(t, other, moviesGroup("later"), base)
		mustWrite(t, s, movie("later", "m1", at(1), at(1), "y")) // s learns the group to write through
		if got := mustLatest(t, other, keysOf("later", "m1")...)[0]; got == nil || got.Values["title"] != "y" {
			t.Errorf("write to a group the wrapper did not know, read back = %+v", got)
		}
		if !s.Trusted() || s.Dirty() != 0 {
			t.Errorf("after writing to a new group: trusted %v, dirty %d", s.Trusted(), s.Dirty())
		}
	})
}

// TestBatchTie: two rows of one entity with the same version in one batch;
// the store keeps either, so the cache must learn which from the store.
func TestBatchTie(t *testing.T) {
	t.Parallel()
	eachWrapped(t, WrapOptions{RetryInterval: 10 * time.Millisecond}, func(t *testing.T, s *Store, inner store.Store, c Cache) {
		mustPut(t, s, moviesGroup("movies"), base)
		keys := keysOf("movies", "m1")
		mustWrite(t, s, movie("movies", "m1", at(1), at(1), "old"))
		mustLatest(t, s, keys...)
		// Sub-microsecond differences vanish in the store: a tie too.
		mustWrite(t, s, movie("movies", "m1", at(2), at(2), "x"), movie("movies", "m1", at(2), at(2).Add(500), "y"))
		want := mustLatest(t, inner, keys...)
		for range 2 {
			if diff := cmp.Diff(want, mustLatest(t, s, keys...), rowOpts); diff != "" {
				t.Errorf("read after a tie (-store +wrapper):\n%s", diff)
			}
		}
		testenv.Eventually(t, 10*time.Second, "the repair", func() (bool, string) { return s.Dirty() == 0, "" })
		for range 2 {
			if diff := cmp.Diff(want, mustLatest(t, s, keys...), rowOpts); diff != "" {
				t.Errorf("read after the repair (-store +wrapper):\n%s", diff)
			}
		}
	})
}

// jitterStore widens the race windows of the wrapper: it pauses after
// reading latest rows and before returning from a write.
type jitterStore struct{ store.Store }

func jitter() { time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond) }

func (j jitterStore) GetLatest(ctx context.Context, keys []feature.Key) ([]*feature.Row, error) {
	rows, err := j.Store.GetLatest(ctx, keys)
	jitter()
	return rows, err
}

func (j jitterStore) WriteRows(ctx context.Context, rows []feature.Row) error {
	err := j.Store.WriteRows(ctx, rows)
	jitter()
	return err
}

// gatedStore pauses GetLatest, after it has read from the store, until the
// test lets it go.
type gatedStore struct {
	store.Store
	reading chan struct{} // receives once the read is done
	release chan struct{} // closed by the test to let the read return
}

func (g *gatedStore) GetLatest(ctx context.Context, keys []feature.Key) ([]*feature.Row, error) {
	rows, err := g.Store.GetLatest(ctx, keys)
	if g.reading != nil {
		g.reading <- struct{}{}
		<-g.release
	}
	return rows, err
}

// TestFillRace plays the race the compare-and-set exists for: a read misses
// and loads the old row (or no row) from the store; a write commits a newer
// row and writes it through; then the read fills the cache with what it
// loaded. The fill must lose: the next read returns the written row.
func TestFillRace(t *testing.T) {
	t.Parallel()
	eachWrapped(t, WrapOptions{}, func(t *testing.T, _ *Store, inner store.Store, c Cache) {
		gs := &gatedStore{Store: inner}
		s := wrap(t, gs, c, WrapOptions{})
		mustPut(t, s, moviesGroup("movies"), base)
		tests := []struct {
			name  string
			setup func(id string) // what the store and cache hold before
			old   *feature.Row
		}{
			{"old row, cache holds a fence", func(id string) {
				mustWrite(t, s, movie("movies", id, at(1), at(1), "old"))
			}, ptr(movie("movies", "", at(1), at(1), "old"))},
			{"old row, cache holds nothing", func(id string) {
				mustWrite(t, inner, movie("movies", id, at(1), at(1), "old"))
			}, ptr(movie("movies", "", at(1), at(1), "old"))},
			{"no row yet, cache holds nothing", func(string) {}, nil},
		}
		for i, tc := range tests {
			id := fmt.Sprintf("m%d", i)
			tc.setup(id)
			gs.reading, gs.release = make(chan struct{}), make(chan struct{})
			var loaded *feature.Row
			done := make(chan error)
			go func() {
				rows, err := s.GetLatest(context.Background(), keysOf("movies", id))
				if err == nil {
					loaded = rows[0]
				}
				done <- err
			}()
			select {
			case <-gs.reading: // the read has loaded the old row
			case err := <-done:
				t.Fatalf("%s: the racing read did not miss the cache (err %v)", tc.name, err)
			}
			gs.reading = nil
			written := movie("movies", id, at(2), at(2), "new")
			mustWrite(t, s, written)
			close(gs.release) // and now it fills the cache
			if err := <-done; err != nil {
				t.Fatalf("%s: racing read: %v", tc.name, err)
			}
			if (loaded == nil) != (tc.old == nil) || loaded != nil && loaded.Values["title"] != "old" {
				t.Fatalf("%s: test setup: racing read loaded %+v, want %v", tc.name, loaded, tc.old)
			}
			for range 2 { // a miss that fills, then a hit
				got := mustLatest(t, s, keysOf("movies", id)...)[0]
				if diff := cmp.Diff(&written, got, rowOpts); diff != "" {
					t.Errorf("%s: read after the acknowledged write (-want +got):\n%s", tc.name, diff)
				}
			}
		}
	})
}

// TestNoStaleReadAfterWrite races readers and writers over a few entities at
// a time (new ones every few writes, so reads miss and fill often): after
// each acknowledged write, the writer's next read returns that row or a newer
// one; at the end the cache holds each entity's latest row.
func TestNoStaleReadAfterWrite(t *testing.T) {
	t.Parallel()
	eachWrapped(t, WrapOptions{}, func(t *testing.T, _ *Store, inner store.Store, c Cache) {
		const (
			workers  = 8
			rounds   = 40
			entities = 3 // per generation
		)
		s := wrap(t, jitterStore{inner}, c, WrapOptions{})
		g := mustPut(t, s, moviesGroup("movies"), base)
		var (
			clock  atomic.Int64 // unique write times
			writes atomic.Int64
		)
		next := func() time.Time { return base.Add(time.Duration(clock.Add(1)) * time.Microsecond) }
		generation := func() []feature.Key {
			gen := int(writes.Load() / 6)
			keys := make([]feature.Key, entities)
			for i := range keys {
				keys[i] = feature.Key{Group: "movies", EntityID: fmt.Sprintf("e%d", gen*entities+i)}
			}
			return keys
		}

		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 1))
				for r := range rounds {
					ctx := context.Background()
					keys := generation()
					if rng.IntN(3) == 0 {
						// A reader of the generation: its fills race the writes.
						if _, err := s.GetLatest(ctx, keys); err != nil {
							t.Errorf("GetLatest: %v", err)
							return
						}
						continue
					}
					id := keys[rng.IntN(len(keys))].EntityID
					row := movie("movies", id, at(0), next(), fmt.Sprintf("w%d r%d", w, r))
					batch := []feature.Row{row}
					if rng.IntN(4) == 0 {
						// A late older event in the same batch: history only.
						batch = append(batch, movie("movies", id, at(-1), next(), "late"))
					}
					if err := s.WriteRows(ctx, batch); err != nil {
						t.Errorf("WriteRows: %v", err)
						return
					}
					writes.Add(1)
					got, err := s.GetLatest(ctx, keysOf("movies", id))
					if err != nil {
						t.Errorf("GetLatest: %v", err)
						return
					}
					switch r := got[0]; {
					case r == nil:
						t.Errorf("%s: no row after an acknowledged write", id)
						return
					case row.Newer(*r):
						t.Errorf("%s: stale read after an acknowledged write: got %q (write %v), wrote %q (write %v)",
							id, r.Values["title"], r.WriteTime, row.Values["title"], row.WriteTime)
						return
					case r.Values["budget"] != r.WriteTime.UnixMicro() || r.Values["title"] == "late":
						t.Errorf("%s: torn or late row %+v", id, r)
						return
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}

		var keys []feature.Key
		for i := range (int(writes.Load())/6 + 1) * entities {
			keys = append(keys, feature.Key{Group: "movies", EntityID: fmt.Sprintf("e%d", i)})
		}
		want, err := inner.GetLatest(t.Context(), keys)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, mustLatest(t, s, keys...), rowOpts); diff != "" {
			t.Errorf("final read (-store +wrapper):\n%s", diff)
		}
		ckeys := make([]string, len(keys))
		for i, k := range keys {
			ckeys[i] = cacheKey(g, k.EntityID)
		}
		es, err := c.Get(t.Context(), ckeys)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range es {
			if !e.Found {
				t.Errorf("%s: not cached after a read", keys[i].EntityID)
				continue
			}
			if e.Row != nil {
				e.Row.Group, e.Row.EntityID = "movies", keys[i].EntityID
			}
			if diff := cmp.Diff(want[i], e.Row, rowOpts); diff != "" {
				t.Errorf("%s: cache differs from the store (-store +cache):\n%s", keys[i].EntityID, diff)
			}
		}
	})
}

// flakyCache is a cache that can be made to fail, counting the calls that
// reach it.
type flakyCache struct {
	Cache
	failing atomic.Bool
	calls   atomic.Int64
}

var errFlaky = errors.New("cache made to fail")

func (f *flakyCache) Get(ctx context.Context, keys []string) ([]Entry, error) {
	f.calls.Add(1)
	if f.failing.Load() {
		return nil, errFlaky
	}
	return f.Cache.Get(ctx, keys)
}

func (f *flakyCache) Set(ctx context.Context, es []SetEntry) error {
	f.calls.Add(1)
	if f.failing.Load() {
		return errFlaky
	}
	return f.Cache.Set(ctx, es)
}

func (f *flakyCache) Clear(ctx context.Context) error {
	f.calls.Add(1)
	if f.failing.Load() {
		return errFlaky
	}
	return f.Cache.Clear(ctx)
}

// TestCacheFailure: writes during a cache outage are acknowledged and mark
// their keys dirty; the breaker keeps calls away from the failing cache but
// for one probe per interval; reads stay correct, also once the cache answers
// again but still holds the stale rows; the repair overwrites those.
func TestCacheFailure(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: base}
	obs := newCountingObserver()
	inner := newPostgres(t)
	c := &flakyCache{Cache: NewMemory(MemoryOptions{})}
	// The breaker runs on the fake clock; the repair loop's ticker, on real
	// time, never fires: the test repairs by hand.
	s := wrap(t, inner, c, WrapOptions{Observer: obs, Now: clock.Now, RetryInterval: time.Hour})
	g := mustPut(t, s, moviesGroup("movies"), base)
	keys := keysOf("movies", "a", "b", "c", "d") // d has no row and is never dirty
	mustWrite(t, s, movie("movies", "a", at(1), at(1), "a1"), movie("movies", "b", at(1), at(1), "b1"))
	mustLatest(t, s, keys...) // cached: a1, b1, the absences of c and d

	c.failing.Store(true)
	a2, b1, c2 := movie("movies", "a", at(2), at(2), "a2"), movie("movies", "b", at(1), at(1), "b1"), movie("movies", "c", at(2), at(2), "c2")
	mustWrite(t, s, a2, c2)
	if s.Dirty() != 2 {
		t.Errorf("Dirty = %d after a failed write-through of 2 keys", s.Dirty())
	}
	if n := obs.errorCount("memory/set"); n != 1 {
		t.Errorf("%d failed sets counted, want 1", n)
	}
	calls := c.calls.Load()
	want := []*feature.Row{&a2, &b1, &c2, nil}
	read := func(what string) {
		t.Helper()
		if diff := cmp.Diff(want, mustLatest(t, s, keys...), rowOpts); diff != "" {
			t.Errorf("read %s (-want +got):\n%s", what, diff)
		}
	}
	read("during the outage")
	b2 := movie("movies", "b", at(2), at(2), "b2")
	mustWrite(t, s, b2)
	want[1] = &b2
	read("during the outage")
	if n := c.calls.Load(); n != calls {
		t.Errorf("%d calls reached the cache while the breaker was open", n-calls)
	}
	if s.Dirty() != 3 {
		t.Errorf("Dirty = %d, want 3: a write while the breaker is open marks its keys", s.Dirty())
	}

	// The interval passes: one call probes the cache (for d, as a, b and c
	// bypass it), fails, and re-arms the breaker.
	clock.Add(time.Hour)
	read("probing the failed cache")
	read("after the probe")
	if n := c.calls.Load(); n != calls+1 {
		t.Errorf("%d calls reached the cache after one interval, want 1", n-calls)
	}

	// The cache answers again, still holding a1, b1 and the absence of c:
	// reads of the dirty keys must not use them.
	c.failing.Store(false)
	clock.Add(time.Hour)
	read("after the cache came back, before the repair")
	stale, _ := c.Cache.Get(t.Context(), []string{cacheKey(g, "a")})
	if state(stale[0]) != "a1" {
		t.Fatalf("test setup: the cache should still hold a1, holds %s", state(stale[0]))
	}
	if n := c.calls.Load(); n != calls+2 {
		t.Errorf("the read after the cache came back made %d calls, want 1 (the Get of d, a hit)", n-calls-1)
	}
	s.repair.repairDirty(t.Context())
	if s.Dirty() != 0 {
		t.Errorf("Dirty = %d after the repair", s.Dirty())
	}
	for i, id := range []string{"a", "b", "c"} {
		es, _ := c.Cache.Get(t.Context(), []string{cacheKey(g, id)})
		if es[0].Row == nil || es[0].Row.Values["title"] != want[i].Values["title"] {
			t.Errorf("%s after the repair: cache holds %s, want %s", id, state(es[0]), want[i].Values["title"])
		}
	}
	h0, _ := obs.counts("memory/movies")
	read("after the repair")
	if h, _ := obs.counts("memory/movies"); h != h0+4 {
		t.Errorf("read after the repair: %d hits, want 4", h-h0)
	}
}

func ptr[T any](v T) *T { return &v }

// TestDirtyOverflow: past MaxDirty, the cache is distrusted, then cleared and
// trusted again once it answers.
func TestDirtyOverflow(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: base}
	inner := newPostgres(t)
	c := &flakyCache{Cache: NewMemory(MemoryOptions{})}
	s := wrap(t, inner, c, WrapOptions{Now: clock.Now, MaxDirty: 3, RetryInterval: 5 * time.Millisecond})
	g := mustPut(t, s, moviesGroup("movies"), base)
	ids := []string{"a", "b", "c", "d", "e"}
	var rows []feature.Row
	for _, id := range ids {
		rows = append(rows, movie("movies", id, at(1), at(1), id+"1"))
	}
	mustWrite(t, s, rows...)
	mustLatest(t, s, keysOf("movies", ids...)...)

	c.failing.Store(true)
	rows = rows[:0]
	for _, id := range ids {
		rows = append(rows, movie("movies", id, at(2), at(2), id+"2"))
	}
	mustWrite(t, s, rows[:2]...)
	if !s.Trusted() || s.Dirty() != 2 {
		t.Fatalf("after 2 dirty keys: trusted %v, dirty %d", s.Trusted(), s.Dirty())
	}
	mustWrite(t, s, rows[2:]...)
	if s.Trusted() || s.Dirty() != 0 {
		t.Errorf("after 5 dirty keys, 3 allowed: trusted %v, dirty %d; want false, 0", s.Trusted(), s.Dirty())
	}
	want := make([]*feature.Row, len(rows))
	for i := range rows {
		want[i] = &rows[i]
	}
	c.failing.Store(false) // answers, but is not used until cleared
	calls := c.calls.Load()
	if diff := cmp.Diff(want, mustLatest(t, s, keysOf("movies", ids...)...), rowOpts); diff != "" {
		t.Errorf("read while distrusted (-want +got):\n%s", diff)
	}
	if n := c.calls.Load(); n != calls {
		t.Errorf("%d calls reached a distrusted cache", n-calls)
	}
	clock.Add(time.Second)
	testenv.Eventually(t, 10*time.Second, "trust", func() (bool, string) { return s.Trusted(), "" })
	es, _ := c.Cache.Get(t.Context(), []string{cacheKey(g, "a")})
	if es[0].Found {
		t.Errorf("stale entry survived the clear: %s", state(es[0]))
	}
	if diff := cmp.Diff(want, mustLatest(t, s, keysOf("movies", ids...)...), rowOpts); diff != "" {
		t.Errorf("read after the clear (-want +got):\n%s", diff)
	}
}

// TestDeletedGroupOtherServer: two servers share Postgres and Redis; once a
// has acknowledged the deletion of a group, b, which has not heard of it
// (no registry notification reached it: b knows the old incarnation and has
// its row cached), must not answer the group's cached rows. The tombstone a
// wrote is looked up with b's keys; without it (a could not write to
// Redis), the generation a bumped keeps b away from the cache once b has
// checked it.
func TestDeletedGroupOtherServer(t *testing.T) {
	t.Parallel()
	inner, c := newPostgres(t), newRedisCache(t, RedisOptions{})
	obs := newCountingObserver()
	b := wrap(t, inner, c, WrapOptions{Observer: obs, RetryInterval: 10 * time.Millisecond})
	ctx := t.Context()

	// cachedInB creates g through b, writes a row and reads it into b's
	// cache (the second read is a hit).
	cachedInB := func(name string) {
		t.Helper()
		mustPut(t, b, moviesGroup(name), base)
		mustWrite(t, b, movie(name, "m1", at(1), at(1), "cached"))
		mustLatest(t, b, keysOf(name, "m1")...)
		hits, _ := obs.counts("redis/" + name)
		if got := mustLatest(t, b, keysOf(name, "m1")...)[0]; got == nil || got.Values["title"] != "cached" {
			t.Fatalf("b's read of %s before the delete = %+v", name, got)
		}
		if h, _ := obs.counts("redis/" + name); h != hits+1 {
			t.Fatalf("b's second read of %s was not a cache hit", name)
		}
	}
	wantGone := func(what, name string) {
		t.Helper()
		if got, err := b.GetLatest(ctx, keysOf(name, "m1")); feature.ErrorCode(err) != feature.CodeNotFound {
			t.Errorf("%s: b read %s after its acknowledged delete: %v, %v; want not found", what, name, got, err)
		}
	}

	t.Run("tombstone", func(t *testing.T) {
		a := wrap(t, inner, c, WrapOptions{})
		cachedInB("g1")
		g1, err := inner.GetGroup(ctx, "g1")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteGroup(ctx, "g1"); err != nil {
			t.Fatal(err)
		}
		wantGone("right after", "g1")
		// A fill by a read of b that began before the delete and ends after
		// it puts the row back into the old incarnation's key: the
		// tombstone still hides it.
		late := movie("g1", "m1", at(1), at(3), "late fill")
		set(t, c, SetEntry{Key: cacheKey(g1, "m1"), Row: &late})
		wantGone("after a late fill", "g1")
		if got := state(get(t, c, cacheKey(g1, "m1"))[0]); got != "late fill" {
			t.Fatalf("the late fill is not in the cache (%s): the test proves nothing", got)
		}
		// Re-created: the new incarnation is read normally.
		mustPut(t, a, moviesGroup("g1"), at(100))
		mustWrite(t, a, movie("g1", "m1", at(2), at(2), "new"))
		if got := mustLatest(t, b, keysOf("g1", "m1")...)[0]; got == nil || got.Values["title"] != "new" {
			t.Errorf("b's read of the re-created group = %+v", got)
		}
	})

	t.Run("generation", func(t *testing.T) {
		a := wrap(t, inner, setFails{c}, WrapOptions{})
		cachedInB("g2")
		gen, _, err := inner.CacheEpoch(ctx, c.Prefix(), c.TTL())
		if err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteGroup(ctx, "g2"); err != nil {
			t.Fatal(err)
		}
		if now, _, err := inner.CacheEpoch(ctx, c.Prefix(), c.TTL()); err != nil || now <= gen {
			t.Fatalf("generation after a delete whose tombstone failed: %d (was %d), %v; want bumped", now, gen, err)
		}
		// b stops reading the cache at its next check (RetryInterval).
		testenv.Eventually(t, time.Minute, "b no longer serves the deleted group", func() (bool, string) {
			got, err := b.GetLatest(ctx, keysOf("g2", "m1"))
			return feature.ErrorCode(err) == feature.CodeNotFound, fmt.Sprintf("%v, %v", got, err)
		})
	})
}

// setFails is a Redis cache whose writes fail, as for a server cut off
// from Redis.
type setFails struct{ *Redis }

func (setFails) Set(context.Context, []SetEntry) error {
	return errors.New("injected: redis set fails")
}
