package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// startServer runs the real program on a free port and waits until it is ready.
func startServer(t *testing.T, args []string, env map[string]string) (base string, logs *testenv.SyncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &testenv.SyncBuffer{}
	addrCh := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), envFrom(env), logs, logs,
			func(a string) { addrCh <- a })
	}()
	select {
	case a := <-addrCh:
		base = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("server exited before listening: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("server did not listen\n%s", logs)
	}
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("server did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, logs, stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never became ready\n%s", logs)
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped before it was ready: %v\n%s", err, logs)
		case <-time.After(20 * time.Millisecond): // polling readiness, not waiting out a race
		}
	}
}

func doJSON(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, data, err)
		}
	}
	return resp.StatusCode
}

// requiredMetrics are the seven metrics the operators' guide checks.
var requiredMetrics = []string{
	"feature_store_requests_total",
	"feature_store_request_duration_seconds",
	"feature_store_cache_hits_total",
	"feature_store_cache_misses_total",
	"feature_store_features_total",
	"feature_store_storage_bytes",
	"feature_store_errors_total",
}

// exerciseService runs the newcomer's path from the README against a live
// server: ingest the shared TMDB file, read through both read APIs, and see
// all seven feature_store_* metrics move.
func exerciseService(t *testing.T, base string, wantStore, wantCache string) {
	t.Helper()
	var info map[string]any
	if st := doJSON(t, "GET", base+"/info", nil, &info); st != 200 || info["store"] != wantStore || info["cache"] != wantCache {
		t.Fatalf("/info = %d %v, want store %s cache %s", st, info, wantStore, wantCache)
	}
	body, err := os.ReadFile(testenv.TMDBFile(t))
	if err != nil {
		t.Fatal(err)
	}
	var ing struct {
		Received, Accepted int
		Rejected           []any
	}
	if st := doJSON(t, "POST", base+"/v1/movies", body, &ing); st != 200 || ing.Accepted != 100 || len(ing.Rejected) != 0 {
		t.Fatalf("ingest = %d %+v", st, ing)
	}
	var ent struct {
		EntityID string            `json:"entity_id"`
		Features map[string]any    `json:"features"`
		Statuses map[string]string `json:"statuses"`
	}
	// Read twice: the first read may miss the cache, the second must hit it.
	for range 2 {
		if st := doJSON(t, "GET", base+"/v1/feature-groups/movie_basic/entities/552524?features=popularity,original_language", nil, &ent); st != 200 {
			t.Fatalf("get entity = %d", st)
		}
	}
	if ent.Features["popularity"] != 630.3236 || ent.Features["original_language"] != "en" || len(ent.Features) != 2 {
		t.Fatalf("entity 552524 features = %v", ent.Features)
	}
	var online struct {
		Metadata struct {
			FeatureNames []string `json:"feature_names"`
		} `json:"metadata"`
		Results []struct {
			Values   []any    `json:"values"`
			Statuses []string `json:"statuses"`
		} `json:"results"`
	}
	req := map[string]any{"entities": map[string]any{"movie_id": []any{552524, 1}},
		"features": []string{"movie_basic:popularity", "movie_text:title_length"}}
	if st := doJSON(t, "POST", base+"/get-online-features", req, &online); st != 200 {
		t.Fatalf("get-online-features = %d", st)
	}
	if got := strings.Join(online.Metadata.FeatureNames, ","); got != "movie_id,popularity,title_length" {
		t.Fatalf("feature names = %s", got)
	}
	if len(online.Results) != 3 || online.Results[1].Statuses[0] != "PRESENT" || online.Results[1].Statuses[1] != "NOT_FOUND" ||
		online.Results[2].Values[0] != float64(len([]rune("릴로 & 스티치"))) {
		t.Fatalf("online results = %+v", online.Results)
	}
	// An error, so feature_store_errors_total moves.
	if st := doJSON(t, "GET", base+"/v1/feature-groups/no_such_group/entities/1", nil, nil); st != 404 {
		t.Fatalf("unknown group = %d, want 404", st)
	}
	// Storage bytes are refreshed in the background; stats refresh is immediate.
	if st := doJSON(t, "GET", base+"/v1/stats", nil, nil); st != 200 {
		t.Fatalf("stats = %d", st)
	}

	// Storage bytes arrive with the next background refresh. Each poll reads
	// the entity once more: on a loaded machine a cache call can outrun its
	// 250ms timeout and count as a miss, and the hit must still come.
	testenv.Eventually(t, 30*time.Second, "every required metric moves", func() (bool, string) {
		doJSON(t, "GET", base+"/v1/feature-groups/movie_basic/entities/552524?features=popularity", nil, nil)
		missing := missingMetrics(t, base)
		return len(missing) == 0, fmt.Sprintf("metrics that did not move: %v", missing)
	})
}

// missingMetrics lists the required metrics with no sample above zero.
func missingMetrics(t *testing.T, base string) []string {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	var missing []string
	for _, name := range requiredMetrics {
		moved := false
		for _, line := range strings.Split(string(text), "\n") {
			if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
				continue
			}
			rest := strings.TrimPrefix(line, name)
			if !strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "_count") {
				continue
			}
			fields := strings.Fields(line)
			if v := fields[len(fields)-1]; v != "0" && v != "0.0" {
				moved = true
				break
			}
		}
		if !moved {
			missing = append(missing, name)
		}
	}
	return missing
}

