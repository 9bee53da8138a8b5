package monitoring

// The end-to-end proof of the monitoring bundle, on loopback: the feature
// store (in-process, through app.Run) on the shared Postgres and a Redis of
// the test's own, redis_exporter and postgres_exporter, a real Alertmanager
// with the project's alertmanager.yml posting to a webhook receiver in the
// test, and a real Prometheus with the project's prometheus.yml and rules.
// Only what a loopback run must change is changed: the targets, 1 s
// intervals, every `for:` of the rules (copies) and the Alertmanager timers.
// There is no Grafana binary for this machine: `featurestore verify` checks
// Grafana against a test double of its HTTP API, which the subtest's name
// says; everything else is real.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/featurestore/featurestore/internal/app"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/verify"
)

const (
	// e2eInterval is the scrape and evaluation interval of the loopback
	// Prometheus (the project's is 15s).
	e2eInterval = "1s"
	// e2eFor replaces every `for:` of the project's alerts.
	e2eFor = "2s"
	// e2eRateInterval stands for Grafana's $__rate_interval: at least four
	// scrape intervals, as Grafana computes it.
	e2eRateInterval = "15s"
	// metricsCriterion is the operators' criterion: the seven feature_store_*
	// metrics are in Prometheus within 30 s of traffic.
	metricsCriterion = 30 * time.Second
	// grafanaPassword is the admin password the Grafana test double wants.
	grafanaPassword = "e2e-secret"
)

// TestMonitoringStackEndToEnd runs the operators' checklist against a live
// loopback stack, then breaks Redis and expects the RedisDown page to reach
// the webhook and `featurestore verify` to fail, then repairs it and expects
// the alert to resolve.
func TestMonitoringStackEndToEnd(t *testing.T) {
	t.Parallel()
	s := startStack(t)
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow() // the later steps build on this one
		}
	}

	step("all_targets_up", s.allTargetsUp)

	trafficStart := time.Now()
	arrivals := s.watchRequiredMetrics(t, trafficStart)
	step("drive_traffic", s.driveTraffic)
	s.startBackgroundTraffic(t)

	step("seven_metrics_within_30s", func(t *testing.T) {
		got := <-arrivals
		for _, m := range verify.RequiredMetrics() {
			d, ok := got[m]
			switch {
			case !ok:
				t.Errorf("%s: no data in Prometheus within %s of traffic", m, metricsCriterion)
			case d > metricsCriterion:
				t.Errorf("%s: first data %s after traffic began, the criterion is %s", m, d.Round(100*time.Millisecond), metricsCriterion)
			default:
				t.Logf("%s: in Prometheus %s after traffic began", m, d.Round(100*time.Millisecond))
			}
		}
	})
	step("every_dashboard_panel_has_data", s.everyPanelHasData)
	step("every_rule_evaluates", s.everyRuleEvaluates)
	step("verify_passes_with_fake_grafana_api", s.verifyPasses)
	step("redis_down_fires_RedisDown_to_webhook_and_verify_fails", s.redisDown)
	step("redis_back_resolves_RedisDown_and_verify_passes_with_fake_grafana_api", s.redisBack)
}

// --- the stack ---

// e2eStack is the running loopback stack.
type e2eStack struct {
	start  time.Time
	client *http.Client
	root   string // the repository

	redis     *testenv.Redis
	redisAddr string

	api         string // base URL of the feature store
	apiInstance string // its instance label in Prometheus
	apiLogs     *tailBuffer
	movies      []json.RawMessage // the records of the shared TMDB file
	tmdbFile    []byte

	children   []*child
	prometheus string // base URLs
	am         string
	grafana    string

	webhook *webhookRecorder
	killed  time.Time // when Redis was killed
}

