package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/api"
	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/httpapi"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/store/sqlite"
	"github.com/featurestore/featurestore/internal/testenv"
)

// t0 is where every test's clock starts: shortly after the TMDB snapshot.
var t0 = time.Date(2025, 6, 5, 3, 0, 0, 0, time.UTC)

// clock is the injected clock of the service under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backend opens a fresh, isolated store (with its cache in front) and
// returns it with the health components that check it. Cleanup closes it
// and drops its data.
type backend struct {
	name string
	open func(tb testing.TB) (store.Store, []health.Component)
}

// backends are the two deployments every table runs against.
func backends() []backend {
	return []backend{
		{"embedded", openEmbedded},
		{"postgres", openPostgres},
	}
}

// openEmbedded is the embedded store in a temporary directory behind the
// in-process cache.
func openEmbedded(tb testing.TB) (store.Store, []health.Component) {
	tb.Helper()
	lite, err := sqlite.Open(context.Background(), tb.TempDir(), sqlite.Options{})
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	mem := cache.NewMemory(cache.MemoryOptions{})
	st := cache.Wrap(lite, mem, cache.WrapOptions{})
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close embedded store: %v", err)
		}
	})
	return st, []health.Component{
		{Name: "sqlite", Critical: true, Checker: lite},
		{Name: "memory", Checker: mem},
	}
}

// openPostgres is Postgres in a throwaway schema behind Redis under a
// random key prefix; the schema is dropped and the keys deleted at cleanup.
func openPostgres(tb testing.TB) (store.Store, []health.Component) {
	tb.Helper()
	return openPostgresNear(tb, 0)
}

// openPostgresNear is openPostgres with a near cache of near entries in
// front of Redis (0: none), waiting until it can answer reads.
func openPostgresNear(tb testing.TB, near int) (store.Store, []health.Component) {
	tb.Helper()
	ctx := context.Background()
	pg, err := postgres.Open(ctx, testenv.PostgresSchemaURL(tb, "fs_t"), postgres.Options{MaxConns: 8})
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}

	ropts, err := cache.RedisOptionsFromURL(testenv.RedisURL(tb))
	if err != nil {
		pg.Close()
		tb.Fatal(err)
	}
	client := redis.NewClient(ropts)
	tb.Cleanup(func() { client.Close() })
	rc := cache.NewRedis(client, cache.RedisOptions{Prefix: fmt.Sprintf("fs_t_%016x", rand.Uint64()), NearCache: near})
	tb.Cleanup(func() {
		if err := rc.Clear(context.Background()); err != nil {
			tb.Errorf("clear test redis prefix: %v", err)
		}
		_ = rc.Close() // stops a near cache; the client is closed by its own cleanup
	})
	if near > 0 {
		testenv.Eventually(tb, time.Minute, "near cache usable", func() (bool, string) {
			st, _ := rc.NearStats()
			return st.Usable, fmt.Sprintf("%+v", st)
		})
	}
	st := cache.Wrap(pg, rc, cache.WrapOptions{})
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close postgres store: %v", err)
		}
	})
	return st, []health.Component{
		{Name: "postgres", Critical: true, Checker: pg},
		{Name: "redis", Checker: rc},
	}
}

// env is one service over one fresh store, served by the real router.
type env struct {
	tb testing.TB
	// store and cache are the backends' names, as /info reports them.
	store, cache string
	st           store.Store // what the service writes to (the cache wrapper)
	svc          *service.Service
	clock        *clock
	ready        atomic.Bool
	health       *health.Checker
	router       http.Handler
	sor          httpapi.IdempotencyStore // the system of record, for Idempotency-Key records
}

func newEnv(tb testing.TB, b backend) *env {
	return newEnvWith(tb, b, service.Options{})
}

// newEnvWith is newEnv with service options (its clock is the env's).
func newEnvWith(tb testing.TB, b backend, opts service.Options) *env {
	tb.Helper()
	st, components := b.open(tb)
	e := &env{tb: tb, clock: &clock{t: t0}, st: st, store: "sqlite", cache: "memory"}
	if b.name == "postgres" {
		e.store, e.cache = "postgres", "redis"
	}
	opts.Now = e.clock.Now
	// The system of record (the first, critical component) answers what
	// the cache does not: training sets, feature services, the movie
	// corpus aggregate and the Idempotency-Key records.
	sor := components[0].Checker
	e.sor, _ = sor.(httpapi.IdempotencyStore)
	opts.History, _ = sor.(service.HistoryReader)
	opts.FeatureServices, _ = sor.(service.ServiceRegistry)
	opts.Corpus, _ = sor.(service.CorpusReader)
	svc, err := service.New(context.Background(), st, opts)
	if err != nil {
		tb.Fatalf("service.New: %v", err)
	}
	e.st, e.svc = st, svc
	e.health = &health.Checker{Components: components, Timeout: 5 * time.Second}
	e.ready.Store(true)
	e.router = e.newRouter(0)
	return e
}

