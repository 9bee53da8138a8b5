package metrics

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// pgxPoolCollector exposes pgxpool statistics, read at scrape time.
type pgxPoolCollector struct {
	stat func() *pgxpool.Stat

	conns, maxConns, acquires, acquireWait, emptyAcquires, emptyWait,
	canceledAcquires, newConns, destroyed *prometheus.Desc
}

// NewPgxPoolCollector returns a collector of the Postgres pool's statistics
// (feature_store_db_pool_*), calling stat (typically pool.Stat) on every
// scrape. A nil Stat yields no samples.
func NewPgxPoolCollector(stat func() *pgxpool.Stat) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("feature_store_db_pool_"+name, help, labels, nil)
	}
	return &pgxPoolCollector{
		stat:             stat,
		conns:            d("connections", "Postgres pool connections by state: idle, in_use (acquired), constructing.", "state"),
		maxConns:         d("max_connections", "Maximum size of the Postgres pool."),
		acquires:         d("acquires_total", "Successful connection acquires from the Postgres pool."),
		acquireWait:      d("acquire_wait_seconds_total", "Total time spent in successful acquires from the Postgres pool."),
		emptyAcquires:    d("empty_acquires_total", "Successful acquires that waited because the Postgres pool had no idle connection."),
		emptyWait:        d("empty_acquire_wait_seconds_total", "Total time successful acquires waited for a connection because the Postgres pool was empty."),
		canceledAcquires: d("canceled_acquires_total", "Acquires from the Postgres pool canceled by their context."),
		newConns:         d("new_connections_total", "Connections the Postgres pool opened."),
		destroyed:        d("destroyed_connections_total", "Connections the Postgres pool closed for age, by reason: max_lifetime, max_idle_time.", "reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *pgxPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.maxConns, c.acquires, c.acquireWait, c.emptyAcquires,
		c.emptyWait, c.canceledAcquires, c.newConns, c.destroyed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *pgxPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stat()
	if s == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	gauge(c.conns, float64(s.IdleConns()), "idle")
	gauge(c.conns, float64(s.AcquiredConns()), "in_use")
	gauge(c.conns, float64(s.ConstructingConns()), "constructing")
	gauge(c.maxConns, float64(s.MaxConns()))
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.acquireWait, s.AcquireDuration().Seconds())
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.emptyWait, s.EmptyAcquireWaitTime().Seconds())
	counter(c.canceledAcquires, float64(s.CanceledAcquireCount()))
	counter(c.newConns, float64(s.NewConnsCount()))
	counter(c.destroyed, float64(s.MaxLifetimeDestroyCount()), "max_lifetime")
	counter(c.destroyed, float64(s.MaxIdleDestroyCount()), "max_idle_time")
}

// redisPoolCollector exposes go-redis pool statistics, read at scrape time.
type redisPoolCollector struct {
	stats func() *redis.PoolStats

	conns, hits, misses, timeouts, waits, waitTime, stale *prometheus.Desc
}

// NewRedisPoolCollector returns a collector of the Redis client's pool
// statistics (feature_store_redis_pool_*), calling stats (typically
// client.PoolStats) on every scrape. A nil PoolStats yields no samples.
func NewRedisPoolCollector(stats func() *redis.PoolStats) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("feature_store_redis_pool_"+name, help, labels, nil)
	}
	return &redisPoolCollector{
		stats:    stats,
		conns:    d("connections", "Redis pool connections by state: idle, in_use; their sum is the pool's size.", "state"),
		hits:     d("hits_total", "Times the Redis pool had an idle connection to hand out."),
		misses:   d("misses_total", "Times the Redis pool had no idle connection and dialled or waited."),
		timeouts: d("timeouts_total", "Times waiting for a Redis pool connection timed out."),
		waits:    d("waits_total", "Times a caller waited for a Redis pool connection."),
		waitTime: d("wait_seconds_total", "Total time callers waited for a Redis pool connection."),
		stale:    d("stale_connections_total", "Stale connections the Redis pool removed."),
	}
}

// Describe implements prometheus.Collector.
func (c *redisPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.hits, c.misses, c.timeouts, c.waits, c.waitTime, c.stale} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *redisPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	if s == nil {
		return
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	inUse := 0.0
	if s.TotalConns > s.IdleConns { // read at different instants; never negative
		inUse = float64(s.TotalConns - s.IdleConns)
	}
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(s.IdleConns), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, inUse, "in_use")
	counter(c.hits, float64(s.Hits))
	counter(c.misses, float64(s.Misses))
	counter(c.timeouts, float64(s.Timeouts))
	counter(c.waits, float64(s.WaitCount))
	counter(c.waitTime, float64(s.WaitDurationNs)/1e9)
	counter(c.stale, float64(s.StaleConns))
}

// NearCacheStats are a Redis near cache's statistics (cache.NearStats).
type NearCacheStats struct {
	Hits, Misses     uint64 // reads answered by the copy, and not
	Stored, Refused  uint64 // fill values stored, and refused (an invalidation arrived meanwhile, or tracking was down)
	Connects         uint64 // tracking connections set up
	Entries          int
	Tracking, Usable bool
}

// nearCacheCollector exposes a near cache's statistics, read at scrape time.
type nearCacheCollector struct {
	stats func() NearCacheStats

	lookups, fills, connects, entries, tracking *prometheus.Desc
}

// NewNearCacheCollector returns a collector of the Redis near cache's
// statistics (feature_store_redis_near_cache_*), calling stats on every
// scrape.
func NewNearCacheCollector(stats func() NearCacheStats) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("feature_store_redis_near_cache_"+name, help, labels, nil)
	}
	return &nearCacheCollector{
		stats:    stats,
		lookups:  d("lookups_total", "Redis reads looked up in the near cache, by result: hit (answered in-process), miss (sent to Redis).", "result"),
		fills:    d("fills_total", "Values Redis returned for the near cache, by result: stored, refused (an invalidation arrived while the read was on its way, or tracking was down).", "result"),
		connects: d("tracking_connections_total", "Tracking connections the near cache set up (each one starts it empty)."),
		entries:  d("entries", "Values in the near cache."),
		tracking: d("tracking", "1 while the near cache's tracking connection is up and answered a heartbeat within the lease (the near cache answers reads), else 0."),
	}
}

// Describe implements prometheus.Collector.
func (c *nearCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lookups, c.fills, c.connects, c.entries, c.tracking} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nearCacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
	}
	counter(c.lookups, s.Hits, "hit")
	counter(c.lookups, s.Misses, "miss")
	counter(c.fills, s.Stored, "stored")
	counter(c.fills, s.Refused, "refused")
	counter(c.connects, s.Connects)
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries))
	usable := 0.0
	if s.Usable {
		usable = 1
	}
	ch <- prometheus.MustNewConstMetric(c.tracking, prometheus.GaugeValue, usable)
}
