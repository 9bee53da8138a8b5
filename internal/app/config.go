package app

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/envflag"
	"github.com/featurestore/featurestore/internal/feature"
)

// Config is the whole configuration, parsed once from flags and the
// environment (flags win). Every field has a flag and a FEATURESTORE_* variable.
type Config struct {
	Addr             string
	MetricsAddr      string
	DataDir          string
	PostgresURL      string
	PostgresMaxConns int64
	PostgresReadURL  string
	// PostgresStatementTimeout is the statement_timeout of every Postgres
	// connection; 0 leaves the server's.
	PostgresStatementTimeout time.Duration
	HistoryRetention         time.Duration
	HistoryPruneInterval     time.Duration
	RedisURL                 string
	RedisMode                string
	RedisKeyPrefix           string
	RedisNearCache           int64
	CacheTTL                 time.Duration
	CacheAbsentTTL           time.Duration
	LogLevel                 string
	LogDir                   string
	LogMaxSize               int64
	LogMaxFiles              int64
	LogMaxAge                time.Duration
	LogSlowRequest           time.Duration
	LogFlushInterval         time.Duration
	MaxBodyBytes             int64
	RequestTimeout           time.Duration
	ShutdownTimeout          time.Duration
	ShutdownDelay            time.Duration
	RecomputeDelay           time.Duration
	RefreshInterval          time.Duration
	HealthInterval           time.Duration
	StartupTimeout           time.Duration
	SecurityConfig

	// Limits that keep the service alive under hostile or excessive load
	// (docs/security.md "Limits").
	MaxHeaderBytes      int64
	ReadHeaderTimeout   time.Duration
	IdleTimeout         time.Duration
	MaxConnsPerClient   int64
	TrustedProxies      string
	RateLimit           int64
	RateLimitBurst      int64
	MaxConcurrent       int64
	QueueWait           time.Duration
	MaxBodyMemory       int64
	MaxGroups           int64
	MaxFeaturesPerGroup int64
	MaxTags             int64
	MaxTagBytes         int64
	MaxDescriptionBytes int64
	IdempotencyTTL      time.Duration
	HealthMaxAge        time.Duration
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "featurestore")
	}
	return "featurestore-data"
}

