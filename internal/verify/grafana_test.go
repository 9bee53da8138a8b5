package verify_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/verify"
)

// fakeGrafana is a TEST DOUBLE of the few Grafana HTTP API endpoints verify
// calls (there is no Grafana binary on this machine), answering with the
// shapes Grafana documents: /api/health without authentication, the rest
// with basic auth.
type fakeGrafana struct {
	database      string            // /api/health "database"
	datasource    bool              // the uid "prometheus" datasource exists
	dsHealthy     bool              // its health check says OK
	dashboards    map[string]string // uid -> title
	hangingHealth bool              // /api/health never answers
}

func (g fakeGrafana) handler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "s3cret" {
				reply(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized"})
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) {
		if g.hangingHealth {
			<-r.Context().Done()
			return
		}
		reply(w, 200, map[string]string{"commit": "abc", "database": g.database, "version": "10.4.2"})
	})
	mux.HandleFunc("GET /api/datasources/uid/{uid}", authed(func(w http.ResponseWriter, r *http.Request) {
		if !g.datasource || r.PathValue("uid") != "prometheus" {
			reply(w, 404, map[string]string{"message": "Data source not found"})
			return
		}
		reply(w, 200, map[string]any{"id": 1, "uid": "prometheus", "name": "Prometheus", "type": "prometheus",
			"url": "http://prometheus:9090", "access": "proxy", "isDefault": true})
	}))
	mux.HandleFunc("GET /api/datasources/uid/{uid}/health", authed(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !g.datasource:
			reply(w, 404, map[string]string{"message": "Data source not found"})
		case g.dsHealthy:
			reply(w, 200, map[string]string{"status": "OK", "message": "Successfully queried the Prometheus API."})
		default:
			reply(w, 400, map[string]string{"status": "ERROR", "message": "Post \"http://prometheus:9090/api/v1/query\": dial tcp: lookup prometheus: no such host"})
		}
	}))
	mux.HandleFunc("GET /api/dashboards/uid/{uid}", authed(func(w http.ResponseWriter, r *http.Request) {
		title, ok := g.dashboards[r.PathValue("uid")]
		if !ok {
			reply(w, 404, map[string]string{"message": "Dashboard not found"})
			return
		}
		reply(w, 200, map[string]any{
			"dashboard": map[string]any{"uid": r.PathValue("uid"), "title": title, "panels": []any{}},
			"meta":      map[string]any{"folderTitle": "Feature Store", "provisioned": true},
		})
	}))
	return mux
}

func healthyGrafana() fakeGrafana {
	return fakeGrafana{database: "ok", datasource: true, dsHealthy: true,
		dashboards: map[string]string{"featurestore-overview": "Feature Store Overview", "featurestore-go-runtime": "Go Runtime"}}
}

// patience is the per-check timeout of checks that must answer: what the
// test has left before its own deadline, less a margin to report, so that
// a loaded machine slows the test down instead of failing it.
func patience(t *testing.T) time.Duration {
	deadline, ok := t.Deadline()
	if !ok {
		return 10 * time.Minute
	}
	return max(time.Until(deadline)-30*time.Second, time.Second)
}

// hangTimeout is the per-check timeout of the case where Grafana's health
// endpoint never answers: the test waits it out once. The datasource check
// of that case must still answer within it, which two local requests do by
// a wide margin even on a loaded machine.
const hangTimeout = 3 * time.Second

