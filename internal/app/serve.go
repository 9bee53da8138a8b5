package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/api"
	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/httpapi"
	"github.com/featurestore/featurestore/internal/metrics"
	"github.com/featurestore/featurestore/internal/service"
)

// defaultGCPercent is the Go GC target of a server whose environment sets
// no GOGC. The service allocates a few kilobytes per request over a live
// heap of a few tens of megabytes (the caches), so at Go's default of 100 it
// collects ten times a second under load, and marking its heap cost about
// 10-15% of the CPU of a cached read; at 200 that halves, for a heap that may
// grow to three times the live data instead of twice. GOMEMLIMIT, set in
// the compose file and the Kubernetes manifests, still bounds it.
const defaultGCPercent = 200

type gcSetting struct {
	inForce, previous int
	fromEnv           bool
}

// serveGCPercent applies defaultGCPercent unless GOGC is set in the
// process environment (which the Go runtime has applied already, and
// which wins); it reports the target in force and the one to restore.
func serveGCPercent() gcSetting {
	if _, set := os.LookupEnv("GOGC"); set {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return gcSetting{inForce: p, previous: p, fromEnv: true}
	}
	return gcSetting{inForce: defaultGCPercent, previous: debug.SetGCPercent(defaultGCPercent)}
}

// serve runs the HTTP service until ctx ends, then drains and closes.
//
// Order: listen first (a taken port fails at once), serve liveness,
// readiness (503) and metrics while the backends open, then swap in the full
// API and report ready. On shutdown: readiness goes 503, in-flight requests
// finish within the shutdown timeout, then background work stops and pools close.
func serve(ctx context.Context, cfg Config, stdout io.Writer, onListen func(string)) (err error) {
	start := time.Now()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.BuildInfo{Version: version, Revision: buildRevision(), GoVersion: runtime.Version()}, time.Now)
	log, closeLog, err := newServiceLogger(stdout, cfg, m)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil { // also in the log (and its files), not only on stderr
			log.Error("featurestore failed", zap.Error(err))
		}
		_ = log.Sync()
		_ = closeLog()
	}()
	gcPercent := serveGCPercent()
	defer debug.SetGCPercent(gcPercent.previous)
	log.Info("starting featurestore", zap.String("version", version), zap.String("revision", buildRevision()),
		zap.Any("config", cfg.masked()), zap.Int("gc_percent", gcPercent.inForce), zap.Bool("gc_percent_from_env", gcPercent.fromEnv))
	sec, err := openSecurity(cfg.SecurityConfig, metrics.NewSecurity(reg))
	if err != nil {
		return err
	}
	defer sec.watch(cfg.ReloadInterval, log)()

	rawLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	lim := newLimits(cfg, reg, log)
	// The listener wraps the TCP connections, under TLS when it is on (its
	// JSON rewriting of net/http's own errors then sees only TLS records
	// and leaves them be: those errors stay plain text over HTTPS).
	ln := httpapi.NewListener(rawLn, httpapi.ListenerOptions{MaxConnsPerClient: int(cfg.MaxConnsPerClient),
		Trusted: lim.trusted, Logger: log, Observer: lim.metrics})
	lim.listener = ln
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorLog: zap.NewStdLog(log)})
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on %s: %w", cfg.MetricsAddr, err)
		}
	}

	var ready atomic.Bool
	var handler atomic.Pointer[http.Handler]
	info := httpapi.Info{Version: version, Revision: buildRevision(), GoVersion: runtime.Version(), StartTime: start.UTC()}
	apiMetrics := metricsHandler
	if metricsLn != nil {
		apiMetrics = nil
	}
	starting := httpapi.NewStartingRouter(apiMetrics, ready.Load, info, sec.routerAuth())
	handler.Store(&starting)
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.RequestTimeout + 5*time.Second,
		WriteTimeout:      cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       cfg.IdleTimeout,
		// net/http allows 4096 bytes more than this for the request line
		// and headers; past it, 431 (in the JSON error shape: NewListener).
		MaxHeaderBytes: int(cfg.MaxHeaderBytes),
		ErrorLog:       zap.NewStdLog(log),
		TLSConfig:      sec.tlsConfig(),
	}
	servers := []*http.Server{srv}
	serveErr := make(chan error, 2)
	go func() { serveErr <- sec.serveOn(srv, ln) }()
	if metricsLn != nil {
		msrv := &http.Server{Handler: metricsHandler, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second, ErrorLog: zap.NewStdLog(log)}
		servers = append(servers, msrv)
		go func() { serveErr <- msrv.Serve(metricsLn) }()
		log.Info("serving metrics", zap.String("addr", metricsLn.Addr().String()))
	}
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.Bool("tls", sec.cert != nil),
		zap.Bool("auth", sec.authn != nil))
	sec.warnIfExposed(log, ln.Addr())
	if onListen != nil {
		onListen(ln.Addr().String())
	}
	shutdown := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		var errs []error
		for _, s := range servers {
			if err := s.Shutdown(sctx); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}

	b, err := openBackendsRetrying(ctx, cfg, log, m, openOptions{memoryCache: true})
	if err != nil {
		_ = shutdown()
		return err
	}
	defer func() {
		if err := b.Close(); err != nil {
			log.Warn("closing backends", zap.Error(err))
		}
	}()
	info.Store, info.Cache = b.storeName, b.cacheName

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	svc, err := service.New(ctx, b.store, b.serviceOptions(service.Options{
		Logger: log, Observer: m, RecomputeDelay: cfg.RecomputeDelay, RefreshInterval: cfg.RefreshInterval,
		HistoryRetention: cfg.HistoryRetention,
		Limits:           cfg.registryLimits(),
	}))
	if err != nil {
		_ = shutdown()
		return fmt.Errorf("start service: %w", err)
	}
	checker := &health.Cache{Checker: &health.Checker{Components: b.components, Timeout: 2 * time.Second, Observer: m},
		MaxAge: cfg.HealthMaxAge}
	retention := service.NewRetention(b.pruner, svc.Groups, service.RetentionOptions{
		Default: cfg.HistoryRetention, Interval: cfg.HistoryPruneInterval, Logger: log, Observer: m,
	})
	wg.Add(3)
	go func() { defer wg.Done(); svc.Run(bg) }()
	go func() { defer wg.Done(); checker.Run(bg, cfg.HealthInterval) }()
	go func() { defer wg.Done(); retention.Run(bg) }()
	idem, _ := b.sor.(httpapi.IdempotencyStore)
	if idem != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			httpapi.ExpireIdempotencyKeys(bg, idem, cfg.IdempotencyTTL, min(cfg.IdempotencyTTL/2, 10*time.Minute), func(n int64, err error) {
				if err != nil {
					log.Warn("expiring idempotency keys failed", zap.Error(err))
					return
				}
				log.Debug("expired idempotency keys", zap.Int64("deleted", n))
			})
		}()
	}

	full := httpapi.NewRouter(httpapi.Deps{
		Service: svc, Health: checker, Metrics: m, MetricsHandler: apiMetrics, Logger: log,
		Ready: ready.Load, Info: info, OpenAPI: api.OpenAPI,
		MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout,
		Auth: sec.routerAuth(), AuthObserver: sec.m, CORSAllowedOrigins: sec.origins,
		BodyBudget: lim.budget, RateLimiter: lim.rate, Concurrency: lim.concurrency,
		Idempotency: idem, IdempotencyTTL: cfg.IdempotencyTTL,
	})
	handler.Store(&full)
	ready.Store(true)
	m.SetReady(time.Since(start))
	log.Info("ready", zap.String("store", b.storeName), zap.String("cache", b.cacheName),
		zap.Duration("startup", time.Since(start)))

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		ready.Store(false)
		_ = shutdown()
		return fmt.Errorf("http server: %w", err)
	}
	ready.Store(false)
	log.Info("shutting down: readiness is now 503", zap.Duration("delay", cfg.ShutdownDelay))
	if cfg.ShutdownDelay > 0 {
		time.Sleep(cfg.ShutdownDelay) // let load balancers see the 503 before connections close
	}
	if err := shutdown(); err != nil {
		log.Warn("in-flight requests did not finish in time", zap.Error(err))
	}
	log.Info("stopped")
	return nil
}

