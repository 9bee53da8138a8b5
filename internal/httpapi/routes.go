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

	"github.com/featurestore/featurestore/internal/auth"
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

	// Auth identifies callers; nil turns authentication off (every route
	// is open). Leave it nil, not a nil *auth.Authenticator.
	Auth Authenticator
	// AuthObserver counts the decisions on protected routes (nil: none).
	AuthObserver AuthObserver
	// CORSAllowedOrigins are the web origins whose pages may call the API
	// (ParseOrigins); none by default.
	CORSAllowedOrigins []string
}

// route is one entry of the route table.
type route struct {
	method, pattern string
	// role is what a caller needs when authentication is on: auth.Anyone
	// for a public route.
	role    auth.Role
	handler http.Handler // nil: not served by this router
}

// routes is the whole route table: NewRouter serves exactly these routes,
// each behind guard with its role; the HTTP metrics pre-create their series
// from them, and the OpenAPI test walks the router they build and checks
// each operation's documented role.
func routes(d Deps) []route {
	svc := d.Service
	const anyone, reader, writer, admin = auth.Anyone, auth.Reader, auth.Writer, auth.Admin
	return []route{
		{"GET", "/health", anyone, wrap(handleHealth(d.Health))}, // details to a reader only
		{"GET", "/health/live", anyone, wrap(handleLive())},
		{"GET", "/health/ready", anyone, wrap(handleReady(d.Ready))},
		{"GET", "/info", reader, wrap(handleInfo(d.Info))},
		{"GET", "/metrics", anyone, d.MetricsHandler},
		{"GET", "/openapi.yaml", anyone, handleOpenAPI(d.OpenAPI)},

		{"POST", "/v1/movies", writer, wrap(handleIngest(svc))},
		{"GET", "/v1/feature-groups", reader, wrap(handleListGroups(svc))},
		{"GET", "/v1/feature-groups/{group}", reader, wrap(handleGetGroup(svc))},
		{"PUT", "/v1/feature-groups/{group}", admin, wrap(handlePutGroup(svc))},
		{"DELETE", "/v1/feature-groups/{group}", admin, wrap(handleDeleteGroup(svc))},
		{"GET", "/v1/feature-groups/{group}/entities/{id}", reader, wrap(handleGetEntity(svc))},
		{"POST", "/v1/feature-groups/{group}/rows", writer, wrap(handleWriteRows(svc))},
		{"POST", "/get-online-features", reader, wrap(handleOnlineFeatures(svc))},
		{"POST", "/get-historical-features", reader, handleHistorical(svc, d.Logger)},
		{"GET", "/v1/feature-services", reader, wrap(handleListFeatureServices(svc))},
		{"GET", "/v1/feature-services/{name}", reader, wrap(handleGetFeatureService(svc))},
		{"PUT", "/v1/feature-services/{name}", admin, wrap(handlePutFeatureService(svc))},
		{"DELETE", "/v1/feature-services/{name}", admin, wrap(handleDeleteFeatureService(svc))},
		{"POST", "/push", writer, wrap(handlePush(svc))},
		{"POST", "/write-to-online-store", writer, wrap(handleWriteToOnlineStore(svc))},
		{"GET", "/v1/stats", reader, wrap(handleStats(svc))},
		{"GET", "/v1/recompute", reader, wrap(handleRecomputeStatus(svc))},
		{"POST", "/v1/recompute", admin, wrap(handleRecompute(svc))},
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
	r.Use(authenticate(d.Auth))
	r.Use(accessLog(d.Logger))
	r.Use(securityHeaders, crossOrigin(d.CORSAllowedOrigins))
	r.Use(limits(d.MaxBodyBytes, d.RequestTimeout))
	for _, rt := range served {
		r.Method(rt.method, rt.pattern, guard(rt.role, d.AuthObserver, rt.handler))
	}
	// An unknown route is 401 before it is 404 to a caller without
	// credentials: the API's shape is for its callers.
	r.NotFound(requireRole(auth.Reader, d.AuthObserver, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, errNoRoute(r))
	})).ServeHTTP)
	r.MethodNotAllowed(requireRole(auth.Reader, d.AuthObserver, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(allowed(r, served, req.URL.Path), ", "))
		writeError(w, req, errMethod(req))
	})).ServeHTTP)
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
// (503), info (to a reader when authn is not nil) and metrics; every other
// route answers 503 unavailable.
func NewStartingRouter(metricsHandler http.Handler, ready func() bool, info Info, authn Authenticator) http.Handler {
	r := chi.NewRouter()
	r.Use(withRequestID, authenticate(authn), securityHeaders)
	r.Method("GET", "/health/live", wrap(handleLive()))
	r.Method("GET", "/health/ready", wrap(handleReady(ready)))
	r.Method("GET", "/info", requireRole(auth.Reader, nil, wrap(handleInfo(info))))
	if metricsHandler != nil {
		r.Method("GET", "/metrics", metricsHandler)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, feature.Unavailable("the service is starting: storage is not open yet", nil))
	})
	return r
}
