package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// router builds a chi router shaped like the service's: a mounted /v1
// subrouter with a parameterised route.
func router(m *Metrics, use bool) http.Handler {
	r := chi.NewRouter()
	if use {
		r.Use(m.Middleware)
	}
	// Custom handlers, as the service has: still no pattern, so "unmatched".
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no route", http.StatusNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "method", http.StatusMethodNotAllowed)
	})
	r.Route("/v1", func(r chi.Router) {
		r.Get("/feature-groups/{group}", func(w http.ResponseWriter, r *http.Request) {
			if chi.URLParam(r, "group") == "missing" {
				http.Error(w, "no such group", http.StatusNotFound)
				return
			}
			_, _ = w.Write([]byte("ok"))
		})
		r.Put("/feature-groups/{group}", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
		})
		r.Get("/in-flight", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(strings.TrimSpace(strings.Repeat("x", int(testutil.ToFloat64(m.httpInFlight))))))
		})
		r.Get("/panic", func(w http.ResponseWriter, r *http.Request) { panic("handler bug") })
	})
	r.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {}) // writes nothing: 200
	if use {
		return r
	}
	return m.Middleware(r)
}

func TestMiddlewareLabelsByRoutePattern(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		use  bool
	}{{"inside chi (r.Use)", true}, {"wrapped around chi", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			m := New(reg, BuildInfo{}, nil)
			h := router(m, tc.use)
			requests := []struct {
				method, path string
				code         int
			}{
				{"GET", "/v1/feature-groups/movie_stats", 200},
				{"GET", "/v1/feature-groups/user_stats", 200},
				{"GET", "/v1/feature-groups/missing", 404},
				{"PUT", "/v1/feature-groups/new_group", 201},
				{"GET", "/healthz", 200},
				{"GET", "/no/such/thing/12345", 404},
				{"GET", "/v1/no-such-route", 404},
				{"DELETE", "/healthz", 405},
				{"BREW", "/v1/feature-groups/movie_stats", 405},
			}
			for _, rq := range requests {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(rq.method, rq.path, nil))
				if rec.Code != rq.code {
					t.Fatalf("%s %s: status %d, want %d", rq.method, rq.path, rec.Code, rq.code)
				}
			}
			want := []struct {
				route, method, code string
				n                   float64
			}{
				{"/v1/feature-groups/{group}", "GET", "200", 2},
				{"/v1/feature-groups/{group}", "GET", "404", 1},
				{"/v1/feature-groups/{group}", "PUT", "201", 1},
				{"/healthz", "GET", "200", 1},
				{RouteUnmatched, "GET", "404", 1},
				// Under a mounted subrouter chi reports the mount's pattern.
				{"/v1/*", "GET", "404", 1},
				{RouteUnmatched, "DELETE", "405", 1},
				{RouteUnmatched, "other", "405", 1},
			}
			for _, w := range want {
				got := value(t, reg, "feature_store_http_requests_total", "route", w.route, "method", w.method, "code", w.code)
				if got != w.n {
					t.Errorf("requests{%s,%s,%s} = %v, want %v", w.route, w.method, w.code, got, w.n)
				}
			}
			if got := value(t, reg, "feature_store_http_request_duration_seconds", "route", "/v1/feature-groups/{group}", "method", "GET"); got != 3 {
				t.Errorf("duration samples = %v, want 3", got)
			}
			for _, route := range labelValues(t, reg, "feature_store_http_requests_total", "route") {
				if strings.Contains(route, "movie_stats") || strings.Contains(route, "12345") || strings.Contains(route, "missing") || strings.Contains(route, "no-such") {
					t.Errorf("raw path in route label: %q", route)
				}
			}
			for _, method := range labelValues(t, reg, "feature_store_http_requests_total", "method") {
				if method == "BREW" {
					t.Error("unknown method used as a label value")
				}
			}
		})
	}
}

func TestMiddlewareInFlightAndPanics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	h := router(m, true)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/in-flight", nil))
	if rec.Body.String() != "x" {
		t.Errorf("in flight during the request = %d, want 1", len(rec.Body.String()))
	}
	if got := value(t, reg, "feature_store_http_requests_in_flight"); got != 0 {
		t.Errorf("in flight after the request = %v, want 0", got)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("the handler's panic was swallowed")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/panic", nil))
	}()
	if got := value(t, reg, "feature_store_http_requests_total", "route", "/v1/panic", "code", "500"); got != 1 {
		t.Errorf("panicking requests = %v, want 1", got)
	}
	if got := value(t, reg, "feature_store_http_requests_in_flight"); got != 0 {
		t.Errorf("in flight after a panic = %v, want 0", got)
	}
}

func TestInitRoutes(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg, BuildInfo{}, nil)
	m.InitRoutes([][2]string{{"GET", "/v1/feature-groups/{group}"}, {"POST", "/v1/get-online-features"}, {"WEIRD", "/x"}})
	for _, c := range []struct{ route, method string }{
		{"/v1/feature-groups/{group}", "GET"}, {"/v1/get-online-features", "POST"}, {"/x", "other"},
	} {
		// The denominator and every server error exist from start-up, so
		// the first 5xx of a route counts in its ratio.
		for _, code := range []string{"200", "500", "503", "504"} {
			if got := value(t, reg, "feature_store_http_requests_total", "route", c.route, "method", c.method, "code", code); got != 0 {
				t.Errorf("%s %s code %s = %v, want 0", c.method, c.route, code, got)
			}
		}
		if got := value(t, reg, "feature_store_http_request_duration_seconds", "route", c.route, "method", c.method); got != 0 {
			t.Errorf("duration %s %s = %v samples, want 0", c.method, c.route, got)
		}
	}
}

func TestStatusWriterKeepsFlusher(t *testing.T) {
	t.Parallel()
	m := New(nil, BuildInfo{}, nil)
	var flushed bool
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints) // informational: not the final status
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("the wrapped writer is not an http.Flusher")
			return
		}
		f.Flush()
		flushed = true
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !flushed || !rec.Flushed {
		t.Error("flush did not reach the underlying writer")
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues(RouteUnmatched, "GET", "200")); got != 1 {
		t.Errorf("status after 103 then flush: requests{code=200} = %v, want 1", got)
	}
}