// flagSet declares every flag on a new flag set with its default taken
// from the environment through getenv; flags.Err reports malformed
// environment values.
func flagSet(name string, cfg *Config, getenv func(string) string, out io.Writer) (*flag.FlagSet, *envflag.Set) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	flags := envflag.New(fs, getenv)
	str, dur, num := flags.String, flags.Duration, flags.Int64
	// URLs with credentials: --help shows them masked.
	secret := func(p *string, name, usage string) { flags.Secret(p, name, usage, maskURL) }
	str(&cfg.Addr, "addr", ":8001", "HTTP listen address for the API, /health and /metrics")
	str(&cfg.MetricsAddr, "metrics-addr", "", "optional separate listen address for /metrics (empty: served on --addr)")
	str(&cfg.DataDir, "data-dir", defaultDataDir(), "data directory of the embedded store, used when no Postgres URL is set")
	secret(&cfg.PostgresURL, "postgres-url", "Postgres `URL`; when set, Postgres is the system of record instead of the embedded store")
	num(&cfg.PostgresMaxConns, "postgres-max-conns", 16, "maximum Postgres connections in the pool (and in the read pool, with --postgres-read-url)")
	secret(&cfg.PostgresReadURL, "postgres-read-url", "optional Postgres `URL` of a streaming replica of --postgres-url: as-of reads, training sets, scans and /v1/stats read from it; writes, latest reads and the registry stay on the primary")
	dur(&cfg.PostgresStatementTimeout, "postgres-statement-timeout", 0, "statement_timeout of every Postgres connection: the server cancels a longer statement (504 timeout); 0 keeps the server's setting")
	dur(&cfg.HistoryRetention, "history-retention", 0, "history retention of groups that set no history_retention_seconds: older superseded history is pruned and as-of reads before it answer 410 history_expired (0: keep all history)")
	dur(&cfg.HistoryPruneInterval, "history-prune-interval", time.Minute, "how often history past its retention is pruned (one replica at a time) and the stats counters folded")
	secret(&cfg.RedisURL, "redis-url", "Redis `URL`; when set, Redis is the online cache. single: redis://host:6379/0; cluster: redis://h1:p1?addr=h2:p2&addr=h3:p3 (seed nodes); sentinel: redis://s1:26379?addr=s2:26379&master_name=NAME; rediss:// for TLS")
	str(&cfg.RedisMode, "redis-mode", cache.RedisSingle, "how --redis-url is read: single (one server), cluster (Redis Cluster seed nodes) or sentinel (Sentinels and a master name)")
	str(&cfg.RedisKeyPrefix, "redis-key-prefix", "fs", "prefix of every Redis key the service writes")
	num(&cfg.RedisNearCache, "redis-near-cache-entries", 0, "entries of the near cache, the server's in-process copy of Redis values that Redis invalidates (client tracking) before any write is acknowledged; single mode only; 0 (the default): off")
	dur(&cfg.CacheTTL, "cache-ttl", time.Hour, "how long a cached row lives")
	dur(&cfg.CacheAbsentTTL, "cache-absent-ttl", time.Minute, "how long a cached 'entity not found' lives")
	str(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	str(&cfg.LogDir, "log-dir", "", "also write the JSON log lines to DIR/app/application.log, errors to DIR/error/error.log and slow requests to DIR/performance/performance.log (empty: stdout only)")
	num(&cfg.LogMaxSize, "log-max-size", 100<<20, "rotate a log file of --log-dir when a line would take it past this many bytes")
	num(&cfg.LogMaxFiles, "log-max-files", 60, "rotated files kept per log file of --log-dir at most (application.log.1 ... .N)")
	dur(&cfg.LogMaxAge, "log-max-age", 30*24*time.Hour, "remove rotated log files of --log-dir older than this; files also rotate daily (0: by size and count only)")
	dur(&cfg.LogSlowRequest, "log-slow-request", 500*time.Millisecond, "requests that take at least this long also go to DIR/performance/performance.log (0: none)")
	dur(&cfg.LogFlushInterval, "log-flush-interval", 100*time.Millisecond, "info lines (the access log) are written in batches at least this often; warnings and errors at once; a killed process loses at most this long of info lines (0: every line at once)")
	num(&cfg.MaxBodyBytes, "max-body-bytes", 32<<20, "largest accepted request body in bytes (larger: 413)")
	dur(&cfg.RequestTimeout, "request-timeout", 30*time.Second, "deadline of one request's work")
	dur(&cfg.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	dur(&cfg.ShutdownDelay, "shutdown-delay", 0, "how long to keep serving with readiness 503 after SIGTERM before draining (Kubernetes: a few seconds)")
	dur(&cfg.RecomputeDelay, "recompute-delay", 5*time.Second, "deprecated and ignored: corpus statistics are computed at read time")
	dur(&cfg.RefreshInterval, "refresh-interval", 15*time.Second, "how often the registry and storage statistics are re-read (registry changes are also pushed by Postgres)")
	dur(&cfg.HealthInterval, "health-interval", 10*time.Second, "how often dependencies are checked for the dependency metrics")
	dur(&cfg.StartupTimeout, "startup-timeout", 2*time.Minute, "how long to keep retrying the storage backends at start-up while they cannot be reached (a malformed URL or a read-only Postgres fails at once)")
	securityFlags(flags, &cfg.SecurityConfig)

	// Limits (docs/security.md "Limits").
	num(&cfg.MaxHeaderBytes, "max-header-bytes", 32<<10, "largest accepted request line and headers in bytes (larger: 431)")
	dur(&cfg.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "time a client has to send its request line and headers (defeats slowloris)")
	dur(&cfg.IdleTimeout, "idle-timeout", 30*time.Second, "how long an idle keep-alive connection stays open")
	num(&cfg.MaxConnsPerClient, "max-conns-per-client", 256, "open connections one client address (IPv6: a /64) may hold; more are answered 429 and closed (0: no limit)")
	str(&cfg.TrustedProxies, "trusted-proxies", "", "comma-separated CIDRs of load balancers: their X-Forwarded-For names the client for rate limits, and they are exempt from --max-conns-per-client")
	num(&cfg.RateLimit, "rate-limit", 1000, "requests per second one client may make on average (429 past it; 0: no limit)")
	num(&cfg.RateLimitBurst, "rate-limit-burst", 2000, "requests one client may make at once above --rate-limit")
	num(&cfg.MaxConcurrent, "max-concurrent-requests", 64, "API requests served at once; more wait --queue-wait for a slot, then are shed with 503 overloaded (0: no limit)")
	dur(&cfg.QueueWait, "queue-wait", 50*time.Millisecond, "how long a request waits for a concurrency slot before it is shed")
	num(&cfg.MaxBodyMemory, "max-body-memory", 128<<20, "request body bytes held in memory at once across all requests; a body past it is shed with 503 overloaded")
	num(&cfg.MaxGroups, "max-groups", int64(feature.DefaultLimits.MaxGroups), "feature groups the registry holds, built-in ones included (422 limit_exceeded past it)")
	num(&cfg.MaxFeaturesPerGroup, "max-features-per-group", int64(feature.DefaultLimits.MaxFeatures), "features of one group, at most 512 (413 past it)")
	num(&cfg.MaxTags, "max-tags", int64(feature.DefaultLimits.MaxTags), "tags of one group, at most 64 (413 past it)")
	num(&cfg.MaxTagBytes, "max-tag-bytes", int64(feature.DefaultLimits.MaxTagBytes), "bytes of each tag key and value (413 past it)")
	num(&cfg.MaxDescriptionBytes, "max-description-bytes", int64(feature.DefaultLimits.MaxDescriptionBytes), "bytes of a group's or a feature's description (413 past it)")
	dur(&cfg.IdempotencyTTL, "idempotency-ttl", 24*time.Hour, "how long an Idempotency-Key's recorded answer replays to retries")
	dur(&cfg.HealthMaxAge, "health-max-age", 2*time.Second, "GET /health answers from a check at most this old: callers never trigger more checks than one per this interval")
	return fs, flags
}

// validate checks values flags cannot.
func (c *Config) validate() error {
	var errs []string
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, "log-level must be debug, info, warn or error")
	}
	if c.LogMaxSize < 1024 {
		errs = append(errs, "log-max-size must be at least 1024")
	}
	if c.LogMaxFiles < 0 || c.LogMaxFiles > 1000 {
		errs = append(errs, "log-max-files must be between 0 and 1000")
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"log-max-age", c.LogMaxAge}, {"log-slow-request", c.LogSlowRequest}, {"log-flush-interval", c.LogFlushInterval}} {
		if d.d < 0 {
			errs = append(errs, d.name+" must not be negative")
		}
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, "max-body-bytes must be at least 1024")
	}
	if c.PostgresMaxConns < 1 || c.PostgresMaxConns > 1000 {
		errs = append(errs, "postgres-max-conns must be between 1 and 1000")
	}
	if c.PostgresReadURL != "" && c.PostgresURL == "" {
		errs = append(errs, "postgres-read-url needs postgres-url (the primary)")
	}
	if c.PostgresStatementTimeout < 0 {
		errs = append(errs, "postgres-statement-timeout must be >= 0")
	}
	if c.HistoryRetention < 0 || c.HistoryRetention > feature.MaxHistoryRetention {
		errs = append(errs, "history-retention must be between 0 (keep all) and 100 years")
	}
	if c.HistoryPruneInterval < time.Second {
		errs = append(errs, "history-prune-interval must be at least 1s")
	}
	errs = append(errs, c.limitProblems()...)
	errs = append(errs, c.urlProblems()...)
	errs = append(errs, c.SecurityConfig.problems(c.RedisURL)...)
	if c.PostgresURL == "" && c.DataDir == "" {
		errs = append(errs, "data-dir is required when no postgres-url is set")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// limitProblems checks the limits' ranges.
func (c *Config) limitProblems() []string {
	var errs []string
	check := func(ok bool, msg string) {
		if !ok {
			errs = append(errs, msg)
		}
	}
	check(c.MaxHeaderBytes >= 4096 && c.MaxHeaderBytes <= 1<<20, "max-header-bytes must be between 4096 and 1048576")
	check(c.ReadHeaderTimeout > 0, "read-header-timeout must be positive")
	check(c.IdleTimeout > 0, "idle-timeout must be positive")
	check(c.MaxConnsPerClient >= 0, "max-conns-per-client must be >= 0")
	check(c.RedisNearCache >= 0 && c.RedisNearCache <= 100_000_000, "redis-near-cache-entries must be between 0 and 100000000")
	check(c.RateLimit >= 0, "rate-limit must be >= 0")
	check(c.RateLimit == 0 || c.RateLimitBurst >= 1, "rate-limit-burst must be >= 1")
	check(c.MaxConcurrent >= 0, "max-concurrent-requests must be >= 0")
	check(c.QueueWait >= 0, "queue-wait must be >= 0")
	check(c.MaxBodyMemory >= c.MaxBodyBytes, "max-body-memory must be at least max-body-bytes")
	check(c.MaxGroups >= 6, "max-groups must be at least 6 (the built-in groups)")
	check(c.MaxFeaturesPerGroup >= 1 && c.MaxFeaturesPerGroup <= feature.MaxFeaturesPerGroup, "max-features-per-group must be between 1 and 512")
	check(c.MaxTags >= 0 && c.MaxTags <= feature.MaxTagsPerGroup, "max-tags must be between 0 and 64")
	check(c.MaxTagBytes >= 1, "max-tag-bytes must be >= 1")
	check(c.MaxDescriptionBytes >= 1, "max-description-bytes must be >= 1")
	check(c.IdempotencyTTL >= time.Minute, "idempotency-ttl must be at least 1m")
	check(c.HealthMaxAge >= 100*time.Millisecond, "health-max-age must be at least 100ms")
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, "trusted-proxies: "+err.Error())
	}
	return errs
}

