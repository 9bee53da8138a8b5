package cache

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb/synthetic"
)

// promObserver counts like the metrics package would: labelled counters.
type promObserver struct {
	hits, misses, errors *prometheus.CounterVec
}

func newPromObserver() *promObserver {
	return &promObserver{
		hits:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hits_total"}, []string{"cache_type", "group"}),
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "misses_total"}, []string{"cache_type", "group"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "errors_total"}, []string{"cache_type", "operation"}),
	}
}

func (o *promObserver) CacheHit(c, g string, n int)  { o.hits.WithLabelValues(c, g).Add(float64(n)) }
func (o *promObserver) CacheMiss(c, g string, n int) { o.misses.WithLabelValues(c, g).Add(float64(n)) }
func (o *promObserver) CacheError(c, op string)      { o.errors.WithLabelValues(c, op).Inc() }

// BenchmarkGetLatestHit reads batches that the cache answers entirely, in
// parallel, with and without an observer (the instrumentation's cost).
func BenchmarkGetLatestHit(b *testing.B) {
	inner := newPostgres(b)
	caches := []struct {
		name string
		c    func() Cache
	}{
		{"redis", func() Cache { return newRedisCache(b, RedisOptions{}) }},
		{"redis-near", func() Cache {
			r := newRedisCache(b, RedisOptions{NearCache: 10_000})
			testenv.Eventually(b, time.Minute, "near cache usable", func() (bool, string) { return r.near.track.current(), "not yet" })
			return r
		}},
		{"memory", func() Cache { return NewMemory(MemoryOptions{}) }},
	}
	ctx := context.Background()
	if _, err := inner.PutGroup(ctx, moviesGroup("movies"), base); err != nil {
		b.Fatal(err)
	}
	const entities = 1000
	rows := make([]feature.Row, entities)
	for i := range rows {
		rows[i] = movie("movies", fmt.Sprint(i), at(1), at(1), fmt.Sprintf("기생충 %d", i))
	}
	if err := inner.WriteRows(ctx, rows); err != nil {
		b.Fatal(err)
	}
	// "shared" reads as the HTTP handlers do: three of the four features,
	// rows only read (store.WithReadHint).
	modes := []struct {
		label            string
		observed, shared bool
	}{{"bare", false, false}, {"observed", true, false}, {"shared", false, true}}
	for _, cc := range caches {
		c := cc.c()
		for _, mode := range modes {
			opts := WrapOptions{}
			if mode.observed {
				opts.Observer = newPromObserver()
			}
			ctx := ctx
			if mode.shared {
				ctx = store.WithReadHint(ctx, []string{"budget", "title", "rating"}, true)
			}
			label := mode.label
			s := wrap(b, inner, c, opts)
			for _, batch := range []int{1, 100} {
				b.Run(fmt.Sprintf("%s/batch=%d/%s", cc.name, batch, label), func(b *testing.B) {
					var keySets [][]feature.Key
					for lo := 0; lo+batch <= entities; lo += batch {
						var keys []feature.Key
						for i := lo; i < lo+batch; i++ {
							keys = append(keys, feature.Key{Group: "movies", EntityID: fmt.Sprint(i)})
						}
						keySets = append(keySets, keys)
					}
					for _, keys := range keySets { // warm up
						if _, err := s.GetLatest(ctx, keys); err != nil {
							b.Fatal(err)
						}
					}
					near := nearMisses(c)
					b.ReportAllocs()
					cpu0 := processCPU(b)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						i := 0
						for pb.Next() {
							rows, err := s.GetLatest(ctx, keySets[i%len(keySets)])
							if err != nil || rows[0] == nil {
								b.Errorf("GetLatest: %v, %v", rows, err)
								return
							}
							i++
						}
					})
					b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "keys/s")
					// The CPU time the process spent (GC included), which
					// other loads on a shared machine inflate less than ns/op.
					b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
					if near >= 0 {
						// Reads the near cache could not answer whole (a
						// late heartbeat on a loaded machine): they went to
						// Redis, and make the numbers worse.
						b.ReportMetric(float64(nearMisses(c)-near)/float64(b.N), "near-misses/op")
					}
				})
			}
		}
	}
}