// limits are the protective limits of the API server, built from the
// configuration, with their metrics.
type limits struct {
	trusted     []netip.Prefix
	budget      *httpapi.ByteBudget
	rate        *httpapi.RateLimiter
	concurrency *httpapi.ConcurrencyLimiter
	listener    *httpapi.Listener
	metrics     *metrics.Limits
}

func newLimits(cfg Config, reg prometheus.Registerer, log *zap.Logger) *limits {
	l := &limits{}
	l.trusted, _ = parsePrefixes(cfg.TrustedProxies) // validated with the configuration
	l.metrics = metrics.NewLimits(reg, cfg.limitValues(), metrics.LimitGauges{
		OpenConnections: func() float64 {
			if l.listener == nil {
				return 0
			}
			return float64(l.listener.Open())
		},
		RateLimitClients: func() float64 {
			if l.rate == nil {
				return 0
			}
			return float64(l.rate.Clients())
		},
		BodyBytesHeld: func() float64 { return float64(l.budget.InUse()) },
	})
	l.budget = httpapi.NewByteBudget(cfg.MaxBodyMemory, l.metrics)
	l.rate = httpapi.NewRateLimiter(httpapi.RateLimitOptions{Rate: float64(cfg.RateLimit), Burst: int(cfg.RateLimitBurst),
		Key: httpapi.CallerKey(httpapi.ClientKey(l.trusted)), Observer: l.metrics})
	l.concurrency = httpapi.NewConcurrencyLimiter(int(cfg.MaxConcurrent), cfg.QueueWait, l.metrics)
	if len(l.trusted) > 0 {
		log.Info("trusting X-Forwarded-For from these proxies", zap.String("trusted_proxies", cfg.TrustedProxies))
	}
	return l
}
