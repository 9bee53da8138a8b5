package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// End-to-end fault tests: the whole service, with its real dependencies,
// while one of them fails. Each test starts the dependencies it breaks on
// free ports of its own; the shared Postgres and Redis are only used, never
// stopped.

// --- HTTP ---

// reply is one HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v.
func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// fetch makes one request. The client timeout turns a hang into an error:
// it bounds the test, it is not a performance assertion, and is long
// enough for a loaded machine. err is a transport error (no answer); fetch
// may be called from any goroutine.
func fetch(method, url string, body any) (reply, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// mustFetch is fetch from the test goroutine, failing the test on a
// transport error.
func mustFetch(t *testing.T, method, url string, body any) reply {
	t.Helper()
	r, err := fetch(method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// wantStatus fails the test unless r has status want.
func wantStatus(t *testing.T, what string, r reply, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s = %d %s, want %d", what, r.status, r.body, want)
	}
}

// wantUnavailable checks the answer to a refused write: 503, code
// "unavailable" and a Retry-After header.
func wantUnavailable(t *testing.T, what string, r reply) {
	t.Helper()
	var e struct {
		Code string `json:"code"`
	}
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("%s = %d %s, want 503", what, r.status, r.body)
	}
	r.decode(t, &e)
	if e.Code != "unavailable" || r.header.Get("Retry-After") == "" {
		t.Errorf("%s: code %q, Retry-After %q; want code unavailable and a Retry-After", what, e.Code, r.header.Get("Retry-After"))
	}
}

// wantWriteRefused checks a write refused with 503 and Retry-After, as
// unavailable (nothing was sent) or outcome_unknown (it may have been),
// and returns the code.
func wantWriteRefused(t *testing.T, what string, r reply) string {
	t.Helper()
	var e struct {
		Code string `json:"code"`
	}
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("%s = %d %s, want 503", what, r.status, r.body)
	}
	r.decode(t, &e)
	if (e.Code != "unavailable" && e.Code != "outcome_unknown") || r.header.Get("Retry-After") == "" {
		t.Errorf("%s: code %q, Retry-After %q; want unavailable or outcome_unknown and a Retry-After", what, e.Code, r.header.Get("Retry-After"))
	}
	return e.Code
}