func startStack(t *testing.T) *e2eStack {
	t.Helper()
	bins := map[string]string{}
	for _, name := range []string{"redis-server", "prometheus", "prometheus-alertmanager", "prometheus-redis-exporter", "prometheus-postgres-exporter"} {
		bins[name] = testenv.RequireTool(t, name)
	}
	s := &e2eStack{start: time.Now(), client: &http.Client{Timeout: 10 * time.Second}, root: testenv.RepoRoot(t),
		webhook: &webhookRecorder{}}
	var err error
	if s.tmdbFile, err = os.ReadFile(testenv.TMDBFile(t)); err != nil {
		t.Fatalf("the shared TMDB file: %v", err)
	}
	var file struct {
		Movies []json.RawMessage `json:"movies"`
	}
	if err := json.Unmarshal(s.tmdbFile, &file); err != nil || len(file.Movies) < 10 {
		t.Fatalf("the shared TMDB file: %d movies, %v", len(file.Movies), err)
	}
	s.movies = file.Movies
	dir := t.TempDir()

	// A Redis of the test's own: the test kills it.
	s.redis = testenv.StartRedis(t, testenv.RedisOptions{})
	s.redisAddr = fmt.Sprintf("127.0.0.1:%d", s.redis.Port())

	// The service, in-process, on a throwaway schema of the shared Postgres.
	pgBase, pgSchema := testenv.PostgresURL(t), testenv.PostgresSchemaURL(t, "fs_t_e2e")
	s.startService(t, map[string]string{
		"FEATURESTORE_POSTGRES_URL":     pgSchema,
		"FEATURESTORE_REDIS_URL":        "redis://" + s.redisAddr + "/0",
		"FEATURESTORE_REDIS_KEY_PREFIX": fmt.Sprintf("fs_t_e2e_%d", time.Now().UnixNano()),
		"FEATURESTORE_HEALTH_INTERVAL":  "500ms",
		"FEATURESTORE_REFRESH_INTERVAL": "1s",
		"FEATURESTORE_RECOMPUTE_DELAY":  "1s",
	})

	// The exporters, as the compose file configures them (through the
	// environment), on loopback ports.
	redisExp := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.startChild(t, bins["prometheus-redis-exporter"], []string{"REDIS_ADDR=redis://" + s.redisAddr},
		"-web.listen-address="+redisExp)
	pgExp := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.startChild(t, bins["prometheus-postgres-exporter"], []string{"DATA_SOURCE_NAME=" + pgBase},
		"--web.listen-address="+pgExp)

	// The webhook receiver and Alertmanager with the project's routing.
	hook := httptest.NewServer(s.webhook)
	t.Cleanup(hook.Close)
	amAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.am = "http://" + amAddr
	amConfig := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, amConfig, rewriteAlertmanagerConfig(t, filepath.Join(s.root, "prometheus", "alertmanager.yml"), hook.URL))
	s.startChild(t, bins["prometheus-alertmanager"], nil, "--config.file="+amConfig,
		"--storage.path="+filepath.Join(dir, "alertmanager-data"), "--web.listen-address="+amAddr, "--cluster.listen-address=")

	// Prometheus with the project's configuration and rules.
	promAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.prometheus = "http://" + promAddr
	promConfig := writePrometheusConfig(t, filepath.Join(s.root, "prometheus"), filepath.Join(dir, "prometheus"), map[string]string{
		"featurestore": s.apiInstance,
		"prometheus":   promAddr,
		"alertmanager": amAddr,
		"redis":        redisExp,
		"postgres":     pgExp,
	}, amAddr)
	s.startChild(t, bins["prometheus"], nil, "--config.file="+promConfig,
		"--storage.tsdb.path="+filepath.Join(dir, "prometheus-data"), "--web.listen-address="+promAddr)

	for _, u := range []string{"http://" + redisExp + "/metrics", "http://" + pgExp + "/metrics", s.am + "/-/ready", s.prometheus + "/-/ready"} {
		s.waitFor(t, "GET "+u+" answers 200", 30*time.Second, func() (bool, string) {
			code, body, err := s.get(u)
			return err == nil && code == http.StatusOK, fmt.Sprintf("%d %v %.200s", code, err, body)
		})
	}

	g := httptest.NewServer(fakeGrafanaAPI(t, s.client, s.prometheus))
	t.Cleanup(g.Close)
	s.grafana = g.URL

	// Registered last, so it runs first: the processes are still up.
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.diagnostics())
		}
	})
	return s
}

// startService runs the feature store in-process with app.Run and waits
// until it is ready; cleanup stops it and wants a clean exit.
func (s *e2eStack) startService(t *testing.T, env map[string]string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.api, s.apiInstance, s.apiLogs = "http://"+addr, addr, &tailBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	exited := make(chan struct{})
	go func() {
		runErr = app.Run(ctx, []string{"serve", "--addr", addr}, func(k string) string { return env[k] }, s.apiLogs, s.apiLogs)
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
			if runErr != nil {
				t.Errorf("the service exited with %v", runErr)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("the service did not stop within 30s")
		}
	})
	s.waitFor(t, "the service is ready", 60*time.Second, func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("the service exited before it was ready: %v\n%s", runErr, s.apiLogs)
		default:
		}
		code, body, err := s.get(s.api + "/health/ready")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %v %.200s", code, err, body)
	})
}

// child is a process the test started; cleanup kills it.
type child struct {
	name    string
	cmd     *exec.Cmd
	out     *tailBuffer
	done    chan struct{}
	stopped bool // killed by the test (read and written by the test's goroutine)
}

func (s *e2eStack) startChild(t *testing.T, bin string, env []string, args ...string) *child {
	t.Helper()
	c := &child{name: filepath.Base(bin), cmd: exec.Command(bin, args...), out: &tailBuffer{}, done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.kill)
	s.children = append(s.children, c)
	return c
}

// kill sends SIGKILL and waits for the process to go; it may be called twice.
func (c *child) kill() {
	c.stopped = true
	_ = c.cmd.Process.Kill() // an error only says it has already exited
	<-c.done
}

// waitFor polls cond until it holds; past the deadline it fails the test with
// what cond last saw. A child that has exited fails it at once.
func (s *e2eStack) waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		for _, c := range s.children {
			select {
			case <-c.done:
				if !c.stopped {
					t.Fatalf("%s: %s exited (%v):\n%s", what, c.name, c.cmd.ProcessState, c.out)
				}
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not the case within %s; last saw: %s", what, timeout, saw)
		}
		time.Sleep(250 * time.Millisecond) // polling a state, with a deadline
	}
}

// --- configuration: the project's files, changed only where loopback must ---

// yamlGet returns the value of key in the mapping m, or nil.
func yamlGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// yamlItems returns the items of the sequence n (nil when n is not one).
func yamlItems(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	return n.Content
}

// yamlSet sets key of the mapping m to value, adding the key when absent.
func yamlSet(m *yaml.Node, key string, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = value
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, value)
}

func yamlString(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

func yamlStrings(vs ...string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, v := range vs {
		n.Content = append(n.Content, yamlString(v))
	}
	return n
}

// readYAML parses a YAML file and returns its document and top-level mapping.
func readYAML(t *testing.T, path string) (*yaml.Node, *yaml.Node) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("%s: not a YAML mapping", path)
	}
	return &doc, doc.Content[0]
}

