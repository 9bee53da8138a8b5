// Package metrics is the feature store's Prometheus instrumentation: the
// feature-store metric set, the HTTP middleware, the log-event counter, the
// scrape-time collectors for freshness, cache state and connection pools, and
// the Go runtime, process and build-info collectors. docs/metrics.md is the
// catalogue of every metric this package exposes.
//
// Nothing here is global: New builds one metric set on the registry it is
// given, so two servers in one test binary do not collide.
//
// Label values are bounded. Operations (feature.Operation), Feast statuses
// (feature.Status*), cache types, dependencies, backends and codes come from
// constants; feature_group values are registered group names
// (feature.ValidName, at most MaxGroupLabels at once, forgotten when the group
// is deleted), feature.ReservedGroupName ("none") when an operation names no
// group, and "_other" for anything else (an invalid name, or a group past the
// limit).
package metrics

import (
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/featurestore/featurestore/internal/feature"
)

// Label values with a fixed meaning.
const (
	// GroupOther is the feature_group recorded for a name that is not a
	// valid group name, or for a new group once MaxGroupLabels are in use.
	// It cannot collide with a group: group names start with a letter.
	GroupOther = "_other"
	// MaxGroupLabels bounds the distinct feature_group label values in use.
	MaxGroupLabels = 1000
)

// Dependency names: the value set of the dependency label.
const (
	DepPostgres = "postgres"
	DepRedis    = "redis"
	DepSQLite   = "sqlite"
	DepMemory   = "memory"
)

// Cache types: the value set of the cache_type label.
const (
	CacheRedis  = "redis"
	CacheMemory = "memory"
)

// codes lists every feature.Code; feature_store_errors_total is created at
// zero for each operation and code.
var codes = feature.Codes()

// latencyBuckets cover 100µs to 10s, for request and HTTP durations.
var latencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// recomputeBuckets cover 10ms to 10 minutes.
var recomputeBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// BuildInfo identifies the running binary; it becomes the labels of
// feature_store_build_info.
type BuildInfo struct{ Version, Revision, GoVersion string }

// Metrics is the feature store's metric set. Its methods are safe for
// concurrent use; the per-request ones (ObserveRequest, CacheHit, CacheMiss,
// FeatureStatuses, FeaturesWritten) do not allocate once a label combination
// has been seen.
type Metrics struct {
	reg prometheus.Registerer
	now func() time.Time

	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	cacheHits      *prometheus.CounterVec
	cacheMisses    *prometheus.CounterVec
	cacheErrors    *prometheus.CounterVec
	cacheMismatch  *prometheus.CounterVec
	features       *prometheus.CounterVec
	storageBytes   *prometheus.GaugeVec
	errors         *prometheus.CounterVec
	valuesReturned *prometheus.CounterVec
	ingested       *prometheus.CounterVec
	depUp          *prometheus.GaugeVec
	depLatency     *prometheus.GaugeVec
	readyTime      prometheus.Gauge

	recomputeRuns        *prometheus.CounterVec
	recomputeDuration    prometheus.Histogram
	recomputeMovies      prometheus.Gauge
	recomputeLastSuccess prometheus.Gauge

	pruneRuns        *prometheus.CounterVec
	prunedRows       prometheus.Counter
	pruneLastSuccess prometheus.Gauge

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	httpInFlight prometheus.Gauge

	logEvents [numLevels]prometheus.Counter

	state *stateCollector

	// mu serialises the slow path: creating children, tracking groups,
	// forgetting them. Readers use the copy-on-write maps without locks.
	mu      sync.Mutex
	groups  map[string]struct{} // feature_group label values in use, besides none and _other
	reqs    cowMap[opGroup, *requestChildren]
	caches  cowMap[cacheGroup, *cacheChildren]
	perGrp  cowMap[string, *groupChildren]
	errKids cowMap[opCode, prometheus.Counter]
}

type opGroup struct {
	op    feature.Operation
	group string
}
type cacheGroup struct{ cacheType, group string }
type opCode struct {
	op   feature.Operation
	code feature.Code
}

type requestChildren struct {
	count    prometheus.Counter
	duration prometheus.Observer
}

type cacheChildren struct{ hits, misses prometheus.Counter }

