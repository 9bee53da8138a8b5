package metrics

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/featurestore/featurestore/internal/feature"
)

func TestEveryMetricMoves(t *testing.T) {
	t.Parallel()
	clk := newClock()
	reg := prometheus.NewPedanticRegistry()
	m := New(reg, BuildInfo{Version: "1.2.3", Revision: "abc123", GoVersion: "go1.26.8"}, clk.now)

	tests := []struct {
		name   string
		call   func()
		metric string
		labels []string
		want   float64 // value after call (histograms: sample count)
	}{
		{"request count", func() { m.ObserveRequest(feature.OpGetEntity, "movie_stats", 3*time.Millisecond) },
			"feature_store_requests_total", []string{"operation", "get_entity", "feature_group", "movie_stats"}, 1},
		{"request duration", func() { m.ObserveRequest(feature.OpGetEntity, "movie_stats", time.Millisecond) },
			"feature_store_request_duration_seconds", []string{"operation", "get_entity"}, 2},
		{"request without group", func() { m.ObserveRequest(feature.OpListGroups, "", time.Millisecond) },
			"feature_store_requests_total", []string{"operation", "list_groups", "feature_group", "none"}, 1},
		{"cache hit", func() { m.CacheHit(CacheRedis, "movie_stats", 3) },
			"feature_store_cache_hits_total", []string{"cache_type", "redis", "feature_group", "movie_stats"}, 3},
		{"cache miss", func() { m.CacheMiss(CacheRedis, "movie_stats", 2) },
			"feature_store_cache_misses_total", []string{"cache_type", "redis", "feature_group", "movie_stats"}, 2},
		{"cache error", func() { m.CacheError(CacheRedis, "set") },
			"feature_store_cache_errors_total", []string{"cache_type", "redis", "operation", "set"}, 1},
		{"cache mismatch", func() { m.CacheMismatch(CacheRedis, "generation") },
			"feature_store_cache_mismatches_total", []string{"cache_type", "redis", "reason", "generation"}, 1},
		{"features written", func() { m.FeaturesWritten("movie_stats", 12) },
			"feature_store_features_total", []string{"feature_group", "movie_stats"}, 12},
		{"storage bytes", func() { m.SetStorageBytes("postgres", 4096) },
			"feature_store_storage_bytes", []string{"backend", "postgres"}, 4096},
		{"error", func() { m.Error(feature.OpGetEntity, feature.CodeNotFound) },
			"feature_store_errors_total", []string{"operation", "get_entity", "code", "not_found"}, 1},
		{"present", func() { m.FeatureStatuses("movie_stats", 5, 4, 3, 2) },
			"feature_store_feature_values_returned_total", []string{"feature_group", "movie_stats", "status", "PRESENT"}, 5},
		{"not found", func() {},
			"feature_store_feature_values_returned_total", []string{"feature_group", "movie_stats", "status", "NOT_FOUND"}, 4},
		{"null", func() {},
			"feature_store_feature_values_returned_total", []string{"feature_group", "movie_stats", "status", "NULL_VALUE"}, 3},
		{"outside max age", func() {},
			"feature_store_feature_values_returned_total", []string{"feature_group", "movie_stats", "status", "OUTSIDE_MAX_AGE"}, 2},
		{"ingest accepted", func() { m.Ingested(7, 1) },
			"feature_store_ingest_records_total", []string{"result", "accepted"}, 7},
		{"ingest rejected", func() {},
			"feature_store_ingest_records_total", []string{"result", "rejected"}, 1},
		{"newest event", func() { m.SetNewestEvent("movie_stats", clk.now().Add(-time.Minute)) },
			"feature_store_feature_newest_event_timestamp_seconds", []string{"feature_group", "movie_stats"},
			float64(clk.now().Add(-time.Minute).Unix())},
		{"freshness", func() {},
			"feature_store_feature_freshness_seconds", []string{"feature_group", "movie_stats"}, 60},
		{"dependency up", func() { m.SetDependency(DepPostgres, true, 1500*time.Microsecond) },
			"feature_store_dependency_up", []string{"dependency", "postgres"}, 1},
		{"dependency latency", func() {},
			"feature_store_dependency_latency_seconds", []string{"dependency", "postgres"}, 0.0015},
		{"dependency down", func() { m.SetDependency(DepRedis, false, time.Second) },
			"feature_store_dependency_up", []string{"dependency", "redis"}, 0},
		{"ready", func() { m.SetReady(2500 * time.Millisecond) },
			"feature_store_ready_time_seconds", nil, 2.5},
		{"recompute success", func() { m.Recomputed(4803, 2*time.Second, nil) },
			"feature_store_recompute_runs_total", []string{"result", "success"}, 1},
		{"recompute movies", func() {},
			"feature_store_recompute_movies", nil, 4803},
		{"recompute last success", func() {},
			"feature_store_recompute_last_success_timestamp_seconds", nil, float64(clk.now().Unix())},
		{"recompute failure", func() { m.Recomputed(10, time.Second, errors.New("boom")) },
			"feature_store_recompute_runs_total", []string{"result", "failure"}, 1},
		{"recompute failure keeps movies", func() {},
			"feature_store_recompute_movies", nil, 4803},
		{"recompute duration", func() {},
			"feature_store_recompute_duration_seconds", nil, 2},
		{"cache dirty keys", func() { m.RegisterCacheState(func() int { return 3 }, func() bool { return true }) },
			"feature_store_cache_dirty_keys", nil, 3},
		{"cache trusted", func() {},
			"feature_store_cache_trusted", nil, 1},
		{"build info", func() {},
			"feature_store_build_info", []string{"version", "1.2.3", "revision", "abc123", "goversion", "go1.26.8"}, 1},
		{"process start time", func() {},
			"process_start_time_seconds", nil, -1},
		{"goroutines", func() {},
			"go_goroutines", nil, -1},
		{"scheduler latencies", func() {},
			"go_sched_latencies_seconds", nil, -1},
	}
	for _, tt := range tests {
		tt.call()
		got := value(t, reg, tt.metric, tt.labels...)
		if tt.want >= 0 && got != tt.want {
			t.Errorf("%s: %s%v = %v, want %v", tt.name, tt.metric, tt.labels, got, tt.want)
		}
	}
}