func marshalYAML(t *testing.T, doc *yaml.Node) []byte {
	t.Helper()
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rewriteAlertmanagerConfig returns the project's alertmanager.yml with the
// webhook URLs moved to the test's receiver (scheme and host replaced, the
// path kept, so the route an alert took shows in the path) and the
// notification timers of every route shortened. Everything else is as
// shipped.
func rewriteAlertmanagerConfig(t *testing.T, path, webhookURL string) []byte {
	t.Helper()
	doc, root := readYAML(t, path)
	hook, err := url.Parse(webhookURL)
	if err != nil {
		t.Fatal(err)
	}
	var shorten func(route *yaml.Node, top bool)
	shorten = func(route *yaml.Node, top bool) {
		for _, kv := range [][2]string{{"group_wait", "1s"}, {"group_interval", "1s"}, {"repeat_interval", "1m"}} {
			if top || yamlGet(route, kv[0]) != nil {
				yamlSet(route, kv[0], yamlString(kv[1]))
			}
		}
		for _, r := range yamlItems(yamlGet(route, "routes")) {
			shorten(r, false)
		}
	}
	route := yamlGet(root, "route")
	if route == nil {
		t.Fatalf("%s: no route", path)
	}
	shorten(route, true)
	webhooks := 0
	for _, rcv := range yamlItems(yamlGet(root, "receivers")) {
		for _, wc := range yamlItems(yamlGet(rcv, "webhook_configs")) {
			u := yamlGet(wc, "url")
			if u == nil {
				t.Fatalf("%s: a webhook_config without url", path)
			}
			parsed, err := url.Parse(u.Value)
			if err != nil {
				t.Fatalf("%s: webhook url %q: %v", path, u.Value, err)
			}
			parsed.Scheme, parsed.Host = hook.Scheme, hook.Host
			u.Value = parsed.String()
			webhooks++
		}
	}
	if webhooks == 0 {
		t.Fatalf("%s: no webhook receiver to point at the test", path)
	}
	return marshalYAML(t, doc)
}

// writePrometheusConfig writes into dir the project's prometheus.yml (from
// promDir) with 1 s intervals, every job's targets replaced by its loopback
// address (the job names kept: the rules select on them), alerts sent to
// the test's Alertmanager, and copies of the rule files it loads, at the
// same relative paths, with every `for:` shortened. It returns the path of
// the configuration.
func writePrometheusConfig(t *testing.T, promDir, dir string, targets map[string]string, alertmanager string) string {
	t.Helper()
	path := filepath.Join(promDir, "prometheus.yml")
	doc, root := readYAML(t, path)

	global := yamlGet(root, "global")
	if global == nil {
		global = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		yamlSet(root, "global", global)
	}
	for _, k := range []string{"scrape_interval", "scrape_timeout", "evaluation_interval"} {
		yamlSet(global, k, yamlString(e2eInterval))
	}

	ams := 0
	for _, am := range yamlItems(yamlGet(yamlGet(root, "alerting"), "alertmanagers")) {
		for _, sc := range yamlItems(yamlGet(am, "static_configs")) {
			yamlSet(sc, "targets", yamlStrings(alertmanager))
			ams++
		}
	}
	if ams == 0 {
		t.Fatalf("%s: no alerting.alertmanagers static_configs", path)
	}

	seen := map[string]bool{}
	for _, sc := range yamlItems(yamlGet(root, "scrape_configs")) {
		job := yamlGet(sc, "job_name")
		if job == nil {
			t.Fatalf("%s: a scrape config without job_name", path)
		}
		addr, ok := targets[job.Value]
		if !ok {
			t.Fatalf("%s: job %q has no loopback target in this test: add one", path, job.Value)
		}
		statics := yamlItems(yamlGet(sc, "static_configs"))
		if len(statics) != 1 {
			t.Fatalf("%s: job %q has %d static_configs, the test replaces exactly one", path, job.Value, len(statics))
		}
		yamlSet(statics[0], "targets", yamlStrings(addr))
		for _, k := range []string{"scrape_interval", "scrape_timeout"} {
			if yamlGet(sc, k) != nil {
				yamlSet(sc, k, yamlString(e2eInterval))
			}
		}
		seen[job.Value] = true
	}
	for job := range targets {
		if !seen[job] {
			t.Fatalf("%s: no scrape job %q", path, job)
		}
	}

	fors, files := 0, 0
	for _, pattern := range yamlItems(yamlGet(root, "rule_files")) {
		if filepath.IsAbs(pattern.Value) {
			t.Fatalf("%s: rule_files %q is absolute: the test cannot copy it", path, pattern.Value)
		}
		matches, err := filepath.Glob(filepath.Join(promDir, pattern.Value))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			rel, err := filepath.Rel(promDir, m)
			if err != nil {
				t.Fatal(err)
			}
			rdoc, rroot := readYAML(t, m)
			for _, g := range yamlItems(yamlGet(rroot, "groups")) {
				for _, r := range yamlItems(yamlGet(g, "rules")) {
					if f := yamlGet(r, "for"); f != nil {
						f.Value = e2eFor
						fors++
					}
				}
			}
			writeFile(t, filepath.Join(dir, rel), marshalYAML(t, rdoc))
			files++
		}
	}
	if files == 0 || fors == 0 {
		t.Fatalf("%s: rule_files load %d files with %d `for:` clauses", path, files, fors)
	}
	out := filepath.Join(dir, "prometheus.yml")
	writeFile(t, out, marshalYAML(t, doc))
	return out
}

// --- HTTP ---

func (s *e2eStack) get(u string) (int, []byte, error) { return s.send("GET", u, nil) }