// deps are the router's dependencies over the env's service.
func (e *env) deps() httpapi.Deps {
	return httpapi.Deps{
		Service:        e.svc,
		Health:         e.health,
		Ready:          e.ready.Load,
		Info:           httpapi.Info{Version: "v1.2.3", Revision: "abc123", GoVersion: "go1.26", StartTime: t0, Store: e.store, Cache: e.cache},
		OpenAPI:        api.OpenAPI,
		RequestTimeout: 30 * time.Second,
		Idempotency:    e.sor,
		Now:            e.clock.Now,
	}
}

// newRouter builds the real router over the env's service; maxBody 0 keeps
// the default body limit.
func (e *env) newRouter(maxBody int64) http.Handler {
	d := e.deps()
	d.MaxBodyBytes = maxBody
	return httpapi.NewRouter(d)
}

// forEachBackend runs fn in parallel subtests, one per backend, each with
// its own env.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, b))
		})
	}
}

// do sends one request through the router, checked against the OpenAPI
// description (a mismatch fails e's test). hdr is name, value pairs.
func (e *env) do(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	return serve(e.tb, e.router, method, target, body, hdr...)
}

// serve sends one request through h and checks the exchange against the
// OpenAPI description (checkContract). hdr is name, value pairs.
func serve(tb testing.TB, h http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	tb.Helper()
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return serveChecked(tb, h, r, []byte(body))
}

// mustDo sends a request and fails the test unless it answers want.
func (e *env) mustDo(t testing.TB, want int, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	w := e.do(method, target, body)
	if w.Code != want {
		t.Fatalf("%s %s: status %d, want %d; body %s", method, target, w.Code, want, w.Body)
	}
	return w
}

// putGroup registers a user group through the API.
func (e *env) putGroup(t testing.TB, name, body string) {
	t.Helper()
	w := e.do("PUT", "/v1/feature-groups/"+name, body)
	if w.Code != http.StatusCreated && w.Code != http.StatusOK {
		t.Fatalf("PUT group %s: status %d: %s", name, w.Code, w.Body)
	}
}

// writeRows writes rows through the API and fails unless they are accepted.
func (e *env) writeRows(t testing.TB, group string, rows ...any) {
	t.Helper()
	e.mustDo(t, http.StatusOK, "POST", "/v1/feature-groups/"+group+"/rows", mustJSON(t, rows))
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodeJSON decodes a document with numbers as json.Number, so integers
// compare exactly.
func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, b)
	}
	if dec.More() {
		t.Fatalf("trailing data after the JSON document: %s", b)
	}
	return v
}

// wantJSON compares a JSON body with want (a JSON string, or a value that
// is marshalled first), ignoring formatting and key order.
func wantJSON(t testing.TB, got []byte, want any) {
	t.Helper()
	var wb []byte
	if s, ok := want.(string); ok {
		wb = []byte(s)
	} else {
		wb = []byte(mustJSON(t, want))
	}
	if diff := cmp.Diff(decodeJSON(t, wb), decodeJSON(t, got)); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
}

// object decodes a JSON object body.
func object(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	m, ok := decodeJSON(t, w.Body.Bytes()).(map[string]any)
	if !ok {
		t.Fatalf("body is not a JSON object: %s", w.Body)
	}
	return m
}

// errorBody is the shape every error response has.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Fields  []struct {
		Field   string `json:"field"`
		Problem string `json:"problem"`
	} `json:"fields"`
	RequestID string `json:"request_id"`
}

// wantError checks an error response: the status, a JSON body with the
// code, a message, exactly the named fields (in order) each with a problem,
// and a request id equal to the X-Request-Id header.
func wantError(t testing.TB, w *httptest.ResponseRecorder, status int, code string, fields ...string) errorBody {
	t.Helper()
	if w.Code != status {
		t.Errorf("status %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	raw := object(t, w)
	for _, k := range []string{"code", "message", "fields", "request_id"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("error body has no %q: %s", k, w.Body)
		}
	}
	var body errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body: %v: %s", err, w.Body)
	}
	if body.Code != code {
		t.Errorf("code %q, want %q; body %s", body.Code, code, w.Body)
	}
	if body.Message == "" {
		t.Errorf("empty message: %s", w.Body)
	}
	if body.RequestID == "" || body.RequestID != w.Header().Get("X-Request-Id") {
		t.Errorf("request_id %q, X-Request-Id %q: want equal and non-empty", body.RequestID, w.Header().Get("X-Request-Id"))
	}
	got := []string{}
	for _, f := range body.Fields {
		got = append(got, f.Field)
		if f.Problem == "" {
			t.Errorf("field %s has no problem: %s", f.Field, w.Body)
		}
	}
	if fields == nil {
		fields = []string{}
	}
	if diff := cmp.Diff(fields, got); diff != "" {
		t.Errorf("error fields (-want +got):\n%s\nbody %s", diff, w.Body)
	}
	return body
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fixture(t testing.TB, name string) string {
	return readFile(t, filepath.Join("testdata", name))
}

// newRouterFrom builds the real router from deps.
func newRouterFrom(d httpapi.Deps) http.Handler { return httpapi.NewRouter(d) }

// serviceOptions are the default service options of a test env.
func serviceOptions() service.Options { return service.Options{} }