type groupChildren struct {
	written                                prometheus.Counter
	present, notFound, null, outsideMaxAge prometheus.Counter
}

// cowMap is a copy-on-write map: lookups are one atomic load and a map read;
// writers (holding Metrics.mu) replace the whole map.
type cowMap[K comparable, V any] struct{ p atomic.Pointer[map[K]V] }

func (c *cowMap[K, V]) get(k K) (V, bool) {
	if m := c.p.Load(); m != nil {
		v, ok := (*m)[k]
		return v, ok
	}
	var zero V
	return zero, false
}

// put adds k; the caller holds Metrics.mu.
func (c *cowMap[K, V]) put(k K, v V) {
	var old map[K]V
	if m := c.p.Load(); m != nil {
		old = *m
	}
	next := make(map[K]V, len(old)+1)
	for k2, v2 := range old {
		next[k2] = v2
	}
	next[k] = v
	c.p.Store(&next)
}

// drop removes every key for which del is true; the caller holds Metrics.mu.
func (c *cowMap[K, V]) drop(del func(K) bool) {
	m := c.p.Load()
	if m == nil {
		return
	}
	next := make(map[K]V, len(*m))
	for k, v := range *m {
		if !del(k) {
			next[k] = v
		}
	}
	c.p.Store(&next)
}

