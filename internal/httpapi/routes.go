// Package httpapi is the feature store's REST API: the route table, the
// handlers, one encode/decode pair and the mapping of error codes to HTTP
// statuses.
package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/service"
)

// Info is what GET /info reports about the running build.
type Info struct {
	Version   string    `json:"version"`
	Revision  string    `json:"revision"`
	GoVersion string    `json:"go_version"`
	StartTime time.Time `json:"start_time"`
	// Store and Cache name the backends; empty (and left out of the JSON)
	// while the service is starting.
	Store string `json:"store,omitempty"`
	Cache string `json:"cache,omitempty"`
}

// Instrumenter is the HTTP metrics middleware (*metrics.Metrics).
type Instrumenter interface {
	Middleware(next http.Handler) http.Handler
	InitRoutes(routes [][2]string)
}

// Deps are what the router needs.
type Deps struct {
	Service *service.Service
	Health  interface {
		Check(ctx context.Context) health.Report
	}
	Metrics Instrumenter
	// MetricsHandler serves /metrics; nil when metrics have their own address.
	MetricsHandler http.Handler
	Logger         *zap.Logger
	// Ready reports whether the service takes traffic (false while starting
	// and once shutdown has begun).
	Ready          func() bool
	Info           Info
	OpenAPI        []byte
	MaxBodyBytes   int64
	RequestTimeout time.Duration
}

// route is one entry of the route table.
type route struct {
	method, pattern string
	handler         http.Handler // nil: not served by this router
}

// routes is the whole route table: NewRouter serves exactly these routes,
// the HTTP metrics pre-create their series from them, and the OpenAPI test
// walks the router they build.
func routes(d Deps) []route {
	svc := d.Service
	return []route{
		{"GET", "/health", wrap(handleHealth(d.Health))},
		{"GET", "/health/live", wrap(handleLive())},
		{"GET", "/health/ready", wrap(handleReady(d.Ready))},
		{"GET", "/info", wrap(handleInfo(d.Info))},
		{"GET", "/metrics", d.MetricsHandler},
		{"GET", "/openapi.yaml", handleOpenAPI(d.OpenAPI)},

		{"POST", "/v1/movies", wrap(handleIngest(svc))},
		{"GET", "/v1/feature-groups", wrap(handleListGroups(svc))},
		{"GET", "/v1/feature-groups/{group}", wrap(handleGetGroup(svc))},
		{"PUT", "/v1/feature-groups/{group}", wrap(handlePutGroup(svc))},
		{"DELETE", "/v1/feature-groups/{group}", wrap(handleDeleteGroup(svc))},
		{"GET", "/v1/feature-groups/{group}/entities/{id}", wrap(handleGetEntity(svc))},
		{"POST", "/v1/feature-groups/{group}/rows", wrap(handleWriteRows(svc))},
		{"POST", "/get-online-features", wrap(handleOnlineFeatures(svc))},
		{"POST", "/push", wrap(handlePush(svc))},
		{"POST", "/write-to-online-store", wrap(handleWriteToOnlineStore(svc))},
		{"GET", "/v1/stats", wrap(handleStats(svc))},
		{"GET", "/v1/recompute", wrap(handleRecomputeStatus(svc))},
		{"POST", "/v1/recompute", wrap(handleRecompute(svc))},
	}
}

// NewRouter builds the HTTP handler.
func NewRouter(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 32 << 20
	}
	var served []route
	var table [][2]string
	for _, rt := range routes(d) {
		if rt.handler != nil {
			served = append(served, rt)
			table = append(table, [2]string{rt.method, rt.pattern})
		}
	}
	r := chi.NewRouter()
	r.Use(withRequestID)
	if d.Metrics != nil {
		d.Metrics.InitRoutes(table)
		r.Use(d.Metrics.Middleware)
	}
	r.Use(accessLog(d.Logger))
	r.Use(limits(d.MaxBodyBytes, d.RequestTimeout))
	for _, rt := range served {
		r.Method(rt.method, rt.pattern, rt.handler)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, errNoRoute(r)) })
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(allowed(r, served, req.URL.Path), ", "))
		writeError(w, req, errMethod(req))
	})
	return r
}

// allowed lists the methods of the route table that mux routes for path,
// for the Allow header of a 405.
func allowed(mux chi.Routes, table []route, path string) []string {
	var out []string
	for _, rt := range table {
		if !slices.Contains(out, rt.method) && mux.Match(chi.NewRouteContext(), rt.method, path) {
			out = append(out, rt.method)
		}
	}
	slices.Sort(out)
	return out
}

// NewStartingRouter serves while the backends open: liveness, readiness
// (503), info and metrics; every other route answers 503 unavailable.
func NewStartingRouter(metricsHandler http.Handler, ready func() bool, info Info) http.Handler {
	r := chi.NewRouter()
	r.Use(withRequestID)
	r.Method("GET", "/health/live", wrap(handleLive()))
	r.Method("GET", "/health/ready", wrap(handleReady(ready)))
	r.Method("GET", "/info", wrap(handleInfo(info)))
	if metricsHandler != nil {
		r.Method("GET", "/metrics", metricsHandler)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, feature.Unavailable("the service is starting: storage is not open yet", nil))
	})
	return r
}
