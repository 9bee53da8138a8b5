// Package httpapi is the feature store's REST API: the route table, the
// handlers, one encode/decode pair and the mapping of error codes to HTTP
// statuses.
package httpapi

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/feature"
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

	// Auth identifies callers; nil turns authentication off (every route
	// is open). Leave it nil, not a nil *auth.Authenticator.
	Auth Authenticator
	// AuthObserver counts the decisions on protected routes (nil: none).
	AuthObserver AuthObserver
	// CORSAllowedOrigins are the web origins whose pages may call the API
	// (ParseOrigins); none by default.
	CORSAllowedOrigins []string
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
	// role is what a caller needs when authentication is on: auth.Anyone
	// for a public route.
	role    auth.Role
	handler http.Handler // nil: not served by this router
	class   routeClass
}

// routes is the whole route table: NewRouter serves exactly these routes,
// each behind guard with its role (HEAD on a GET route too: it is served
// by the GET route's handler); the HTTP metrics pre-create their series
// from them, and the OpenAPI test walks the router they build and checks
// each operation's documented role.
func routes(d Deps) []route {
	svc := d.Service
	idem := idempotency{store: d.Idempotency, ttl: d.IdempotencyTTL, now: d.Now}
	const anyone, reader, writer, admin = auth.Anyone, auth.Reader, auth.Writer, auth.Admin
	const api, cheap, probe = classAPI, classCheap, classProbe
	return []route{
		{"GET", "/health", anyone, wrap(handleHealth(d.Health, d.HealthDetails)), cheap}, // details per HealthDetails
		{"GET", "/health/live", anyone, wrap(handleLive()), probe},
		{"GET", "/health/ready", anyone, wrap(handleReady(d.Ready)), probe},
		{"GET", "/info", reader, wrap(handleInfo(d.Info)), cheap},
		{"GET", "/metrics", anyone, d.MetricsHandler, probe},
		{"GET", "/openapi.yaml", anyone, handleOpenAPI(d.OpenAPI), cheap},

		{"POST", "/v1/movies", writer, wrap(idem.wrap(ingestAnswer, handleIngest(svc))), api},
		{"GET", "/v1/feature-groups", reader, wrap(handleListGroups(svc)), api},
		{"GET", "/v1/feature-groups/{group}", reader, wrap(handleGetGroup(svc)), api},
		{"PUT", "/v1/feature-groups/{group}", admin, wrap(idem.wrap(putGroupAnswer, handlePutGroup(svc))), api},
		{"DELETE", "/v1/feature-groups/{group}", admin, wrap(idem.wrap(noContentAnswer, handleDeleteGroup(svc))), api},
		{"GET", "/v1/feature-groups/{group}/entities/{id}", reader, wrap(handleGetEntity(svc)), api},
		{"POST", "/v1/feature-groups/{group}/rows", writer, wrap(idem.wrap(rowsAnswer, handleWriteRows(svc))), api},
		{"POST", "/get-online-features", reader, wrap(handleOnlineFeatures(svc)), api},
		{"POST", "/get-historical-features", reader, handleHistorical(svc, d.Logger), api},
		{"GET", "/v1/feature-services", reader, wrap(handleListFeatureServices(svc)), api},
		{"GET", "/v1/feature-services/{name}", reader, wrap(handleGetFeatureService(svc)), api},
		{"PUT", "/v1/feature-services/{name}", admin, wrap(idem.wrap(putFeatureServiceAnswer, handlePutFeatureService(svc))), api},
		{"DELETE", "/v1/feature-services/{name}", admin, wrap(idem.wrap(noContentAnswer, handleDeleteFeatureService(svc))), api},
		{"POST", "/push", writer, wrap(idem.wrap(rowsAnswer, handlePush(svc))), api},
		{"POST", "/write-to-online-store", writer, wrap(idem.wrap(rowsAnswer, handleWriteToOnlineStore(svc))), api},
		{"GET", "/v1/stats", reader, wrap(handleStats(svc)), api},
		{"GET", "/v1/recompute", reader, wrap(handleRecomputeStatus(svc)), api},
		{"POST", "/v1/recompute", admin, wrap(handleRecompute(svc)), api},
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
	if d.HealthDetails == nil {
		d.HealthDetails = mayRead // the details to a reader when authentication is on
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
	r.Use(limits(d.MaxBodyBytes, d.BodyBudget, d.RequestTimeout))
	r.Use(validInput)
	r.Use(middleware.GetHead)
	for _, rt := range served {
		// The limits outside guard: a client guessing tokens is rate
		// limited too.
		r.Method(rt.method, rt.pattern, limited(guard(rt.role, d.AuthObserver, rt.handler), rt.class, d))
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
// for the Allow header of a 405: HEAD wherever GET is.
func allowed(mux chi.Routes, table []route, path string) []string {
	var out []string
	for _, rt := range table {
		if !slices.Contains(out, rt.method) && mux.Match(chi.NewRouteContext(), rt.method, path) {
			out = append(out, rt.method)
		}
	}
	if slices.Contains(out, http.MethodGet) {
		out = append(out, http.MethodHead)
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
