package app

import (
	"flag"
	"fmt"
	"io"
	"maps"
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
	CacheTTL                 time.Duration
	CacheAbsentTTL           time.Duration
	LogLevel                 string
	LogDir                   string
	LogMaxSize               int64
	LogMaxFiles              int64
	LogMaxAge                time.Duration
	LogSlowRequest           time.Duration
	MaxBodyBytes             int64
	RequestTimeout           time.Duration
	ShutdownTimeout          time.Duration
	ShutdownDelay            time.Duration
	RecomputeDelay           time.Duration
	RefreshInterval          time.Duration
	HealthInterval           time.Duration
	StartupTimeout           time.Duration
	SecurityConfig
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
	secret(&cfg.PostgresReadURL, "postgres-read-url", "optional Postgres `URL` of a streaming replica of --postgres-url: as-of reads, scans and /v1/stats read from it; writes, latest reads and the registry stay on the primary")
	dur(&cfg.PostgresStatementTimeout, "postgres-statement-timeout", 0, "statement_timeout of every Postgres connection: the server cancels a longer statement (504 timeout); 0 keeps the server's setting")
	dur(&cfg.HistoryRetention, "history-retention", 0, "history retention of groups that set no history_retention_seconds: older superseded history is pruned and as-of reads before it answer 410 history_expired (0: keep all history)")
	dur(&cfg.HistoryPruneInterval, "history-prune-interval", time.Minute, "how often history past its retention is pruned (one replica at a time) and the stats counters folded")
	secret(&cfg.RedisURL, "redis-url", "Redis `URL`; when set, Redis is the online cache. single: redis://host:6379/0; cluster: redis://h1:p1?addr=h2:p2&addr=h3:p3 (seed nodes); sentinel: redis://s1:26379?addr=s2:26379&master_name=NAME; rediss:// for TLS")
	str(&cfg.RedisMode, "redis-mode", cache.RedisSingle, "how --redis-url is read: single (one server), cluster (Redis Cluster seed nodes) or sentinel (Sentinels and a master name)")
	str(&cfg.RedisKeyPrefix, "redis-key-prefix", "fs", "prefix of every Redis key the service writes")
	dur(&cfg.CacheTTL, "cache-ttl", time.Hour, "how long a cached row lives")
	dur(&cfg.CacheAbsentTTL, "cache-absent-ttl", time.Minute, "how long a cached 'entity not found' lives")
	str(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	str(&cfg.LogDir, "log-dir", "", "also write the JSON log lines to DIR/app/application.log, errors to DIR/error/error.log and slow requests to DIR/performance/performance.log (empty: stdout only)")
	num(&cfg.LogMaxSize, "log-max-size", 100<<20, "rotate a log file of --log-dir when a line would take it past this many bytes")
	num(&cfg.LogMaxFiles, "log-max-files", 60, "rotated files kept per log file of --log-dir at most (application.log.1 ... .N)")
	dur(&cfg.LogMaxAge, "log-max-age", 30*24*time.Hour, "remove rotated log files of --log-dir older than this; files also rotate daily (0: by size and count only)")
	dur(&cfg.LogSlowRequest, "log-slow-request", 500*time.Millisecond, "requests that take at least this long also go to DIR/performance/performance.log (0: none)")
	num(&cfg.MaxBodyBytes, "max-body-bytes", 32<<20, "largest accepted request body in bytes (larger: 413)")
	dur(&cfg.RequestTimeout, "request-timeout", 30*time.Second, "deadline of one request's work")
	dur(&cfg.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	dur(&cfg.ShutdownDelay, "shutdown-delay", 0, "how long to keep serving with readiness 503 after SIGTERM before draining (Kubernetes: a few seconds)")
	dur(&cfg.RecomputeDelay, "recompute-delay", 5*time.Second, "deprecated and ignored: corpus statistics are computed at read time")
	dur(&cfg.RefreshInterval, "refresh-interval", 15*time.Second, "how often the registry and storage statistics are re-read (registry changes are also pushed by Postgres)")
	dur(&cfg.HealthInterval, "health-interval", 10*time.Second, "how often dependencies are checked for the dependency metrics")
	dur(&cfg.StartupTimeout, "startup-timeout", 2*time.Minute, "how long to keep retrying the storage backends at start-up while they cannot be reached (a malformed URL or a read-only Postgres fails at once)")
	securityFlags(flags, &cfg.SecurityConfig)
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
	if c.LogMaxAge < 0 || c.LogSlowRequest < 0 {
		errs = append(errs, "log-max-age and log-slow-request must not be negative")
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
		"redis_url": maskURL(c.RedisURL), "redis_mode": c.RedisMode, "redis_key_prefix": c.RedisKeyPrefix,
		"cache_ttl": c.CacheTTL.String(), "cache_absent_ttl": c.CacheAbsentTTL.String(),
		"log_level": c.LogLevel, "max_body_bytes": c.MaxBodyBytes,
		"log_dir": c.LogDir, "log_max_size": c.LogMaxSize, "log_max_files": c.LogMaxFiles,
		"log_max_age": c.LogMaxAge.String(), "log_slow_request": c.LogSlowRequest.String(),
		"request_timeout": c.RequestTimeout.String(), "shutdown_timeout": c.ShutdownTimeout.String(),
		"shutdown_delay": c.ShutdownDelay.String(), "recompute_delay": c.RecomputeDelay.String(),
		"refresh_interval": c.RefreshInterval.String(), "health_interval": c.HealthInterval.String(),
		"startup_timeout": c.StartupTimeout.String(),
	}
	maps.Copy(m, c.SecurityConfig.masked())
	return m
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