// parsePrefixes parses a comma-separated list of CIDRs (a bare address is
// a /32 or /128).
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR or an address", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// registryLimits are the registry limits of the configuration.
func (c Config) registryLimits() feature.Limits {
	return feature.Limits{MaxGroups: int(c.MaxGroups), MaxFeatures: int(c.MaxFeaturesPerGroup), MaxTags: int(c.MaxTags),
		MaxTagBytes: int(c.MaxTagBytes), MaxDescriptionBytes: int(c.MaxDescriptionBytes)}
}

// urlProblems parses the Postgres and Redis URLs as the backends will, so a
// malformed one stops the program at once instead of being retried for the
// start-up timeout like an outage. The problems quote the URLs masked.
func (c *Config) urlProblems() []string {
	var errs []string
	if c.PostgresURL != "" {
		if _, err := pgxpool.ParseConfig(c.PostgresURL); err != nil {
			errs = append(errs, "postgres-url is not a valid Postgres URL: "+maskIn(err.Error(), c.PostgresURL))
		}
	}
	if c.PostgresReadURL != "" {
		if _, err := pgxpool.ParseConfig(c.PostgresReadURL); err != nil {
			errs = append(errs, "postgres-read-url is not a valid Postgres URL: "+maskIn(err.Error(), c.PostgresReadURL))
		}
	}
	if !slices.Contains(cache.RedisModes, c.RedisMode) {
		errs = append(errs, "redis-mode must be single, cluster or sentinel")
	} else if c.RedisURL != "" {
		if err := cache.ValidateRedisURL(c.RedisMode, c.RedisURL); err != nil {
			errs = append(errs, "redis-url is not a valid Redis URL (redis-mode "+c.RedisMode+"): "+maskIn(err.Error(), c.RedisURL))
		}
	}
	return errs
}

