package monitoring

// The loopback stack of TestMonitoringStackEndToEnd: the feature store
// (in-process, through app.Run) on a Postgres and a Redis of the test's own
// (it breaks them; the shared ones are never touched), redis_exporter and
// postgres_exporter, the alert receiver the compose stack runs (Debian's
// webhook with prometheus/alert-receiver/hooks.yaml), a real Alertmanager
// with the project's alertmanager.yml and a real Prometheus with the
// project's prometheus.yml and rules. Only addresses are changed: the
// intervals, every `for:` and Alertmanager's timers are as shipped, so the
// times the test measures are the ones production has. There is no Grafana
// binary for this machine: `featurestore verify` checks Grafana against a
// test double of its HTTP API, which the subtest's name says.

import (
	"bufio"
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
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/featurestore/featurestore/internal/app"
	"github.com/featurestore/featurestore/internal/testenv"
)

// e2eStack is the running loopback stack.
type e2eStack struct {
	start  time.Time
	client *http.Client // for the monitoring components: short timeouts
	api    *http.Client // for the service: a loaded machine may take a while
	root   string       // the repository

	redis    *testenv.Redis
	postgres *testenv.Postgres

	apiAddr     string // the service's listen address
	apiURL      string // its base URL
	apiInstance string // its instance label in Prometheus
	apiEnv      map[string]string
	apiLogs     *tailBuffer
	stopAPI     func() // stops the running service and waits for it
	movies      []json.RawMessage
	tmdbFile    []byte

	children   []*child
	prometheus string // base URLs
	am         string
	grafana    string

	receiver *receiverLog
}

// e2eTools are the programs the stack runs; scripts/test.sh installs them.
var e2eTools = []string{"redis-server", "prometheus", "prometheus-alertmanager",
	"prometheus-redis-exporter", "prometheus-postgres-exporter", "webhook"}