// New registers the feature store's metrics, the Go runtime collector (with
// runtime/metrics: GC pauses, heap classes, scheduler latencies, ...), the
// process collector and feature_store_build_info on reg, and returns the
// metric set. With a nil reg the metrics work but are not registered. now is
// the clock for scrape-time freshness and the recompute timestamp; time.Now
// when nil.
func New(reg prometheus.Registerer, build BuildInfo, now func() time.Time) *Metrics {
	if now == nil {
		now = time.Now
	}
	if build.GoVersion == "" {
		build.GoVersion = runtime.Version()
	}
	f := promauto.With(reg)
	m := &Metrics{
		reg:    reg,
		now:    now,
		groups: map[string]struct{}{},

		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_requests_total",
			Help: "Feature store operations handled, by operation and feature group.",
		}, []string{"operation", "feature_group"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "feature_store_request_duration_seconds",
			Help:    "Duration of feature store operations, by operation.",
			Buckets: latencyBuckets,
		}, []string{"operation"}),
		cacheHits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_cache_hits_total",
			Help: "Cache lookups answered by the cache, by cache type and feature group.",
		}, []string{"cache_type", "feature_group"}),
		cacheMisses: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_cache_misses_total",
			Help: "Cache lookups that fell through to the store, by cache type and feature group.",
		}, []string{"cache_type", "feature_group"}),
		cacheErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_cache_errors_total",
			Help: "Failed cache operations (the request was served from the store), by cache type and cache operation.",
		}, []string{"cache_type", "operation"}),
		cacheMismatch: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_cache_mismatches_total",
			Help: "Times the cache did not match the system of record's account of it and was distrusted and cleared, by cache type and reason: identity (restarted, restored or failed-over Redis masters), generation (a writer went around the cache, or an operator invalidated it), connection (a new connection reached an unknown master).",
		}, []string{"cache_type", "reason"}),
		features: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_features_total",
			Help: "Feature values written, by feature group.",
		}, []string{"feature_group"}),
		storageBytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feature_store_storage_bytes",
			Help: "Bytes used by the storage backend, as it last reported.",
		}, []string{"backend"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_errors_total",
			Help: "Failed feature store operations, by operation and error code.",
		}, []string{"operation", "code"}),
		valuesReturned: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_feature_values_returned_total",
			Help: "Feature values returned by reads, by feature group and Feast field status.",
		}, []string{"feature_group", "status"}),
		ingested: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_ingest_records_total",
			Help: "Ingested records, by result (accepted or rejected).",
		}, []string{"result"}),
		depUp: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feature_store_dependency_up",
			Help: "Whether the last health check of a dependency succeeded (1) or failed (0).",
		}, []string{"dependency"}),
		depLatency: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "feature_store_dependency_latency_seconds",
			Help: "Duration of the last health check of a dependency.",
		}, []string{"dependency"}),
		readyTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_ready_time_seconds",
			Help: "Time from process start until the service was ready to serve.",
		}),

		recomputeRuns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_recompute_runs_total",
			Help: "Recomputes of the statistical features, by result (success or failure).",
		}, []string{"result"}),
		recomputeDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "feature_store_recompute_duration_seconds",
			Help:    "Duration of recomputes of the statistical features, successful or not.",
			Buckets: recomputeBuckets,
		}),
		recomputeMovies: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_recompute_movies",
			Help: "Movies covered by the last successful recompute.",
		}),
		recomputeLastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_recompute_last_success_timestamp_seconds",
			Help: "Unix time the last successful recompute finished; 0 before the first.",
		}),

		pruneRuns: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_history_prune_runs_total",
			Help: "History pruning passes, by result (success, failure, or skipped: another replica holds the maintenance lock).",
		}, []string{"result"}),
		prunedRows: f.NewCounter(prometheus.CounterOpts{
			Name: "feature_store_history_pruned_rows_total",
			Help: "History rows deleted by pruning (rows older than their group's history retention that a newer row supersedes).",
		}),
		pruneLastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_history_prune_last_success_timestamp_seconds",
			Help: "Unix time the last successful pruning pass of this replica finished; 0 before the first.",
		}),

		httpRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_http_requests_total",
			Help: "HTTP requests served, by chi route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "feature_store_http_request_duration_seconds",
			Help:    "Duration of HTTP requests until the handler returned, by chi route pattern and method.",
			Buckets: latencyBuckets,
		}, []string{"route", "method"}),
		httpInFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	f.NewGauge(prometheus.GaugeOpts{
		Name: "feature_store_build_info",
		Help: "Build of the running binary; the value is always 1.",
		ConstLabels: prometheus.Labels{
			"version": build.Version, "revision": build.Revision, "goversion": build.GoVersion,
		},
	}).Set(1)

	logEvents := f.NewCounterVec(prometheus.CounterOpts{
		Name: "feature_store_log_events_total",
		Help: "Log entries written, by level.",
	}, []string{"level"})
	for i := range m.logEvents {
		m.logEvents[i] = logEvents.WithLabelValues(levelName(i))
	}

	for _, op := range feature.Operations() {
		m.duration.WithLabelValues(string(op))
		for _, c := range codes {
			m.errKids.put(opCode{op, c}, m.errors.WithLabelValues(string(op), string(c)))
		}
	}
	for _, r := range [...]string{"accepted", "rejected"} {
		m.ingested.WithLabelValues(r)
	}
	for _, r := range [...]string{"success", "failure"} {
		m.recomputeRuns.WithLabelValues(r)
	}
	for _, r := range [...]string{"success", "failure", "skipped"} {
		m.pruneRuns.WithLabelValues(r)
	}

	m.state = newStateCollector(now)
	if reg != nil {
		reg.MustRegister(
			m.state,
			// Every runtime/metrics family except the ~50 GODEBUG
			// non-default-behaviour counters, which no dashboard reads
			// and whose set changes with each Go release.
			collectors.NewGoCollector(
				collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsAll),
				collectors.WithoutGoCollectorRuntimeMetrics(regexp.MustCompile(`^/godebug/`)),
			),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	return m
}

// Register adds a collector (such as a pool collector) to the registry New
// was given; with a nil registry it does nothing.
func (m *Metrics) Register(c prometheus.Collector) error {
	if m.reg == nil {
		return nil
	}
	return m.reg.Register(c)
}

// groupLabelLocked returns the feature_group label value of group and
// whether it is a real group (tracked, and forgotten by ForgetGroup). The
// caller holds m.mu.
func (m *Metrics) groupLabelLocked(group string) (string, bool) {
	if group == "" {
		return feature.ReservedGroupName, false
	}
	if _, ok := m.groups[group]; ok {
		return group, true
	}
	if !feature.ValidName(group) || len(m.groups) >= MaxGroupLabels {
		return GroupOther, false
	}
	m.groups[group] = struct{}{}
	return group, true
}

// ObserveRequest counts one operation on a feature group ("" when it names
// none) and records its duration.
func (m *Metrics) ObserveRequest(operation feature.Operation, group string, d time.Duration) {
	c, ok := m.reqs.get(opGroup{operation, group})
	if !ok {
		c = m.requestChildren(operation, group)
	}
	c.count.Inc()
	c.duration.Observe(d.Seconds())
}