// maskIn replaces every occurrence of the secret-bearing URL raw in msg by
// its masked form.
func maskIn(msg, raw string) string {
	return strings.ReplaceAll(msg, raw, maskURL(raw))
}

// masked returns the configuration with every secret masked, for logging.
// The secrets are the flags declared with envflag's Secret: their values
// pass through maskURL here and in --help.
func (c Config) masked() map[string]any {
	m := map[string]any{
		"addr": c.Addr, "metrics_addr": c.MetricsAddr, "data_dir": c.DataDir,
		"postgres_url": maskURL(c.PostgresURL), "postgres_max_conns": c.PostgresMaxConns,
		"postgres_read_url": maskURL(c.PostgresReadURL), "postgres_statement_timeout": c.PostgresStatementTimeout.String(),
		"history_retention": c.HistoryRetention.String(), "history_prune_interval": c.HistoryPruneInterval.String(),
		"redis_url": maskURL(c.RedisURL), "redis_mode": c.RedisMode, "redis_key_prefix": c.RedisKeyPrefix, "redis_near_cache_entries": c.RedisNearCache,
		"cache_ttl": c.CacheTTL.String(), "cache_absent_ttl": c.CacheAbsentTTL.String(),
		"log_level": c.LogLevel, "max_body_bytes": c.MaxBodyBytes,
		"log_dir": c.LogDir, "log_max_size": c.LogMaxSize, "log_max_files": c.LogMaxFiles,
		"log_max_age": c.LogMaxAge.String(), "log_slow_request": c.LogSlowRequest.String(), "log_flush_interval": c.LogFlushInterval.String(),
		"request_timeout": c.RequestTimeout.String(), "shutdown_timeout": c.ShutdownTimeout.String(),
		"shutdown_delay": c.ShutdownDelay.String(), "recompute_delay": c.RecomputeDelay.String(),
		"refresh_interval": c.RefreshInterval.String(), "health_interval": c.HealthInterval.String(),
		"startup_timeout":  c.StartupTimeout.String(),
		"max_header_bytes": c.MaxHeaderBytes, "read_header_timeout": c.ReadHeaderTimeout.String(),
		"idle_timeout": c.IdleTimeout.String(), "max_conns_per_client": c.MaxConnsPerClient,
		"trusted_proxies": c.TrustedProxies, "rate_limit": c.RateLimit, "rate_limit_burst": c.RateLimitBurst,
		"max_concurrent_requests": c.MaxConcurrent, "queue_wait": c.QueueWait.String(),
		"max_body_memory": c.MaxBodyMemory, "max_groups": c.MaxGroups, "max_features_per_group": c.MaxFeaturesPerGroup,
		"max_tags": c.MaxTags, "max_tag_bytes": c.MaxTagBytes, "max_description_bytes": c.MaxDescriptionBytes,
		"idempotency_ttl": c.IdempotencyTTL.String(), "health_max_age": c.HealthMaxAge.String(),
	}
	maps.Copy(m, c.SecurityConfig.masked())
	return m
}

