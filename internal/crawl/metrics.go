package crawl

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Record results: the value set of the result label of
// feature_store_crawl_records_total.
const (
	ResultAccepted  = "accepted"
	ResultRejected  = "rejected"
	ResultDuplicate = "duplicate"
)

// Retry reasons: the value set of the reason label of
// feature_store_crawl_retries_total.
const (
	ReasonRateLimited = "rate_limited" // 429
	ReasonServerError = "server_error" // 5xx
	ReasonNetwork     = "network"      // no answer: connection error or timeout
	ReasonInvalidBody = "invalid_body" // 2xx with a body that is not the expected JSON (e.g. truncated)
)

var retryReasons = [...]string{ReasonRateLimited, ReasonServerError, ReasonNetwork, ReasonInvalidBody}

// Metrics is the crawler's metric set (feature_store_crawl_*), built on the
// registerer it is given; nil registers nothing (tests), and a nil *Metrics
// records nothing. Every label has a fixed value set, created at zero.
type Metrics struct {
	pages       *prometheus.CounterVec
	records     *prometheus.CounterVec
	waits       prometheus.Counter
	waitSeconds prometheus.Counter
	retries     *prometheus.CounterVec
	runs        *prometheus.CounterVec
	runDuration prometheus.Gauge
	lastSuccess *timestampCollector
}

// NewMetrics builds the crawler's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		pages: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_crawl_pages_total",
			Help: "TMDB responses fetched and processed, by endpoint: a list page (popular, top_rated, now_playing, discover) or one movie's details (details).",
		}, []string{"endpoint"}),
		records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_crawl_records_total",
			Help: "Movie records crawled, by result: accepted (valid and new), rejected (invalid by the ingest rules) or duplicate (seen before in the same crawl).",
		}, []string{"result"}),
		waits: f.NewCounter(prometheus.CounterOpts{
			Name: "feature_store_crawl_rate_limit_waits_total",
			Help: "Requests the crawler's own rate limit (--rate) delayed.",
		}),
		waitSeconds: f.NewCounter(prometheus.CounterOpts{
			Name: "feature_store_crawl_rate_limit_wait_seconds_total",
			Help: "Time requests spent waiting for the crawler's own rate limit.",
		}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_crawl_retries_total",
			Help: "TMDB requests retried, by reason: rate_limited (429), server_error (5xx), network or invalid_body.",
		}, []string{"reason"}),
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_crawl_runs_total",
			Help: "Finished crawl runs, by result (success or failure); an interrupted run is not counted.",
		}, []string{"result"}),
		runDuration: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_crawl_last_run_duration_seconds",
			Help: "Duration of the last finished crawl run, resumed parts included.",
		}),
		lastSuccess: &timestampCollector{desc: prometheus.NewDesc(
			"feature_store_crawl_last_success_timestamp_seconds",
			"Unix time the last successful crawl finished, kept across restarts in the state directory; absent until the first success.",
			nil, nil)},
	}
	if reg != nil {
		reg.MustRegister(m.lastSuccess)
	}
	for _, e := range allEndpoints {
		m.pages.WithLabelValues(e)
	}
	for _, r := range [...]string{ResultAccepted, ResultRejected, ResultDuplicate} {
		m.records.WithLabelValues(r)
	}
	for _, r := range retryReasons {
		m.retries.WithLabelValues(r)
	}
	m.runs.WithLabelValues("success")
	m.runs.WithLabelValues("failure")
	return m
}

func (m *Metrics) page(endpoint string) {
	if m != nil {
		m.pages.WithLabelValues(endpoint).Inc()
	}
}

func (m *Metrics) recordsN(result string, n int) {
	if m != nil && n > 0 {
		m.records.WithLabelValues(result).Add(float64(n))
	}
}

func (m *Metrics) rateLimitWait(d time.Duration) {
	if m != nil && d > 0 {
		m.waits.Inc()
		m.waitSeconds.Add(d.Seconds())
	}
}

func (m *Metrics) retry(reason string) {
	if m != nil {
		m.retries.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) run(ok bool, d time.Duration) {
	if m == nil {
		return
	}
	result := "failure"
	if ok {
		result = "success"
	}
	m.runs.WithLabelValues(result).Inc()
	m.runDuration.Set(d.Seconds())
}

// setLastSuccess publishes the time of the last successful crawl.
func (m *Metrics) setLastSuccess(t time.Time) {
	if m != nil {
		m.lastSuccess.set(t)
	}
}

// timestampCollector exposes a timestamp gauge only once it is known, so
// that "never" is an absent series rather than 0 (which would read as a
// success in 1970).
type timestampCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	t    time.Time
}

func (c *timestampCollector) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *timestampCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *timestampCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	t := c.t
	c.mu.Unlock()
	if !t.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(t.UnixNano())/1e9)
	}
}
