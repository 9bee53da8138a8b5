package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/crawl"
	"github.com/featurestore/featurestore/internal/envflag"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/service"
)

const crawlUsage = `featurestore crawl: collect movies from the TMDB API v3.

Usage:
  featurestore crawl [flags]

Fetches the lists named by --endpoints (popular, top_rated, now_playing, and
discover over a release-date range) page by page, up to --max-pages of each
(TMDB serves at most 500), and with --details each new movie's /movie/{id}.
Every record is validated by the rules of ingest: an invalid one is reported
with the field at fault and never written; a movie already collected in the
crawl is skipped. Requests are rate limited (--rate, under TMDB's limit of
about 50 per second) and retried with exponential backoff on 429, 5xx and
network errors, honouring Retry-After. Each page is committed in --state-dir:
an interrupted crawl resumes where it stopped when run again with the same
flags.

The result goes to --out FILE, a crawler file {"collection_info": {...},
"movies": [...]} ({timestamp} in FILE becomes the crawl's start, e.g.
20250605_022412), and with --ingest into the feature store (directly, or
through a running service with --api); give either or both. With --every 24h
the crawl repeats, and --metrics-addr serves its metrics.

Credentials come from the environment only and are never logged:
  TMDB_BEARER_TOKEN   a TMDB v4 read access token (sent as Authorization: Bearer; preferred)
  TMDB_API_KEY        a TMDB v3 API key (sent as the api_key query parameter)

Examples:
  featurestore crawl --language ko-KR --region KR --max-pages 5 --out movies_{timestamp}.json
  featurestore crawl --endpoints discover --discover-from 2025-01-01 --discover-to 2025-06-30 \
    --discover-window-days 31 --ingest --api http://localhost:8001
  featurestore crawl --every 24h --ingest --postgres-url postgres://... --metrics-addr :9102

Every flag but the boolean ones can also be set through the environment
variable named after it.

Flags:
`

// crawlFlags are the crawl command's own flags.
type crawlFlags struct {
	tmdbURL            string
	endpoints          string
	language, region   string
	maxPages           int64
	discoverFrom       string
	discoverTo         string
	discoverWindow     int64
	discoverSort       string
	details            bool
	detailsConcurrency int64
	rate               int64
	maxAttempts        int64
	stateDir           string
	out                string
	ingest             bool
	api                string
	tokenFile          string
	token              string // resolved from tokenFile or the environment
	noRecompute        bool
	every              time.Duration
	retryFailedAfter   time.Duration
	metricsAddr        string
}

// crawlStoreFlags are the service's flags the crawl shares: where --ingest
// writes, and the log level.
var crawlStoreFlags = []string{"data-dir", "postgres-url", "postgres-max-conns", "redis-url", "redis-mode", "redis-key-prefix",
	"cache-ttl", "cache-absent-ttl", "log-level"}

// maxTMDBRate is TMDB's published limit (about 50 requests per second per IP).
const maxTMDBRate = 50

func declareCrawlFlags(fs *flag.FlagSet, getenv func(string) string, f *crawlFlags) *envflag.Set {
	flags := envflag.New(fs, getenv)
	str, num, dur := flags.String, flags.Int64, flags.Duration
	str(&f.tmdbURL, "tmdb-url", crawl.DefaultBaseURL, "base URL of the TMDB API v3")
	str(&f.endpoints, "endpoints", "popular,top_rated,now_playing", "comma-separated lists to crawl, in order: popular, top_rated, now_playing, discover")
	str(&f.language, "language", "en-US", "TMDB language of titles and overviews (ISO 639-1, optionally with a region: ko-KR)")
	str(&f.region, "region", "", "TMDB region (ISO 3166-1, e.g. KR) for release dates and now_playing (empty: TMDB's default)")
	num(&f.maxPages, "max-pages", crawl.MaxPage, "last page fetched of each list (TMDB serves at most 500)")
	str(&f.discoverFrom, "discover-from", "-30d", "discover: first release date, YYYY-MM-DD, today, or -Nd (N days before the crawl's start)")
	str(&f.discoverTo, "discover-to", "today", "discover: last release date, in the same forms")
	num(&f.discoverWindow, "discover-window-days", 0, "discover: crawl the date range in windows of this many days, each up to --max-pages (0: one window)")
	str(&f.discoverSort, "discover-sort", "popularity.desc", "discover: TMDB sort_by")
	fs.BoolVar(&f.details, "details", false, "also fetch /movie/{id} for every new movie and keep its values")
	num(&f.detailsConcurrency, "details-concurrency", 4, "details requests in flight at once (each still rate limited)")
	num(&f.rate, "rate", 20, "TMDB requests per second at most (in bursts of up to 5); TMDB's own limit is about 50")
	num(&f.maxAttempts, "max-attempts", 5, "attempts of one request before the crawl fails (429, 5xx and network errors are retried)")
	str(&f.stateDir, "state-dir", "featurestore-crawl", "directory of the checkpoint that lets an interrupted crawl resume, and of the last success")
	str(&f.out, "out", "", "write the crawler file here at the end ({timestamp} becomes YYYYMMDD_HHMMSS, UTC); empty: no file")
	fs.BoolVar(&f.ingest, "ingest", false, "ingest the movies into the feature store as they are crawled (the store of --data-dir or --postgres-url, or the service at --api)")
	str(&f.api, "api", "", "with --ingest: send the movies to a running service at this base URL (e.g. http://localhost:8001) instead of writing to the store directly")
	str(&f.tokenFile, "token-file", "", "with --api: a file holding the bearer token to send (default: the "+auth.TokenEnv+" variable)")
	fs.BoolVar(&f.noRecompute, "no-recompute", false, "deprecated, no effect (statistics are computed at read time)")
	dur(&f.every, "every", 0, "repeat the crawl on this interval (e.g. 24h) until stopped; 0: crawl once")
	dur(&f.retryFailedAfter, "retry-failed-after", 30*time.Minute, "with --every: after a failed crawl, try again (resuming) this long after")
	str(&f.metricsAddr, "metrics-addr", "", "serve the crawler's Prometheus metrics at /metrics on this address (e.g. :9102); empty: none")
	return flags
}

