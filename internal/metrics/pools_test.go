package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/testenv"
)

// The pool collectors only read statistics (no tables, no keys), so they
// share the running Postgres and Redis without isolation.

func testPgxPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	testenv.SkipIfShort(t, "the shared Postgres")
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:5432/test?sslmode=disable&pool_max_conns=3")
	if err != nil {
		t.Fatalf("pgxpool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	testenv.SkipIfShort(t, "the shared Redis")
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 4})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestPgxPoolCollector(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool := testPgxPool(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewPgxPoolCollector(pool.Stat))

	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if got := value(t, reg, "feature_store_db_pool_connections", "state", "in_use"); got != 1 {
		t.Errorf("in_use while holding a connection = %v, want 1", got)
	}
	conn.Release()
	var one int
	if err := pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("query: %v", err)
	}
	if got := value(t, reg, "feature_store_db_pool_max_connections"); got != 3 {
		t.Errorf("max_connections = %v, want 3", got)
	}
	if got := value(t, reg, "feature_store_db_pool_acquires_total"); got < 2 {
		t.Errorf("acquires_total = %v, want >= 2", got)
	}
	if got := value(t, reg, "feature_store_db_pool_new_connections_total"); got < 1 {
		t.Errorf("new_connections_total = %v, want >= 1", got)
	}
	st := pool.Stat()
	var sum float64
	for _, s := range []string{"idle", "in_use", "constructing"} {
		sum += value(t, reg, "feature_store_db_pool_connections", "state", s)
	}
	if sum != float64(st.TotalConns()) || sum < 1 {
		t.Errorf("connections by state sum to %v, pool has %d", sum, st.TotalConns())
	}
	for _, name := range []string{
		"feature_store_db_pool_acquire_wait_seconds_total", "feature_store_db_pool_empty_acquires_total",
		"feature_store_db_pool_empty_acquire_wait_seconds_total", "feature_store_db_pool_canceled_acquires_total",
	} {
		value(t, reg, name)
	}
	for _, reason := range []string{"max_lifetime", "max_idle_time"} {
		value(t, reg, "feature_store_db_pool_destroyed_connections_total", "reason", reason)
	}
	if problems, err := testutil.CollectAndLint(NewPgxPoolCollector(pool.Stat)); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if n := testutil.CollectAndCount(NewPgxPoolCollector(func() *pgxpool.Stat { return nil })); n != 0 {
		t.Errorf("nil stat: %d samples, want 0", n)
	}
}

func TestRedisPoolCollector(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := testRedis(t)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewRedisPoolCollector(client.PoolStats))

	for range 3 {
		if err := client.Ping(ctx).Err(); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	hits := value(t, reg, "feature_store_redis_pool_hits_total")
	misses := value(t, reg, "feature_store_redis_pool_misses_total")
	if hits+misses < 3 || misses < 1 {
		t.Errorf("hits %v + misses %v: want >= 3 lookups, >= 1 miss (the first dial)", hits, misses)
	}
	idle := value(t, reg, "feature_store_redis_pool_connections", "state", "idle")
	inUse := value(t, reg, "feature_store_redis_pool_connections", "state", "in_use")
	if total := client.PoolStats().TotalConns; idle+inUse != float64(total) || idle < 1 {
		t.Errorf("idle %v + in_use %v, pool total %d: want the sum, with the pinged connection idle", idle, inUse, total)
	}
	for _, name := range []string{
		"feature_store_redis_pool_timeouts_total", "feature_store_redis_pool_waits_total",
		"feature_store_redis_pool_wait_seconds_total", "feature_store_redis_pool_stale_connections_total",
	} {
		value(t, reg, name)
	}
	if problems, err := testutil.CollectAndLint(NewRedisPoolCollector(client.PoolStats)); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if n := testutil.CollectAndCount(NewRedisPoolCollector(func() *redis.PoolStats { return nil })); n != 0 {
		t.Errorf("nil stats: %d samples, want 0", n)
	}
}

func TestNearCacheCollector(t *testing.T) {
	t.Parallel()
	stats := NearCacheStats{Hits: 7, Misses: 3, Stored: 2, Refused: 1, Connects: 4, Entries: 5, Usable: true}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewNearCacheCollector(func() NearCacheStats { return stats }))
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"feature_store_redis_near_cache_lookups_total", []string{"result", "hit"}, 7},
		{"feature_store_redis_near_cache_lookups_total", []string{"result", "miss"}, 3},
		{"feature_store_redis_near_cache_fills_total", []string{"result", "stored"}, 2},
		{"feature_store_redis_near_cache_fills_total", []string{"result", "refused"}, 1},
		{"feature_store_redis_near_cache_tracking_connections_total", nil, 4},
		{"feature_store_redis_near_cache_entries", nil, 5},
		{"feature_store_redis_near_cache_tracking", nil, 1},
	} {
		if got := value(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	stats.Usable = false
	if got := value(t, reg, "feature_store_redis_near_cache_tracking"); got != 0 {
		t.Errorf("tracking = %v with the copy unusable, want 0", got)
	}
	if problems, err := testutil.CollectAndLint(NewNearCacheCollector(func() NearCacheStats { return stats })); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}