func promtoolCheck(t *testing.T, base string) {
	t.Helper()
	promtool := testenv.RequireTool(t, "promtool")
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestEmbeddedServiceEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base, logs, stop := startServer(t, nil, map[string]string{"FEATURESTORE_DATA_DIR": dir})
	exerciseService(t, base, "sqlite", "memory")
	promtoolCheck(t, base)
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in logs:\n%s", logs)
	}
	// Durable: a new process on the same data dir reads what was acknowledged.
	base2, _, _ := startServer(t, nil, map[string]string{"FEATURESTORE_DATA_DIR": dir})
	var ent struct{ Features map[string]any }
	if st := doJSON(t, "GET", base2+"/v1/feature-groups/movie_basic/entities/552524", nil, &ent); st != 200 || ent.Features["vote_count"] != float64(460) {
		t.Fatalf("after restart: %d %v", st, ent.Features)
	}
}

func TestPostgresRedisServiceEndToEnd(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"FEATURESTORE_POSTGRES_URL":     testenv.PostgresSchemaURL(t, "fs_t_app"),
		"FEATURESTORE_REDIS_URL":        testenv.RedisURL(t), // generous timeouts: every package uses it at once
		"FEATURESTORE_REDIS_KEY_PREFIX": fmt.Sprintf("fs_app_%d", time.Now().UnixNano()),
	}
	base, _, stop := startServer(t, nil, env)
	// The cache is read once it is checked against Postgres, which the
	// first time clears it: a SCAN of the whole shared Redis, which a busy
	// machine may not finish before the server is ready.
	testenv.Eventually(t, time.Minute, "the cache checked", func() (bool, string) {
		h := getCacheHealth(t, base)
		return h.Details["checked"] == true && h.Details["trusted"] == true, fmt.Sprint(h)
	})
	exerciseService(t, base, "postgres", "redis")
	promtoolCheck(t, base)
	var h struct {
		Status     string
		Components map[string]struct {
			Status  string
			Details map[string]any
		}
	}
	if st := doJSON(t, "GET", base+"/health", nil, &h); st != 200 || h.Status != "UP" ||
		h.Components["postgres"].Status != "UP" || h.Components["redis"].Status != "UP" ||
		h.Components["postgres"].Details["version"] == nil || h.Components["redis"].Details["version"] == nil {
		t.Fatalf("/health = %d %+v", st, h)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"--help"}, envFrom(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-addr", "-data-dir", "-postgres-url", "-redis-url", "FEATURESTORE_ADDR",
		"FEATURESTORE_DATA_DIR", "FEATURESTORE_POSTGRES_URL", "FEATURESTORE_REDIS_URL", "ingest", "migrate", "recompute"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

func TestHelpMasksSecretsFromTheEnvironment(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	env := envFrom(map[string]string{
		"FEATURESTORE_POSTGRES_URL": "postgres://app:s3cret@db:5432/fs",
		"FEATURESTORE_REDIS_URL":    "redis://:hunter2@cache:6379/0",
	})
	if err := Run(context.Background(), []string{"--help"}, env, &out, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "s3cret") || strings.Contains(out.String(), "hunter2") {
		t.Fatalf("--help printed a password:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "app:****@db") {
		t.Fatalf("--help does not show the masked default:\n%s", out.String())
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"frobnicate"}, nil, "unknown command"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
		{nil, map[string]string{"FEATURESTORE_CACHE_TTL": "soon"}, "FEATURESTORE_CACHE_TTL"},
		{[]string{"ingest"}, nil, "exactly one FILE"},
		{[]string{"--addr", "256.0.0.1:99999"}, map[string]string{"FEATURESTORE_DATA_DIR": "x"}, "listen"},
	}
	for _, c := range cases {
		err := Run(context.Background(), c.args, envFrom(c.env), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%v, %v) = %v, want error containing %q", c.args, c.env, err, c.want)
		}
	}
}

func TestMaskURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"postgres://app:s3cret@db:5432/fs?sslmode=disable&password=x", "postgres://app:****@db:5432/fs?password=****&sslmode=disable"},
		{"redis://:hunter2@cache:6379/0", "redis://:****@cache:6379/0"},
		{"postgres://db/fs", "postgres://db/fs"},
		// Not URLs: a malformed one, and key=value connection strings.
		{"redis://:hunter2@cache:port/0", "redis://:****@cache:port/0"},
		{"host=db password=s3cret dbname=fs", "host=db password=**** dbname=fs"},
		{`host=db password = 'it\'s s3cret' dbname=fs`, "host=db password = **** dbname=fs"},
	} {
		if got := maskURL(c.in); got != c.want {
			t.Errorf("maskURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIngestCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	env := envFrom(map[string]string{"FEATURESTORE_DATA_DIR": dir})
	err := Run(context.Background(), []string{"ingest", testenv.TMDBFile(t)}, env, &out, &errOut)
	if err != nil {
		t.Fatalf("ingest: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "accepted 100, rejected 0") || !strings.Contains(errOut.String(), "100%") {
		t.Fatalf("ingest output:\n%s\n%s", out.String(), errOut.String())
	}
	// The fixture has one bad record: it is reported with its fields and the command fails.
	out.Reset()
	err = Run(context.Background(), []string{"ingest", filepath.Join(testenv.RepoRoot(t), "testdata", "movies.json")}, env, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "record 3 rejected") || !strings.Contains(out.String(), "title") {
		t.Fatalf("ingest of fixture: err=%v\n%s", err, out.String())
	}
	// While a server holds the data directory, a direct ingest refuses and says what to do.
	base, _, _ := startServer(t, nil, map[string]string{"FEATURESTORE_DATA_DIR": dir})
	err = Run(context.Background(), []string{"ingest", testenv.TMDBFile(t)}, env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--api") {
		t.Fatalf("direct ingest with a running server: %v", err)
	}
	out.Reset()
	if err := Run(context.Background(), []string{"ingest", "--api", base, testenv.TMDBFile(t)}, env, &out, io.Discard); err != nil {
		t.Fatalf("ingest --api: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "accepted 100") {
		t.Fatalf("ingest --api output: %s", out.String())
	}
}