// validate checks values flags cannot.
func (f crawlFlags) validate() error {
	var errs []string
	if f.out == "" && !f.ingest {
		errs = append(errs, "nothing to do: give --out FILE, --ingest, or both")
	}
	if f.api != "" {
		u, err := url.Parse(f.api)
		switch {
		case !f.ingest:
			errs = append(errs, "--api sends the movies to a running service: give it with --ingest")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Sprintf("--api %q is not an http(s) URL such as http://localhost:8001", f.api))
		}
	}
	if f.rate < 1 || f.rate > maxTMDBRate {
		errs = append(errs, fmt.Sprintf("--rate must be between 1 and %d requests per second (TMDB's limit is about %d)", maxTMDBRate, maxTMDBRate))
	}
	if f.maxAttempts < 1 || f.maxAttempts > 20 {
		errs = append(errs, "--max-attempts must be between 1 and 20")
	}
	if f.detailsConcurrency < 1 || f.detailsConcurrency > 16 {
		errs = append(errs, "--details-concurrency must be between 1 and 16")
	}
	if f.every != 0 && f.every < time.Minute {
		errs = append(errs, "--every must be 0 (crawl once) or at least 1m")
	}
	if f.retryFailedAfter < time.Second {
		errs = append(errs, "--retry-failed-after must be at least 1s")
	}
	if f.stateDir == "" {
		errs = append(errs, "--state-dir is required")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid crawl: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (f crawlFlags) config() crawl.Config {
	var endpoints []string
	for _, e := range strings.Split(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, e)
		}
	}
	return crawl.Config{
		Endpoints: endpoints, Language: f.language, Region: f.region, MaxPages: int(f.maxPages),
		DiscoverFrom: f.discoverFrom, DiscoverTo: f.discoverTo, DiscoverWindowDays: int(f.discoverWindow),
		DiscoverSort: f.discoverSort, Details: f.details,
	}
}

// parseCrawlFlags parses the command line: the crawl's own flags and the
// service's flags it shares (declared once, in flagSet).
func parseCrawlFlags(args []string, getenv func(string) string, stderr io.Writer) (Config, crawlFlags, error) {
	var cfg Config
	var f crawlFlags
	shared, sharedFlags := flagSet("featurestore crawl", &cfg, getenv, io.Discard)
	fs := flag.NewFlagSet("featurestore crawl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := declareCrawlFlags(fs, getenv, &f)
	for _, name := range crawlStoreFlags {
		if fl := shared.Lookup(name); fl != nil {
			fs.Var(fl.Value, fl.Name, fl.Usage)
		}
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), crawlUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, f, err
	}
	for _, err := range []error{sharedFlags.Err(), flags.Err(), cfg.validate(), f.validate()} {
		if err != nil {
			return cfg, f, err
		}
	}
	if fs.NArg() > 0 {
		return cfg, f, fmt.Errorf("crawl takes no arguments, got %q", fs.Args())
	}
	return cfg, f, f.config().Validate()
}

