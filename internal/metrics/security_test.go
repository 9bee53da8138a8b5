package metrics

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/featurestore/featurestore/internal/auth"
)

// tokenLabels are the token label values of feature_store_auth_requests_total.
func tokenLabels(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mf, ok := families(t, reg)["feature_store_auth_requests_total"]
	if !ok {
		return nil
	}
	var out []string
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "token" && !slices.Contains(out, lp.GetValue()) {
				out = append(out, lp.GetValue())
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestSecurityTokenLabelsFollowTheTokenFile(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	s := NewSecurity(reg)
	s.SetAuth(false, nil, false)
	if v, _ := find(t, reg, "feature_store_auth_enabled"); v != 0 {
		t.Errorf("auth_enabled = %v without auth", v)
	}
	if got := tokenLabels(t, reg); got != nil {
		t.Errorf("token labels without auth: %v", got)
	}

	s.SetAuth(true, []string{"ci-ingest", "dashboards"}, true)
	if v, _ := find(t, reg, "feature_store_auth_enabled"); v != 1 {
		t.Errorf("auth_enabled = %v with auth", v)
	}
	want := []string{"anonymous", "ci-ingest", "dashboards", "invalid", "jwt"}
	if got := tokenLabels(t, reg); !slices.Equal(got, want) {
		t.Errorf("token labels %v, want %v", got, want)
	}
	if n := testutil.CollectAndCount(s.decisions); n != len(want)*len(auth.Results()) {
		t.Errorf("%d series, want every label × result pre-created", n)
	}
	s.AuthDecision("ci-ingest", auth.ResultAllowed)
	s.AuthDecision("not-a-token", auth.ResultForbidden) // unknown: counted as invalid
	s.AuthDecision("ci-ingest", "bogus")                // unknown result: ignored
	if v, _ := find(t, reg, "feature_store_auth_requests_total", "token", "ci-ingest", "result", "allowed"); v != 1 {
		t.Errorf("ci-ingest allowed = %v, want 1", v)
	}
	if v, _ := find(t, reg, "feature_store_auth_requests_total", "token", "invalid", "result", "forbidden"); v != 1 {
		t.Errorf("invalid forbidden = %v, want 1", v)
	}

	// The token file reloads without dashboards and without JWTs.
	s.SetAuth(true, []string{"ci-ingest", "ops"}, false)
	want = []string{"anonymous", "ci-ingest", "invalid", "ops"}
	if got := tokenLabels(t, reg); !slices.Equal(got, want) {
		t.Errorf("after reload: token labels %v, want %v", got, want)
	}
	if v, _ := find(t, reg, "feature_store_auth_requests_total", "token", "ci-ingest", "result", "allowed"); v != 1 {
		t.Errorf("a kept token's count was reset: %v", v)
	}
	if v, _ := find(t, reg, "feature_store_auth_tokens"); v != 2 {
		t.Errorf("auth_tokens = %v, want 2", v)
	}
}

func TestSecurityReloadsAndCertificate(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	s := NewSecurity(reg)
	s.ReloadFiles("tokens", "tls certificate")
	s.Reloaded("tls certificate", false)
	if v, ok := find(t, reg, "feature_store_reloads_total", "file", "tls_certificate", "result", "failure"); v != 1 || !ok {
		t.Errorf("tls_certificate failure = %v %v", v, ok)
	}
	if _, ok := find(t, reg, "feature_store_reloads_total", "file", "tokens", "result", "success"); !ok {
		t.Error("tokens success not pre-created")
	}
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	s.SetCertificateExpiry(exp)
	if v, _ := find(t, reg, "feature_store_tls_certificate_expiry_timestamp_seconds"); v != float64(exp.Unix()) {
		t.Errorf("expiry = %v", v)
	}
}
