package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/testenv"
)

// newPrivateRedisCache is a cache on r with the recommended short timeouts.
func newPrivateRedisCache(t *testing.T, r *testenv.Redis) *Redis {
	t.Helper()
	opts, err := RedisOptionsFromURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return NewRedis(c, RedisOptions{Prefix: "fs_t"})
}

// freshnessChecker reads keys in a loop while the test writes, failing if a
// read returns a row older than one acknowledged before the read began.
type freshnessChecker struct {
	acked sync.Map // entity -> *feature.Row acknowledged
	stop  chan struct{}
	done  chan struct{}
	reads atomic.Int64
}

func checkFreshness(t *testing.T, s *Store, keys []feature.Key) *freshnessChecker {
	f := &freshnessChecker{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.stop:
				return
			default:
			}
			before := make([]*feature.Row, len(keys))
			for i, k := range keys {
				if v, ok := f.acked.Load(k.EntityID); ok {
					before[i] = v.(*feature.Row)
				}
			}
			rows, err := s.GetLatest(context.Background(), keys)
			if err != nil {
				t.Errorf("read failed: %v", err)
				return
			}
			f.reads.Add(1)
			for i, r := range rows {
				if b := before[i]; b != nil && (r == nil || b.Newer(*r)) {
					t.Errorf("stale read of %s: got %+v, acknowledged %q", keys[i].EntityID, r, b.Values["title"])
					return
				}
			}
		}
	}()
	return f
}

func (f *freshnessChecker) write(t *testing.T, s *Store, rows ...feature.Row) {
	t.Helper()
	mustWrite(t, s, rows...)
	for i := range rows {
		f.acked.Store(rows[i].EntityID, &rows[i])
	}
}

// waitReads waits until the checker has completed n more reads.
func (f *freshnessChecker) waitReads(t *testing.T, n int64) {
	t.Helper()
	target := f.reads.Load() + n
	testenv.Eventually(t, 30*time.Second, "reads", func() (bool, string) { return f.reads.Load() >= target || t.Failed(), "" })
}

func (f *freshnessChecker) close() {
	close(f.stop)
	<-f.done
}

func titles(t *testing.T, r *Redis, g feature.Group, ids ...string) []string {
	t.Helper()
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = cacheKey(g, id)
	}
	es, err := r.Get(t.Context(), keys)
	if err != nil {
		t.Fatalf("direct Get: %v", err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = state(e)
	}
	return out
}

func rowsOf(group string, ids []string, version int, suffix string) []feature.Row {
	rows := make([]feature.Row, len(ids))
	for i, id := range ids {
		rows[i] = movie(group, id, at(version), at(version), id+suffix)
	}
	return rows
}

// TestRedisPartition freezes Redis (SIGSTOP: connections hang, data stays),
// writes new rows meanwhile, and resumes it still holding the old rows: reads
// must never return them, and the repair loop must overwrite them.
func TestRedisPartition(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	rc := newPrivateRedisCache(t, srv)
	obs := newCountingObserver()
	s := wrap(t, newPostgres(t), rc, WrapOptions{Observer: obs, RetryInterval: 50 * time.Millisecond})
	g := mustPut(t, s, moviesGroup("movies"), base)
	ids := []string{"a", "b", "c"}
	keys := keysOf("movies", ids...)
	f := checkFreshness(t, s, keys)
	defer f.close()

	f.write(t, s, rowsOf("movies", ids, 1, "1")...)
	f.waitReads(t, 2)
	if got := fmt.Sprint(titles(t, rc, g, ids...)); got != "[a1 b1 c1]" {
		t.Fatalf("cache before the partition holds %s", got)
	}

	srv.Pause()
	f.write(t, s, rowsOf("movies", ids, 2, "2")...)
	if s.Dirty() != len(ids) {
		t.Errorf("Dirty = %d after writes during the partition, want %d", s.Dirty(), len(ids))
	}
	f.waitReads(t, 5)
	if h := rc.Health(t.Context()); h.Status != "DOWN" {
		t.Errorf("Health during the partition = %+v", h)
	}
	f.write(t, s, rowsOf("movies", ids, 3, "3")...)
	f.waitReads(t, 5)

	srv.Resume()
	testenv.Eventually(t, 30*time.Second, "the repair", func() (bool, string) {
		// A restarted Redis is distrusted, which empties the dirty set at once:
		// the repair is over when the cache is trusted again as well.
		return (s.Dirty() == 0 && s.Trusted()) || t.Failed(), fmt.Sprintf("dirty %d, trusted %v", s.Dirty(), s.Trusted())
	})
	f.waitReads(t, 5)
	if got := fmt.Sprint(titles(t, rc, g, ids...)); got != "[a3 b3 c3]" {
		t.Errorf("cache after the repair holds %s, want the rows written during the partition", got)
	}
	h0, _ := obs.counts("redis/movies")
	f.waitReads(t, 2)
	if h, _ := obs.counts("redis/movies"); h <= h0 {
		t.Errorf("reads after the repair do not hit the cache")
	}
	if h := rc.Health(t.Context()); h.Status != "UP" {
		t.Errorf("Health after the partition = %+v", h)
	}
}

