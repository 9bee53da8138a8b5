package cache

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
)

// openClusterCache opens the cache on cl in cluster mode, with the
// service's client settings but for generous timeouts: the test machine
// runs many packages' tests at once, and a timeout would count as a cache
// error.
func openClusterCache(t *testing.T, cl *testenv.RedisCluster) *Redis {
	t.Helper()
	rc, err := OpenRedis(RedisCluster, cl.URL()+"&read_timeout=5s&write_timeout=5s&pool_timeout=5s", RedisOptions{Prefix: "fs_t_cluster"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return rc
}

// seqRows returns rows of group for entities 0..n-1 with value seq at
// event time seq.
func seqRows(group string, n int, seq int64) []feature.Row {
	rows := make([]feature.Row, n)
	for i := range rows {
		rows[i] = seqRow(group, i, seq)
	}
	return rows
}

func seqRow(group string, i int, seq int64) feature.Row {
	return feature.Row{Group: group, EntityID: "e" + strconv.Itoa(i), EventTime: at(int(seq)), WriteTime: at(int(seq)),
		Values: feature.Values{"title": strconv.FormatInt(seq, 10)}}
}

func seqOf(t *testing.T, r *feature.Row) int64 {
	t.Helper()
	if r == nil {
		return -1
	}
	n, err := strconv.ParseInt(r.Values["title"].(string), 10, 64)
	if err != nil {
		t.Fatalf("row %+v: %v", r, err)
	}
	return n
}

// storeMax raises v to x if x is greater.
func storeMax(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if cur >= x || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// TestRedisClusterReadsAndWrites runs the cache on a real 6-node Redis
// Cluster: a bulk write-through is spread over the three masters without a
// single error (no MOVED, no timeout),
// batch reads across slots hit, and health reports the cluster's state.
func TestRedisClusterReadsAndWrites(t *testing.T) {
	t.Parallel()
	cl := testenv.StartRedisCluster(t)
	rc := openClusterCache(t, cl)
	obs := newCountingObserver()
	s := wrap(t, newPostgres(t), rc, WrapOptions{Observer: obs})
	mustPut(t, s, moviesGroup("movies"), base)

	const n = 20_000
	mustWrite(t, s, seqRows("movies", n, 1)...)
	if got := obs.errorCount("redis/set"); got != 0 {
		t.Fatalf("bulk write-through of %d rows: %d failed sets", n, got)
	}
	// Every master holds a share of the keys.
	for _, m := range cl.Masters() {
		f, err := cl.NodeInfo(m, "keyspace")
		if err != nil {
			t.Fatal(err)
		}
		if f["db0"] == "" {
			t.Errorf("master %s holds no key: the writes did not spread over the cluster", m.Addr())
		}
	}
	keys := make([]feature.Key, n)
	for i := range keys {
		keys[i] = feature.Key{Group: "movies", EntityID: "e" + strconv.Itoa(i)}
	}
	// The write left fences (it did not know the rows were the latest);
	// the first read fills, the second hits, in batches of 500 across slots.
	for round := range 2 {
		for lo := 0; lo < n; lo += 500 {
			rows := mustLatest(t, s, keys[lo:lo+500]...)
			for i, r := range rows {
				if seqOf(t, r) != 1 {
					t.Fatalf("round %d: entity %d = %+v, want seq 1", round, lo+i, r)
				}
			}
		}
	}
	if h, _ := obs.counts("redis/movies"); h != n {
		t.Errorf("hits after two rounds of reads = %d, want %d", h, n)
	}
	if errs := obs.errorCount("redis/get") + obs.errorCount("redis/set"); errs != 0 {
		t.Errorf("%d cache errors on a healthy cluster", errs)
	}
	// A write-through replaces cached rows on every master.
	mustWrite(t, s, seqRows("movies", n, 2)...)
	for lo := 0; lo < n; lo += 500 {
		for i, r := range mustLatest(t, s, keys[lo:lo+500]...) {
			if seqOf(t, r) != 2 {
				t.Fatalf("after the second write: entity %d = %+v, want seq 2", lo+i, r)
			}
		}
	}
	if h, _ := obs.counts("redis/movies"); h != 2*n {
		t.Errorf("hits after the write-through = %d, want %d", h, 2*n)
	}

	comp := s.HealthOf(rc).Health(t.Context())
	if comp.Status != store.HealthUp || comp.Details["cluster_state"] != "ok" || comp.Details["cluster_masters"] != int64(3) {
		t.Errorf("health = %+v, want UP with cluster_state ok and 3 masters", comp)
	}
}

// TestRedisClusterFailover kills a master of a real Redis Cluster with
// SIGKILL while entities are read and written continuously: no read returns
// a value older than the last acknowledged write, health names the
// cluster's state while a slot range has no master, and once a replica
// has taken over, the cache is checked again and serves hits.
func TestRedisClusterFailover(t *testing.T) {
	t.Parallel()
	cl := testenv.StartRedisCluster(t)
	rc := openClusterCache(t, cl)
	obs := newCountingObserver()
	s := wrap(t, newPostgres(t), rc, WrapOptions{Observer: obs, RetryInterval: 100 * time.Millisecond})
	mustPut(t, s, moviesGroup("movies"), base)

	const n = 300
	mustWrite(t, s, seqRows("movies", n, 1)...)
	keys := make([]feature.Key, n)
	for i := range keys {
		keys[i] = feature.Key{Group: "movies", EntityID: "e" + strconv.Itoa(i)}
	}
	mustLatest(t, s, keys...) // fill

	// acked[i] is the last acknowledged seq of entity i; issued[i] the
	// newest seq a writer has started to write.
	var acked, issued [n]atomic.Int64
	for i := range n {
		acked[i].Store(1)
		issued[i].Store(1)
	}
	var (
		wrong   atomic.Int64
		reads   atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		firstMu sync.Mutex
		first   string
	)
	ctx := context.Background()
	var clock atomic.Int64 // the seq of the next write: every write is newer
	clock.Store(1)
	wg.Go(func() { // writer: one entity after another of the first third, each a new seq
		for {
			for i := range n / 3 {
				select {
				case <-stop:
					return
				default:
				}
				seq := clock.Add(1)
				storeMax(&issued[i], seq)
				if err := s.WriteRows(ctx, []feature.Row{seqRow("movies", i, seq)}); err != nil {
					t.Errorf("write e%d seq %d: %v", i, seq, err)
					return
				}
				storeMax(&acked[i], seq)
			}
		}
	})
	for range 2 { // readers: batches of 50 across slots
		wg.Go(func() {
			for off := 0; ; off = (off + 50) % n {
				select {
				case <-stop:
					return
				default:
				}
				var lo [50]int64
				for j := range 50 {
					lo[j] = acked[off+j].Load()
				}
				rows, err := s.GetLatest(ctx, keys[off:off+50])
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
				for j, r := range rows {
					got, hi := seqOf(t, r), issued[off+j].Load()
					if got < lo[j] || got > hi {
						if wrong.Add(1) == 1 {
							firstMu.Lock()
							first = fmt.Sprintf("e%d read seq %d, acknowledged %d before the read", off+j, got, lo[j])
							firstMu.Unlock()
						}
					}
				}
				reads.Add(1)
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		if w := wrong.Load(); w != 0 {
			t.Errorf("%d wrong reads; the first: %s", w, first)
		}
	}()
	waitReads := func(what string, more int64) {
		t.Helper()
		start := reads.Load()
		testenv.Eventually(t, 2*time.Minute, what, func() (bool, string) {
			r := reads.Load()
			return r >= start+more, fmt.Sprintf("%d reads", r-start)
		})
	}
	waitReads("reads before the failover", 20)

	// The replica that takes over lags: it is frozen while a batch is
	// written and acknowledged, and its master is killed before it thaws.
	// The batch is the last write of two thirds of the entities, so the
	// replica's older rows of them stay wrong unless the cache is checked.
	victim := cl.Masters()[0]
	replica := cl.ReplicaOf(victim)
	if replica == nil {
		t.Fatalf("master %s has no replica", victim.Addr())
	}
	replica.Pause()
	// Cut the replication link, so nothing written from now on reaches
	// the replica (not even into its socket buffer).
	if reply := victim.Command("CLIENT KILL TYPE replica"); !strings.HasPrefix(reply, ":1") {
		t.Fatalf("CLIENT KILL TYPE replica = %q, want 1 killed", reply)
	}
	lagged := clock.Add(1)
	for i := range n {
		storeMax(&issued[i], lagged)
	}
	if err := s.WriteRows(ctx, seqRows("movies", n, lagged)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		storeMax(&acked[i], lagged)
	}
	victim.Kill()
	replica.Resume()

	// While the dead master's slots have no master, health is down and
	// names the cluster's state.
	testenv.Eventually(t, time.Minute, "health names the failing cluster state", func() (bool, string) {
		comp := s.HealthOf(rc).Health(ctx)
		return comp.Status == store.HealthDown && comp.Details["cluster_state"] == "fail", fmt.Sprintf("%+v", comp)
	})
	cl.WaitHealthy(3) // a replica took over
	waitReads("reads after the failover", 20)

	testenv.Eventually(t, time.Minute, "health UP with cluster_state ok", func() (bool, string) {
		comp := s.HealthOf(rc).Health(ctx)
		return comp.Status == store.HealthUp && comp.Details["cluster_state"] == "ok" && comp.Details["checked"] == true &&
			comp.Details["trusted"] == true, fmt.Sprintf("%+v", comp)
	})
	t.Logf("health after the failover: %+v", s.HealthOf(rc).Health(ctx))
	if msg, _ := s.HealthOf(rc).Health(ctx).Details["last_mismatch"].(string); msg == "" {
		t.Errorf("no mismatch recorded after a failover: the promoted replica's content was trusted unchecked")
	}
	// The hit ratio recovers: over a window after the failover, most reads
	// hit the cache again.
	testenv.Eventually(t, 2*time.Minute, "hit ratio recovered", func() (bool, string) {
		h0, m0 := obs.counts("redis/movies")
		waitReads("a window of reads", 20)
		h1, m1 := obs.counts("redis/movies")
		ratio := float64(h1-h0) / float64(max(1, h1-h0+m1-m0))
		return ratio >= 0.9, fmt.Sprintf("hit ratio %.2f", ratio)
	})
}

// TestRedisSentinelFailover runs the cache on a Sentinel-managed master:
// reads and writes go to the master the Sentinel names; after a failover
// (SENTINEL FAILOVER) the promoted replica has another identity, so the
// cache is checked, cleared and used again, and every read is correct.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRedisSentinel(t)
	rc, err := OpenRedis(RedisSentinel, rs.URL()+"&read_timeout=5s&write_timeout=5s&pool_timeout=5s", RedisOptions{Prefix: "fs_t_sentinel"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	obs := newCountingObserver()
	s := wrap(t, newPostgres(t), rc, WrapOptions{Observer: obs, RetryInterval: 100 * time.Millisecond})
	mustPut(t, s, moviesGroup("movies"), base)
	const n = 100
	keys := make([]feature.Key, n)
	for i := range keys {
		keys[i] = feature.Key{Group: "movies", EntityID: "e" + strconv.Itoa(i)}
	}
	want := func(what string, seq int64) {
		t.Helper()
		for i, r := range mustLatest(t, s, keys...) {
			if seqOf(t, r) != seq {
				t.Fatalf("%s: e%d = %+v, want seq %d", what, i, r, seq)
			}
		}
	}
	mustWrite(t, s, seqRows("movies", n, 1)...)
	want("fill", 1)
	want("from the cache", 1)
	if h, _ := obs.counts("redis/movies"); h != n {
		t.Fatalf("hits = %d, want %d", h, n)
	}
	before := s.HealthOf(rc).Health(t.Context()).Details["mismatches"].(int64)

	// A sentinel that knows the replica may still refuse it (NOGOODSLAVE)
	// until its periodic INFO shows the replica's link up: ask until it
	// accepts.
	testenv.Eventually(t, time.Minute, "the sentinel accepts the failover", func() (bool, string) {
		reply := rs.Sentinel.Command("SENTINEL FAILOVER " + rs.MasterName)
		if reply != "+OK\r\n" && !strings.HasPrefix(reply, "-NOGOODSLAVE") {
			t.Fatalf("SENTINEL FAILOVER = %q", reply)
		}
		return reply == "+OK\r\n", reply
	})
	promoted := redis.NewClient(&redis.Options{Addr: rs.Replica.Addr()})
	defer promoted.Close()
	testenv.Eventually(t, 2*time.Minute, "the replica promoted", func() (bool, string) {
		info, err := promoted.Info(t.Context(), "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		return parseInfo(info)["role"] == "master", info
	})
	testenv.Eventually(t, 2*time.Minute, "writes and reads on the new master, the cache checked again", func() (bool, string) {
		if err := s.WriteRows(t.Context(), seqRows("movies", n, 2)); err != nil {
			t.Fatal(err)
		}
		want("after the failover", 2)
		d := s.HealthOf(rc).Health(t.Context()).Details
		return d["mismatches"].(int64) > before && d["checked"] == true && d["trusted"] == true, fmt.Sprint(d)
	})
	h0, _ := obs.counts("redis/movies")
	want("after the failover", 2)
	want("after the failover, from the cache", 2)
	if h1, _ := obs.counts("redis/movies"); h1-h0 < n {
		t.Errorf("hits after the failover = %d, want at least %d", h1-h0, n)
	}
}