// crawlCmd is `featurestore crawl`.
func crawlCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, f, err := parseCrawlFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if f.api != "" {
		if f.token, err = auth.ClientToken(f.tokenFile, getenv(auth.TokenEnv)); err != nil {
			return err
		}
	}
	creds := crawl.Credentials{APIKey: getenv("TMDB_API_KEY"), BearerToken: getenv("TMDB_BEARER_TOKEN")}
	if creds.APIKey == "" && creds.BearerToken == "" {
		return errors.New("no TMDB credentials: set TMDB_API_KEY (v3 API key) or TMDB_BEARER_TOKEN (v4 read access token) in the environment")
	}
	if creds.BearerToken != "" {
		creds.APIKey = "" // the token wins; the key is neither sent nor needed
	}
	// A one-off crawl is a command: its logs go to stderr, the summary to
	// stdout. A repeating one is a service: its logs go to stdout.
	logOut := stderr
	if f.every > 0 {
		logOut = stdout
	}
	log, err := newLogger(logOut, cfg.LogLevel, nil)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := crawl.NewMetrics(reg)
	stopMetrics, err := serveCrawlMetrics(f.metricsAddr, reg, log)
	if err != nil {
		return err
	}
	defer stopMetrics()

	st, err := crawl.OpenState(f.stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	opts := crawl.Options{
		Client: crawl.ClientOptions{
			BaseURL: f.tmdbURL, Credentials: creds, Limiter: crawl.NewLimiter(float64(f.rate), int(min(f.rate, 5))),
			Retry: crawl.RetryPolicy{MaxAttempts: int(f.maxAttempts), BaseDelay: crawl.DefaultRetryPolicy.BaseDelay,
				MaxDelay: crawl.DefaultRetryPolicy.MaxDelay, MaxRetryAfter: crawl.DefaultRetryPolicy.MaxRetryAfter},
		},
		State: st, OpenSink: f.openSink(cfg, log), Out: f.out, DetailsConcurrency: int(f.detailsConcurrency),
		MaxResumeAge: f.every, Metrics: m, Logger: log,
	}
	c, err := crawl.New(f.config(), opts)
	if err != nil {
		return err
	}
	log.Info("starting the TMDB crawl", zap.String("credential", creds.Kind()), zap.Any("config", f.masked(cfg)))
	if f.every > 0 {
		return c.Every(ctx, f.every, f.retryFailedAfter, nil)
	}
	sum, err := c.Run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("crawl interrupted after %d pages; run the same command again to resume (state in %s): %w", sum.Pages, st.Dir(), err)
		}
		return fmt.Errorf("crawl failed after %d pages (run the same command again to resume; state in %s): %w", sum.Pages, st.Dir(), err)
	}
	printCrawlSummary(stdout, sum, f.ingest)
	return nil
}

// masked is the crawl's configuration for the start-up log: no credential,
// URLs with their passwords masked.
func (f crawlFlags) masked(cfg Config) map[string]any {
	out := map[string]any{
		"tmdb_url": maskURL(f.tmdbURL), "endpoints": f.endpoints, "language": f.language, "region": f.region,
		"max_pages": f.maxPages, "details": f.details, "rate": f.rate, "max_attempts": f.maxAttempts,
		"state_dir": f.stateDir, "out": f.out, "ingest": f.ingest, "every": f.every.String(),
		"metrics_addr": f.metricsAddr,
	}
	if strings.Contains(f.endpoints, crawl.EndpointDiscover) {
		out["discover"] = fmt.Sprintf("%s..%s windows of %d days, %s", f.discoverFrom, f.discoverTo, f.discoverWindow, f.discoverSort)
	}
	switch {
	case !f.ingest:
	case f.api != "":
		out["ingest_api"] = maskURL(f.api)
	case cfg.PostgresURL != "":
		out["ingest_postgres_url"], out["ingest_redis_url"] = maskURL(cfg.PostgresURL), maskURL(cfg.RedisURL)
	default:
		out["ingest_data_dir"] = cfg.DataDir
	}
	return out
}

func printCrawlSummary(w io.Writer, sum crawl.Summary, ingested bool) {
	resumed := ""
	if sum.Resumed {
		resumed = " (resumed)"
	}
	fmt.Fprintf(w, "crawled %d pages in %s%s: accepted %d, rejected %d, duplicates %d\n",
		sum.Pages, sum.Duration.Round(time.Millisecond), resumed, sum.Accepted, sum.Rejected, sum.Duplicates)
	if sum.Out != "" {
		fmt.Fprintf(w, "wrote %d movies to %s\n", sum.Accepted, sum.Out)
	}
	if ingested {
		fmt.Fprintf(w, "ingested %d movies into the feature store\n", sum.Accepted)
	}
	for _, r := range sum.Rejections {
		parts := make([]string, len(r.Fields))
		for i, fe := range r.Fields {
			parts[i] = fe.Field + ": " + fe.Problem
		}
		id := ""
		if r.ID != 0 {
			id = fmt.Sprintf(" (id %d)", r.ID)
		}
		fmt.Fprintf(w, "  %s page %d record %d%s rejected: %s\n", r.Source, r.Page, r.Index, id, strings.Join(parts, "; "))
	}
	if more := sum.Rejected - len(sum.Rejections); more > 0 {
		fmt.Fprintf(w, "  ... and %d more rejected records\n", more)
	}
}