// TestRedisDown kills Redis: reads and writes go on against the store; a new
// (empty, script-less) Redis on the same port is used again once the repair
// loop has caught up.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	rc := newPrivateRedisCache(t, srv)
	obs := newCountingObserver()
	s := wrap(t, newPostgres(t), rc, WrapOptions{Observer: obs, RetryInterval: 50 * time.Millisecond})
	g := mustPut(t, s, moviesGroup("movies"), base)
	ids := []string{"a", "b", "c"}
	keys := keysOf("movies", ids...)
	f := checkFreshness(t, s, keys)
	defer f.close()

	f.write(t, s, rowsOf("movies", ids, 1, "1")...)
	f.waitReads(t, 2)
	srv.Kill()
	f.write(t, s, rowsOf("movies", ids[:2], 2, "2")...)
	if s.Dirty() != 2 {
		t.Errorf("Dirty = %d after writing 2 keys with Redis down", s.Dirty())
	}
	f.waitReads(t, 5)
	if h := rc.Health(t.Context()); h.Status != "DOWN" || h.Error == "" {
		t.Errorf("Health with Redis down = %+v", h)
	}
	if obs.errorCount("redis/get")+obs.errorCount("redis/set") == 0 {
		t.Errorf("no cache errors counted")
	}

	srv.Restart()
	testenv.Eventually(t, 30*time.Second, "the repair", func() (bool, string) {
		// A restarted Redis is distrusted, which empties the dirty set at once:
		// the repair is over when the cache is trusted again as well.
		return (s.Dirty() == 0 && s.Trusted()) || t.Failed(), fmt.Sprintf("dirty %d, trusted %v", s.Dirty(), s.Trusted())
	})
	f.waitReads(t, 5)
	if got := fmt.Sprint(titles(t, rc, g, ids...)); got != "[a2 b2 c1]" {
		t.Errorf("cache after the restart holds %s", got)
	}
	h0, _ := obs.counts("redis/movies")
	f.waitReads(t, 2)
	if h, _ := obs.counts("redis/movies"); h <= h0 {
		t.Errorf("reads after the restart do not hit the cache")
	}
}

// TestRedisPartitionOverflow: more dirty keys than allowed during a
// partition; after it the cache is cleared (old rows included) before it is
// used again.
func TestRedisPartitionOverflow(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	rc := newPrivateRedisCache(t, srv)
	s := wrap(t, newPostgres(t), rc, WrapOptions{MaxDirty: 2, RetryInterval: 50 * time.Millisecond})
	g := mustPut(t, s, moviesGroup("movies"), base)
	ids := []string{"a", "b", "c", "d"}
	keys := keysOf("movies", ids...)
	f := checkFreshness(t, s, keys)
	defer f.close()

	f.write(t, s, rowsOf("movies", ids, 1, "1")...)
	f.waitReads(t, 2)
	srv.Pause()
	f.write(t, s, rowsOf("movies", ids[:3], 2, "2")...)
	if s.Trusted() {
		t.Errorf("still trusted with 3 dirty keys, 2 allowed")
	}
	f.waitReads(t, 5)
	srv.Resume()
	testenv.Eventually(t, 30*time.Second, "trust", func() (bool, string) { return s.Trusted() || t.Failed(), "" })
	f.waitReads(t, 5)
	// Cleared, then refilled by the reads: d1 is read back from the store.
	if got := fmt.Sprint(titles(t, rc, g, ids...)); got != "[a2 b2 c2 d1]" {
		t.Errorf("cache after the clear holds %s", got)
	}
}