// healthReport is the body of GET /health.
type healthReport struct {
	Status     string `json:"status"`
	Components map[string]struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"components"`
}

func getHealth(t *testing.T, base string) (int, healthReport) {
	t.Helper()
	r := mustFetch(t, "GET", base+"/health", nil)
	var h healthReport
	r.decode(t, &h)
	return r.status, h
}

// scrape returns the value of one series of /metrics, "" when absent.
func scrape(t *testing.T, base, series string) string {
	t.Helper()
	r := mustFetch(t, "GET", base+"/metrics", nil)
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// --- data ---

// tmdbRecords returns the raw records of the shared TMDB file.
func tmdbRecords(t *testing.T) []json.RawMessage {
	t.Helper()
	body, err := os.ReadFile(testenv.TMDBFile(t))
	if err != nil {
		t.Fatal(err)
	}
	raws, err := tmdb.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	return raws
}

// tmdbRecord returns the record of movie id with the given fields replaced
// ("id" names the id field, which the crawler file calls movie_id).
func tmdbRecord(t *testing.T, raws []json.RawMessage, id int64, changes map[string]any) map[string]any {
	t.Helper()
	for _, raw := range raws {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		idKey := "id"
		if _, ok := m["movie_id"]; ok {
			idKey = "movie_id"
		}
		if n, ok := m[idKey].(float64); ok && int64(n) == id {
			for k, v := range changes {
				if k == "id" {
					k = idKey
				}
				m[k] = v
			}
			return m
		}
	}
	t.Fatalf("movie %d is not in the TMDB file", id)
	return nil
}

// ingestAll posts every record of the TMDB file and checks all were accepted.
func ingestAll(t *testing.T, base string, raws []json.RawMessage) {
	t.Helper()
	r := mustFetch(t, "POST", base+"/v1/movies", raws)
	wantStatus(t, "ingest", r, http.StatusOK)
	var res struct {
		Accepted int `json:"accepted"`
	}
	r.decode(t, &res)
	if res.Accepted != len(raws) {
		t.Fatalf("ingest accepted %d of %d: %s", res.Accepted, len(raws), r.body)
	}
}

// userGroup is the body of a user-defined group with one feature per type.
func userGroup(entityKey string) map[string]any {
	return map[string]any{"entity_key": entityKey, "ttl_seconds": 0, "features": []map[string]string{
		{"name": "seq", "type": "int64"}, {"name": "score", "type": "float64"},
		{"name": "odd", "type": "bool"}, {"name": "label", "type": "string"}}}
}

// userValues are the values written for n: every type, nothing a float
// round trip could blur.
func userValues(n int64) map[string]any {
	return map[string]any{"seq": n, "score": float64(n) + 0.25, "odd": n%2 != 0, "label": fmt.Sprintf("write %d ✓", n)}
}

// wantJSONValues are userValues(n) as a JSON decoder returns them.
func wantJSONValues(n int64) map[string]any {
	return map[string]any{"seq": float64(n), "score": float64(n) + 0.25, "odd": n%2 != 0, "label": fmt.Sprintf("write %d ✓", n)}
}

// readEntity reads one entity and returns the status and its features.
func readEntity(t *testing.T, base, group, id string) (int, map[string]any) {
	t.Helper()
	r := mustFetch(t, "GET", base+"/v1/feature-groups/"+group+"/entities/"+id, nil)
	if r.status != http.StatusOK {
		return r.status, nil
	}
	var ent struct {
		Features map[string]any `json:"features"`
	}
	r.decode(t, &ent)
	return r.status, ent.Features
}

// wantEntity checks an entity's features equal want.
func wantEntity(t *testing.T, what, base, group, id string, want map[string]any) {
	t.Helper()
	st, got := readEntity(t, base, group, id)
	if st != http.StatusOK {
		t.Fatalf("%s: GET %s/%s = %d, want 200", what, group, id, st)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s: %s/%s features (-want +got):\n%s", what, group, id, d)
	}
}

// logOnFailure shows the server's logs if the test fails.
func logOnFailure(t *testing.T, logs *testenv.SyncBuffer) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs)
		}
	})
}

// --- 1. Postgres down ---

// TestPostgresDownServesCachedReadsAndRefusesWrites stops the system of
// record under a running service: cached reads are still served with the
// same values, writes answer 503 promptly and write nothing, /health says
// DOWN while liveness and readiness stay 200; after a restart writes work
// again and nothing refused was stored.
func TestPostgresDownServesCachedReadsAndRefusesWrites(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	rd := testenv.StartRedis(t, testenv.RedisOptions{})
	base, logs, _ := startServer(t, nil, map[string]string{
		"FEATURESTORE_POSTGRES_URL": pg.URL(),
		// Redis is never paused here: a read it answers slowly on a
		// loaded machine must not become a cache miss, which with
		// Postgres down would be a 503.
		"FEATURESTORE_REDIS_URL":       rd.PatientURL(),
		"FEATURESTORE_HEALTH_INTERVAL": "200ms",
		"FEATURESTORE_RECOMPUTE_DELAY": "0s", // no background writes
	})
	logOnFailure(t, logs)
	raws := tmdbRecords(t)
	ingestAll(t, base, raws)
	wantStatus(t, "PUT group", mustFetch(t, "PUT", base+"/v1/feature-groups/fault_user", userGroup("user_id")), http.StatusCreated)
	rowsURL := base + "/v1/feature-groups/fault_user/rows"
	write := func(id string, n int64) reply {
		return mustFetch(t, "POST", rowsURL, []map[string]any{{"entity_id": id, "values": userValues(n)}})
	}
	wantStatus(t, "write u1", write("u1", 1), http.StatusOK)

	// Read everything twice: the second answer comes from the cache.
	online := map[string]any{"entities": map[string]any{"movie_id": []any{552524, 1}},
		"features": []string{"movie_basic:popularity", "movie_text:title_length", "movie_temporal:release_year"}}
	reads := []struct {
		what, method, url string
		body              any
	}{
		{"movie entity", "GET", base + "/v1/feature-groups/movie_basic/entities/552524", nil},
		{"movie entity selection", "GET", base + "/v1/feature-groups/movie_text/entities/552524?features=title_length,title_word_count", nil},
		{"user entity", "GET", base + "/v1/feature-groups/fault_user/entities/u1", nil},
		{"get-online-features", "POST", base + "/get-online-features", online},
	}
	before := make([]any, len(reads))
	for i, rq := range reads {
		for range 2 {
			r := mustFetch(t, rq.method, rq.url, rq.body)
			wantStatus(t, rq.what, r, http.StatusOK)
			r.decode(t, &before[i])
		}
	}

	pg.Stop()

	for i, rq := range reads {
		r := mustFetch(t, rq.method, rq.url, rq.body)
		wantStatus(t, rq.what+" with postgres down", r, http.StatusOK)
		var got any
		r.decode(t, &got)
		if d := cmp.Diff(before[i], got); d != "" {
			t.Errorf("%s with postgres down differs from before (-before +now):\n%s", rq.what, d)
		}
	}

	wantUnavailable(t, "read of an uncached entity with postgres down",
		mustFetch(t, "GET", base+"/v1/feature-groups/movie_basic/entities/990000003", nil))

	// A write on a connection the stopped server had closed may already
	// have been sent when the connection turns out dead: from the client's
	// side its outcome is unknown (outcome_unknown), otherwise nothing was
	// sent (unavailable). Either is a 503 with Retry-After.
	refused := tmdbRecord(t, raws, 552524, map[string]any{"id": 990000001, "title": "Refused While Down"})
	wantWriteRefused(t, "ingest with postgres down", mustFetch(t, "POST", base+"/v1/movies", []any{refused}))
	wantWriteRefused(t, "write rows with postgres down", write("u2", 2))
	if code := wantWriteRefused(t, "overwrite of a cached entity with postgres down", write("u1", 3)); code == "unavailable" {
		wantEntity(t, "cached entity after a refused overwrite", base, "fault_user", "u1", wantJSONValues(1))
	} else {
		// Its cached value can no longer be vouched for: not served from
		// the cache, and the store is down.
		wantUnavailable(t, "entity whose overwrite's outcome is unknown", mustFetch(t, "GET", base+"/v1/feature-groups/fault_user/entities/u1", nil))
	}
	// Entities no write touched are still served from the cache.
	wantStatus(t, "cached movie after the refused writes", mustFetch(t, "GET", reads[0].url, nil), http.StatusOK)

	// Each /health runs its checks within a fixed timeout: a Redis check
	// that a loaded machine slows past it says DOWN once. Wait for the
	// state instead of judging one answer.
	testenv.Eventually(t, time.Minute, "/health is 503 DOWN with postgres DOWN and redis UP", func() (bool, string) {
		st, h := getHealth(t, base)
		return st == http.StatusServiceUnavailable && h.Status == "DOWN" && h.Components["postgres"].Status == "DOWN" &&
			h.Components["postgres"].Error != "" && h.Components["redis"].Status == "UP", fmt.Sprintf("%d %+v", st, h)
	})
	wantStatus(t, "/health/live with postgres down", mustFetch(t, "GET", base+"/health/live", nil), http.StatusOK)
	wantStatus(t, "/health/ready with postgres down", mustFetch(t, "GET", base+"/health/ready", nil), http.StatusOK)
	testenv.Eventually(t, time.Minute, "dependency_up{postgres} is 0", func() (bool, string) {
		v := scrape(t, base, `feature_store_dependency_up{dependency="postgres"}`)
		return v == "0", v
	})

	pg.Start()
	testenv.Eventually(t, time.Minute, "writes succeed after postgres restarts", func() (bool, string) {
		r := write("u4", 4)
		if r.status != http.StatusOK && r.status != http.StatusServiceUnavailable {
			t.Fatalf("write while postgres recovers = %d %s, want 200 or 503", r.status, r.body)
		}
		return r.status == http.StatusOK, fmt.Sprintf("%d %s", r.status, r.body)
	})
	wantEntity(t, "write after restart", base, "fault_user", "u4", wantJSONValues(4))
	wantEntity(t, "entity whose overwrite was refused", base, "fault_user", "u1", wantJSONValues(1))
	if st, f := readEntity(t, base, "fault_user", "u2"); st != http.StatusNotFound {
		t.Errorf("refused row u2 after restart: %d %v, want 404", st, f)
	}
	for _, g := range tmdb.Groups() {
		if st, f := readEntity(t, base, g.Name, "990000001"); st != http.StatusNotFound {
			t.Errorf("refused movie in %s after restart: %d %v, want 404", g.Name, st, f)
		}
	}
	testenv.Eventually(t, time.Minute, "/health is UP after postgres restarts", func() (bool, string) {
		st, h := getHealth(t, base)
		return st == http.StatusOK && h.Status == "UP", fmt.Sprintf("%d %+v", st, h)
	})
}

// --- 2. Redis down ---

// TestRedisDownReadsFallBackToPostgres kills the cache under a running
// service: reads fall back to Postgres, writes are still acknowledged and
// read back, /health says DEGRADED. Redis then comes back from its
// append-only file still holding the values from before those writes: the
// service must never serve them.
func TestRedisDownReadsFallBackToPostgres(t *testing.T) {
	t.Parallel()
	// Persistence makes the restart the hard case: the restarted cache
	// holds entries that went stale while it was down.
	rd := testenv.StartRedis(t, testenv.RedisOptions{AppendOnly: true})
	base, logs, _ := startServer(t, nil, map[string]string{
		"FEATURESTORE_POSTGRES_URL":    testenv.PostgresSchemaURL(t, "fs_t_app"),
		"FEATURESTORE_REDIS_URL":       rd.URL(),
		"FEATURESTORE_HEALTH_INTERVAL": "200ms",
		"FEATURESTORE_RECOMPUTE_DELAY": "0s", // no background writes
	})
	logOnFailure(t, logs)
	raws := tmdbRecords(t)
	ingestAll(t, base, raws)
	wantStatus(t, "PUT group", mustFetch(t, "PUT", base+"/v1/feature-groups/fault_user", userGroup("user_id")), http.StatusCreated)
	rowsURL := base + "/v1/feature-groups/fault_user/rows"
	write := func(id string, n int64) reply {
		return mustFetch(t, "POST", rowsURL, []map[string]any{{"entity_id": id, "values": userValues(n)}})
	}
	wantStatus(t, "write u1", write("u1", 1), http.StatusOK)

	// Cache the old values: rows, and the absence of a movie not yet ingested.
	popularity := func() any {
		_, f := readEntity(t, base, "movie_basic", "552524")
		return f["popularity"]
	}
	for range 2 {
		if p := popularity(); p != 630.3236 {
			t.Fatalf("popularity of 552524 = %v, want 630.3236", p)
		}
		wantEntity(t, "before the kill", base, "fault_user", "u1", wantJSONValues(1))
		if st, _ := readEntity(t, base, "movie_text", "990000002"); st != http.StatusNotFound {
			t.Fatalf("movie 990000002 before it is ingested = %d, want 404", st)
		}
	}
	_, untouched := readEntity(t, base, "movie_basic", "1233413")
	if untouched["vote_count"] == nil {
		t.Fatalf("movie 1233413 = %v, want its features", untouched)
	}
	testenv.Eventually(t, time.Minute, "dependency_up{redis} is 1", func() (bool, string) {
		v := scrape(t, base, `feature_store_dependency_up{dependency="redis"}`)
		return v == "1", v
	})
	cachedKeys := redisDBSize(t, rd.URL())

	rd.Kill()

	// Reads fall back to Postgres.
	if p := popularity(); p != 630.3236 {
		t.Errorf("popularity of 552524 with redis down = %v, want 630.3236", p)
	}
	wantEntity(t, "with redis down", base, "fault_user", "u1", wantJSONValues(1))
	// /health answers from a report at most --health-max-age old: wait
	// for one checked after the kill.
	testenv.Eventually(t, time.Minute, "/health says DEGRADED with redis down", func() (bool, string) {
		st, h := getHealth(t, base)
		return st == http.StatusOK && h.Status == "DEGRADED" && h.Components["redis"].Status == "DOWN" &&
			h.Components["postgres"].Status == "UP", fmt.Sprintf("%d %+v", st, h)
	})
	testenv.Eventually(t, time.Minute, "dependency_up{redis} is 0", func() (bool, string) {
		v := scrape(t, base, `feature_store_dependency_up{dependency="redis"}`)
		return v == "0", v
	})

	// Writes are acknowledged and read back, never stale.
	changed := tmdbRecord(t, raws, 552524, map[string]any{"popularity": 1.5})
	added := tmdbRecord(t, raws, 552524, map[string]any{"id": 990000002, "title": "Added While Redis Was Down"})
	wantStatus(t, "ingest with redis down", mustFetch(t, "POST", base+"/v1/movies", []any{changed, added}), http.StatusOK)
	wantStatus(t, "write u1 with redis down", write("u1", 2), http.StatusOK)
	wantStatus(t, "write u2 with redis down", write("u2", 3), http.StatusOK)
	// newest fails the test at the first read that is not the newest value.
	newest := func(when string) {
		t.Helper()
		if p := popularity(); p != 1.5 {
			t.Fatalf("popularity of 552524 %s = %v, want the written 1.5", when, p)
		}
		wantEntity(t, when, base, "fault_user", "u1", wantJSONValues(2))
		wantEntity(t, when, base, "fault_user", "u2", wantJSONValues(3))
		if st, f := readEntity(t, base, "movie_text", "990000002"); st != http.StatusOK || f["title_length"] != float64(len("Added While Redis Was Down")) {
			t.Fatalf("movie 990000002 %s = %d %v, want 200 with its title length", when, st, f)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	newest("with redis down")

	rd.Restart()
	if n := redisDBSize(t, rd.URL()); n < cachedKeys-1 {
		// -1: a health probe key may have been there at the kill.
		t.Fatalf("restarted redis holds %d keys, had %d: the append-only file was not replayed, so this test proves less than it claims", n, cachedKeys)
	}
	// Read continuously while the service finds the cache again and
	// repairs it: the reads race the repair loop, and none may see the
	// stale entries the cache came back with. Like real traffic, the reads
	// include a key not written while redis was down, which the cache may
	// serve; it is read first, so the first read once the circuit breaker
	// lets one through has a key to look up in the cache.
	testenv.Eventually(t, time.Minute, "redis is UP again and every dirty key is repaired", func() (bool, string) {
		wantEntity(t, "while redis comes back", base, "movie_basic", "1233413", untouched)
		newest("while redis comes back")
		st, h := getHealth(t, base)
		up := scrape(t, base, `feature_store_dependency_up{dependency="redis"}`)
		dirty := scrape(t, base, "feature_store_cache_dirty_keys")
		return st == http.StatusOK && h.Status == "UP" && up == "1" && dirty == "0",
			fmt.Sprintf("/health %d %+v, dependency_up %s, dirty keys %s", st, h, up, dirty)
	})
	newest("once the cache is repaired")
}

// redisDBSize returns the number of keys in database 0 of the Redis at url.
func redisDBSize(t *testing.T, url string) int64 {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	defer c.Close()
	n, err := c.DBSize(t.Context()).Result()
	if err != nil {
		t.Fatalf("redis DBSIZE: %v", err)
	}
	return n
}

// --- 3. kill -9 ---

// TestKill9LosesNoAcknowledgedWrite kills the real binary with SIGKILL while
// writers are busy, restarts it on the same storage, and reads back every
// write that was acknowledged, in both modes.
func TestKill9LosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "featurestore")
	build := exec.Command("go", "build", "-o", bin, "./cmd/featurestore")
	build.Dir = testenv.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		kill9(t, bin, map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		prefix := fmt.Sprintf("fs_fault_%d", time.Now().UnixNano())
		sharedRedis := testenv.RedisURL(t)
		t.Cleanup(func() { deleteRedisPrefix(t, sharedRedis, prefix) })
		kill9(t, bin, map[string]string{
			"FEATURESTORE_POSTGRES_URL":     testenv.PostgresSchemaURL(t, "fs_t_app"),
			"FEATURESTORE_REDIS_URL":        sharedRedis,
			"FEATURESTORE_REDIS_KEY_PREFIX": prefix,
		})
	})
}

// deleteRedisPrefix removes this test's keys from the shared Redis.
func deleteRedisPrefix(t *testing.T, url, prefix string) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Error(err)
		return
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		c.Unlink(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("clean up redis keys %s:*: %v", prefix, err)
	}
}

// childServer is the real binary running as a child process.
type childServer struct {
	base   string
	cmd    *exec.Cmd
	logs   *testenv.SyncBuffer
	exited chan struct{}
}

// startChild runs bin serve with env (on top of this process's environment
// without its FEATURESTORE_ variables) and waits until it is ready.
func startChild(t *testing.T, bin string, env map[string]string) *childServer {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	c := &childServer{base: "http://" + addr, logs: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, "serve", "--addr", addr)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FEATURESTORE_") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	for k, v := range env {
		c.cmd.Env = append(c.cmd.Env, k+"="+v)
	}
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.kill)
	testenv.Eventually(t, time.Minute, "the service is ready", func() (bool, string) {
		select {
		case <-c.exited:
			t.Fatalf("featurestore exited before it was ready:\n%s", c.logs)
		default:
		}
		r, err := fetch("GET", c.base+"/health/ready", nil)
		if err != nil {
			return false, err.Error()
		}
		return r.status == http.StatusOK, strconv.Itoa(r.status)
	})
	return c
}

// kill sends SIGKILL and waits for the process to go; safe to call from
// several goroutines and more than once.
func (c *childServer) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// kill9 runs one kill -9 scenario against the binary with env.
func kill9(t *testing.T, bin string, env map[string]string) {
	const (
		group   = "fault_kill"
		writers = 4
		target  = 300 // acknowledged writes before the kill
	)
	srv := startChild(t, bin, env)
	wantStatus(t, "PUT group", mustFetch(t, "PUT", srv.base+"/v1/feature-groups/"+group, userGroup("writer_key")), http.StatusCreated)

	// Write n puts two rows in one request: an acknowledged write must be
	// whole, an unacknowledged one whole or absent, never half there.
	rows := func(n int64) []map[string]any {
		return []map[string]any{
			{"entity_id": fmt.Sprintf("w%d-a", n), "values": userValues(n)},
			{"entity_id": fmt.Sprintf("w%d-b", n), "values": userValues(-n)},
		}
	}
	var (
		next     atomic.Int64
		ackedN   atomic.Int64
		reached  = make(chan struct{})
		mu       sync.Mutex
		acked    = map[int64]bool{}
		unknown  []int64 // sent, but no answer: the kill came first
		problems []string
		wg       sync.WaitGroup
	)
	giveUp := time.Now().Add(60 * time.Second) // bounds the loop; not asserted
	for range writers {
		wg.Go(func() {
			for time.Now().Before(giveUp) {
				n := next.Add(1)
				r, err := fetch("POST", srv.base+"/v1/feature-groups/"+group+"/rows", rows(n))
				mu.Lock()
				switch {
				case err != nil:
					unknown = append(unknown, n)
				case r.status == http.StatusOK:
					acked[n] = true
				default:
					problems = append(problems, fmt.Sprintf("write %d = %d %s", n, r.status, r.body))
				}
				mu.Unlock()
				if err != nil || r.status != http.StatusOK {
					return // the process is gone (or misbehaved: reported below)
				}
				if ackedN.Add(1) == target {
					close(reached)
				}
			}
		})
	}
	writing := make(chan struct{})
	go func() { wg.Wait(); close(writing) }()
	// The killer: SIGKILL once enough writes are acknowledged, while the
	// other writers' requests are in flight (or once every writer stopped).
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		select {
		case <-reached:
		case <-writing:
		}
		srv.kill()
	}()
	<-writing
	<-killed
	if len(problems) > 0 {
		t.Fatalf("writes answered with errors before the kill:\n%s\n%s", strings.Join(problems, "\n"), srv.logs)
	}
	if len(acked) < target {
		t.Fatalf("only %d writes acknowledged before giving up, want %d:\n%s", len(acked), target, srv.logs)
	}
	t.Logf("killed with %d writes acknowledged and %d unanswered", len(acked), len(unknown))

	srv = startChild(t, bin, env)
	check := make([]int64, 0, len(acked)+len(unknown))
	for n := range acked {
		check = append(check, n)
	}
	check = append(check, unknown...)
	sort.Slice(check, func(i, j int) bool { return check[i] < check[j] })
	const batch = 250 // entities per read: two per write
	for lo := 0; lo < len(check); lo += batch {
		ns := check[lo:min(lo+batch, len(check))]
		ids := make([]any, 0, 2*len(ns))
		for _, n := range ns {
			ids = append(ids, fmt.Sprintf("w%d-a", n), fmt.Sprintf("w%d-b", n))
		}
		var resp struct {
			Results []struct {
				Values   []any    `json:"values"`
				Statuses []string `json:"statuses"`
			} `json:"results"`
		}
		r := mustFetch(t, "POST", srv.base+"/get-online-features", map[string]any{
			"entities": map[string]any{"writer_key": ids},
			"features": []string{group + ":seq", group + ":score", group + ":odd", group + ":label"}})
		wantStatus(t, "read after restart", r, http.StatusOK)
		r.decode(t, &resp)
		if len(resp.Results) != 5 {
			t.Fatalf("read after restart: %d columns, want 5: %s", len(resp.Results), r.body)
		}
		row := func(i int) (map[string]any, bool) {
			if resp.Results[1].Statuses[i] == "NOT_FOUND" {
				return nil, false
			}
			return map[string]any{"seq": resp.Results[1].Values[i], "score": resp.Results[2].Values[i],
				"odd": resp.Results[3].Values[i], "label": resp.Results[4].Values[i]}, true
		}
		for j, n := range ns {
			a, hasA := row(2 * j)
			b, hasB := row(2*j + 1)
			switch {
			case acked[n] && (!hasA || !hasB):
				t.Errorf("acknowledged write %d lost after kill -9: rows present a=%v b=%v", n, hasA, hasB)
				continue
			case hasA != hasB:
				t.Errorf("unanswered write %d is half there after kill -9: a=%v b=%v", n, hasA, hasB)
				continue
			case !hasA:
				continue // unanswered and not committed: allowed
			}
			if d := cmp.Diff(wantJSONValues(n), a); d != "" {
				t.Errorf("write %d row a after kill -9 (-want +got):\n%s", n, d)
			}
			if d := cmp.Diff(wantJSONValues(-n), b); d != "" {
				t.Errorf("write %d row b after kill -9 (-want +got):\n%s", n, d)
			}
		}
	}
}

// --- 4. graceful shutdown ---

// TestShutdownDrainsAndReadinessTurns503 cancels a running server's context:
// during the shutdown delay readiness answers 503 while requests are still
// served; then the listener closes, a request already in flight completes,
// and run returns nil.
func TestShutdownDrainsAndReadinessTurns503(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base, logs, stop := startServer(t, []string{"--shutdown-delay", "1s"}, map[string]string{"FEATURESTORE_DATA_DIR": dir})
	rowsURL := base + "/v1/feature-groups/fault_drain/rows"
	wantStatus(t, "PUT group", mustFetch(t, "PUT", base+"/v1/feature-groups/fault_drain", userGroup("drain_id")), http.StatusCreated)

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// Readiness turns 503 first; the server must still be answering then.
	testenv.Eventually(t, time.Minute, "/health/ready answers 503", func() (bool, string) {
		r, err := fetch("GET", base+"/health/ready", nil)
		if err != nil {
			t.Fatalf("the server stopped answering before /health/ready was seen 503: %v\n%s", err, logs)
		}
		if r.status != http.StatusOK && r.status != http.StatusServiceUnavailable {
			t.Fatalf("/health/ready = %d during shutdown", r.status)
		}
		return r.status == http.StatusServiceUnavailable, strconv.Itoa(r.status)
	})

	// A request in flight when draining starts: its body is still arriving.
	// A connection of its own, so closing idle connections cannot drop it.
	pr, pw := io.Pipe()
	type result struct {
		status int
		body   []byte
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		req, err := http.NewRequest("POST", rowsURL, pr)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		req.Header.Set("Content-Type", "application/json")
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inflight <- result{status: resp.StatusCode, body: b, err: err}
	}()
	// The write returns once the client has sent the headers and this part.
	if _, err := io.WriteString(pw, `[{"entity_id": "in-flight", `); err != nil {
		t.Fatal(err)
	}

	// Ordinary requests are still served during the delay.
	wantStatus(t, "list groups during the shutdown delay", mustFetch(t, "GET", base+"/v1/feature-groups", nil), http.StatusOK)
	wantStatus(t, "write during the shutdown delay", mustFetch(t, "POST", rowsURL,
		[]map[string]any{{"entity_id": "during-delay", "values": userValues(5)}}), http.StatusOK)
	wantStatus(t, "/health/live during the shutdown delay", mustFetch(t, "GET", base+"/health/live", nil), http.StatusOK)

	// Draining has begun once the listener refuses new connections.
	addr := strings.TrimPrefix(base, "http://")
	testenv.Eventually(t, time.Minute, "the listener closes", func() (bool, string) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true, err.Error()
		}
		conn.Close()
		return false, "still accepting"
	})
	select {
	case err := <-stopped:
		t.Fatalf("run returned (%v) while a request was in flight", err)
	default:
	}
	if _, err := io.WriteString(pw, `"values": {"seq": 7, "score": 7.25, "odd": true, "label": "write 7 ✓"}}]`); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	res := <-inflight
	if res.err != nil || res.status != http.StatusOK {
		t.Fatalf("in-flight request during drain = %d %s %v, want 200", res.status, res.body, res.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run returned %v, want nil\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the logs:\n%s", logs)
	}

	// Both writes were committed before they were acknowledged.
	base2, _, _ := startServer(t, nil, map[string]string{"FEATURESTORE_DATA_DIR": dir})
	wantEntity(t, "after restart", base2, "fault_drain", "in-flight", wantJSONValues(7))
	wantEntity(t, "after restart", base2, "fault_drain", "during-delay", wantJSONValues(5))
}