func TestPrecreatedSeries(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	New(reg, BuildInfo{}, nil)
	for _, op := range feature.Operations() {
		for _, c := range codes {
			if v, ok := find(t, reg, "feature_store_errors_total", "operation", string(op), "code", string(c)); !ok || v != 0 {
				t.Errorf("errors_total{%s,%s} = %v, %v; want 0, present", op, c, v, ok)
			}
		}
		if _, ok := find(t, reg, "feature_store_request_duration_seconds", "operation", string(op)); !ok {
			t.Errorf("request_duration_seconds{%s} missing", op)
		}
	}
	for _, lv := range []string{"debug", "info", "warn", "error", "dpanic", "panic", "fatal"} {
		if v, ok := find(t, reg, "feature_store_log_events_total", "level", lv); !ok || v != 0 {
			t.Errorf("log_events_total{%s} = %v, %v; want 0, present", lv, v, ok)
		}
	}
	for _, r := range []string{"accepted", "rejected"} {
		value(t, reg, "feature_store_ingest_records_total", "result", r)
	}
	for _, r := range []string{"success", "failure"} {
		value(t, reg, "feature_store_recompute_runs_total", "result", r)
	}
	// State read at scrape time appears only once there is state.
	for _, name := range []string{"feature_store_cache_dirty_keys", "feature_store_feature_freshness_seconds"} {
		if _, ok := find(t, reg, name); ok {
			t.Errorf("%s exposed before any state", name)
		}
	}
	if got := value(t, reg, "feature_store_recompute_last_success_timestamp_seconds"); got != 0 {
		t.Errorf("last success before any recompute = %v, want 0", got)
	}
}

func TestTwoRegistriesDoNotCollide(t *testing.T) {
	t.Parallel()
	r1, r2 := prometheus.NewRegistry(), prometheus.NewRegistry()
	m1 := New(r1, BuildInfo{Version: "a"}, nil)
	m2 := New(r2, BuildInfo{Version: "b"}, nil)
	m1.ObserveRequest(feature.OpStats, "", time.Millisecond)
	m1.ObserveRequest(feature.OpStats, "", time.Millisecond)
	m2.ObserveRequest(feature.OpStats, "", time.Millisecond)
	if got := value(t, r1, "feature_store_requests_total", "operation", "stats"); got != 2 {
		t.Errorf("registry 1: %v requests, want 2", got)
	}
	if got := value(t, r2, "feature_store_requests_total", "operation", "stats"); got != 1 {
		t.Errorf("registry 2: %v requests, want 1", got)
	}
	value(t, r2, "feature_store_build_info", "version", "b")
}