// serveCrawlMetrics serves reg at /metrics on addr (nothing when addr is
// empty); the returned function stops the server.
func serveCrawlMetrics(addr string, reg *prometheus.Registry, log *zap.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorLog: zap.NewStdLog(log)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, ErrorLog: zap.NewStdLog(log)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("crawler metrics server failed", zap.Error(err))
		}
	}()
	log.Info("serving crawler metrics", zap.String("addr", ln.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// openSink returns how each crawl run reaches the store (nil without
// --ingest): the service's ingest in-process, opened per run so that the
// embedded store is not held between runs, or POST /v1/movies with --api.
func (f crawlFlags) openSink(cfg Config, log *zap.Logger) func(context.Context) (crawl.Sink, error) {
	if !f.ingest {
		return nil
	}
	if f.api != "" {
		base := strings.TrimRight(f.api, "/")
		client := &http.Client{Timeout: 2 * time.Minute}
		return func(context.Context) (crawl.Sink, error) {
			return &apiSink{client: client, base: base, token: f.token}, nil
		}
	}
	// The service logs each ingest at info; per page that is noise here.
	quiet := log.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	return func(ctx context.Context) (crawl.Sink, error) {
		b, err := openBackends(ctx, cfg, quiet, nil, openOptions{directWriter: true})
		if err != nil {
			return nil, err
		}
		svc, err := service.New(ctx, b.store, b.serviceOptions(service.Options{Logger: quiet}))
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		return &storeSink{b: b, svc: svc, recompute: !f.noRecompute, log: log}, nil
	}
}

// storeSink ingests into the store in-process, the path of `featurestore ingest`.
type storeSink struct {
	b         *backends
	svc       *service.Service
	recompute bool
	log       *zap.Logger
}

func (s *storeSink) Write(ctx context.Context, records []json.RawMessage) error {
	res, err := s.svc.Ingest(ctx, records)
	if err != nil && res.Received == 0 {
		return describeFeatureError(err)
	}
	return rejectedByStore(res)
}

func (s *storeSink) Finish(ctx context.Context) error {
	if !s.recompute {
		return nil
	}
	n, err := s.svc.Recompute(ctx, nil)
	if err != nil {
		return fmt.Errorf("recompute the statistical features: %w", err)
	}
	s.log.Info("recomputed the statistical features", zap.Int("movies", n))
	return nil
}

func (s *storeSink) Close() error { return s.b.Close() }

// apiSink sends each page to a running service's POST /v1/movies.
type apiSink struct {
	client *http.Client
	base   string
	token  string // bearer token; empty: none
}

func (s *apiSink) Write(ctx context.Context, records []json.RawMessage) error {
	res, err := postBatch(ctx, s.client, s.base, s.token, records)
	if err != nil {
		return fmt.Errorf("POST %s/v1/movies: %w", s.base, err)
	}
	return rejectedByStore(res)
}

// Finish leaves the recompute to the service (--recompute-delay).
func (s *apiSink) Finish(context.Context) error { return nil }
func (s *apiSink) Close() error                 { return nil }

// rejectedByStore is an error when the store refused records the crawler
// accepted: both apply the same rules, so it means they are of different
// versions.
func rejectedByStore(res service.IngestResult) error {
	if len(res.Rejected) == 0 {
		return nil
	}
	r := res.Rejected[0]
	parts := make([]string, len(r.Fields))
	for i, fe := range r.Fields {
		parts[i] = fe.Field + ": " + fe.Problem
	}
	return fmt.Errorf("the store rejected %d of %d records the crawler accepted (is it another version?); record %d: %s",
		len(res.Rejected), res.Received, r.Index, strings.Join(parts, "; "))
}

// describeFeatureError spells out a feature.Error's fields at fault.
func describeFeatureError(err error) error {
	var fe *feature.Error
	if !errors.As(err, &fe) || len(fe.Fields) == 0 {
		return err
	}
	parts := make([]string, len(fe.Fields))
	for i, f := range fe.Fields {
		parts[i] = f.Field + ": " + f.Problem
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(parts, "; "))
}
