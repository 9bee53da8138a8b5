package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/featurestore/featurestore/internal/auth"
)

// Security is the metric set of authentication, TLS and the files the
// service reloads (token file, JWT key, TLS certificate).
//
// The token label is bounded by the token file: a token's name, "jwt" for
// any JWT caller, "anonymous" (no credentials) or "invalid" (refused
// credentials). A name removed from the file loses its series at the next
// reload; a label the set does not know is counted as "invalid".
type Security struct {
	authEnabled prometheus.Gauge
	decisions   *prometheus.CounterVec
	tokens      prometheus.Gauge
	reloads     *prometheus.CounterVec
	certExpiry  prometheus.Gauge

	mu     sync.Mutex
	labels map[string]bool // token label values in use
}

// NewSecurity registers the security metrics on reg (nil: not registered).
func NewSecurity(reg prometheus.Registerer) *Security {
	f := promauto.With(reg)
	return &Security{
		authEnabled: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_auth_enabled",
			Help: "Whether API authentication is configured (1) or every route is open (0).",
		}),
		decisions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_auth_requests_total",
			Help: "Requests to protected routes by caller (token name, jwt, anonymous or invalid) and result (allowed, unauthenticated, forbidden).",
		}, []string{"token", "result"}),
		tokens: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_auth_tokens",
			Help: "Tokens in the token file in use.",
		}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "feature_store_reloads_total",
			Help: "Reloads of a changed token file, JWT key or TLS certificate, by file and result (success or failure: the previous one stays in use).",
		}, []string{"file", "result"}),
		certExpiry: f.NewGauge(prometheus.GaugeOpts{
			Name: "feature_store_tls_certificate_expiry_timestamp_seconds",
			Help: "Unix time the TLS certificate in use expires; 0 without TLS.",
		}),
		labels: map[string]bool{},
	}
}

// SetAuth records whether authentication is on and which callers the token
// label can name: the tokens' names, and jwt when JWTs are accepted. Their
// series are created at zero for every result; the series of a name no
// longer listed are deleted. Call it again after the token file reloads.
func (s *Security) SetAuth(enabled bool, tokenNames []string, jwt bool) {
	s.authEnabled.Set(boolFloat(enabled))
	s.tokens.Set(float64(len(tokenNames)))
	want := map[string]bool{}
	if enabled {
		want[auth.LabelAnonymous], want[auth.LabelInvalid] = true, true
		if jwt {
			want[auth.LabelJWT] = true
		}
		for _, n := range tokenNames {
			want[n] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.labels {
		if !want[l] {
			s.decisions.DeletePartialMatch(prometheus.Labels{"token": l})
		}
	}
	for l := range want {
		for _, r := range auth.Results() {
			s.decisions.WithLabelValues(l, r)
		}
	}
	s.labels = want
}

// AuthDecision counts one decision on a protected route. A label SetAuth
// did not announce is counted as invalid, so the label set stays bounded.
func (s *Security) AuthDecision(label, result string) {
	if !slices.Contains(auth.Results(), result) {
		return
	}
	s.mu.Lock()
	if !s.labels[label] {
		label = auth.LabelInvalid
	}
	s.mu.Unlock()
	s.decisions.WithLabelValues(label, result).Inc()
}

// ReloadFiles creates the reload series of the named files at zero
// (the names reload.File was given: "tokens", "jwt key", "tls certificate").
func (s *Security) ReloadFiles(names ...string) {
	for _, n := range names {
		for _, r := range [...]string{"success", "failure"} {
			s.reloads.WithLabelValues(fileLabel(n), r)
		}
	}
}

// Reloaded counts a reload of a changed file: ok false when it did not load.
func (s *Security) Reloaded(name string, ok bool) {
	r := "success"
	if !ok {
		r = "failure"
	}
	s.reloads.WithLabelValues(fileLabel(name), r).Inc()
}

// fileLabel is the file label value of a reloaded file's name.
func fileLabel(name string) string { return strings.ReplaceAll(name, " ", "_") }

// SetCertificateExpiry records when the TLS certificate in use expires.
func (s *Security) SetCertificateExpiry(t time.Time) {
	s.certExpiry.Set(float64(t.Unix()))
}
