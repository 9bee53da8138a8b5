package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// LimitNames is the value set of the limit label of feature_store_limit:
// every protective limit of the service, by its flag's name (units in the
// suffix).
var LimitNames = []string{
	"max_body_bytes", "max_body_memory_bytes", "max_header_bytes",
	"read_header_timeout_seconds", "idle_timeout_seconds", "request_timeout_seconds",
	"max_conns_per_client", "rate_limit_per_second", "rate_limit_burst",
	"max_concurrent_requests", "queue_wait_seconds",
	"max_groups", "max_features_per_group", "max_tags", "max_tag_bytes", "max_description_bytes",
	"idempotency_ttl_seconds", "health_max_age_seconds",
}

// Shed reasons: the value set of the reason label of
// feature_store_http_requests_shed_total.
const (
	ShedConcurrency = "concurrency" // every slot of --max-concurrent-requests taken
	ShedBodyMemory  = "body_memory" // --max-body-memory in use by other bodies
)

// LimitGauges are read at scrape time; a nil function leaves its family out.
type LimitGauges struct {
	OpenConnections  func() float64
	RateLimitClients func() float64
	BodyBytesHeld    func() float64
}

// Limits is the metric set of the service's limits: their configured
// values, what they refuse, and the state they keep. It satisfies
// httpapi.LimitObserver and httpapi.ConnObserver.
type Limits struct {
	rateLimited  prometheus.Counter
	shed         *prometheus.CounterVec
	connRejected prometheus.Counter
	acceptErrors *prometheus.CounterVec
}

// NewLimits registers the limit metrics on reg (nil: not registered):
// values holds the configured value of each of LimitNames (0 when off).
func NewLimits(reg prometheus.Registerer, values map[string]float64, g LimitGauges) *Limits {
	f := promauto.With(reg)
	limit := f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "feature_store_limit",
		Help: "Configured value of each protective limit, by flag name (units in the name; 0: off).",
	}, []string{"limit"})
	for _, name := range LimitNames {
		limit.WithLabelValues(name).Set(values[name])
	}
	l := &Limits{
		rateLimited: f.NewCounter(prometheus.CounterOpts{
			Name: "feature_store_http_rate_limited_total",
			Help: "Requests answered 429 because their client was over its rate limit.",
		}),
		shed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_http_requests_shed_total",
			Help: "Requests answered 503 overloaded at once: every concurrency slot taken, or the body memory in use.",
		}, []string{"reason"}),
		connRejected: f.NewCounter(prometheus.CounterOpts{
			Name: "feature_store_http_connections_rejected_total",
			Help: "Connections refused because their client had --max-conns-per-client open already.",
		}),
		acceptErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_http_accept_errors_total",
			Help: "Failed accepts of new connections: fd_exhausted (out of file descriptors) or other.",
		}, []string{"reason"}),
	}
	for _, r := range []string{ShedConcurrency, ShedBodyMemory} {
		l.shed.WithLabelValues(r)
	}
	for _, r := range []string{"fd_exhausted", "other"} {
		l.acceptErrors.WithLabelValues(r)
	}
	gauge := func(name, help string, fn func() float64) {
		if fn != nil {
			f.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn)
		}
	}
	gauge("feature_store_http_open_connections", "Open connections to the API listener.", g.OpenConnections)
	gauge("feature_store_rate_limit_clients", "Clients the rate limiter keeps a bucket for.", g.RateLimitClients)
	gauge("feature_store_http_request_body_bytes_held", "Request body bytes held in memory by requests being served (bounded by --max-body-memory).", g.BodyBytesHeld)
	return l
}

// RateLimited counts a request refused by the rate limiter.
func (l *Limits) RateLimited() { l.rateLimited.Inc() }

// Shed counts a request shed by the concurrency limit.
func (l *Limits) Shed() { l.shed.WithLabelValues(ShedConcurrency).Inc() }

// ShedBody counts a request shed for want of body memory.
func (l *Limits) ShedBody() { l.shed.WithLabelValues(ShedBodyMemory).Inc() }

// ConnRejected counts a connection over its client's cap.
func (l *Limits) ConnRejected() { l.connRejected.Inc() }

// AcceptFailed counts a failed accept.
func (l *Limits) AcceptFailed(fdExhausted bool) {
	if fdExhausted {
		l.acceptErrors.WithLabelValues("fd_exhausted").Inc()
		return
	}
	l.acceptErrors.WithLabelValues("other").Inc()
}