func startStack(t *testing.T) *e2eStack {
	t.Helper()
	bins := map[string]string{}
	for _, name := range e2eTools {
		bins[name] = testenv.RequireTool(t, name)
	}
	s := &e2eStack{start: time.Now(), root: testenv.RepoRoot(t),
		client: &http.Client{Timeout: 10 * time.Second}, api: &http.Client{Timeout: 2 * time.Minute}}
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

	// A Redis and a Postgres of the test's own: the test kills, stops and
	// locks them. Statements wait at most 250 ms for a lock (the database's
	// setting, as an operator would set it): a locked table fails requests
	// quickly instead of holding every pool connection.
	s.redis = testenv.StartRedis(t, testenv.RedisOptions{})
	s.postgres = testenv.StartPostgres(t)
	s.sql(t, "ALTER DATABASE postgres SET lock_timeout = '250ms'")

	// The Go runtime dashboard draws memory against GOMEMLIMIT, which
	// compose and Kubernetes set; the in-process service shares the test
	// binary's runtime.
	old := debug.SetMemoryLimit(8 << 30)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	// The service, in-process, configured as compose configures it.
	s.apiAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.apiURL, s.apiInstance = "http://"+s.apiAddr, s.apiAddr
	s.apiEnv = map[string]string{
		"FEATURESTORE_POSTGRES_URL": s.postgres.URL(),
		"FEATURESTORE_REDIS_URL":    s.redis.URL(),
		// Off by default; on here so the overview dashboard's near-cache
		// panels have data to show.
		"FEATURESTORE_REDIS_NEAR_CACHE_ENTRIES": "10000",
		"FEATURESTORE_HEALTH_INTERVAL":          "5s",
		"FEATURESTORE_REFRESH_INTERVAL":         "5s",
		"FEATURESTORE_RECOMPUTE_DELAY":          "1s",
		"FEATURESTORE_LOG_DIR":                  filepath.Join(dir, "logs"),
	}
	s.apiLogs = &tailBuffer{}
	s.startService(t)

	// The exporters, configured through the environment as compose does.
	redisExp := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.startChild(t, bins["prometheus-redis-exporter"], []string{"REDIS_ADDR=" + s.redis.URL()},
		"-web.listen-address="+redisExp)
	pgExp := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.startChild(t, bins["prometheus-postgres-exporter"], []string{"DATA_SOURCE_NAME=" + s.postgres.URL(),
		"PG_EXPORTER_EXTEND_QUERY_PATH=" + filepath.Join(s.root, "prometheus", "postgres-exporter", "queries.yaml")},
		"--web.listen-address="+pgExp)

	// The receiver, with the compose stack's hooks.
	hookAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.receiver = &receiverLog{path: filepath.Join(dir, "alerts.jsonl")}
	s.startChild(t, bins["webhook"], []string{"ALERT_LOG=" + s.receiver.path},
		"-hooks="+filepath.Join(s.root, "prometheus", "alert-receiver", "hooks.yaml"),
		"-ip=127.0.0.1", "-port="+strings.TrimPrefix(hookAddr, "127.0.0.1:"), "-verbose")

	// Alertmanager with the project's routing, posting to the receiver.
	amAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.am = "http://" + amAddr
	amConfig := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, amConfig, rewriteAlertmanagerConfig(t, filepath.Join(s.root, "prometheus", "alertmanager.yml"), hookAddr))
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

	for _, u := range []string{"http://" + redisExp + "/metrics", "http://" + pgExp + "/metrics", s.am + "/-/ready",
		s.prometheus + "/-/ready"} {
		s.waitFor(t, "GET "+u+" answers 200", time.Minute, func() (bool, string) {
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

// sql runs one statement on the test's Postgres.
func (s *e2eStack) sql(t *testing.T, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.postgres.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// startService runs the feature store in-process with app.Run on apiAddr and
// waits until it is ready; stopAPI (and cleanup) stops it and wants a clean
// exit. It may be called again after stopAPI: a restart on the same port.
func (s *e2eStack) startService(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	exited := make(chan struct{})
	go func() {
		runErr = app.Run(ctx, []string{"serve", "--addr", s.apiAddr}, func(k string) string { return s.apiEnv[k] }, s.apiLogs, s.apiLogs)
		close(exited)
	}()
	var once sync.Once
	s.stopAPI = func() {
		once.Do(func() {
			cancel()
			select {
			case <-exited:
				if runErr != nil {
					t.Errorf("the service exited with %v", runErr)
				}
			case <-time.After(time.Minute):
				t.Errorf("the service did not stop within a minute")
			}
		})
	}
	t.Cleanup(s.stopAPI)
	s.waitFor(t, "the service is ready", 2*time.Minute, func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("the service exited before it was ready: %v\n%s", runErr, s.apiLogs)
		default:
		}
		code, body, err := s.get(s.apiURL + "/health/ready")
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

// waitFor polls cond until it holds; past the deadline (a safety net for a
// state that never comes, not a timing the test relies on) it fails the
// test with what cond last saw. A child that has exited fails it at once.
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
// host and port of every webhook URL replaced by the receiver's (the path,
// and so the hook and the route an alert took, kept). Every timer is as
// shipped.
func rewriteAlertmanagerConfig(t *testing.T, path, receiverAddr string) []byte {
	t.Helper()
	doc, root := readYAML(t, path)
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
			parsed.Host = receiverAddr
			u.Value = parsed.String()
			webhooks++
		}
	}
	if webhooks == 0 {
		t.Fatalf("%s: no webhook receiver to point at the test's receiver", path)
	}
	return marshalYAML(t, doc)
}

// writePrometheusConfig writes into dir the project's prometheus.yml (from
// promDir) with every job's targets replaced by its loopback address (the
// job names, intervals and everything else kept: the rules select on the
// job names) and alerts sent to the test's Alertmanager, and copies of the
// rule files it loads, unchanged, at the same relative paths. It returns the
// path of the configuration.
func writePrometheusConfig(t *testing.T, promDir, dir string, targets map[string]string, alertmanager string) string {
	t.Helper()
	path := filepath.Join(promDir, "prometheus.yml")
	doc, root := readYAML(t, path)

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
		seen[job.Value] = true
	}
	for job := range targets {
		if !seen[job] {
			t.Fatalf("%s: no scrape job %q", path, job)
		}
	}

	files := 0
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
			data, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, rel), data)
			files++
		}
	}
	if files == 0 {
		t.Fatalf("%s: rule_files load no file", path)
	}
	out := filepath.Join(dir, "prometheus.yml")
	writeFile(t, out, marshalYAML(t, doc))
	return out
}

