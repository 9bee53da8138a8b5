package httpapi_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/featurestore/featurestore/api"
	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/httpapi"
	"github.com/featurestore/featurestore/internal/metrics"
)

// The tokens of the test token file, one per role.
const (
	readerToken = "fst_reader-token-for-tests"
	writerToken = "fst_writer-token-for-tests"
	adminToken  = "fst_admin-token-for-tests"
)

func tokenEntry(name, role, token string) string {
	sum := sha256.Sum256([]byte(token))
	return fmt.Sprintf("  - {name: %s, role: %s, sha256: %s}\n", name, role, hex.EncodeToString(sum[:]))
}

// openAuth is an Authenticator over a token file holding the three tokens.
func openAuth(t testing.TB) *auth.Authenticator {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	file := "tokens:\n" + tokenEntry("dashboards", "reader", readerToken) +
		tokenEntry("ci-ingest", "writer", writerToken) + tokenEntry("ops", "admin", adminToken)
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.Open(auth.Options{TokensFile: path})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// authed is the embedded service behind a router with authentication on,
// real security metrics and an observed log.
type authed struct {
	*env
	reg  *prometheus.Registry
	sec  *metrics.Security
	logs *observer.ObservedLogs
}

func newAuthed(t *testing.T) *authed {
	t.Helper()
	e := newEnv(t, backend{"embedded", openEmbedded})
	a := &authed{env: e, reg: prometheus.NewRegistry()}
	a.sec = metrics.NewSecurity(a.reg)
	authn := openAuth(t)
	a.sec.SetAuth(true, authn.TokenNames(), false)
	core, logs := observer.New(zapcore.InfoLevel)
	a.logs = logs
	d := e.deps()
	d.Auth, d.AuthObserver, d.Logger = authn, a.sec, zap.New(core)
	d.MetricsHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("# metrics\n")) })
	e.router = httpapi.NewRouter(d)
	return a
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

const userGroup = `{"entity_key": "user_id", "features": [{"name": "age", "type": "int64"}]}`

