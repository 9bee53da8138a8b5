package metrics

import (
	"context"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
)

// RouteUnmatched is the route label of a request no route matched (404, or
// 405 for a known path with another method). The raw path is never a label.
// (Under a subrouter mounted with chi's Route or Mount, an unmatched path
// carries the mount's pattern instead, e.g. "/v1/*": chi records it.)
const RouteUnmatched = "unmatched"

// Middleware records feature_store_http_requests_total{route,method,code},
// feature_store_http_request_duration_seconds{route,method} and
// feature_store_http_requests_in_flight. route is chi's route pattern, read
// after the handler ran, e.g. "/v1/feature-groups/{group}". It works both
// inside a chi router (r.Use) and wrapped around one: when the request has
// no chi routing context yet, it adds one that the router then fills in.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.now()
		rctx := chi.RouteContext(r.Context())
		if rctx == nil {
			rctx = chi.NewRouteContext()
			r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, rctx))
		}
		sw := &statusWriter{ResponseWriter: w}
		m.httpInFlight.Inc()
		defer func() {
			m.httpInFlight.Dec()
			p := recover()
			code := sw.code
			if code == 0 {
				code = http.StatusOK
				if p != nil {
					code = http.StatusInternalServerError
				}
			}
			route := rctx.RoutePattern()
			if route == "" {
				route = RouteUnmatched
			}
			method := normalizeMethod(r.Method)
			m.httpRequests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
			m.httpDuration.WithLabelValues(route, method).Observe(m.now().Sub(start).Seconds())
			if p != nil {
				panic(p)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// initCodes are the status codes whose series InitRoutes creates: 200, the
// denominator of every ratio, and the server errors (500 internal, 503
// unavailable, 504 timeout), the numerators of the 5xx ratios. A series
// created by its first request is missed by rate() for that increment: the
// first failure of a route would not count.
var initCodes = [...]string{"200", "500", "503", "504"}

// InitRoutes creates the series of the given (method, route pattern) pairs
// at zero, with the codes of initCodes, so rates and ratios exist and count
// every request from start-up.
func (m *Metrics) InitRoutes(routes [][2]string) {
	for _, rt := range routes {
		method := normalizeMethod(rt[0])
		for _, code := range initCodes {
			m.httpRequests.WithLabelValues(rt[1], method, code)
		}
		m.httpDuration.WithLabelValues(rt[1], method)
	}
}

// normalizeMethod maps a request method to the bounded method label set.
func normalizeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodHead, http.MethodOptions, http.MethodPatch:
		return m
	}
	return "other"
}

// statusWriter remembers the status code a handler sent.
type statusWriter struct {
	http.ResponseWriter
	code int // 0 until the final header is written
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx responses other than 101 are informational; the final one follows.
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming handlers that assert http.Flusher keep working.
func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController access to the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
