package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/app"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/verify"
)

// process is a child process the test started; stop kills it and waits.
type process struct {
	name string
	out  *testenv.SyncBuffer
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: filepath.Base(bin), out: &testenv.SyncBuffer{}, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	return p
}

func (p *process) stop() {
	_ = p.cmd.Process.Kill() // an error only says it has already exited
	<-p.done
}

// service is the real feature store, run in-process with app.Run.
type service struct {
	base string
	logs *testenv.SyncBuffer
	stop func()
}

func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{base: "http://" + addr, logs: &testenv.SyncBuffer{}}
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, []string{"serve", "--addr", addr}, func(k string) string { return env[k] }, s.logs, s.logs)
	}()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("service: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("service did not stop\n%s", s.logs)
			}
		})
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-done:
			t.Fatalf("service exited before it was ready: %v\n%s", err, s.logs)
		case <-time.After(20 * time.Millisecond): // polling readiness
		}
		if time.Now().After(deadline) {
			t.Fatalf("service never became ready\n%s", s.logs)
		}
	}
}

// request sends one request to the service and wants the status.
func request(t *testing.T, method, url string, body []byte, want int) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d, want %d", method, url, resp.StatusCode, want)
	}
}

// driveTraffic makes all seven feature_store_* metrics exist: an ingest
// (features written, storage grows), a cache miss then a hit, an error.
func driveTraffic(t *testing.T, base string) {
	t.Helper()
	movies, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "movies.json"))
	if err != nil {
		t.Fatal(err)
	}
	request(t, "POST", base+"/v1/movies", movies, http.StatusOK) // three valid records, one rejected
	request(t, "GET", base+"/v1/feature-groups/movie_basic/entities/9001", nil, http.StatusOK)
	request(t, "GET", base+"/v1/feature-groups/movie_basic/entities/9001", nil, http.StatusOK)
	request(t, "GET", base+"/v1/feature-groups/no_such_group/entities/1", nil, http.StatusNotFound)
}

// monitoring is a real Prometheus scraping the service, itself and a real
// Alertmanager, with a recording rule and an alert that always fires.
type monitoring struct {
	prometheus, alertmanager         string // base URLs
	promProcess, alertmanagerProcess *process
}