// --- the receiver's log ---

// receivedAlert is one alert of an Alertmanager webhook notification.
type receivedAlert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Fingerprint string            `json:"fingerprint"`
}

// received is one line the receiver wrote: when, on which hook (the route),
// and Alertmanager's notification.
type received struct {
	Received     time.Time `json:"received"`
	Route        string    `json:"route"`
	Notification struct {
		Receiver string          `json:"receiver"`
		Status   string          `json:"status"`
		Alerts   []receivedAlert `json:"alerts"`
	} `json:"notification"`
}

// receiverLog reads the JSON lines the receiver appends to its ALERT_LOG.
type receiverLog struct{ path string }

// messages returns every notification received so far; a line that is not
// what the hooks write fails the test.
func (r *receiverLog) messages(t *testing.T) []received {
	t.Helper()
	f, err := os.Open(r.path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []received
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m received
		if err := json.Unmarshal(line, &m); err != nil || m.Route == "" || m.Received.IsZero() {
			// The receiver may be writing this very line: read again later.
			if !bytes.HasSuffix(line, []byte("}")) {
				break
			}
			t.Fatalf("the receiver wrote %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// pages returns the alerts of the firing notifications received on route
// since when, one entry per alert per notification.
func (r *receiverLog) firing(t *testing.T, route string, since time.Time) []receivedAlert {
	t.Helper()
	var out []receivedAlert
	for _, m := range r.messages(t) {
		if m.Route != route || m.Received.Before(since) || m.Notification.Status != "firing" {
			continue
		}
		for _, a := range m.Notification.Alerts {
			if a.Status == "firing" {
				out = append(out, a)
			}
		}
	}
	return out
}

// --- HTTP ---

func (s *e2eStack) get(u string) (int, []byte, error) { return s.send("GET", u, nil) }

// send makes one request with the monitoring client (short timeouts); body
// is sent as is ([]byte) or as JSON.
func (s *e2eStack) send(method, u string, body any) (int, []byte, error) {
	return s.do(s.client, method, u, body)
}

// sendAPI makes one request to the service with its client, whose timeout
// is long: on a loaded machine a request may take seconds, and the test
// waits for its answer rather than for a deadline.
func (s *e2eStack) sendAPI(method, path string, body any) (int, []byte, error) {
	return s.do(s.api, method, s.apiURL+path, body)
}

func (s *e2eStack) do(client *http.Client, method, u string, body any) (int, []byte, error) {
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
	resp, err := client.Do(req)
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
	code, data, err := s.sendAPI(method, path, body)
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
// rules not ok or not inactive, its alerts, the receiver's notifications,
// and the end of every process's output.
func (s *e2eStack) diagnostics() string {
	var b strings.Builder
	at := func(ts time.Time) string { return fmt.Sprintf("+%.1fs", ts.Sub(s.start).Seconds()) }
	fmt.Fprintf(&b, "=== diagnostics (now %s)\n", at(time.Now()))

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
	b.WriteString("--- the receiver's notifications:\n")
	if data, err := os.ReadFile(s.receiver.path); err != nil {
		fmt.Fprintf(&b, "  %v\n", err)
	} else {
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var m received
			if json.Unmarshal([]byte(line), &m) != nil {
				fmt.Fprintf(&b, "  undecodable: %.300s\n", line)
				continue
			}
			fmt.Fprintf(&b, "  %s %s %s:", at(m.Received), m.Route, m.Notification.Status)
			for _, a := range m.Notification.Alerts {
				fmt.Fprintf(&b, " [%s job=%s severity=%s %s]", a.Labels["alertname"], a.Labels["job"], a.Labels["severity"], a.Status)
			}
			b.WriteString("\n")
		}
	}
	for _, c := range s.children {
		fmt.Fprintf(&b, "--- %s %v output:\n%s\n", c.name, c.cmd.Args[1:], tail(c.out.String(), 3<<10))
	}
	fmt.Fprintf(&b, "--- service logs:\n%s\n", tail(s.apiLogs.String(), 6<<10))
	return b.String()
}