func TestNilRegistererWorks(t *testing.T) {
	t.Parallel()
	m := New(nil, BuildInfo{}, nil)
	m.ObserveRequest(feature.OpGetEntity, "g", time.Millisecond)
	m.CacheHit(CacheMemory, "g", 1)
	m.SetNewestEvent("g", time.Now())
	if got := testutil.ToFloat64(m.requests.WithLabelValues(string(feature.OpGetEntity), "g")); got != 1 {
		t.Errorf("requests = %v, want 1", got)
	}
	if err := m.Register(prometheus.NewGauge(prometheus.GaugeOpts{Name: "x", Help: "x"})); err != nil {
		t.Errorf("Register with nil registry: %v", err)
	}
}

func TestRegisterAddsCollector(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "extra_thing", Help: "An extra gauge."})
	if err := m.Register(g); err != nil {
		t.Fatal(err)
	}
	value(t, reg, "extra_thing")
	if err := m.Register(g); err == nil {
		t.Error("registering the same collector twice succeeded")
	}
}

func TestFreshnessGrowsWithClock(t *testing.T) {
	t.Parallel()
	clk := newClock()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, clk.now)
	event := clk.now().Add(-30 * time.Second)
	m.SetNewestEvent("movie_stats", event)

	fresh := func() float64 {
		return value(t, reg, "feature_store_feature_freshness_seconds", "feature_group", "movie_stats")
	}
	if got := fresh(); got != 30 {
		t.Fatalf("freshness = %v, want 30", got)
	}
	clk.advance(90 * time.Second) // nothing written: it keeps growing
	if got := fresh(); got != 120 {
		t.Fatalf("freshness after 90s = %v, want 120", got)
	}
	m.SetNewestEvent("movie_stats", event.Add(-time.Hour)) // older: ignored
	if got := fresh(); got != 120 {
		t.Fatalf("freshness after an older event = %v, want 120", got)
	}
	m.SetNewestEvent("movie_stats", clk.now().Add(-5*time.Second))
	if got := fresh(); got != 5 {
		t.Fatalf("freshness after a new event = %v, want 5", got)
	}
	m.SetNewestEvent("movie_stats", time.Time{}) // zero: ignored
	if got := fresh(); got != 5 {
		t.Fatalf("freshness after a zero time = %v, want 5", got)
	}
	if got := value(t, reg, "feature_store_feature_newest_event_timestamp_seconds", "feature_group", "movie_stats"); got != float64(clk.now().Unix()-5) {
		t.Errorf("newest event = %v, want %v", got, clk.now().Unix()-5)
	}
}

func TestForgetGroup(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	for _, g := range []string{"doomed", "kept"} {
		m.ObserveRequest(feature.OpGetEntity, g, time.Millisecond)
		m.CacheHit(CacheRedis, g, 1)
		m.CacheMiss(CacheRedis, g, 1)
		m.FeaturesWritten(g, 1)
		m.FeatureStatuses(g, 1, 1, 1, 1)
		m.SetNewestEvent(g, time.Now())
	}
	m.ForgetGroup("doomed")
	groupNames := []string{
		"feature_store_requests_total", "feature_store_cache_hits_total", "feature_store_cache_misses_total",
		"feature_store_features_total", "feature_store_feature_values_returned_total",
		"feature_store_feature_newest_event_timestamp_seconds", "feature_store_feature_freshness_seconds",
	}
	for _, name := range groupNames {
		got := labelValues(t, reg, name, "feature_group")
		if slices.Contains(got, "doomed") {
			t.Errorf("%s still has feature_group=doomed after ForgetGroup", name)
		}
		if !slices.Contains(got, "kept") {
			t.Errorf("%s lost feature_group=kept", name)
		}
	}
	// A group of the same name created later starts from zero.
	m.ObserveRequest(feature.OpGetEntity, "doomed", time.Millisecond)
	if got := value(t, reg, "feature_store_requests_total", "feature_group", "doomed"); got != 1 {
		t.Errorf("recreated group: %v requests, want 1", got)
	}
	m.ForgetGroup("never_seen") // no-op
}

func TestGroupLabelsAreBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	m.ObserveRequest(feature.OpGetEntity, "Not A Valid/Name", time.Millisecond)
	m.ObserveRequest(feature.OpGetEntity, "../../etc/passwd", time.Millisecond)
	if got := value(t, reg, "feature_store_requests_total", "feature_group", GroupOther); got != 2 {
		t.Errorf("invalid names: %v requests under %q, want 2", got, GroupOther)
	}
	for i := range MaxGroupLabels + 5 {
		m.FeaturesWritten(fmt.Sprintf("g%d", i), 1)
	}
	vals := labelValues(t, reg, "feature_store_features_total", "feature_group")
	if len(vals) != MaxGroupLabels+1 {
		t.Errorf("%d feature_group values, want %d groups plus %q", len(vals), MaxGroupLabels, GroupOther)
	}
	if got := value(t, reg, "feature_store_features_total", "feature_group", GroupOther); got != 5 {
		t.Errorf("%v writes over the limit under %q, want 5", got, GroupOther)
	}
	// Forgetting a group frees a slot.
	m.ForgetGroup("g0")
	m.FeaturesWritten("late", 1)
	value(t, reg, "feature_store_features_total", "feature_group", "late")
}

func TestErrorIgnoresEmptyCode(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	m.Error(feature.OpIngest, "")
	m.Error(feature.OpIngest, feature.ErrorCode(errors.New("bug")))
	if _, ok := find(t, reg, "feature_store_errors_total", "code", ""); ok {
		t.Error("an empty code became a series")
	}
	if got := value(t, reg, "feature_store_errors_total", "operation", "ingest", "code", "internal"); got != 1 {
		t.Errorf("internal errors = %v, want 1", got)
	}
}

func TestCacheStateReadAtScrape(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	dirty, trusted := 0, true
	m.RegisterCacheState(func() int { return dirty }, func() bool { return trusted })
	if got := value(t, reg, "feature_store_cache_dirty_keys"); got != 0 {
		t.Errorf("dirty = %v, want 0", got)
	}
	dirty, trusted = 42, false
	if got := value(t, reg, "feature_store_cache_dirty_keys"); got != 42 {
		t.Errorf("dirty = %v, want 42", got)
	}
	if got := value(t, reg, "feature_store_cache_trusted"); got != 0 {
		t.Errorf("trusted = %v, want 0", got)
	}
}

// TestHotPathDoesNotAllocate pins the promise that per-request methods cost
// no allocation once their label combination has been seen.
func TestHotPathDoesNotAllocate(t *testing.T) {
	m := New(prometheus.NewRegistry(), BuildInfo{}, nil)
	calls := map[string]func(){
		"ObserveRequest":  func() { m.ObserveRequest(feature.OpGetOnlineFeatures, "movie_stats", time.Millisecond) },
		"CacheHit":        func() { m.CacheHit(CacheRedis, "movie_stats", 10) },
		"CacheMiss":       func() { m.CacheMiss(CacheRedis, "movie_stats", 1) },
		"FeatureStatuses": func() { m.FeatureStatuses("movie_stats", 8, 1, 1, 0) },
		"FeaturesWritten": func() { m.FeaturesWritten("movie_stats", 8) },
		"Error":           func() { m.Error(feature.OpGetEntity, feature.CodeNotFound) },
	}
	for name, call := range calls {
		call()
		if n := testing.AllocsPerRun(1000, call); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	m := New(prometheus.NewRegistry(), BuildInfo{}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest(feature.OpGetOnlineFeatures, "movie_stats", 250*time.Microsecond)
		}
	})
}

func BenchmarkCacheHitMiss(b *testing.B) {
	m := New(prometheus.NewRegistry(), BuildInfo{}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.CacheHit(CacheRedis, "movie_stats", 9)
			m.CacheMiss(CacheRedis, "movie_stats", 1)
		}
	})
}

// BenchmarkReadPath is what one batch read costs in metrics.
func BenchmarkReadPath(b *testing.B) {
	m := New(prometheus.NewRegistry(), BuildInfo{}, nil)
	b.ReportAllocs()
	for b.Loop() {
		m.CacheHit(CacheRedis, "movie_stats", 9)
		m.CacheMiss(CacheRedis, "movie_stats", 1)
		m.FeatureStatuses("movie_stats", 80, 5, 5, 10)
		m.ObserveRequest(feature.OpGetOnlineFeatures, "movie_stats", 250*time.Microsecond)
	}
}
