package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/metrics"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/store/sqlite"
)

// The metrics count the cache's mismatches with the system of record.
var _ cache.MismatchObserver = (*metrics.Metrics)(nil)

// backends are the opened storage and cache, with what observes them.
type backends struct {
	store      store.Store // what the service uses: the cache wrapper, or the system of record
	sor        store.Store // the system of record: history, feature services, the corpus aggregate and Idempotency-Key records are read from it
	storeName  string      // postgres or sqlite
	cacheName  string      // redis, memory or none
	components []health.Component
	closers    []func() error
	// pruner is the system of record itself, for the retention loop (the
	// cache wrapper passes no pruning through).
	pruner service.HistoryPruner
}

func (b *backends) Close() error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		errs = append(errs, b.closers[i]())
	}
	return errors.Join(errs...)
}

// openOptions say how the backends are opened.
type openOptions struct {
	// memoryCache enables the in-process cache of the embedded mode and the
	// near cache in front of Redis; off for one-shot commands, whose cache
	// would die with them.
	memoryCache bool
	// directWriter is set for commands that write into the system of record
	// themselves (ingest, recompute, crawl --ingest): they must keep the
	// servers' cache coherent (see checkCacheCoherence).
	directWriter bool
}

// errCacheBypass refuses a direct write that would leave the servers'
// cache stale.
var errCacheBypass = errors.New("refusing to write around the servers' Redis cache")

// checkCacheCoherence refuses a command that would write into Postgres
// around the Redis cache its servers use (the system of record lists the
// caches that may still hold entries): without the cache configuration,
// or with another key prefix, the servers would serve the rows it
// replaces until they expire. With the same cache, the command writes
// through it like a server.
func checkCacheCoherence(ctx context.Context, sor store.Store, cfg Config) error {
	pg, ok := sor.(*postgres.Store)
	if !ok {
		return nil // the embedded store: its directory lock keeps a running server out
	}
	active, err := pg.ActiveCaches(ctx)
	if err != nil {
		return err
	}
	switch {
	case len(active) == 0:
		return nil
	case cfg.RedisURL == "":
		return fmt.Errorf("%w: servers on this database cache rows in Redis (key prefix %s), which a write without that cache would leave stale; "+
			"give the servers' --redis-url, --redis-mode and --redis-key-prefix (or FEATURESTORE_REDIS_*), or send the data through a server with --api URL",
			errCacheBypass, strings.Join(active, ", "))
	case !slices.Contains(active, cfg.RedisKeyPrefix):
		return fmt.Errorf("%w: servers on this database cache rows under Redis key prefix %s, not %s; give the servers' --redis-key-prefix",
			errCacheBypass, strings.Join(active, ", "), cfg.RedisKeyPrefix)
	}
	return nil
}

// checkSameRedis refuses a direct writer whose --redis-url reaches other
// Redis masters than those the servers' cache (of the same key prefix) was
// recorded on in the system of record: its write-through would miss the
// servers' cache. A Redis it cannot reach is no reason to refuse: the
// writes it cannot write through make it bump the cache generation when it
// exits, which has the servers clear the cache.
func checkSameRedis(ctx context.Context, sor store.Store, rc *cache.Redis, cfg Config) error {
	pg, ok := sor.(*postgres.Store)
	if !ok {
		return nil
	}
	active, err := pg.ActiveCaches(ctx)
	if err != nil || !slices.Contains(active, cfg.RedisKeyPrefix) {
		return err
	}
	_, recorded, err := pg.CacheEpoch(ctx, cfg.RedisKeyPrefix, cfg.CacheTTL)
	if err != nil || recorded == "" {
		return err
	}
	current, err := rc.Identity(ctx)
	if err != nil {
		return nil // unreachable, which the generation covers: see above
	}
	if current == recorded {
		return nil
	}
	return fmt.Errorf("%w: --redis-url reaches Redis masters %s, but the servers' cache (key prefix %s) is recorded on %s; "+
		"give the servers' --redis-url and --redis-mode (if Redis was just restarted or failed over, the servers record it within a second: try again)",
		errCacheBypass, current, cfg.RedisKeyPrefix, recorded)
}