// limitValues are the configured limits for the feature_store_limit gauge,
// by metrics.LimitNames.
func (c Config) limitValues() map[string]float64 {
	return map[string]float64{
		"max_body_bytes": float64(c.MaxBodyBytes), "max_body_memory_bytes": float64(c.MaxBodyMemory),
		"max_header_bytes": float64(c.MaxHeaderBytes), "read_header_timeout_seconds": c.ReadHeaderTimeout.Seconds(),
		"idle_timeout_seconds": c.IdleTimeout.Seconds(), "request_timeout_seconds": c.RequestTimeout.Seconds(),
		"max_conns_per_client": float64(c.MaxConnsPerClient), "rate_limit_per_second": float64(c.RateLimit),
		"rate_limit_burst": float64(c.RateLimitBurst), "max_concurrent_requests": float64(c.MaxConcurrent),
		"queue_wait_seconds": c.QueueWait.Seconds(), "max_groups": float64(c.MaxGroups),
		"max_features_per_group": float64(c.MaxFeaturesPerGroup), "max_tags": float64(c.MaxTags),
		"max_tag_bytes": float64(c.MaxTagBytes), "max_description_bytes": float64(c.MaxDescriptionBytes),
		"idempotency_ttl_seconds": c.IdempotencyTTL.Seconds(), "health_max_age_seconds": c.HealthMaxAge.Seconds(),
	}
}

// Passwords in what is not a well-formed URL: a malformed URL's userinfo,
// and a key=value connection string's password.
var (
	userinfoPassword = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
	keywordPassword  = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
)

// maskURL hides the password of a URL (user:****@host) and any password
// query parameter; in a malformed URL or a key=value connection string
// (host=db password=...) it masks what looks like a password.
func maskURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		s = userinfoPassword.ReplaceAllString(s, "${1}****@")
		return keywordPassword.ReplaceAllString(s, "${1}****")
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "****")
		}
	}
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "****")
		}
	}
	u.RawQuery = q.Encode()
	return strings.ReplaceAll(u.String(), "%2A%2A%2A%2A", "****")
}
