package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/api"
	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/httpapi"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
)

// deadRedis is a Redis cache pointed at a port nothing listens on.
func deadRedis(t *testing.T) *cache.Redis {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	return cache.NewRedis(client, cache.RedisOptions{})
}

func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		t.Run("live and ready", func(t *testing.T) {
			wantJSON(t, e.mustDo(t, http.StatusOK, "GET", "/health/live", "").Body.Bytes(), `{"status": "UP"}`)
			wantJSON(t, e.mustDo(t, http.StatusOK, "GET", "/health/ready", "").Body.Bytes(), `{"status": "UP"}`)
			e.ready.Store(false)
			defer e.ready.Store(true)
			wantJSON(t, e.mustDo(t, http.StatusServiceUnavailable, "GET", "/health/ready", "").Body.Bytes(), `{"status": "DOWN"}`)
			wantJSON(t, e.mustDo(t, http.StatusOK, "GET", "/health/live", "").Body.Bytes(), `{"status": "UP"}`)
		})

		t.Run("health aggregates the real components", func(t *testing.T) {
			var rep health.Report
			if err := json.Unmarshal(e.mustDo(t, http.StatusOK, "GET", "/health", "").Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Status != store.HealthUp || len(rep.Components) != len(e.health.Components) || rep.CheckedAt.IsZero() {
				t.Errorf("report %+v, want UP with %d components", rep, len(e.health.Components))
			}
			for _, c := range e.health.Components {
				if got := rep.Components[c.Name]; got.Status != store.HealthUp || got.Error != "" {
					t.Errorf("component %s: %+v, want UP", c.Name, got)
				}
			}
		})

		t.Run("a dead cache degrades, a dead system of record is down", func(t *testing.T) {
			sor := e.health.Components[0]
			dead := deadRedis(t)
			for _, c := range []struct {
				name       string
				components []health.Component
				status     int
				overall    store.HealthStatus
			}{
				{"cache down", []health.Component{sor, {Name: "redis", Checker: dead}}, http.StatusOK, store.HealthDegraded},
				{"store down", []health.Component{{Name: "postgres", Critical: true, Checker: dead}, e.health.Components[1]}, http.StatusServiceUnavailable, store.HealthDown},
			} {
				d := e.deps()
				d.Health = &health.Checker{Components: c.components, Timeout: 2 * time.Second}
				w := serve(t, httpapi.NewRouter(d), "GET", "/health", "")
				var rep health.Report
				if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
					t.Fatal(err)
				}
				if w.Code != c.status || rep.Status != c.overall {
					t.Errorf("%s: %d %s, want %d %s", c.name, w.Code, rep.Status, c.status, c.overall)
				}
				for _, comp := range c.components {
					if got := rep.Components[comp.Name]; (got.Status == store.HealthDown) != (comp.Checker == dead) || (got.Status == store.HealthDown && got.Error == "") {
						t.Errorf("%s: component %s: %+v", c.name, comp.Name, got)
					}
				}
			}
		})

		t.Run("info", func(t *testing.T) {
			got := object(t, e.mustDo(t, http.StatusOK, "GET", "/info", ""))
			up, ok := got["uptime_seconds"].(json.Number)
			if !ok {
				t.Fatalf("uptime_seconds missing: %v", got)
			}
			if f, _ := up.Float64(); f <= 0 {
				t.Errorf("uptime_seconds %v, want > 0", up)
			}
			delete(got, "uptime_seconds")
			wantJSON(t, []byte(mustJSON(t, got)), `{"version": "v1.2.3", "revision": "abc123", "go_version": "go1.26",
				"start_time": "2025-06-05T03:00:00Z", "store": "`+e.store+`", "cache": "`+e.cache+`"}`)
		})

		t.Run("openapi document", func(t *testing.T) {
			w := e.mustDo(t, http.StatusOK, "GET", "/openapi.yaml", "")
			if ct := w.Header().Get("Content-Type"); ct != "application/yaml" || w.Body.String() != string(api.OpenAPI) {
				t.Errorf("Content-Type %q, body of %d bytes; want application/yaml and the embedded document", ct, w.Body.Len())
			}
		})

		t.Run("stats", func(t *testing.T) {
			e.mustDo(t, http.StatusOK, "POST", "/v1/movies", fixture(t, "movies.json"))
			got := object(t, e.mustDo(t, http.StatusOK, "GET", "/v1/stats", ""))
			if got["registered_groups"] != json.Number("6") || got["corpus_movies"] != json.Number("2") {
				t.Errorf("stats %v, want 6 groups and 2 movies", got)
			}
			rows := map[string]any{}
			for _, g := range got["groups"].([]any) {
				g := g.(map[string]any)
				rows[g["group"].(string)] = g["entities"]
			}
			if rows["movie_basic"] != json.Number("2") {
				t.Errorf("movie_basic entities %v, want 2 (%v)", rows["movie_basic"], got["groups"])
			}
		})

		tests := []struct {
			name, method, target string
			hdr                  []string
			status               int
			code                 string
			fields               []string
		}{
			{"unknown route", "GET", "/v2/nothing", nil, http.StatusNotFound, "not_found", []string{"path"}},
			{"unknown route under a known prefix", "GET", "/v1/feature-groups/movie_basic/nope", nil, http.StatusNotFound, "not_found", []string{"path"}},
			{"wrong method", "PATCH", "/v1/movies", nil, http.StatusMethodNotAllowed, "method_not_allowed", []string{"method"}},
			{"GET of a POST route", "GET", "/get-online-features", nil, http.StatusMethodNotAllowed, "method_not_allowed", []string{"method"}},
			{"DELETE of health", "DELETE", "/health", nil, http.StatusMethodNotAllowed, "method_not_allowed", []string{"method"}},
			{"client request id", "GET", "/nope", []string{"X-Request-Id", "client-req-42"}, http.StatusNotFound, "not_found", []string{"path"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				w := e.do(tc.method, tc.target, "", tc.hdr...)
				body := wantError(t, w, tc.status, tc.code, tc.fields...)
				if len(tc.hdr) > 0 && body.RequestID != tc.hdr[1] {
					t.Errorf("request id %q, want the client's %q", body.RequestID, tc.hdr[1])
				}
			})
		}

		t.Run("request ids", func(t *testing.T) {
			if got := e.do("GET", "/health/live", "", "X-Request-Id", "abc-1").Header().Get("X-Request-Id"); got != "abc-1" {
				t.Errorf("X-Request-Id %q on a 200, want the client's abc-1", got)
			}
			generated := regexp.MustCompile(`^[0-9a-f]{24}$`)
			for _, bad := range []string{"", strings.Repeat("x", 129), "a\tb"} {
				got := e.do("GET", "/health/live", "", "X-Request-Id", bad).Header().Get("X-Request-Id")
				if !generated.MatchString(got) {
					t.Errorf("client id %q: X-Request-Id %q, want a generated one", bad, got)
				}
			}
			a := e.do("GET", "/health/live", "").Header().Get("X-Request-Id")
			b := e.do("GET", "/health/live", "").Header().Get("X-Request-Id")
			if a == b || !generated.MatchString(a) {
				t.Errorf("generated ids %q, %q: want distinct 24-hex ids", a, b)
			}
		})
	})
}