func startMonitoring(t *testing.T, serviceAddr string) *monitoring {
	t.Helper()
	promBin, amBin := testenv.RequireTool(t, "prometheus"), testenv.RequireTool(t, "prometheus-alertmanager")
	dir := t.TempDir()
	promPort, amPort := testenv.FreePort(t), testenv.FreePort(t)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	amConfig := write("alertmanager.yml", `
route:
  receiver: blackhole
receivers:
  - name: blackhole
`)
	write("rules.yml", `
groups:
  - name: verify-test
    rules:
      - record: job:feature_store_requests:rate1m
        expr: sum by (job) (rate(feature_store_requests_total[1m]))
      - alert: VerifyTestAlwaysFiring
        expr: vector(1)
        labels:
          severity: info
        annotations:
          summary: Always firing, so that verify lists it.
`)
	promConfig := write("prometheus.yml", fmt.Sprintf(`
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 1s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:%[1]d']
scrape_configs:
  - job_name: featurestore
    static_configs:
      - targets: ['%[3]s']
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:%[2]d']
  - job_name: alertmanager
    static_configs:
      - targets: ['127.0.0.1:%[1]d']
`, amPort, promPort, serviceAddr))
	m := &monitoring{
		prometheus:   fmt.Sprintf("http://127.0.0.1:%d", promPort),
		alertmanager: fmt.Sprintf("http://127.0.0.1:%d", amPort),
	}
	m.alertmanagerProcess = startProcess(t, amBin, "--config.file="+amConfig, "--storage.path="+filepath.Join(dir, "am"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", amPort), "--cluster.listen-address=")
	m.promProcess = startProcess(t, promBin, "--config.file="+promConfig, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", promPort))
	return m
}

func (m *monitoring) output() string {
	return fmt.Sprintf("--- prometheus:\n%s\n--- alertmanager:\n%s", m.promProcess.out, m.alertmanagerProcess.out)
}

func table(checks []verify.Check) string {
	var b bytes.Buffer
	_ = verify.WriteTable(&b, checks)
	return b.String()
}

// pollUntil runs verify until ok accepts the checks, within a deadline
// (Prometheus needs a few scrapes, and staleness a failed one).
func pollUntil(t *testing.T, what string, cfg verify.Config, m *monitoring, ok func([]verify.Check) bool) []verify.Check {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		checks := verify.Run(context.Background(), cfg)
		if ok(checks) {
			return checks
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 30s; last report:\n%s\n%s", what, table(checks), m.output())
		}
		time.Sleep(250 * time.Millisecond) // polling Prometheus, which scrapes every 2s
	}
}

func results(checks []verify.Check) map[string]verify.Check {
	m := map[string]verify.Check{}
	for _, c := range checks {
		m[c.Name] = c
	}
	return m
}

func TestVerifyAgainstLiveServicePrometheusAndAlertmanager(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{
		"FEATURESTORE_DATA_DIR":         t.TempDir(),
		"FEATURESTORE_HEALTH_INTERVAL":  "200ms",
		"FEATURESTORE_REFRESH_INTERVAL": "200ms",
	})
	driveTraffic(t, svc.base)
	m := startMonitoring(t, strings.TrimPrefix(svc.base, "http://"))
	cfg := verify.Config{API: svc.base, Prometheus: m.prometheus, Alertmanager: m.alertmanager, Timeout: 5 * time.Second}

	// Everything but Grafana (no URL: skipped) passes once Prometheus has
	// scraped every target.
	checks := pollUntil(t, "all checks pass", cfg, m, func(cs []verify.Check) bool { return len(verify.Failed(cs)) == 0 })
	for _, c := range checks {
		wantResult := verify.Pass
		if strings.HasPrefix(c.Name, "grafana ") {
			wantResult = verify.Skip
		}
		if c.Result != wantResult {
			t.Errorf("%s = %s %q, want %s", c.Name, c.Result, c.Detail, wantResult)
		}
	}
	r := results(checks)
	for name, want := range map[string]string{
		"service health":           "UP: memory UP, sqlite UP",
		"prometheus targets":       "3/3 up; jobs: alertmanager, featurestore, prometheus",
		"prometheus rules":         "1 rule group: 1 alerting rule, 1 recording rule; firing: VerifyTestAlwaysFiring (1)",
		"prometheus config":        "scrape jobs: featurestore, prometheus, alertmanager",
		"prometheus alertmanagers": strings.TrimPrefix(m.alertmanager, "http://"),
		"alertmanager status":      "cluster disabled",
	} {
		if !strings.Contains(r[name].Detail, want) {
			t.Errorf("%s detail %q, want it to contain %q", name, r[name].Detail, want)
		}
	}
	for _, metric := range verify.RequiredMetrics() {
		if d := r["metric "+metric].Detail; !strings.Contains(d, "newest sample") {
			t.Errorf("metric %s: %q", metric, d)
		}
	}

	// The command: --json parses, and it exits 0.
	var out, errOut bytes.Buffer
	args := []string{"verify", "--json", "--api", svc.base, "--prometheus", m.prometheus, "--alertmanager", m.alertmanager}
	if err := app.Run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("featurestore verify --json: %v\n%s%s", err, out.String(), errOut.String())
	}
	var rep verify.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out.String())
	}
	if !rep.Summary.OK || rep.Summary.Failed != 0 || rep.Summary.Skipped != 3 || len(rep.Checks) != len(checks) ||
		rep.Checks[0].Check != "service health" || rep.Checks[0].Result != verify.Pass || rep.Checks[0].DurationMS <= 0 {
		t.Fatalf("--json report: %+v", rep)
	}

	// The service's port closed: both service checks fail, and the
	// command's error names them.
	closed := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	out.Reset()
	err := app.Run(context.Background(), []string{"verify", "--api", closed, "--alertmanager", m.alertmanager},
		func(k string) string { return map[string]string{"FEATURESTORE_PROMETHEUS": m.prometheus}[k] }, &out, &errOut)
	if err == nil || err.Error() != "verify: 2 of 20 checks failed: service health, service ready" {
		t.Fatalf("verify with the service's port closed: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "connection refused") || !strings.Contains(out.String(), "15 passed, 2 failed, 3 skipped") {
		t.Fatalf("table with the service's port closed:\n%s", out.String())
	}

	// Alertmanager stopped: its checks fail at once, and Prometheus's
	// target check fails naming the job once a scrape has failed.
	m.alertmanagerProcess.stop()
	checks = verify.Run(context.Background(), cfg)
	if got := verify.Failed(checks); !slices.Contains(got, "alertmanager healthy") || !slices.Contains(got, "alertmanager status") {
		t.Fatalf("with Alertmanager stopped, failed = %v\n%s", got, table(checks))
	}
	if d := results(checks)["alertmanager healthy"].Detail; !strings.Contains(d, "connection refused") {
		t.Errorf("alertmanager healthy detail: %q", d)
	}
	pollUntil(t, "the alertmanager target reported down", cfg, m, func(cs []verify.Check) bool {
		c := results(cs)["prometheus targets"]
		return c.Result == verify.Fail && strings.Contains(c.Detail, "1 of 3 targets not up: alertmanager 127.0.0.1:")
	})

	// The service stopped: its checks fail, and once Prometheus's scrape
	// has failed (staleness), so do the metric checks.
	svc.stop()
	// (The checks run concurrently, so one run may straddle the failed
	// scrape: poll until all of them have seen it.)
	serviceDown := []string{"service health", "service ready", "prometheus targets"}
	for _, metric := range verify.RequiredMetrics() {
		serviceDown = append(serviceDown, "metric "+metric)
	}
	checks = pollUntil(t, "service and metric checks fail", cfg, m, func(cs []verify.Check) bool {
		failed := verify.Failed(cs)
		return !slices.ContainsFunc(serviceDown, func(name string) bool { return !slices.Contains(failed, name) })
	})
	r = results(checks)
	if d := r["prometheus targets"].Detail; !strings.Contains(d, "featurestore "+strings.TrimPrefix(svc.base, "http://")) {
		t.Errorf("targets detail does not name the featurestore target: %q", d)
	}
	for _, metric := range verify.RequiredMetrics() {
		if c := r["metric "+metric]; c.Result != verify.Fail || !strings.Contains(c.Detail, "no feature_store_") {
			t.Errorf("with the service stopped, metric %s = %s %q", metric, c.Result, c.Detail)
		}
	}
	for _, name := range []string{"prometheus healthy", "prometheus ready", "prometheus config", "prometheus rules"} {
		if r[name].Result != verify.Pass {
			t.Errorf("%s = %s %q, want PASS (Prometheus itself is fine)", name, r[name].Result, r[name].Detail)
		}
	}
}