// CountRequest counts one operation on a feature group without recording
// a duration: an operation touching several groups is counted once per
// group but timed once (by ObserveRequest).
func (m *Metrics) CountRequest(operation feature.Operation, group string) {
	c, ok := m.reqs.get(opGroup{operation, group})
	if !ok {
		c = m.requestChildren(operation, group)
	}
	c.count.Inc()
}

func (m *Metrics) requestChildren(operation feature.Operation, group string) *requestChildren {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.reqs.get(opGroup{operation, group}); ok {
		return c
	}
	label, real := m.groupLabelLocked(group)
	c := &requestChildren{
		count:    m.requests.WithLabelValues(string(operation), label),
		duration: m.duration.WithLabelValues(string(operation)),
	}
	if real || group == "" {
		m.reqs.put(opGroup{operation, group}, c)
	}
	return c
}

// CacheHit counts n cache lookups of a group answered by the cache.
// cacheType is CacheRedis or CacheMemory.
func (m *Metrics) CacheHit(cacheType, group string, n int) {
	if n > 0 {
		m.cacheChildren(cacheType, group).hits.Add(float64(n))
	}
}

// CacheMiss counts n cache lookups of a group that fell through to the store.
func (m *Metrics) CacheMiss(cacheType, group string, n int) {
	if n > 0 {
		m.cacheChildren(cacheType, group).misses.Add(float64(n))
	}
}

func (m *Metrics) cacheChildren(cacheType, group string) *cacheChildren {
	if c, ok := m.caches.get(cacheGroup{cacheType, group}); ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.caches.get(cacheGroup{cacheType, group}); ok {
		return c
	}
	label, real := m.groupLabelLocked(group)
	c := &cacheChildren{
		hits:   m.cacheHits.WithLabelValues(cacheType, label),
		misses: m.cacheMisses.WithLabelValues(cacheType, label),
	}
	if real || group == "" {
		m.caches.put(cacheGroup{cacheType, group}, c)
	}
	return c
}

// CacheMismatch counts a mismatch between the cache and the system of
// record's account of it (reason: identity, generation or connection).
func (m *Metrics) CacheMismatch(cacheType, reason string) {
	m.cacheMismatch.WithLabelValues(cacheType, reason).Inc()
}

// CacheError counts a failed cache operation ("get", "set" or "clear"); the
// request was served from the store.
func (m *Metrics) CacheError(cacheType, operation string) {
	m.cacheErrors.WithLabelValues(cacheType, operation).Inc()
}

// FeaturesWritten counts n feature values written to a group.
func (m *Metrics) FeaturesWritten(group string, n int) {
	if n > 0 {
		m.groupChildren(group).written.Add(float64(n))
	}
}

// FeatureStatuses counts the feature values a read returned for a group, by
// Feast field status.
func (m *Metrics) FeatureStatuses(group string, present, notFound, null, outsideMaxAge int) {
	c := m.groupChildren(group)
	add(c.present, present)
	add(c.notFound, notFound)
	add(c.null, null)
	add(c.outsideMaxAge, outsideMaxAge)
}

func add(c prometheus.Counter, n int) {
	if n > 0 {
		c.Add(float64(n))
	}
}