// TestAuthDoneMeans is the definition of done: with a token file,
// an anonymous write gets 401, a reader's write 403, a text/plain write
// 415, a writer's JSON write 200; and nothing refused was written.
func TestAuthDoneMeans(t *testing.T) {
	t.Parallel()
	a := newAuthed(t)
	if w := a.do("PUT", "/v1/feature-groups/user_profile", userGroup, bearer(adminToken)...); w.Code != http.StatusCreated {
		t.Fatalf("admin PUT: %d %s", w.Code, w.Body)
	}
	const rows = "/v1/feature-groups/user_profile/rows"
	row := func(age int) string {
		return fmt.Sprintf(`[{"entity_id": "u1", "event_time": "2025-06-05T00:00:00Z", "values": {"age": %d}}]`, age)
	}

	w := a.do("POST", rows, row(1))
	wantError(t, w, http.StatusUnauthorized, "unauthenticated", "Authorization")
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="featurestore"` {
		t.Errorf("WWW-Authenticate %q", got)
	}

	w = a.do("POST", rows, row(2), bearer("fst_no-such-token")...)
	wantError(t, w, http.StatusUnauthorized, "unauthenticated", "Authorization")
	if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate %q, want error=\"invalid_token\"", got)
	}

	w = a.do("POST", rows, row(3), bearer(readerToken)...)
	body := wantError(t, w, http.StatusForbidden, "forbidden", "Authorization")
	if !strings.Contains(body.Fields[0].Problem, "dashboards has role reader; this needs writer") {
		t.Errorf("403 problem %q", body.Fields[0].Problem)
	}

	w = a.do("POST", rows, row(4), append(bearer(writerToken), "Content-Type", "text/plain")...)
	wantError(t, w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type")

	if got := a.do("GET", "/v1/feature-groups/user_profile/entities/u1", "", bearer(readerToken)...); got.Code != http.StatusNotFound {
		t.Fatalf("after the refused writes the entity exists: %d %s", got.Code, got.Body)
	}
	if w := a.do("POST", rows, row(5), bearer(writerToken)...); w.Code != http.StatusOK {
		t.Fatalf("writer's JSON write: %d %s", w.Code, w.Body)
	}
	got := object(t, a.do("GET", "/v1/feature-groups/user_profile/entities/u1", "", bearer(readerToken)...))
	if age := got["features"].(map[string]any)["age"]; fmt.Sprint(age) != "5" {
		t.Errorf("stored age %v, want 5 (the writer's write, and only it)", age)
	}

	for _, c := range []struct {
		token, result string
		want          float64
	}{
		{"anonymous", "unauthenticated", 1}, {"invalid", "unauthenticated", 1},
		{"dashboards", "forbidden", 1}, {"ci-ingest", "allowed", 2}, {"ops", "allowed", 1}, {"dashboards", "allowed", 2},
	} {
		if v := counter(t, a.reg, "feature_store_auth_requests_total", "token", c.token, "result", c.result); v != c.want {
			t.Errorf("auth_requests_total{token=%s,result=%s} = %v, want %v", c.token, c.result, v, c.want)
		}
	}
}

// counter is the value of one series of a counter family.
func counter(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestEveryRouteNeedsItsRole walks every documented operation with the
// role it documents (TestOpenAPIRolesMatchRouteTable ties those to the
// route table): anonymous callers get 401 unless the route is public, a
// role below the route's 403, the route's role neither.
func TestEveryRouteNeedsItsRole(t *testing.T) {
	t.Parallel()
	a := newAuthed(t)
	tokens := map[auth.Role]string{auth.Reader: readerToken, auth.Writer: writerToken, auth.Admin: adminToken}
	ops := regexp.MustCompile(`(?m)^    (get|put|post|delete):\n      x-required-role: (\w+)`)
	paths := regexp.MustCompile(`(?m)^  (/\S*):\s*$`)
	doc := string(api.OpenAPI)
	n := 0
	for _, pm := range paths.FindAllStringSubmatchIndex(doc, -1) {
		path := doc[pm[2]:pm[3]]
		end := len(doc)
		if next := paths.FindStringIndex(doc[pm[1]:]); next != nil {
			end = pm[1] + next[0]
		}
		target := strings.NewReplacer("{group}", "movie_basic", "{id}", "550", "{name}", "ranker").Replace(path)
		for _, om := range ops.FindAllStringSubmatch(doc[pm[1]:end], -1) {
			n++
			method, role := strings.ToUpper(om[1]), om[2]
			body := ""
			if method == "POST" || method == "PUT" {
				body = `{}`
			}
			if role == "anyone" {
				if w := a.do(method, target, body); w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden {
					t.Errorf("anonymous %s %s: %d, want it public", method, target, w.Code)
				}
				continue
			}
			need, err := auth.ParseRole(role)
			if err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if w := a.do(method, target, body); w.Code != http.StatusUnauthorized {
				t.Errorf("anonymous %s %s: %d, want 401", method, target, w.Code)
			}
			for r, tok := range tokens {
				w := a.do(method, target, body, bearer(tok)...)
				switch {
				case r < need && w.Code != http.StatusForbidden:
					t.Errorf("%s %s as %s: %d, want 403", method, target, r, w.Code)
				case r >= need && (w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden):
					t.Errorf("%s %s as %s: %d, want it allowed", method, target, r, w.Code)
				}
			}
		}
	}
	if n != 22 {
		t.Errorf("walked %d operations, want the 22 of the route table", n)
	}
}

// TestAuthPublicRoutesAndHealth: liveness, readiness, metrics and the API
// description stay anonymous; /health shows its components to a reader only;
// an unknown route is 401 before it is 404.
func TestAuthPublicRoutesAndHealth(t *testing.T) {
	t.Parallel()
	a := newAuthed(t)
	for _, target := range []string{"/health/live", "/health/ready", "/metrics", "/openapi.yaml"} {
		if w := a.do("GET", target, "", bearer("fst_garbage")...); w.Code != http.StatusOK {
			t.Errorf("GET %s with a bad token: %d, want 200 (public)", target, w.Code)
		}
		if w := a.do("GET", target, ""); w.Code != http.StatusOK {
			t.Errorf("anonymous GET %s: %d, want 200", target, w.Code)
		}
	}
	for _, hdr := range [][]string{nil, bearer("fst_garbage")} {
		summary := object(t, a.do("GET", "/health", "", hdr...))
		if _, ok := summary["checked_at"].(string); !ok || summary["status"] != "UP" || len(summary) != 2 {
			t.Errorf("anonymous /health = %v, want only status UP and checked_at", summary)
		}
	}
	full := object(t, a.do("GET", "/health", "", bearer(readerToken)...))
	if _, ok := full["components"]; !ok {
		t.Errorf("a reader's /health has no components: %v", full)
	}
	wantError(t, a.do("GET", "/v1/nothing", ""), http.StatusUnauthorized, "unauthenticated", "Authorization")
	wantError(t, a.do("GET", "/v1/nothing", "", bearer(readerToken)...), http.StatusNotFound, "not_found", "path")
	wantError(t, a.do("PATCH", "/v1/stats", ""), http.StatusUnauthorized, "unauthenticated", "Authorization")
}

// TestAuthLogNamesTheCallerNeverTheToken: the access log line names the
// token by its name; no log entry holds a token.
func TestAuthLogNamesTheCallerNeverTheToken(t *testing.T) {
	t.Parallel()
	a := newAuthed(t)
	a.do("GET", "/v1/stats", "", bearer(writerToken)...)
	a.do("GET", "/v1/stats", "", bearer("fst_wrong-token")...)
	a.do("GET", "/v1/stats", "")
	var callers []string
	for _, e := range a.logs.All() {
		for k, v := range e.ContextMap() {
			if k == "auth" {
				callers = append(callers, fmt.Sprint(v))
			}
			for _, secret := range []string{writerToken, "fst_wrong-token"} {
				if strings.Contains(fmt.Sprint(v), secret) {
					t.Errorf("log field %s holds a token: %v", k, v)
				}
			}
		}
	}
	if got := strings.Join(callers, ","); got != "ci-ingest,invalid,anonymous" {
		t.Errorf("callers logged %q, want ci-ingest,invalid,anonymous", got)
	}
}

// TestMediaType: a body must be JSON, whatever the caller's role.
func TestMediaType(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend{"embedded", openEmbedded})
	const target = "/get-online-features"
	body := `{"entities": {"movie_id": [1]}, "features": ["movie_basic:popularity"]}`
	for ct, want := range map[string]int{
		"application/json":                  http.StatusOK,
		"application/json; charset=utf-8":   http.StatusOK,
		"Application/JSON; Charset=UTF-8":   http.StatusOK,
		"application/json; charset=latin1":  http.StatusUnsupportedMediaType,
		"text/plain":                        http.StatusUnsupportedMediaType,
		"text/plain; charset=utf-8":         http.StatusUnsupportedMediaType,
		"application/x-www-form-urlencoded": http.StatusUnsupportedMediaType,
		"multipart/form-data; boundary=x":   http.StatusUnsupportedMediaType,
		"application/jsonx":                 http.StatusUnsupportedMediaType,
		"application/json;;":                http.StatusUnsupportedMediaType,
	} {
		w := e.do("POST", target, body, "Content-Type", ct)
		if w.Code != want {
			t.Errorf("Content-Type %q: %d, want %d: %s", ct, w.Code, want, w.Body)
		}
		if want == http.StatusUnsupportedMediaType {
			wantError(t, w, want, "unsupported_media_type", "Content-Type")
		}
	}
	// No Content-Type at all: refused, but on the Feast routes, whose
	// clients send none.
	r := httptest.NewRequest("POST", "/v1/feature-groups/movie_basic/rows", strings.NewReader(`{"rows":[]}`))
	w := httptest.NewRecorder()
	e.router.ServeHTTP(w, r)
	wantError(t, w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type")
	r = httptest.NewRequest("POST", target, strings.NewReader(body))
	w = httptest.NewRecorder()
	e.router.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("%s with no Content-Type (as Feast's clients send it): %d, want 200: %s", target, w.Code, w.Body)
	}
	// A POST without a body needs no Content-Type.
	if w := e.do("POST", "/v1/recompute", ""); w.Code != http.StatusAccepted {
		t.Errorf("POST /v1/recompute without a body: %d %s", w.Code, w.Body)
	}
}

// TestNoCrossSiteWrites: the attack (a page elsewhere POSTing
// text/plain) and its JSON variant are refused and write nothing; CORS is
// off by default; a same-origin page and non-browser clients are served.
func TestNoCrossSiteWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend{"embedded", openEmbedded})
	e.putGroup(t, "user_profile", userGroup)
	const rows = "/v1/feature-groups/user_profile/rows"
	row := `[{"entity_id": "u1", "values": {"age": 1}}]`
	for _, hdr := range [][]string{
		{"Content-Type", "text/plain", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
		{"Content-Type", "text/plain", "Origin", "https://evil.example"},
		{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"},
		{"Origin", "https://evil.example"},
		{"Sec-Fetch-Site", "same-site"},
	} {
		w := e.do("POST", rows, row, hdr...)
		wantError(t, w, http.StatusForbidden, "forbidden", "Origin")
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%v: Access-Control-Allow-Origin %q with CORS off", hdr, got)
		}
	}
	wantError(t, e.do("GET", "/v1/feature-groups/user_profile/entities/u1", ""), http.StatusNotFound, "not_found", "id")
	// The same request without a browser's headers is no cross-site write:
	// only its media type is wrong.
	wantError(t, e.do("POST", rows, row, "Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type")
	if w := e.do("POST", rows, row, "Sec-Fetch-Site", "same-origin", "Origin", "http://example.com"); w.Code != http.StatusOK {
		t.Errorf("same-origin write: %d %s", w.Code, w.Body)
	}
	// A cross-origin read is answered, but without CORS headers the page
	// cannot read it; a preflight gets no CORS headers either.
	if w := e.do("GET", "/v1/stats", "", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Error("CORS header on a cross-origin read with CORS off")
	}
	w := e.do("OPTIONS", rows, "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if w.Header().Get("Access-Control-Allow-Origin") != "" || w.Code < 400 {
		t.Errorf("preflight with CORS off: %d, ACAO %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
	}
}

func TestCORSAllowedOrigins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend{"embedded", openEmbedded})
	d := e.deps()
	origins, err := httpapi.ParseOrigins(" https://app.example , http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	d.CORSAllowedOrigins = origins
	e.router = httpapi.NewRouter(d)
	e.putGroup(t, "user_profile", userGroup)
	const rows = "/v1/feature-groups/user_profile/rows"

	w := e.do("OPTIONS", rows, "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type")
	if w.Code != http.StatusNoContent {
		t.Fatalf("preflight: %d %s", w.Code, w.Body)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  "https://app.example",
		"Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE",
		"Access-Control-Allow-Headers": "Authorization, Content-Type, X-Request-Id, Idempotency-Key",
		"Access-Control-Max-Age":       "600",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("preflight %s = %q, want %q", k, got, want)
		}
	}
	if w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Error("credentials allowed: the API takes bearer tokens, never cookies")
	}

	w = e.do("POST", rows, `[{"entity_id": "u1", "values": {"age": 1}}]`,
		"Origin", "https://app.example", "Sec-Fetch-Site", "cross-site")
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Errorf("allowed origin's write: %d, headers %v", w.Code, w.Header())
	}
	w = e.do("POST", rows, `[{"entity_id": "u2", "values": {"age": 1}}]`,
		"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site")
	wantError(t, w, http.StatusForbidden, "forbidden", "Origin")
	if w.Header().Get("Access-Control-Allow-Origin") != "" || !strings.Contains(w.Header().Get("Vary"), "Origin") {
		t.Errorf("other origin: ACAO %q, Vary %q", w.Header().Get("Access-Control-Allow-Origin"), w.Header().Get("Vary"))
	}
}

func TestParseOrigins(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                                    "",
		"https://a.example":                   "https://a.example",
		"https://A.Example:443/, http://b:80": "https://a.example http://b",
		"http://localhost:3000,http://localhost:3000": "http://localhost:3000",
		"*": "*",
	} {
		got, err := httpapi.ParseOrigins(in)
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("ParseOrigins(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a.example", "https://a.example/path", "ftp://a.example", "https://user@a.example", "*, https://a.example", "https://"} {
		if got, err := httpapi.ParseOrigins(bad); err == nil {
			t.Errorf("ParseOrigins(%q) = %q, want an error", bad, got)
		}
	}
}

// TestSecurityHeaders: every answer, error or not, carries the security
// headers; API answers are not to be stored; HSTS only over TLS.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend{"embedded", openEmbedded})
	for _, target := range []string{"/health/live", "/v1/stats", "/v1/nothing", "/openapi.yaml"} {
		h := e.do("GET", target, "").Header()
		for k, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("GET %s: %s = %q, want %q", target, k, got, want)
			}
		}
		wantCache := "no-store"
		if target == "/openapi.yaml" {
			wantCache = "public, max-age=300"
		}
		if got := h.Get("Cache-Control"); got != wantCache {
			t.Errorf("GET %s: Cache-Control %q, want %q", target, got, wantCache)
		}
		if h.Get("Strict-Transport-Security") != "" {
			t.Errorf("GET %s over plain HTTP has HSTS", target)
		}
	}
	r := httptest.NewRequest("GET", "/health/live", nil)
	r.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	e.router.ServeHTTP(w, r)
	if got := w.Header().Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("over TLS: HSTS %q", got)
	}
}

func TestStartingRouterWithAuth(t *testing.T) {
	t.Parallel()
	r := httpapi.NewStartingRouter(nil, func() bool { return false }, httpapi.Info{Version: "v9"}, openAuth(t))
	wantError(t, serve(t, r, "GET", "/info", ""), http.StatusUnauthorized, "unauthenticated", "Authorization")
	if w := serve(t, r, "GET", "/info", "", bearer(readerToken)...); w.Code != http.StatusOK {
		t.Errorf("a reader's /info while starting: %d", w.Code)
	}
	if w := serve(t, r, "GET", "/health/live", ""); w.Code != http.StatusOK {
		t.Errorf("live while starting: %d", w.Code)
	}
}
