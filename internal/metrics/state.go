package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector computes, at scrape time, the metrics that derive from
// state kept elsewhere: feature freshness from the newest event times, and
// the cache wrapper's dirty-key count and trust.
type stateCollector struct {
	now func() time.Time

	newestDesc, freshnessDesc, dirtyDesc, trustedDesc *prometheus.Desc

	mu     sync.Mutex
	newest map[string]time.Time // by group

	cache atomic.Pointer[cacheState]
}

type cacheState struct {
	dirty   func() int
	trusted func() bool
}

func newStateCollector(now func() time.Time) *stateCollector {
	return &stateCollector{
		now:    now,
		newest: map[string]time.Time{},
		newestDesc: prometheus.NewDesc("feature_store_feature_newest_event_timestamp_seconds",
			"Unix time of the newest event stored for a feature group.", []string{"feature_group"}, nil),
		freshnessDesc: prometheus.NewDesc("feature_store_feature_freshness_seconds",
			"Age of a feature group's newest stored event at scrape time (now minus the newest event time).",
			[]string{"feature_group"}, nil),
		dirtyDesc: prometheus.NewDesc("feature_store_cache_dirty_keys",
			"Cache keys whose cached value may be stale; reads bypass them until the repair loop has fixed them.", nil, nil),
		trustedDesc: prometheus.NewDesc("feature_store_cache_trusted",
			"Whether the cache is used (1), or bypassed after too many dirty keys until it has been cleared (0).", nil, nil),
	}
}

func (c *stateCollector) setNewest(group string, t time.Time) {
	c.mu.Lock()
	if t.After(c.newest[group]) {
		c.newest[group] = t
	}
	c.mu.Unlock()
}

func (c *stateCollector) forget(group string) {
	c.mu.Lock()
	delete(c.newest, group)
	c.mu.Unlock()
}

func (c *stateCollector) setCacheState(dirty func() int, trusted func() bool) {
	c.cache.Store(&cacheState{dirty: dirty, trusted: trusted})
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.newestDesc
	ch <- c.freshnessDesc
	ch <- c.dirtyDesc
	ch <- c.trustedDesc
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	c.mu.Lock()
	for g, t := range c.newest {
		ch <- prometheus.MustNewConstMetric(c.newestDesc, prometheus.GaugeValue, float64(t.UnixNano())/1e9, g)
		ch <- prometheus.MustNewConstMetric(c.freshnessDesc, prometheus.GaugeValue, now.Sub(t).Seconds(), g)
	}
	c.mu.Unlock()
	if s := c.cache.Load(); s != nil {
		if s.dirty != nil {
			ch <- prometheus.MustNewConstMetric(c.dirtyDesc, prometheus.GaugeValue, float64(s.dirty()))
		}
		if s.trusted != nil {
			ch <- prometheus.MustNewConstMetric(c.trustedDesc, prometheus.GaugeValue, boolFloat(s.trusted()))
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