func (m *Metrics) groupChildren(group string) *groupChildren {
	if c, ok := m.perGrp.get(group); ok {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.perGrp.get(group); ok {
		return c
	}
	label, real := m.groupLabelLocked(group)
	c := &groupChildren{
		written:       m.features.WithLabelValues(label),
		present:       m.valuesReturned.WithLabelValues(label, feature.StatusPresent),
		notFound:      m.valuesReturned.WithLabelValues(label, feature.StatusNotFound),
		null:          m.valuesReturned.WithLabelValues(label, feature.StatusNullValue),
		outsideMaxAge: m.valuesReturned.WithLabelValues(label, feature.StatusOutsideMaxAge),
	}
	if real || group == "" {
		m.perGrp.put(group, c)
	}
	return c
}

// SetStorageBytes records the bytes a storage backend ("postgres" or
// "sqlite", as store.Stats reports it) uses.
func (m *Metrics) SetStorageBytes(backend string, bytes int64) {
	m.storageBytes.WithLabelValues(backend).Set(float64(bytes))
}

// Error counts a failed operation by its code. An empty code (no error) is
// ignored.
func (m *Metrics) Error(operation feature.Operation, code feature.Code) {
	if code == "" {
		return
	}
	c, ok := m.errKids.get(opCode{operation, code})
	if !ok {
		m.mu.Lock()
		c = m.errors.WithLabelValues(string(operation), string(code))
		m.errKids.put(opCode{operation, code}, c)
		m.mu.Unlock()
	}
	c.Inc()
}

// Ingested counts ingested records by result.
func (m *Metrics) Ingested(accepted, rejected int) {
	add(m.ingested.WithLabelValues("accepted"), accepted)
	add(m.ingested.WithLabelValues("rejected"), rejected)
}

// SetNewestEvent records the newest event time of a group's rows: it feeds
// feature_store_feature_newest_event_timestamp_seconds and the scrape-time
// feature_store_feature_freshness_seconds. A time older than the one
// recorded, a zero time, and a group that is not a valid name are ignored.
func (m *Metrics) SetNewestEvent(group string, t time.Time) {
	if t.IsZero() {
		return
	}
	m.mu.Lock()
	label, real := m.groupLabelLocked(group)
	m.mu.Unlock()
	if real {
		m.state.setNewest(label, t)
	}
}

// ForgetGroup removes every series of a deleted group.
func (m *Metrics) ForgetGroup(group string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[group]; !ok {
		return
	}
	delete(m.groups, group)
	m.reqs.drop(func(k opGroup) bool { return k.group == group })
	m.caches.drop(func(k cacheGroup) bool { return k.group == group })
	m.perGrp.drop(func(k string) bool { return k == group })
	l := prometheus.Labels{"feature_group": group}
	m.requests.DeletePartialMatch(l)
	m.cacheHits.DeletePartialMatch(l)
	m.cacheMisses.DeletePartialMatch(l)
	m.features.DeletePartialMatch(l)
	m.valuesReturned.DeletePartialMatch(l)
	m.state.forget(group)
}

// SetDependency records the result and duration of a dependency's health
// check. dep is one of the Dep* constants.
func (m *Metrics) SetDependency(dep string, up bool, latency time.Duration) {
	m.depUp.WithLabelValues(dep).Set(boolFloat(up))
	m.depLatency.WithLabelValues(dep).Set(latency.Seconds())
}

// SetReady records the time from process start until the service was ready.
func (m *Metrics) SetReady(d time.Duration) { m.readyTime.Set(d.Seconds()) }

// Recomputed records one recompute of the statistical features: its result
// and duration; on success also the movies it covered and the time it
// finished.
func (m *Metrics) Recomputed(movies int, d time.Duration, err error) {
	m.recomputeDuration.Observe(d.Seconds())
	if err != nil {
		m.recomputeRuns.WithLabelValues("failure").Inc()
		return
	}
	m.recomputeRuns.WithLabelValues("success").Inc()
	m.recomputeMovies.Set(float64(movies))
	m.recomputeLastSuccess.Set(float64(m.now().UnixNano()) / 1e9)
}

// HistoryPruned records one pruning pass: the rows it deleted (also those
// of a pass that failed part way), and its result; skipped is a pass left to
// the replica holding the maintenance lock.
func (m *Metrics) HistoryPruned(rows int64, skipped bool, err error) {
	m.prunedRows.Add(float64(rows))
	switch {
	case err != nil:
		m.pruneRuns.WithLabelValues("failure").Inc()
	case skipped:
		m.pruneRuns.WithLabelValues("skipped").Inc()
	default:
		m.pruneRuns.WithLabelValues("success").Inc()
		m.pruneLastSuccess.Set(float64(m.now().UnixNano()) / 1e9)
	}
}

// RegisterCacheState makes the cache wrapper's state visible at scrape time:
// feature_store_cache_dirty_keys from dirty and feature_store_cache_trusted
// (1/0) from trusted. Both are called on every scrape, so they must be cheap
// and safe for concurrent use. A later call replaces the functions.
func (m *Metrics) RegisterCacheState(dirty func() int, trusted func() bool) {
	m.state.setCacheState(dirty, trusted)
}