// send makes one request; body is sent as is ([]byte) or as JSON.
func (s *e2eStack) send(method, u string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// call sends a request to the service and wants the status; it decodes the
// answer into out when out is not nil.
func (s *e2eStack) call(t *testing.T, method, path string, body any, want int, out any) {
	t.Helper()
	code, data, err := s.send(method, s.api+path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != want {
		t.Fatalf("%s %s = %d %.300s, want %d", method, path, code, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %.300s: %v", method, path, data, err)
		}
	}
}

// promAPI calls a Prometheus HTTP API endpoint and decodes its data.
func (s *e2eStack) promAPI(path string, data any) error {
	code, body, err := s.get(s.prometheus + path)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %d %.200s", path, code, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, env.Status, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// promSeries is one element of a query result; Value is its value.
type promSeries struct {
	Metric map[string]string
	Value  float64
}

// query runs an instant query and returns its samples (a scalar result as
// one sample without labels).
func (s *e2eStack) query(expr string) ([]promSeries, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.promAPI("/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &data); err != nil {
		return nil, err
	}
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	var samples []sample
	switch data.ResultType {
	case "vector":
		if err := json.Unmarshal(data.Result, &samples); err != nil {
			return nil, err
		}
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(data.Result, &v); err != nil {
			return nil, err
		}
		samples = []sample{{Value: v}}
	default:
		return nil, fmt.Errorf("result type %q", data.ResultType)
	}
	out := make([]promSeries, len(samples))
	for i, smp := range samples {
		str, _ := smp.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("sample value %v: %w", smp.Value, err)
		}
		out[i] = promSeries{Metric: smp.Metric, Value: v}
	}
	return out, nil
}

// hasNumber says whether a result holds at least one value that is a number
// (NaN, what 0/0 gives, draws nothing on a panel).
func hasNumber(res []promSeries) bool {
	return slices.ContainsFunc(res, func(p promSeries) bool { return !math.IsNaN(p.Value) })
}

// --- traffic ---

// driveTraffic makes the requests an operator's smoke test would: the real
// TMDB file ingested, one invalid record, reads that hit and miss through
// both read APIs, a user-defined group and a rows write, a few client errors,
// and a finished recompute.
func (s *e2eStack) driveTraffic(t *testing.T) {
	var ing struct {
		Accepted int               `json:"accepted"`
		Rejected []json.RawMessage `json:"rejected"`
	}
	s.call(t, "POST", "/v1/movies", s.tmdbFile, http.StatusOK, &ing)
	if ing.Accepted != len(s.movies) || len(ing.Rejected) != 0 {
		t.Fatalf("ingest of the TMDB file: accepted %d, rejected %d; want %d and 0", ing.Accepted, len(ing.Rejected), len(s.movies))
	}
	var bad map[string]any
	if err := json.Unmarshal(s.movies[0], &bad); err != nil {
		t.Fatal(err)
	}
	bad["movie_id"], bad["title"] = 990000001, ""
	s.call(t, "POST", "/v1/movies", []any{s.movies[1], bad}, http.StatusOK, &ing)
	if ing.Accepted != 1 || len(ing.Rejected) != 1 {
		t.Fatalf("ingest of a movie and an untitled one: accepted %d, rejected %d; want 1 and 1", ing.Accepted, len(ing.Rejected))
	}

	for _, path := range []string{
		"/v1/feature-groups/movie_basic/entities/552524", // miss, then hit
		"/v1/feature-groups/movie_basic/entities/552524",
		"/v1/feature-groups/movie_text/entities/1233413",
		"/v1/feature-groups/movie_statistical/entities/950387",
	} {
		s.call(t, "GET", path, nil, http.StatusOK, nil)
	}
	for range 2 { // an absent entity: a miss, then a cached absence
		s.call(t, "GET", "/v1/feature-groups/movie_basic/entities/990000002", nil, http.StatusNotFound, nil)
	}
	s.call(t, "POST", "/get-online-features", onlineRequest(), http.StatusOK, nil)

	group := map[string]any{"entity_key": "user_id", "ttl_seconds": 0, "features": []map[string]string{
		{"name": "clicks", "type": "int64"}, {"name": "score", "type": "float64"}}}
	s.call(t, "PUT", "/v1/feature-groups/e2e_user", group, http.StatusCreated, nil)
	s.call(t, "POST", "/v1/feature-groups/e2e_user/rows", userRows(1), http.StatusOK, nil)
	s.call(t, "GET", "/v1/feature-groups/e2e_user/entities/u1", nil, http.StatusOK, nil)

	// Client errors: an unknown group, a value of the wrong type, bad JSON.
	s.call(t, "GET", "/v1/feature-groups/no_such_group/entities/1", nil, http.StatusNotFound, nil)
	s.call(t, "POST", "/v1/feature-groups/e2e_user/rows",
		[]map[string]any{{"entity_id": "u2", "values": map[string]any{"clicks": "many"}}}, http.StatusBadRequest, nil)
	s.call(t, "POST", "/get-online-features", []byte(`{"entities": `), http.StatusBadRequest, nil)

	// The ingest schedules a recompute of the statistical features (1 s
	// after the last ingest): wait for it to finish.
	ingested := time.Now()
	s.waitFor(t, "a recompute succeeds after the ingest", 60*time.Second, func() (bool, string) {
		var st struct {
			State      string     `json:"state"`
			FinishedAt *time.Time `json:"finished_at"`
			Error      string     `json:"error"`
		}
		code, body, err := s.get(s.api + "/v1/recompute")
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &st) != nil {
			return false, fmt.Sprintf("%d %v %.200s", code, err, body)
		}
		if st.State == "failed" {
			t.Fatalf("the recompute failed: %s", body)
		}
		return st.State == "succeeded" && st.FinishedAt != nil && st.FinishedAt.After(ingested.Add(-time.Second)), string(body)
	})
}

func onlineRequest() map[string]any {
	return map[string]any{"entities": map[string]any{"movie_id": []any{552524, 1233413, 990000002}},
		"features": []string{"movie_basic:popularity", "movie_text:title_length", "movie_statistical:rating_percentile"}}
}

func userRows(n int) []map[string]any {
	return []map[string]any{{"entity_id": fmt.Sprintf("u%d", n%5), "values": map[string]any{"clicks": n, "score": float64(n) / 4}}}
}

// startBackgroundTraffic keeps a light load on the service until cleanup:
// reads (hits, misses, absences), online features, rows writes, and a
// re-ingested movie every 2 s, whose recompute keeps the ingest and
// recompute panels moving. Failures are counted, never fatal: Redis goes
// down under it.
func (s *e2eStack) startBackgroundTraffic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond) // pacing the load, not waiting on a state
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var id struct {
				MovieID int64 `json:"movie_id"`
			}
			_ = json.Unmarshal(s.movies[i%len(s.movies)], &id)
			_, _, _ = s.get(fmt.Sprintf("%s/v1/feature-groups/movie_basic/entities/%d", s.api, id.MovieID))
			_, _, _ = s.get(s.api + "/v1/feature-groups/movie_basic/entities/552524")
			_, _, _ = s.get(fmt.Sprintf("%s/v1/feature-groups/movie_text/entities/%d", s.api, 990000100+i%3))
			_, _, _ = s.send("POST", s.api+"/get-online-features", onlineRequest())
			if i%4 == 0 {
				_, _, _ = s.send("POST", s.api+"/v1/feature-groups/e2e_user/rows", userRows(i))
			}
			if i%8 == 0 {
				_, _, _ = s.send("POST", s.api+"/v1/movies", []byte(s.movies[i%len(s.movies)]))
			}
		}
	}()
}