func TestStartingRouter(t *testing.T) {
	t.Parallel()
	ready := false
	r := httpapi.NewStartingRouter(nil, func() bool { return ready }, httpapi.Info{Version: "v9"}, nil)
	if w := serve(t, r, "GET", "/health/live", ""); w.Code != http.StatusOK {
		t.Errorf("live while starting: %d", w.Code)
	}
	wantJSON(t, serve(t, r, "GET", "/health/ready", "").Body.Bytes(), `{"status": "DOWN"}`)
	if w := serve(t, r, "GET", "/health/ready", ""); w.Code != http.StatusServiceUnavailable {
		t.Errorf("ready while starting: %d, want 503", w.Code)
	}
	if got := object(t, serve(t, r, "GET", "/info", ""))["version"]; got != "v9" {
		t.Errorf("info version %v", got)
	}
	for _, c := range []struct{ method, target string }{{"POST", "/v1/movies"}, {"GET", "/v1/feature-groups"}, {"POST", "/get-online-features"}} {
		w := serve(t, r, c.method, c.target, `{}`, "X-Request-Id", "starting-1")
		body := wantError(t, w, http.StatusServiceUnavailable, "unavailable")
		if w.Header().Get("Retry-After") == "" || body.RequestID != "starting-1" {
			t.Errorf("%s %s while starting: Retry-After %q, request id %q", c.method, c.target, w.Header().Get("Retry-After"), body.RequestID)
		}
	}
}

// TestPanicIsJSONError: a handler that panics (here /health without a
// checker) answers a JSON 500 error with the request id, not a dropped
// connection, and the router keeps serving.
func TestPanicIsJSONError(t *testing.T) {
	t.Parallel()
	r := httpapi.NewRouter(httpapi.Deps{})
	w := serve(t, r, "GET", "/health", "", "X-Request-Id", "boom-1")
	body := wantError(t, w, http.StatusInternalServerError, "internal")
	if body.RequestID != "boom-1" || strings.Contains(body.Message, "nil") {
		t.Errorf("panic answered %+v; want the request id and no internals", body)
	}
	if w := serve(t, r, "GET", "/health/live", ""); w.Code != http.StatusOK {
		t.Errorf("after a panic: %d", w.Code)
	}
}
