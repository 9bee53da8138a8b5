// Package httpapi is the feature store's REST API: the route table, the
// handlers, one encode/decode pair and the mapping of error codes to HTTP
// statuses.
package httpapi

import (
	"context"
	"net/http"
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
	Store     string    `json:"store"`
	Cache     string    `json:"cache"`
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

// routes is the whole route table, also used to pre-create metric series.
var routes = [][2]string{
	{"GET", "/health"},
	{"GET", "/health/live"},
	{"GET", "/health/ready"},
	{"GET", "/info"},
	{"GET", "/metrics"},
	{"GET", "/openapi.yaml"},
	{"POST", "/v1/movies"},
	{"GET", "/v1/feature-groups"},
	{"GET", "/v1/feature-groups/{group}"},
	{"PUT", "/v1/feature-groups/{group}"},
	{"DELETE", "/v1/feature-groups/{group}"},
	{"GET", "/v1/feature-groups/{group}/entities/{id}"},
	{"POST", "/v1/feature-groups/{group}/rows"},
	{"POST", "/get-online-features"},
	{"GET", "/v1/stats"},
	{"GET", "/v1/recompute"},
	{"POST", "/v1/recompute"},
}

// NewRouter builds the HTTP handler.
func NewRouter(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 32 << 20
	}
	log, svc := d.Logger, d.Service
	r := chi.NewRouter()
	r.Use(withRequestID)
	if d.Metrics != nil {
		d.Metrics.InitRoutes(routes)
		r.Use(d.Metrics.Middleware)
	}
	r.Use(accessLog(log))
	r.Use(limits(d.MaxBodyBytes, d.RequestTimeout))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, log, errNoRoute(r)) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, log, errMethod(r)) })

	r.Method("GET", "/health", handleHealth(d.Health))
	r.Method("GET", "/health/live", handleLive())
	r.Method("GET", "/health/ready", handleReady(d.Ready))
	r.Method("GET", "/info", handleInfo(d.Info))
	if d.MetricsHandler != nil {
		r.Method("GET", "/metrics", d.MetricsHandler)
	}
	r.Method("GET", "/openapi.yaml", handleOpenAPI(d.OpenAPI))

	r.Method("POST", "/v1/movies", handleIngest(svc, log))
	r.Method("GET", "/v1/feature-groups", handleListGroups(svc))
	r.Method("GET", "/v1/feature-groups/{group}", handleGetGroup(svc, log))
	r.Method("PUT", "/v1/feature-groups/{group}", handlePutGroup(svc, log))
	r.Method("DELETE", "/v1/feature-groups/{group}", handleDeleteGroup(svc, log))
	r.Method("GET", "/v1/feature-groups/{group}/entities/{id}", handleGetEntity(svc, log))
	r.Method("POST", "/v1/feature-groups/{group}/rows", handleWriteRows(svc, log))
	r.Method("POST", "/get-online-features", handleOnlineFeatures(svc, log))
	r.Method("GET", "/v1/stats", handleStats(svc, log))
	r.Method("GET", "/v1/recompute", handleRecomputeStatus(svc))
	r.Method("POST", "/v1/recompute", handleRecompute(svc, log))
	return r
}

// NewStartingRouter serves while the backends open: liveness, readiness
// (503), info and metrics; every other route answers 503 unavailable.
func NewStartingRouter(metricsHandler http.Handler, ready func() bool, info Info) http.Handler {
	log := zap.NewNop()
	r := chi.NewRouter()
	r.Use(withRequestID)
	r.Method("GET", "/health/live", handleLive())
	r.Method("GET", "/health/ready", handleReady(ready))
	r.Method("GET", "/info", handleInfo(info))
	if metricsHandler != nil {
		r.Method("GET", "/metrics", metricsHandler)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, log, feature.Unavailable("the service is starting: storage is not open yet", nil))
	})
	return r
}