// watchRequiredMetrics measures, from trafficStart, when each of the seven
// metrics first has data from the service in Prometheus (a sample above 0:
// the traffic's, not a pre-created zero). It delivers what it saw once all
// have arrived or the criterion has passed.
func (s *e2eStack) watchRequiredMetrics(t *testing.T, trafficStart time.Time) <-chan map[string]time.Duration {
	cat := dashboardCatalogue(t)
	out := make(chan map[string]time.Duration, 1)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	t.Cleanup(func() { cancel(); <-stopped })
	go func() {
		defer close(stopped)
		seen := map[string]time.Duration{}
		defer func() { out <- seen }()
		for {
			for _, m := range verify.RequiredMetrics() {
				if _, ok := seen[m]; ok {
					continue
				}
				series := m
				if cat[m] == "histogram" {
					series += "_count"
				}
				res, err := s.query(fmt.Sprintf(`sum(%s{instance=%q}) > 0`, series, s.apiInstance))
				if err == nil && len(res) > 0 {
					seen[m] = time.Since(trafficStart)
				}
			}
			if len(seen) == len(verify.RequiredMetrics()) || time.Since(trafficStart) > metricsCriterion+5*time.Second {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond): // polling Prometheus, with a deadline
			}
		}
	}()
	return out
}

// --- the checks ---

// allTargetsUp wants Prometheus to scrape every target of every job of the
// project's configuration.
func (s *e2eStack) allTargetsUp(t *testing.T) {
	s.waitFor(t, "every Prometheus target is up", 30*time.Second, func() (bool, string) {
		var data struct {
			ActiveTargets []struct {
				ScrapePool string `json:"scrapePool"`
				ScrapeURL  string `json:"scrapeUrl"`
				Health     string `json:"health"`
				LastError  string `json:"lastError"`
			} `json:"activeTargets"`
		}
		if err := s.promAPI("/api/v1/targets?state=active", &data); err != nil {
			return false, err.Error()
		}
		var jobs, notUp []string
		for _, tg := range data.ActiveTargets {
			jobs = append(jobs, tg.ScrapePool)
			if tg.Health != "up" {
				notUp = append(notUp, fmt.Sprintf("%s %s %s %s", tg.ScrapePool, tg.ScrapeURL, tg.Health, tg.LastError))
			}
		}
		sort.Strings(jobs)
		want := []string{"alertmanager", "featurestore", "postgres", "prometheus", "redis"}
		return slices.Equal(jobs, want) && len(notUp) == 0, fmt.Sprintf("jobs %v (want %v), not up: %v", jobs, want, notUp)
	})
}

// everyPanelHasData runs every panel query of every dashboard as Grafana
// would with the service's instance selected (the Go Runtime dashboard's
// default; on the overview it is one instance of "All"), so the data is the
// service's and not another target's go_* series. Each query must return a
// number (not only NaN) at least once before the deadline.
func (s *e2eStack) everyPanelHasData(t *testing.T) {
	type pending struct {
		q    dashboardQuery
		expr string
		last string
	}
	var todo []*pending
	for _, q := range dashboardQueries(t) {
		scoped := grafanaVar.ReplaceAllStringFunc(q.Expr, func(ref string) string {
			if m := grafanaVar.FindStringSubmatch(ref); m[1]+m[2] == "instance" {
				return s.apiInstance
			}
			return ref
		})
		expr, err := expandDashboardExpr(scoped, e2eRateInterval)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		todo = append(todo, &pending{q: q, expr: expr})
	}
	total := len(todo)
	started := time.Now()
	deadline := started.Add(60 * time.Second)
	for len(todo) > 0 && time.Now().Before(deadline) {
		todo = slices.DeleteFunc(todo, func(p *pending) bool {
			res, err := s.query(p.expr)
			switch {
			case err != nil:
				p.last = err.Error()
			case len(res) == 0:
				p.last = "empty result"
			case !hasNumber(res):
				p.last = fmt.Sprintf("%d series, all NaN", len(res))
			default:
				return true
			}
			return false
		})
		if len(todo) > 0 {
			time.Sleep(time.Second) // polling Prometheus (1 s scrapes), with a deadline
		}
	}
	for _, p := range todo {
		t.Errorf("dashboard %s panel %d %q query %s has no data after %s (%s):\n  %s",
			p.q.Dashboard, p.q.PanelID, p.q.Panel, p.q.RefID, time.Since(started).Round(time.Second), p.last, p.expr)
	}
	t.Logf("%d of %d panel queries returned data within %s", total-len(todo), total, time.Since(started).Round(100*time.Millisecond))
}