// TestServiceHealthDegradedFails: with Redis down the service still serves
// (DEGRADED, readiness 200), but verify fails the health check naming Redis,
// because the operators must know.
func TestServiceHealthDegradedFails(t *testing.T) {
	t.Parallel()
	redis := testenv.StartRedis(t, testenv.RedisOptions{})
	svc := startService(t, map[string]string{
		"FEATURESTORE_POSTGRES_URL":     testenv.PostgresSchemaURL(t, "fs_t_verify"),
		"FEATURESTORE_REDIS_URL":        redis.URL(),
		"FEATURESTORE_REDIS_KEY_PREFIX": fmt.Sprintf("fs_t_verify_%d", time.Now().UnixNano()),
	})
	cfg := verify.Config{API: svc.base, Timeout: 5 * time.Second}
	r := results(verify.Run(context.Background(), cfg))
	if c := r["service health"]; c.Result != verify.Pass || c.Detail != "UP: postgres UP, redis UP" {
		t.Fatalf("service health with Redis up = %s %q", c.Result, c.Detail)
	}
	redis.Kill()
	// /health answers from a report at most --health-max-age (2s) old: wait
	// for one checked after the kill.
	testenv.Eventually(t, time.Minute, "verify fails the service health naming redis", func() (bool, string) {
		r = results(verify.Run(context.Background(), cfg))
		c := r["service health"]
		return c.Result == verify.Fail && strings.HasPrefix(c.Detail, "DEGRADED: redis DOWN ("), fmt.Sprintf("%s %q", c.Result, c.Detail)
	})
	if c := r["service ready"]; c.Result != verify.Pass {
		t.Errorf("service ready with Redis down = %s %q, want PASS (reads fall back to Postgres)", c.Result, c.Detail)
	}
}
