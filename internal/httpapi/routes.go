// Package httpapi is the feature store's REST API: the route table, the
// handlers, one encode/decode pair and the mapping of error codes to HTTP
// statuses.
package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
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
	// Health answers /health; give it a *health.Cache so that callers do
	// not each run the dependency checks.
	Health  HealthReporter
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

	// BodyBudget bounds the request body bytes held at once; nil: unbounded.
	BodyBudget *ByteBudget
	// RateLimiter limits each client's request rate (every route but the
	// probes and /metrics); nil: no rate limit.
	RateLimiter *RateLimiter
	// Concurrency sheds the API requests past its limit (not the probes,
	// /health or /metrics); nil: no limit.
	Concurrency *ConcurrencyLimiter
	// HealthDetails reports whether a caller may see /health in full (the
	// authentication layer: a reader); others get the overall status. nil:
	// everyone may.
	HealthDetails func(*http.Request) bool
	// Idempotency keeps the records of the Idempotency-Key header (the
	// system of record); nil: the header is ignored.
	Idempotency IdempotencyStore
	// IdempotencyTTL is how long a key's record answers retries; 24h when 0.
	IdempotencyTTL time.Duration
	// Now is the clock of the idempotency records; time.Now when nil.
	Now func() time.Time
}

// routeClass says which limits a route is under.
type routeClass int

const (
	classAPI   routeClass = iota // rate limit and concurrency limit
	classCheap                   // rate limit only: answered from memory
	classProbe                   // none: liveness, readiness and /metrics must answer under any load
)

// route is one entry of the route table.
type route struct {
	method, pattern string
	handler         http.Handler // nil: not served by this router
	class           routeClass
}

// routes is the whole route table: NewRouter serves exactly these routes,
// the HTTP metrics pre-create their series from them, and the OpenAPI test
// walks the router they build. Every GET route also answers HEAD.
func routes(d Deps) []route {
	svc := d.Service
	idem := idempotency{store: d.Idempotency, ttl: d.IdempotencyTTL, now: d.Now}
	return []route{
		{"GET", "/health", wrap(handleHealth(d.Health, d.HealthDetails)), classCheap},
		{"GET", "/health/live", wrap(handleLive()), classProbe},
		{"GET", "/health/ready", wrap(handleReady(d.Ready)), classProbe},
		{"GET", "/info", wrap(handleInfo(d.Info)), classCheap},
		{"GET", "/metrics", d.MetricsHandler, classProbe},
		{"GET", "/openapi.yaml", handleOpenAPI(d.OpenAPI), classCheap},

		{"POST", "/v1/movies", wrap(idem.wrap(ingestAnswer, handleIngest(svc))), classAPI},
		{"GET", "/v1/feature-groups", wrap(handleListGroups(svc)), classAPI},
		{"GET", "/v1/feature-groups/{group}", wrap(handleGetGroup(svc)), classAPI},
		{"PUT", "/v1/feature-groups/{group}", wrap(idem.wrap(putGroupAnswer, handlePutGroup(svc))), classAPI},
		{"DELETE", "/v1/feature-groups/{group}", wrap(idem.wrap(deleteGroupAnswer, handleDeleteGroup(svc))), classAPI},
		{"GET", "/v1/feature-groups/{group}/entities/{id}", wrap(handleGetEntity(svc)), classAPI},
		{"POST", "/v1/feature-groups/{group}/rows", wrap(idem.wrap(rowsAnswer, handleWriteRows(svc))), classAPI},
		{"POST", "/get-online-features", wrap(handleOnlineFeatures(svc)), classAPI},
		{"GET", "/v1/stats", wrap(handleStats(svc)), classAPI},
		{"GET", "/v1/recompute", wrap(handleRecomputeStatus(svc)), classAPI},
		{"POST", "/v1/recompute", wrap(handleRecompute(svc)), classAPI},
	}
}

// limited wraps a route's handler in the limits of its class; inside the
// route, so that a refused request is labelled with its route.
func limited(h http.Handler, class routeClass, d Deps) http.Handler {
	if class == classAPI && d.Concurrency != nil {
		h = d.Concurrency.Middleware(h)
	}
	if class != classProbe && d.RateLimiter != nil {
		h = d.RateLimiter.Middleware(h)
	}
	return h
}

// NewRouter builds the HTTP handler.
func NewRouter(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 32 << 20
	}
	if d.IdempotencyTTL <= 0 {
		d.IdempotencyTTL = 24 * time.Hour
	}
	if d.Now == nil {
		d.Now = time.Now
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
	r.Use(limits(d.MaxBodyBytes, d.BodyBudget, d.RequestTimeout))
	r.Use(validInput)
	r.Use(middleware.GetHead)
	for _, rt := range served {
		r.Method(rt.method, rt.pattern, limited(rt.handler, rt.class, d))
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { writeError(w, r, errNoRoute(r)) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(allowed(r), ", "))
		writeError(w, r, errMethod(r))
	})
	return r
}

// allowed lists the methods the router serves on r's path, for the Allow
// header of a 405: HEAD wherever GET is.
func allowed(r *http.Request) []string {
	rctx := chi.RouteContext(r.Context())
	if rctx == nil || rctx.Routes == nil {
		return nil
	}
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := m
		if m == http.MethodHead {
			probe = http.MethodGet
		}
		if rctx.Routes.Match(chi.NewRouteContext(), probe, path) {
			out = append(out, m)
		}
	}
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