// promRulesData is the part of /api/v1/rules the test reads.
type promRulesData struct {
	Groups []struct {
		Name  string `json:"name"`
		File  string `json:"file"`
		Rules []struct {
			Name      string `json:"name"`
			Type      string `json:"type"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
			State     string `json:"state"`
			Alerts    []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"rules"`
	} `json:"groups"`
}

// everyRuleEvaluates wants Prometheus to have loaded exactly the project's
// rules, and every one of them to have evaluated without error.
func (s *e2eStack) everyRuleEvaluates(t *testing.T) {
	var wantRecords, wantAlerts []string
	for _, r := range loadRules(t) {
		if r.Record != "" {
			wantRecords = append(wantRecords, r.Record)
		} else {
			wantAlerts = append(wantAlerts, r.Alert)
		}
	}
	slices.Sort(wantRecords)
	slices.Sort(wantAlerts)
	var data promRulesData
	s.waitFor(t, "every rule has evaluated without error", 30*time.Second, func() (bool, string) {
		data = promRulesData{}
		if err := s.promAPI("/api/v1/rules", &data); err != nil {
			return false, err.Error()
		}
		var notOK []string
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					notOK = append(notOK, fmt.Sprintf("%s/%s: %s %s", g.Name, r.Name, r.Health, r.LastError))
				}
			}
		}
		return len(notOK) == 0, fmt.Sprintf("not ok: %v", notOK)
	})
	var records, alerts []string
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			if r.Type == "recording" {
				records = append(records, r.Name)
			} else {
				alerts = append(alerts, r.Name)
			}
		}
	}
	slices.Sort(records)
	slices.Sort(alerts)
	if !slices.Equal(records, wantRecords) || !slices.Equal(alerts, wantAlerts) {
		t.Errorf("Prometheus loaded recording rules %v and alerts %v;\nthe project has %v and %v", records, alerts, wantRecords, wantAlerts)
	}
	// Evaluating without error is not enough: a misspelt metric or label
	// evaluates fine, to nothing. With the traffic of the test, every
	// recording rule must produce series.
	s.waitFor(t, "every recording rule has series", 30*time.Second, func() (bool, string) {
		var empty []string
		for _, r := range slices.Compact(records) {
			if res, err := s.query(r); err != nil || len(res) == 0 {
				empty = append(empty, r)
			}
		}
		return len(empty) == 0, fmt.Sprintf("no series: %v", empty)
	})
}

// runVerify runs `featurestore verify --json` against the stack, Grafana
// being the test double, and returns its report and error.
func (s *e2eStack) runVerify(t *testing.T) (verify.Report, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"FEATURESTORE_GRAFANA_PASSWORD": grafanaPassword}
	err := verify.Command(context.Background(), []string{"--json", "--timeout", "5s",
		"--api", s.api, "--prometheus", s.prometheus, "--alertmanager", s.am, "--grafana", s.grafana},
		func(k string) string { return env[k] }, &out, &errOut)
	var rep verify.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("verify --json printed no report (%v, error %v):\n%s%s", jerr, err, out.String(), errOut.String())
	}
	return rep, out.String(), err
}

// verifyPasses wants every check of `featurestore verify` to pass, none
// skipped: the real service, Prometheus and Alertmanager, and the Grafana
// test double.
func (s *e2eStack) verifyPasses(t *testing.T) {
	var rep verify.Report
	s.waitFor(t, "featurestore verify passes", 30*time.Second, func() (bool, string) {
		r, out, err := s.runVerify(t)
		rep = r
		return err == nil && r.Summary.OK && r.Summary.Skipped == 0, fmt.Sprintf("error %v:\n%s", err, out)
	})
	byName := map[string]verify.ReportCheck{}
	for _, c := range rep.Checks {
		byName[c.Check] = c
		if c.Result != verify.Pass {
			t.Errorf("%s = %s %q, want PASS", c.Check, c.Result, c.Detail)
		}
	}
	for name, want := range map[string]string{
		"service health":     "UP: postgres UP, redis UP",
		"prometheus targets": "5/5 up; jobs: alertmanager, featurestore, postgres, prometheus, redis",
		"grafana datasource": "Successfully queried the Prometheus API",
		"grafana dashboards": `"Feature Store Overview" in "Feature Store"`,
	} {
		if d := byName[name].Detail; !strings.Contains(d, want) {
			t.Errorf("%s detail %q, want it to contain %q", name, d, want)
		}
	}
	if n := len(rep.Checks); n != 20 {
		t.Errorf("verify ran %d checks, want the 20 of the checklist", n)
	}
}