// openBackends opens the system of record (Postgres or the embedded store)
// and the online cache, and registers their pool collectors on reg (nil: none).
func openBackends(ctx context.Context, cfg Config, log *zap.Logger, m *metrics.Metrics, opts openOptions) (_ *backends, err error) {
	b := &backends{}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	var sor store.Store
	sorCloser := -1 // index of the system of record's Close in b.closers
	if cfg.PostgresURL != "" {
		pg, err := postgres.Open(ctx, cfg.PostgresURL, postgres.Options{
			MaxConns: int32(cfg.PostgresMaxConns), Logger: log, // #nosec G115 -- validate bounds postgres-max-conns to 1..1000
			ReadURL: cfg.PostgresReadURL, StatementTimeout: cfg.PostgresStatementTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		b.closers = append(b.closers, pg.Close)
		sorCloser = len(b.closers) - 1
		b.storeName, sor, b.pruner = "postgres", pg, pg
		b.components = append(b.components, health.Component{Name: "postgres", Critical: true, Checker: pg})
		if rh := pg.ReadHealth(); rh != nil {
			// Not critical: without the replica, latest reads and writes
			// still work; as-of reads, training sets, scans and stats answer 503.
			b.components = append(b.components, health.Component{Name: "postgres_replica", Critical: false, Checker: rh})
		}
		if m != nil {
			_ = m.Register(metrics.NewPgxPoolCollector(pg.Pool().Stat))
		}
	} else {
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		b.closers = append(b.closers, unlock)
		lite, err := sqlite.Open(ctx, cfg.DataDir, sqlite.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open embedded store in %s: %w", cfg.DataDir, err)
		}
		b.closers = append(b.closers, lite.Close)
		sorCloser = len(b.closers) - 1
		b.storeName, sor, b.pruner = "sqlite", lite, lite
		b.components = append(b.components, health.Component{Name: "sqlite", Critical: true, Checker: lite})
	}

	b.sor = sor
	if opts.directWriter {
		if err := checkCacheCoherence(ctx, sor, cfg); err != nil {
			return nil, err
		}
	}
	var (
		c           cache.Cache
		cacheHealth store.HealthChecker
	)
	switch {
	case cfg.RedisURL != "":
		routeRedisLogs(log)
		rc, err := openRedis(cfg, opts)
		if err != nil {
			return nil, err
		}
		b.closers = append(b.closers, rc.Close)
		if opts.directWriter {
			if err := checkSameRedis(ctx, sor, rc, cfg); err != nil {
				return nil, err
			}
		}
		c, b.cacheName, cacheHealth = rc, "redis", rc
		if m != nil {
			registerRedisCollectors(m, rc)
		}
	case cfg.PostgresURL == "" && opts.memoryCache:
		mc := cache.NewMemory(cache.MemoryOptions{TTL: cfg.CacheTTL, AbsenceTTL: cfg.CacheAbsentTTL})
		c, b.cacheName, cacheHealth = mc, "memory", mc
	default:
		// Postgres without Redis: an in-process cache would go stale across
		// replicas, so reads go to Postgres.
		b.store, b.cacheName = sor, "none"
		return b, nil
	}
	var obs cache.Observer
	if m != nil {
		obs = m
	}
	wrapped := cache.Wrap(sor, c, cache.WrapOptions{Observer: obs, Logger: log})
	// The wrapper closes the store it wraps (after stopping its repair
	// loop), so the store is not closed twice; closers run last-first, so
	// the Redis client closes after the wrapper.
	b.closers[sorCloser] = func() error { return nil }
	b.closers = append(b.closers, wrapped.Close)
	b.components = append(b.components, health.Component{Name: b.cacheName, Critical: false, Checker: wrapped.HealthOf(cacheHealth)})
	if m != nil {
		m.RegisterCacheState(wrapped.Dirty, wrapped.Trusted)
	}
	b.store = wrapped
	return b, nil
}

// serviceOptions completes o with what the service reads from the system of
// record itself, past the cache: training-set reads, the feature-service
// registry, the movie corpus aggregate and, with Postgres, the registry
// change notifications.
func (b *backends) serviceOptions(o service.Options) service.Options {
	o.History, _ = b.sor.(service.HistoryReader)
	o.FeatureServices, _ = b.sor.(service.ServiceRegistry)
	if c, ok := b.sor.(service.CorpusReader); ok {
		o.Corpus = c
	}
	if l, ok := b.sor.(service.RegistryListener); ok {
		o.Registry = l
	}
	return o
}

// openBackendsRetrying retries openBackends while it fails like an outage
// (transient: feature.CodeUnavailable or CodeTimeout) until it succeeds, ctx
// ends or the start-up timeout passes, so a service started before its
// database comes up waits for it instead of crash-looping. Any other failure
// is permanent and returned at once: a malformed URL, a read-only database,
// a data directory in use.
func openBackendsRetrying(ctx context.Context, cfg Config, log *zap.Logger, m *metrics.Metrics, opts openOptions) (*backends, error) {
	deadline := time.Now().Add(cfg.StartupTimeout)
	wait := 250 * time.Millisecond
	for {
		b, err := openBackends(ctx, cfg, log, m, opts)
		if err == nil {
			return b, nil
		}
		if !transient(err) || time.Now().Add(wait).After(deadline) {
			return nil, err
		}
		log.Warn("storage not available yet; retrying", zap.Error(err), zap.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// transient reports whether a failure to open the backends is an outage
// that waiting may end.
func transient(err error) bool {
	switch feature.ErrorCode(err) {
	case feature.CodeUnavailable, feature.CodeTimeout:
		return true
	}
	return false
}

var errDataDirLocked = errors.New("data directory is in use by another featurestore process")

// lockDataDir takes an exclusive lock on the embedded store's directory so
// that two processes never share it (the second one's in-process cache would
// serve stale values).
func lockDataDir(dir string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600) // #nosec G304 -- the lock file in the configured data directory
	if err != nil {
		return nil, fmt.Errorf("open data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%w: %s (is the server running? send the file to it with `featurestore ingest --api http://localhost:8001 FILE`)", errDataDirLocked, dir)
	}
	return f.Close, nil
}

// openRedis opens the Redis cache of cfg, with a near cache for a server
// (one-shot commands write, they do not read hot keys).
func openRedis(cfg Config, opts openOptions) (*cache.Redis, error) {
	near := 0
	if opts.memoryCache {
		near = int(cfg.RedisNearCache)
	}
	rc, err := cache.OpenRedis(cfg.RedisMode, cfg.RedisURL, cache.RedisOptions{Prefix: cfg.RedisKeyPrefix, TTL: cfg.CacheTTL, AbsenceTTL: cfg.CacheAbsentTTL,
		ConfigureTLS: func(c *tls.Config) error { return redisTLS(c, cfg.SecurityConfig) }, NearCache: near})
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	return rc, nil
}

// registerRedisCollectors exposes the Redis client's pool and, while it is
// on, the near cache.
func registerRedisCollectors(m *metrics.Metrics, rc *cache.Redis) {
	_ = m.Register(metrics.NewRedisPoolCollector(rc.PoolStats))
	if _, on := rc.NearStats(); !on {
		return
	}
	_ = m.Register(metrics.NewNearCacheCollector(func() metrics.NearCacheStats {
		s, _ := rc.NearStats()
		return metrics.NearCacheStats{Hits: s.Hits, Misses: s.Misses, Stored: s.Stored, Refused: s.Refused,
			Connects: s.Connects, Entries: s.Entries, Usable: s.Usable}
	}))
}