// processCPU is the CPU time, user and system, the process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nearMisses is the count of reads c's near cache could not answer whole,
// -1 if it has none.
func nearMisses(c Cache) int64 {
	if r, ok := c.(*Redis); ok && r.near != nil {
		return int64(r.near.misses.Load()) // #nosec G115 -- a count, far below 2^63
	}
	return -1
}

// BenchmarkClusterWriteThrough sets bulk-ingest batches of 500 and 5,000
// written rows in a real 6-node Redis Cluster with the service's default
// client settings (250ms timeouts), reporting rows/s and the failed sets
// per operation (a timeout is one), which should be 0 on a healthy cluster.
func BenchmarkClusterWriteThrough(b *testing.B) {
	cl := testenv.StartRedisCluster(b)
	rc, err := OpenRedis(RedisCluster, cl.URL(), RedisOptions{Prefix: "fs_b_cluster"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rc.Close() })
	ctx := context.Background()
	for _, batch := range []int{500, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			entries := make([]SetEntry, batch)
			rows := make([]feature.Row, batch)
			failed := 0
			for n := 0; b.Loop(); n++ {
				for i := range entries {
					rows[i] = movie("movies", fmt.Sprint(i), at(n), at(n), "기생충")
					entries[i] = SetEntry{Key: "movies:1:" + fmt.Sprint(i), Row: &rows[i], Written: true}
				}
				if err := rc.Set(ctx, entries); err != nil {
					failed++
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(failed)/float64(b.N), "failed/op")
		})
	}
}

// BenchmarkWriteThrough sets the written rows of a bulk ingest of 1,000
// movies (6,000 keys) in a private single Redis server, one compare-and-set
// script call per key ("per-key", as with a cluster) and per chunk of keys
// ("chunked", single server), reporting rows/s and the server's CPU time
// per row (used_cpu_user + used_cpu_sys of INFO cpu).
func BenchmarkWriteThrough(b *testing.B) {
	srv := testenv.StartRedis(b, testenv.RedisOptions{})
	client := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port())})
	b.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	const batch = 6000
	for _, chunked := range []bool{false, true} {
		name := "per-key"
		if chunked {
			name = "chunked"
		}
		b.Run(name, func(b *testing.B) {
			rc := NewRedis(client, RedisOptions{Prefix: "fs_b_" + name})
			rc.singleNode = chunked
			entries := make([]SetEntry, batch)
			rows := make([]feature.Row, batch)
			cpu0 := redisCPU(b, client)
			for n := 0; b.Loop(); n++ {
				for i := range entries {
					rows[i] = movie("movies", fmt.Sprint(i), at(n), at(n), "기생충")
					entries[i] = SetEntry{Key: "movies:1:" + fmt.Sprint(i), Row: &rows[i], Written: true}
				}
				if err := rc.Set(ctx, entries); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric((redisCPU(b, client)-cpu0)*1e6/float64(b.N*batch), "redis-µs/row")
		})
	}
}

// redisCPU is the CPU time, in seconds, the server has used.
func redisCPU(tb testing.TB, c *redis.Client) float64 {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			total += f
		}
	}
	return total
}

// BenchmarkCasArgs encodes the write-through of an ingest batch of 1,000
// movies (6,000 rows of the synthetic corpus) into the compare-and-set
// script's arguments: the Go side of the Redis write-through, without
// Redis.
func BenchmarkCasArgs(b *testing.B) {
	rows, err := synthetic.LoadRows(testenv.TMDBFile(b), 1000, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	entries := make([]SetEntry, len(rows))
	for i := range rows {
		entries[i] = SetEntry{Key: rows[i].Group + ":1:" + rows[i].EntityID, Row: &rows[i], Written: true}
	}
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	b.Cleanup(func() { _ = client.Close() })
	rc := NewRedis(client, RedisOptions{Prefix: "fs_b"})
	b.ReportAllocs()
	cpu := testenv.CPUTime(b)
	for b.Loop() {
		if keys, _ := rc.casArgs(entries); len(keys) != len(entries) {
			b.Fatalf("%d keys for %d entries", len(keys), len(entries))
		}
	}
	b.ReportMetric(float64(testenv.CPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}