// redisAlerts returns the RedisDown alerts of the webhook messages received
// since when, with status (firing or resolved) on path, keyed by
// fingerprint, and fails the test on one that is not as routed and labelled.
func (s *e2eStack) redisAlerts(t *testing.T, since time.Time, status string) map[string]webhookAlert {
	t.Helper()
	out := map[string]webhookAlert{}
	for _, m := range s.webhook.messages() {
		if m.Received.Before(since) || m.Status != status {
			continue
		}
		for _, a := range m.Alerts {
			if a.Labels["alertname"] != "RedisDown" || a.Status != status {
				continue
			}
			if m.Path != "/alerts/pager" || a.Labels["severity"] != "critical" || a.Annotations["summary"] == "" ||
				!strings.HasSuffix(a.Annotations["runbook_url"], "/docs/runbooks.md#redisdown") {
				t.Fatalf("RedisDown arrived at %s (receiver %s) with labels %v, annotations %v; want the pager "+
					"webhook, severity critical, a summary and the #redisdown runbook", m.Path, m.Receiver, a.Labels, a.Annotations)
			}
			out[a.Fingerprint] = a
		}
	}
	return out
}

// redisDown kills the test's Redis: the RedisDown page must reach the
// webhook, and verify must fail naming the service's health check.
func (s *e2eStack) redisDown(t *testing.T) {
	// Not vacuous: nothing about Redis has fired or been sent before.
	if got := s.redisAlerts(t, time.Time{}, "firing"); len(got) > 0 {
		t.Fatalf("RedisDown was sent before Redis went down: %v", got)
	}
	s.killed = time.Now()
	s.redis.Kill()

	// Both halves of the alert fire: redis_exporter's redis_up (job redis)
	// and the service's own health check (job featurestore).
	wantJobs := []string{"featurestore", "redis"}
	s.waitFor(t, "RedisDown (critical) reaches the pager webhook, firing, for jobs "+strings.Join(wantJobs, " and "), 45*time.Second, func() (bool, string) {
		var jobs []string
		for _, a := range s.redisAlerts(t, s.killed, "firing") {
			jobs = append(jobs, a.Labels["job"])
		}
		slices.Sort(jobs)
		return slices.Equal(slices.Compact(jobs), wantJobs), fmt.Sprintf("RedisDown firing for jobs %v; %d messages so far", jobs, len(s.webhook.messages()))
	})
	t.Logf("RedisDown reached the webhook for jobs %v %s after Redis was killed", wantJobs, time.Since(s.killed).Round(100*time.Millisecond))

	var failed verify.ReportCheck
	s.waitFor(t, "featurestore verify fails on the service health, and only on it", 30*time.Second, func() (bool, string) {
		rep, out, err := s.runVerify(t)
		if err == nil || !strings.Contains(err.Error(), "service health") || !slices.Equal(rep.Failed, []string{"service health"}) {
			return false, fmt.Sprintf("error %v:\n%s", err, out)
		}
		failed = rep.Checks[slices.IndexFunc(rep.Checks, func(c verify.ReportCheck) bool { return c.Check == "service health" })]
		return true, ""
	})
	if !strings.HasPrefix(failed.Detail, "DEGRADED: redis DOWN") {
		t.Errorf("service health detail %q, want DEGRADED naming redis", failed.Detail)
	}
}

// redisBack restarts Redis on the same port: every RedisDown that fired
// must be sent resolved, and verify must pass again.
func (s *e2eStack) redisBack(t *testing.T) {
	s.redis.Restart()
	restarted := time.Now()
	s.waitFor(t, "every RedisDown that fired is sent resolved", 45*time.Second, func() (bool, string) {
		fired := s.redisAlerts(t, s.killed, "firing")
		resolved := s.redisAlerts(t, restarted, "resolved")
		var open []string
		for fp, a := range fired {
			if _, ok := resolved[fp]; !ok {
				open = append(open, fmt.Sprintf("%s %v", fp, a.Labels))
			}
		}
		return len(fired) > 0 && len(open) == 0, fmt.Sprintf("not resolved yet: %v", open)
	})
	t.Logf("RedisDown resolved at the webhook %s after Redis restarted", time.Since(restarted).Round(100*time.Millisecond))
	s.verifyPasses(t)

	// For the record: every notification of the run.
	seen := map[string]int{}
	for _, m := range s.webhook.messages() {
		for _, a := range m.Alerts {
			seen[fmt.Sprintf("%s %s job=%s %s", m.Path, a.Labels["alertname"], a.Labels["job"], a.Status)]++
		}
	}
	t.Logf("webhook notifications: %v", seen)
}

// --- the webhook receiver ---

// webhookAlert is one alert of an Alertmanager webhook message.
type webhookAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Fingerprint string            `json:"fingerprint"`
}

// webhookMessage is an Alertmanager webhook payload (version 4), with the
// path it was posted to and when.
type webhookMessage struct {
	Path     string         `json:"-"`
	Received time.Time      `json:"-"`
	Receiver string         `json:"receiver"`
	Status   string         `json:"status"`
	Alerts   []webhookAlert `json:"alerts"`
}

// webhookRecorder records what Alertmanager posts.
type webhookRecorder struct {
	mu   sync.Mutex
	msgs []webhookMessage
	bad  []string
}

func (w *webhookRecorder) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var m webhookMessage
	if err == nil {
		err = json.Unmarshal(body, &m)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.bad = append(w.bad, fmt.Sprintf("%s %s: %v: %.300s", r.Method, r.URL.Path, err, body))
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	m.Path, m.Received = r.URL.Path, time.Now()
	w.msgs = append(w.msgs, m)
}

func (w *webhookRecorder) messages() []webhookMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// --- the Grafana test double ---