func TestGrafanaChecksAgainstFakeGrafanaAPI(t *testing.T) {
	t.Parallel()
	type want struct {
		result verify.Result
		detail string // a substring of the detail
	}
	cases := []struct {
		name     string
		grafana  fakeGrafana
		password string
		want     map[string]want
	}{
		{"all good", healthyGrafana(), "s3cret", map[string]want{
			"grafana health":     {verify.Pass, "version 10.4.2, database ok"},
			"grafana datasource": {verify.Pass, "Prometheus (prometheus) at http://prometheus:9090: Successfully queried the Prometheus API."},
			"grafana dashboards": {verify.Pass, `"Feature Store Overview" in "Feature Store", "Go Runtime" in "Feature Store"`},
		}},
		{"wrong password", healthyGrafana(), "nope", map[string]want{
			"grafana health":     {verify.Pass, "database ok"},
			"grafana datasource": {verify.Fail, "401 Unauthorized"},
			"grafana dashboards": {verify.Fail, "401 Unauthorized"},
		}},
		{"database failing", func() fakeGrafana { g := healthyGrafana(); g.database = "failing"; return g }(), "s3cret", map[string]want{
			"grafana health":     {verify.Fail, `database "failing"`},
			"grafana datasource": {verify.Pass, "Successfully queried"},
			"grafana dashboards": {verify.Pass, "Go Runtime"},
		}},
		{"datasource not provisioned", func() fakeGrafana { g := healthyGrafana(); g.datasource = false; return g }(), "s3cret", map[string]want{
			"grafana datasource": {verify.Fail, `no datasource with uid "prometheus"`},
		}},
		{"datasource cannot reach Prometheus", func() fakeGrafana { g := healthyGrafana(); g.dsHealthy = false; return g }(), "s3cret", map[string]want{
			"grafana datasource": {verify.Fail, "ERROR: Post \"http://prometheus:9090/api/v1/query\": dial tcp: lookup prometheus: no such host"},
		}},
		{"a dashboard missing", func() fakeGrafana {
			g := healthyGrafana()
			delete(g.dashboards, "featurestore-go-runtime")
			return g
		}(), "s3cret", map[string]want{
			"grafana dashboards": {verify.Fail, "missing dashboards featurestore-go-runtime"},
		}},
		{"health hangs past the timeout", func() fakeGrafana { g := healthyGrafana(); g.hangingHealth = true; return g }(), "s3cret", map[string]want{
			"grafana health":     {verify.Fail, "no answer within " + hangTimeout.String()},
			"grafana datasource": {verify.Pass, "Successfully queried"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(c.grafana.handler())
			t.Cleanup(srv.Close)
			timeout := patience(t)
			if c.grafana.hangingHealth {
				timeout = hangTimeout
			}
			checks := verify.Run(context.Background(), verify.Config{
				Grafana: srv.URL + "/", GrafanaPassword: c.password, Timeout: timeout,
			})
			byName := map[string]verify.Check{}
			for _, ch := range checks {
				byName[ch.Name] = ch
				if !strings.HasPrefix(ch.Name, "grafana ") && ch.Result != verify.Skip {
					t.Errorf("%s: %s, want SKIP (only --grafana given)", ch.Name, ch.Result)
				}
			}
			for name, w := range c.want {
				got, ok := byName[name]
				if !ok {
					t.Fatalf("no check %q", name)
				}
				if got.Result != w.result || !strings.Contains(got.Detail, w.detail) {
					t.Errorf("%s = %s %q, want %s containing %q", name, got.Result, got.Detail, w.result, w.detail)
				}
			}
		})
	}
}

// TestGrafanaPasswordFromEnvironmentAgainstFakeGrafanaAPI runs the command
// with Grafana (the test double) and its password given only through the
// environment; --help never shows the password.
func TestGrafanaPasswordFromEnvironmentAgainstFakeGrafanaAPI(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(healthyGrafana().handler())
	t.Cleanup(srv.Close)
	env := map[string]string{"FEATURESTORE_GRAFANA": srv.URL, "FEATURESTORE_GRAFANA_PASSWORD": "s3cret"}
	getenv := func(k string) string { return env[k] }
	var out, errOut strings.Builder
	if err := verify.Command(context.Background(), []string{"--json"}, getenv, &out, &errOut); err != nil {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	var rep verify.Report
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Summary != (verify.Summary{Passed: 3, Skipped: 17, OK: true}) {
		t.Fatalf("summary %+v\n%s", rep.Summary, out.String())
	}
	out.Reset()
	if err := verify.Command(context.Background(), []string{"--help"}, getenv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errOut.String(), "s3cret") || !strings.Contains(errOut.String(), "FEATURESTORE_GRAFANA_PASSWORD") {
		t.Fatalf("--help:\n%s", errOut.String())
	}
}
