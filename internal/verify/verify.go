// Package verify runs the operators' monitoring checklist against a running
// stack: the feature store's health and readiness, Prometheus (health,
// configuration, targets, rules, the Alertmanager it sends to, and the seven
// feature_store_* metrics the guide checks, each fresh), Alertmanager, and
// Grafana (health, the provisioned datasource, the dashboards). Each check
// passes, fails or is skipped (its component's URL was not given), with a
// detail saying what was seen.
package verify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Result is the outcome of one check.
type Result string

// Results.
const (
	Pass Result = "PASS"
	Fail Result = "FAIL"
	Skip Result = "SKIP"
)

// Check is one line of the report.
type Check struct {
	Name     string
	Result   Result
	Detail   string
	Duration time.Duration
}

// Config says where the stack is and how strict to be. An empty URL skips
// that component's checks.
type Config struct {
	API          string // the feature store, e.g. http://localhost:8002
	Prometheus   string // e.g. http://localhost:9090
	Alertmanager string // e.g. http://localhost:9093
	Grafana      string // e.g. http://localhost:3000

	// APIToken is the bearer token sent to the feature store (empty:
	// none). With authentication on, /health shows its components to a
	// reader only.
	APIToken string

	// GrafanaUser and GrafanaPassword authenticate to Grafana's API with
	// basic auth; no password: no authentication.
	GrafanaUser, GrafanaPassword string

	// Timeout bounds each check (default 10s).
	Timeout time.Duration
	// Freshness is the largest accepted age of a metric's newest sample in
	// Prometheus (default 30s).
	Freshness time.Duration

	// Client makes the requests (nil: a client with no timeout of its own;
	// each check has its deadline).
	Client *http.Client
	// Now is the clock timing the checks (nil: time.Now).
	Now func() time.Time
}

// The names Grafana must know, fixed by grafana/provisioning and
// grafana/dashboards.
const (
	datasourceUID      = "prometheus"
	overviewDashboard  = "featurestore-overview"
	goRuntimeDashboard = "featurestore-go-runtime"
)

// RequiredMetrics are the seven metrics the operators' guide expects in
// Prometheus.
func RequiredMetrics() []string {
	return []string{
		"feature_store_requests_total",
		"feature_store_request_duration_seconds",
		"feature_store_cache_hits_total",
		"feature_store_cache_misses_total",
		"feature_store_features_total",
		"feature_store_storage_bytes",
		"feature_store_errors_total",
	}
}

// probe is one check before it runs: it needs the URL base (skipped when
// empty) and returns its detail, or an error that fails it.
type probe struct {
	name string
	base string
	flag string // the flag that sets base, for the skip detail
	run  func(ctx context.Context, c *client) (string, error)
}

// Run runs every check concurrently, each within cfg.Timeout, and returns
// them in checklist order. It never fails as a whole: a check that cannot
// reach its component fails with the reason.
func Run(ctx context.Context, cfg Config) []Check {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Freshness <= 0 {
		cfg.Freshness = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.Client
	if hc == nil {
		hc = &http.Client{}
	}
	plain := &client{http: hc}
	api := &client{http: hc, bearer: cfg.APIToken}
	grafana := &client{http: hc, user: cfg.GrafanaUser, password: cfg.GrafanaPassword}
	if grafana.user == "" {
		grafana.user = "admin"
	}

	probes := probes(cfg)
	checks := make([]Check, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		checks[i].Name = p.name
		if p.base == "" {
			checks[i].Result, checks[i].Detail = Skip, "no --"+p.flag+" URL given"
			continue
		}
		c := plain
		switch p.flag {
		case "grafana":
			c = grafana
		case "api":
			c = api
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			defer cancel()
			start := cfg.Now()
			detail, err := p.run(cctx, c)
			checks[i].Duration = cfg.Now().Sub(start)
			if err != nil {
				if cctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
					err = fmt.Errorf("no answer within %s: %w", cfg.Timeout, err)
				}
				checks[i].Result, checks[i].Detail = Fail, err.Error()
				return
			}
			checks[i].Result, checks[i].Detail = Pass, detail
		})
	}
	wg.Wait()
	return checks
}

// probes is the checklist, in the order it is reported.
func probes(cfg Config) []probe {
	api := strings.TrimRight(cfg.API, "/")
	prom := strings.TrimRight(cfg.Prometheus, "/")
	am := strings.TrimRight(cfg.Alertmanager, "/")
	graf := strings.TrimRight(cfg.Grafana, "/")
	ps := []probe{
		{"service health", api, "api", func(ctx context.Context, c *client) (string, error) { return serviceHealth(ctx, c, api) }},
		{"service ready", api, "api", func(ctx context.Context, c *client) (string, error) { return serviceReady(ctx, c, api) }},
		{"prometheus healthy", prom, "prometheus", func(ctx context.Context, c *client) (string, error) {
			return c.ok(ctx, prom+"/-/healthy")
		}},
		{"prometheus ready", prom, "prometheus", func(ctx context.Context, c *client) (string, error) {
			return c.ok(ctx, prom+"/-/ready")
		}},
		{"prometheus config", prom, "prometheus", func(ctx context.Context, c *client) (string, error) { return promConfig(ctx, c, prom) }},
		{"prometheus targets", prom, "prometheus", func(ctx context.Context, c *client) (string, error) { return promTargets(ctx, c, prom) }},
		{"prometheus rules", prom, "prometheus", func(ctx context.Context, c *client) (string, error) { return promRules(ctx, c, prom) }},
		{"prometheus alertmanagers", prom, "prometheus", func(ctx context.Context, c *client) (string, error) {
			return promAlertmanagers(ctx, c, prom)
		}},
	}
	for _, metric := range RequiredMetrics() {
		ps = append(ps, probe{"metric " + metric, prom, "prometheus", func(ctx context.Context, c *client) (string, error) {
			return promMetricFresh(ctx, c, prom, metric, cfg.Freshness)
		}})
	}
	return append(ps,
		probe{"alertmanager healthy", am, "alertmanager", func(ctx context.Context, c *client) (string, error) {
			return c.ok(ctx, am+"/-/healthy")
		}},
		probe{"alertmanager status", am, "alertmanager", func(ctx context.Context, c *client) (string, error) {
			return alertmanagerStatus(ctx, c, am)
		}},
		probe{"grafana health", graf, "grafana", func(ctx context.Context, c *client) (string, error) { return grafanaHealth(ctx, c, graf) }},
		probe{"grafana datasource", graf, "grafana", func(ctx context.Context, c *client) (string, error) {
			return grafanaDatasource(ctx, c, graf)
		}},
		probe{"grafana dashboards", graf, "grafana", func(ctx context.Context, c *client) (string, error) {
			return grafanaDashboards(ctx, c, graf)
		}},
	)
}

// Failed names the failed checks.
func Failed(checks []Check) []string {
	var names []string
	for _, c := range checks {
		if c.Result == Fail {
			names = append(names, c.Name)
		}
	}
	return names
}