// fakeGrafanaAPI is a TEST DOUBLE of the Grafana HTTP API endpoints verify
// calls (no Grafana binary exists for this machine). It serves what the
// project provisions: the Prometheus datasource (its uid), whose health
// check queries the real Prometheus as Grafana's does, and the dashboards
// of grafana/dashboards in the provisioned folder. All but /api/health want
// basic auth, as Grafana does.
func fakeGrafanaAPI(t *testing.T, client *http.Client, prometheus string) http.Handler {
	t.Helper()
	var prov struct {
		Providers []struct {
			Folder string `yaml:"folder"`
		} `yaml:"providers"`
	}
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "grafana", "provisioning", "dashboards", "dashboards.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &prov); err != nil || len(prov.Providers) == 0 {
		t.Fatalf("grafana/provisioning/dashboards/dashboards.yml: %d providers, %v", len(prov.Providers), err)
	}
	titles := map[string]string{}
	for _, f := range loadDashboards(t) {
		titles[f.Dashboard.UID] = f.Dashboard.Title
	}

	reply := func(w http.ResponseWriter, code int, body any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != grafanaPassword {
				reply(w, http.StatusUnauthorized, map[string]string{"message": "Unauthorized"})
				return
			}
			h(w, r)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]string{"database": "ok", "version": "test-double"})
	})
	mux.HandleFunc("GET /api/datasources/uid/{uid}", authed(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("uid") != provisionedDatasourceUID {
			reply(w, http.StatusNotFound, map[string]string{"message": "Data source not found"})
			return
		}
		reply(w, http.StatusOK, map[string]any{"uid": provisionedDatasourceUID, "name": "Prometheus", "type": "prometheus", "url": prometheus})
	}))
	mux.HandleFunc("GET /api/datasources/uid/{uid}/health", authed(func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("uid") != provisionedDatasourceUID {
			reply(w, http.StatusNotFound, map[string]string{"message": "Data source not found"})
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), "GET", prometheus+"/api/v1/query?query=1%2B1", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]string{"status": "ERROR", "message": err.Error()})
			return
		}
		reply(w, http.StatusOK, map[string]string{"status": "OK", "message": "Successfully queried the Prometheus API."})
	}))
	mux.HandleFunc("GET /api/dashboards/uid/{uid}", authed(func(w http.ResponseWriter, r *http.Request) {
		title, ok := titles[r.PathValue("uid")]
		if !ok {
			reply(w, http.StatusNotFound, map[string]string{"message": "Dashboard not found"})
			return
		}
		reply(w, http.StatusOK, map[string]any{
			"dashboard": map[string]any{"uid": r.PathValue("uid"), "title": title},
			"meta":      map[string]any{"folderTitle": prov.Providers[0].Folder, "provisioned": true},
		})
	}))
	return mux
}

// --- diagnostics ---

// tailBuffer is a goroutine-safe sink keeping the last 64 KiB written.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if over := len(b.b) - 64<<10; over > 0 {
		b.b = slices.Delete(b.b, 0, over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// diagnostics says what the stack looked like: Prometheus's targets, the
// rules not ok or not inactive, its alerts, the webhook messages, and the
// end of every process's output.
func (s *e2eStack) diagnostics() string {
	var b strings.Builder
	at := func(ts time.Time) string { return fmt.Sprintf("+%.1fs", ts.Sub(s.start).Seconds()) }
	fmt.Fprintf(&b, "=== diagnostics (now %s; Redis killed %v)\n", at(time.Now()), !s.killed.IsZero())

	var targets struct {
		ActiveTargets []struct {
			ScrapePool, ScrapeURL, Health, LastError string
		} `json:"activeTargets"`
	}
	if err := s.promAPI("/api/v1/targets", &targets); err != nil {
		fmt.Fprintf(&b, "--- targets: %v\n", err)
	} else {
		b.WriteString("--- Prometheus targets:\n")
		for _, tg := range targets.ActiveTargets {
			fmt.Fprintf(&b, "  %s %s %s %s\n", tg.ScrapePool, tg.ScrapeURL, tg.Health, tg.LastError)
		}
	}
	var rules promRulesData
	if err := s.promAPI("/api/v1/rules", &rules); err != nil {
		fmt.Fprintf(&b, "--- rules: %v\n", err)
	} else {
		b.WriteString("--- Prometheus rules not ok, or pending/firing:\n")
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" || (r.State != "" && r.State != "inactive") {
					fmt.Fprintf(&b, "  %s/%s health %s %s state %s alerts %v\n", g.Name, r.Name, r.Health, r.LastError, r.State, r.Alerts)
				}
			}
		}
	}
	if _, body, err := s.get(s.prometheus + "/api/v1/alerts"); err != nil {
		fmt.Fprintf(&b, "--- alerts: %v\n", err)
	} else {
		fmt.Fprintf(&b, "--- Prometheus /api/v1/alerts:\n%s\n", tail(string(body), 8<<10))
	}
	b.WriteString("--- webhook messages:\n")
	s.webhook.mu.Lock()
	for _, m := range s.webhook.msgs {
		fmt.Fprintf(&b, "  %s %s receiver %s %s:", at(m.Received), m.Path, m.Receiver, m.Status)
		for _, a := range m.Alerts {
			fmt.Fprintf(&b, " [%s job=%s severity=%s %s %s]", a.Labels["alertname"], a.Labels["job"], a.Labels["severity"], a.Status, a.Fingerprint)
		}
		b.WriteString("\n")
	}
	for _, bad := range s.webhook.bad {
		fmt.Fprintf(&b, "  undecodable: %s\n", bad)
	}
	s.webhook.mu.Unlock()
	for _, c := range s.children {
		fmt.Fprintf(&b, "--- %s %v output:\n%s\n", c.name, c.cmd.Args[1:], tail(c.out.String(), 3<<10))
	}
	fmt.Fprintf(&b, "--- service logs:\n%s\n", tail(s.apiLogs.String(), 6<<10))
	return b.String()
}
