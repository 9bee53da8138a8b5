// Package crawl collects movies from the TMDB API v3 for the feature store:
// the list endpoints (popular, top_rated, now_playing, and discover over
// release-date ranges) page by page, optionally each movie's details. Every
// record is validated by the ingest rules (tmdb.ParseMovie) and converted to
// the crawler file's shape; invalid records are reported with the fields at
// fault and never written, and a movie seen before in the crawl is skipped.
//
// Requests are paced by a token bucket and retried with exponential backoff
// and jitter on 429, 5xx, network errors and bodies that are not the expected
// JSON, honouring Retry-After. The credentials never appear in a log line or
// an error. Progress is committed after every page in a state directory, so
// an interrupted crawl resumes where it stopped; the result is written as a
// crawler file, ingested through a Sink, or both, and Every repeats the crawl
// on an interval. Metrics (feature_store_crawl_*) are in Metrics.
package crawl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Config is what a crawl collects. A checkpoint is resumed only by a crawl
// of the same Config.
type Config struct {
	// Endpoints are list endpoints (ListEndpoints), crawled in this order.
	Endpoints []string `json:"endpoints"`
	// Language (e.g. ko-KR) and Region (e.g. KR, ISO 3166-1) are TMDB's
	// language and region parameters; empty: TMDB's defaults.
	Language string `json:"language"`
	Region   string `json:"region"`
	// MaxPages is the last page fetched of each list (1 to MaxPage).
	MaxPages int `json:"max_pages"`
	// DiscoverFrom and DiscoverTo bound discover's release dates: YYYY-MM-DD,
	// "today", or "-Nd" (N days before the day the crawl starts, UTC).
	DiscoverFrom string `json:"discover_from"`
	DiscoverTo   string `json:"discover_to"`
	// DiscoverWindowDays splits the discover range into windows of this many
	// days, each crawled as its own list (each list stops at page 500); 0:
	// one window.
	DiscoverWindowDays int `json:"discover_window_days"`
	// DiscoverSort is discover's sort_by (e.g. popularity.desc).
	DiscoverSort string `json:"discover_sort"`
	// Details fetches /movie/{id} for every new movie and keeps its values.
	Details bool `json:"details"`
}

var (
	languagePattern = regexp.MustCompile(`^[a-z]{2}(-[A-Z]{2})?$`)
	regionPattern   = regexp.MustCompile(`^[A-Z]{2}$`)
	sortPattern     = regexp.MustCompile(`^[a-z_.]+\.(asc|desc)$`)
	relativeDay     = regexp.MustCompile(`^-([0-9]{1,5})d$`)
)

// maxWindows bounds the discover windows of one crawl.
const maxWindows = 1000

// Validate checks the configuration; the error names every problem.
func (c Config) Validate() error {
	var errs []string
	if len(c.Endpoints) == 0 {
		errs = append(errs, "endpoints: at least one of "+strings.Join(ListEndpoints, ", "))
	}
	for i, e := range c.Endpoints {
		if !slices.Contains(ListEndpoints, e) {
			errs = append(errs, fmt.Sprintf("endpoints: unknown %q (want %s)", e, strings.Join(ListEndpoints, ", ")))
		} else if slices.Index(c.Endpoints, e) != i {
			errs = append(errs, fmt.Sprintf("endpoints: %q given twice", e))
		}
	}
	if c.Language != "" && !languagePattern.MatchString(c.Language) {
		errs = append(errs, fmt.Sprintf("language %q: want an ISO 639-1 code, optionally with a region (en, en-US, ko-KR)", c.Language))
	}
	if c.Region != "" && !regionPattern.MatchString(c.Region) {
		errs = append(errs, fmt.Sprintf("region %q: want an ISO 3166-1 code in capitals (US, KR)", c.Region))
	}
	if c.MaxPages < 1 || c.MaxPages > MaxPage {
		errs = append(errs, fmt.Sprintf("max-pages %d: want 1 to %d (TMDB serves no page past %d)", c.MaxPages, MaxPage, MaxPage))
	}
	if slices.Contains(c.Endpoints, EndpointDiscover) {
		errs = append(errs, c.validateDiscover()...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid crawl: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (c Config) validateDiscover() []string {
	var errs []string
	from, errFrom := resolveDay(c.DiscoverFrom, time.Now())
	to, errTo := resolveDay(c.DiscoverTo, time.Now())
	if errFrom != nil {
		errs = append(errs, "discover-from: "+errFrom.Error())
	}
	if errTo != nil {
		errs = append(errs, "discover-to: "+errTo.Error())
	}
	if errFrom == nil && errTo == nil && from.After(to) {
		errs = append(errs, fmt.Sprintf("discover-from %s is after discover-to %s", c.DiscoverFrom, c.DiscoverTo))
	}
	if c.DiscoverWindowDays < 0 {
		errs = append(errs, "discover-window-days must be 0 (one window) or more")
	} else if errFrom == nil && errTo == nil && c.DiscoverWindowDays > 0 &&
		int(to.Sub(from).Hours()/24)/c.DiscoverWindowDays >= maxWindows {
		errs = append(errs, fmt.Sprintf("discover range makes more than %d windows of %d days", maxWindows, c.DiscoverWindowDays))
	}
	if !sortPattern.MatchString(c.DiscoverSort) {
		errs = append(errs, fmt.Sprintf("discover-sort %q: want FIELD.asc or FIELD.desc (popularity.desc)", c.DiscoverSort))
	}
	return errs
}

// resolveDay reads YYYY-MM-DD, "today" or "-Nd" relative to now's UTC day.
func resolveDay(s string, now time.Time) (time.Time, error) {
	today := now.UTC().Truncate(24 * time.Hour)
	if s == "today" {
		return today, nil
	}
	if m := relativeDay.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return today.AddDate(0, 0, -n), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not YYYY-MM-DD, today or -Nd", s)
	}
	return t, nil
}

// sources lists what a crawl starting at now fetches, in order.
func (c Config) sources(now time.Time) []Source {
	var out []Source
	for _, e := range c.Endpoints {
		if e != EndpointDiscover {
			out = append(out, Source{Endpoint: e})
			continue
		}
		from, _ := resolveDay(c.DiscoverFrom, now)
		to, _ := resolveDay(c.DiscoverTo, now)
		for lo := from; !lo.After(to); {
			hi := to
			if c.DiscoverWindowDays > 0 {
				hi = lo.AddDate(0, 0, c.DiscoverWindowDays-1)
				if hi.After(to) {
					hi = to
				}
			}
			out = append(out, Source{Endpoint: e, From: lo.Format(time.DateOnly), To: hi.Format(time.DateOnly)})
			lo = hi.AddDate(0, 0, 1)
		}
	}
	return out
}

// Sink receives the accepted records of each page (the feature store's
// ingest, in-process or through its API).
type Sink interface {
	// Write stores one page's records (crawler file records, valid by the
	// ingest rules). It is called before the page is committed: after a
	// crash the page is written again, so writing must be idempotent (an
	// ingest is: the movie's rows are replaced).
	Write(ctx context.Context, records []json.RawMessage) error
	// Finish is called once after the last page of a successful crawl.
	Finish(ctx context.Context) error
	// Close is called once at the end of every run.
	Close() error
}

// Options are how a crawl runs.
type Options struct {
	// Client configures the TMDB client (its Language and Region come from
	// the Config).
	Client ClientOptions
	// State is the locked state directory.
	State *State
	// OpenSink opens the sink for one run; nil: no ingest.
	OpenSink func(ctx context.Context) (Sink, error)
	// Out is the crawler file to write at the end ("" for none); {timestamp}
	// in it is replaced by the collection timestamp (YYYYMMDD_HHMMSS, UTC).
	Out string
	// DetailsConcurrency is how many details requests of a page run at once
	// (default 4); the rate limit still applies to each.
	DetailsConcurrency int
	// MaxResumeAge: a checkpoint of a crawl started longer ago is dropped and
	// the crawl started over (0: always resume).
	MaxResumeAge time.Duration
	Metrics      *Metrics
	Logger       *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Crawler runs crawls of one configuration.
type Crawler struct {
	cfg    Config
	opts   Options
	client *Client
	log    *zap.Logger
	now    func() time.Time
}

// New checks the configuration and returns a crawler. It publishes the last
// success recorded in the state directory.
func New(cfg Config, opts Options) (*Crawler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.State == nil {
		return nil, errors.New("crawl: no state directory")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DetailsConcurrency < 1 {
		opts.DetailsConcurrency = 4
	}
	co := opts.Client
	co.Language, co.Region, co.Metrics, co.Logger = cfg.Language, cfg.Region, opts.Metrics, opts.Logger
	client, err := NewClient(co)
	if err != nil {
		return nil, err
	}
	c := &Crawler{cfg: cfg, opts: opts, client: client, log: opts.Logger, now: opts.Now}
	last, err := opts.State.LastSuccess()
	if err != nil {
		c.log.Warn("cannot read the last success; treating the crawl as never succeeded", zap.Error(err))
	}
	if !last.FinishedAt.IsZero() {
		opts.Metrics.setLastSuccess(last.FinishedAt)
	}
	return c, nil
}

// Summary reports a crawl.
type Summary struct {
	StartedAt time.Time
	// Duration covers every run of the crawl, resumed ones included.
	Duration time.Duration
	// Resumed is true when the run continued an interrupted crawl.
	Resumed bool
	Counts
	// Rejections are the first rejected records (up to 1000);
	// Rejected counts them all.
	Rejections []Rejection
	// Out is the crawler file written, "" if none.
	Out string
}

// run is one run's working state.
type run struct {
	cp       *Checkpoint
	journal  *journal
	seen     map[int64]bool
	sink     Sink
	start    time.Time     // of this run
	elapsed  time.Duration // of the crawl's earlier runs
	resumed  bool
	progress map[string]int // last progress tenth logged, by source key
}

func (r *run) summary(now time.Time) Summary {
	return Summary{StartedAt: r.cp.StartedAt, Duration: r.elapsed + now.Sub(r.start), Resumed: r.resumed,
		Counts: r.cp.Counts, Rejections: slices.Clone(r.cp.Rejections)}
}

// Run crawls every source to its end (resuming an interrupted crawl of the
// same configuration), then writes the crawler file and finishes the sink.
// Every page is committed as it is done: after an error or a cancellation,
// running again continues with the first page not done.
func (c *Crawler) Run(ctx context.Context) (sum Summary, err error) {
	start := c.now()
	defer func() {
		if ctx.Err() != nil && err != nil {
			c.log.Warn("crawl interrupted; it resumes at the next run", zap.Error(err))
			return
		}
		c.opts.Metrics.run(err == nil, sum.Duration)
		if err != nil {
			c.log.Error("crawl failed", zap.Error(err), zap.Int("pages", sum.Pages), zap.Int("accepted", sum.Accepted))
		}
	}()
	r, err := c.begin(ctx, start)
	if err != nil {
		return Summary{StartedAt: start}, err
	}
	defer r.journal.close()
	if r.sink != nil {
		defer func() {
			if cerr := r.sink.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("close the store: %w", cerr)
			}
		}()
	}
	for i := range r.cp.Sources {
		if err := c.crawlSource(ctx, r, &r.cp.Sources[i]); err != nil {
			return r.summary(c.now()), err
		}
	}
	return c.finish(ctx, r)
}

// begin loads the checkpoint (or starts a crawl) and opens the journal and
// the sink.
func (c *Crawler) begin(ctx context.Context, now time.Time) (*run, error) {
	st := c.opts.State
	cp, err := st.LoadCheckpoint()
	if err != nil {
		return nil, err
	}
	if cp != nil {
		if reason := c.notResumable(cp, now); reason != "" {
			c.log.Warn("starting the crawl over", zap.String("reason", reason), zap.Time("checkpoint_started_at", cp.StartedAt))
			cp = nil
		}
	}
	r := &run{start: now, seen: map[int64]bool{}, progress: map[string]int{}}
	if cp == nil {
		if err := st.Discard(); err != nil {
			return nil, fmt.Errorf("remove the old checkpoint: %w", err)
		}
		cp = &Checkpoint{Spec: c.cfg, Ingest: c.opts.OpenSink != nil, StartedAt: now.UTC(), Seen: []int64{}, Rejections: []Rejection{}}
		for _, s := range c.cfg.sources(now) {
			cp.Sources = append(cp.Sources, SourceState{Source: s, NextPage: 1})
		}
	} else {
		r.resumed = true
		for _, id := range cp.Seen {
			r.seen[id] = true
		}
	}
	r.cp, r.elapsed = cp, cp.Elapsed
	if r.journal, err = st.openJournal(cp.JournalBytes); err != nil {
		return nil, err
	}
	if c.opts.OpenSink != nil {
		if r.sink, err = c.opts.OpenSink(ctx); err != nil {
			_ = r.journal.close()
			return nil, fmt.Errorf("open the store: %w", err)
		}
	}
	c.log.Info("crawl started", zap.Bool("resumed", r.resumed), zap.Time("started_at", cp.StartedAt),
		zap.Int("sources", len(cp.Sources)), zap.Int("pages_done", cp.Counts.Pages))
	return r, nil
}

// notResumable says why a checkpoint cannot be resumed ("" if it can).
func (c *Crawler) notResumable(cp *Checkpoint, now time.Time) string {
	a, _ := json.Marshal(cp.Spec)
	b, _ := json.Marshal(c.cfg)
	switch {
	case string(a) != string(b):
		return fmt.Sprintf("the checkpoint is of another crawl configuration (%s, now %s)", a, b)
	case cp.Ingest != (c.opts.OpenSink != nil):
		return "the checkpoint's crawl differs in --ingest: its pages were not all sent to the store"
	case c.opts.MaxResumeAge > 0 && now.Sub(cp.StartedAt) > c.opts.MaxResumeAge:
		return fmt.Sprintf("the interrupted crawl started at %s, more than %v ago", cp.StartedAt.Format(time.RFC3339), c.opts.MaxResumeAge)
	}
	return ""
}

// crawlSource fetches a source's pages from the first one not done.
func (c *Crawler) crawlSource(ctx context.Context, r *run, st *SourceState) error {
	for !st.Done {
		if err := c.crawlPage(ctx, r, st); err != nil {
			return fmt.Errorf("%s page %d: %w", st.Key(), st.NextPage, err)
		}
	}
	return nil
}

// crawlPage fetches, validates, de-duplicates, stores and commits one page.
func (c *Crawler) crawlPage(ctx context.Context, r *run, st *SourceState) error {
	collected := c.now()
	page, err := c.client.ListPage(ctx, st.Source, st.NextPage, c.cfg.DiscoverSort)
	if err != nil {
		return err
	}
	c.opts.Metrics.page(st.Endpoint)
	records, ids, rejections, dups := r.accept(st, page.Results, collected)
	if c.cfg.Details && len(records) > 0 {
		var more []Rejection
		records, ids, more, err = c.details(ctx, st, records, ids)
		if err != nil {
			return err
		}
		rejections = append(rejections, more...)
	}
	if err := r.journal.append(records); err != nil {
		return err
	}
	if r.sink != nil && len(records) > 0 {
		raws := make([]json.RawMessage, len(records))
		for i, rec := range records {
			if raws[i], err = marshal(rec); err != nil {
				return err
			}
		}
		if err := r.sink.Write(ctx, raws); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
	}

	st.LastPage = min(page.TotalPages, MaxPage, c.cfg.MaxPages)
	st.NextPage++
	st.Done = st.NextPage > st.LastPage || len(page.Results) == 0
	cp := r.cp
	cp.Seen = append(cp.Seen, ids...)
	cp.JournalBytes = r.journal.size
	cp.Counts.Pages++
	cp.Counts.Accepted += len(records)
	cp.Counts.Rejected += len(rejections)
	cp.Counts.Duplicates += dups
	for _, rej := range rejections {
		if len(cp.Rejections) < maxRejections {
			cp.Rejections = append(cp.Rejections, rej)
			c.log.Warn("TMDB record rejected", zap.String("source", rej.Source), zap.Int("page", rej.Page),
				zap.Int("index", rej.Index), zap.Int64("id", rej.ID), zap.Any("fields", rej.Fields))
		}
	}
	cp.Elapsed = r.elapsed + c.now().Sub(r.start)
	if err := c.opts.State.SaveCheckpoint(cp); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	c.opts.Metrics.recordsN(ResultAccepted, len(records))
	c.opts.Metrics.recordsN(ResultRejected, len(rejections))
	c.opts.Metrics.recordsN(ResultDuplicate, dups)
	c.logProgress(r, st, len(records))
	return nil
}

// accept validates a page's records and drops the movies seen before.
func (r *run) accept(st *SourceState, results []json.RawMessage, collected time.Time) (records []Record, ids []int64, rejections []Rejection, dups int) {
	for i, raw := range results {
		rec, problems := toRecord(raw, collected)
		if len(problems) > 0 {
			rejections = append(rejections, Rejection{Source: st.Key(), Page: st.NextPage, Index: i, ID: recordID(raw), Fields: problems})
			continue
		}
		if r.seen[rec.MovieID] {
			dups++
			continue
		}
		r.seen[rec.MovieID] = true
		records = append(records, rec)
		ids = append(ids, rec.MovieID)
	}
	return records, ids, rejections, dups
}

// details replaces each record by its movie's details, fetched a few at a
// time. A movie TMDB has no details of keeps its list record; one whose
// details are invalid is rejected (its id stays seen).
func (c *Crawler) details(ctx context.Context, st *SourceState, in []Record, ids []int64) ([]Record, []int64, []Rejection, error) {
	type result struct {
		rec      Record
		problems []Rejection
		err      error
	}
	results := make([]result, len(in))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, c.opts.DetailsConcurrency)
	var wg sync.WaitGroup
	for i := range in {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				results[i].err = ctx.Err()
				return
			}
			collected := c.now()
			raw, err := c.client.Details(ctx, in[i].MovieID)
			switch {
			case errors.Is(err, ErrNoDetails):
				c.log.Info("TMDB has no details of a listed movie; keeping its list record", zap.Int64("id", in[i].MovieID))
				results[i].rec = in[i]
				return
			case err != nil:
				results[i].err = err
				cancel()
				return
			}
			c.opts.Metrics.page(EndpointDetails)
			rec, problems := toRecord(raw, collected)
			if len(problems) > 0 {
				results[i].problems = []Rejection{{Source: EndpointDetails + " of " + st.Key(), Page: st.NextPage, Index: i, ID: in[i].MovieID, Fields: problems}}
				return
			}
			results[i].rec = rec
		})
	}
	wg.Wait()
	var out []Record
	var outIDs []int64
	var rejections []Rejection
	for i, res := range results {
		if res.err != nil {
			return nil, nil, nil, fmt.Errorf("details of movie %d: %w", in[i].MovieID, res.err)
		}
		if len(res.problems) > 0 {
			rejections = append(rejections, res.problems...)
			continue
		}
		out = append(out, res.rec)
		outIDs = append(outIDs, ids[i])
	}
	return out, outIDs, rejections, nil
}

// logProgress logs each tenth of a source's pages, and its end.
func (c *Crawler) logProgress(r *run, st *SourceState, accepted int) {
	page := st.NextPage - 1
	c.log.Debug("page crawled", zap.String("source", st.Key()), zap.Int("page", page),
		zap.Int("last_page", st.LastPage), zap.Int("accepted", accepted))
	if st.Done {
		c.log.Info("source crawled", zap.String("source", st.Key()), zap.Int("pages", page))
		return
	}
	if st.LastPage < 10 {
		return
	}
	if tenth := page * 10 / st.LastPage; tenth > r.progress[st.Key()] {
		r.progress[st.Key()] = tenth
		c.log.Info("crawl progress", zap.String("source", st.Key()), zap.Int("page", page), zap.Int("last_page", st.LastPage))
	}
}

// finish writes the crawler file, finishes the sink, records the success
// and removes the checkpoint.
func (c *Crawler) finish(ctx context.Context, r *run) (Summary, error) {
	sum := r.summary(c.now())
	if sum.Accepted == 0 {
		if err := c.opts.State.Discard(); err != nil {
			c.log.Warn("cannot remove the checkpoint", zap.Error(err))
		}
		return sum, fmt.Errorf("the crawl collected no valid movie (%d pages, %d records rejected)", sum.Pages, sum.Rejected)
	}
	if c.opts.Out != "" {
		path, err := c.writeFile(r, sum)
		if err != nil {
			return sum, err
		}
		sum.Out = path
	}
	if r.sink != nil {
		if err := r.sink.Finish(ctx); err != nil {
			return sum, fmt.Errorf("finish the ingest: %w", err)
		}
	}
	finished := c.now()
	if err := c.opts.State.saveLastSuccess(Success{StartedAt: sum.StartedAt, FinishedAt: finished.UTC(), Movies: sum.Accepted, Out: sum.Out}); err != nil {
		return sum, fmt.Errorf("record the success: %w", err)
	}
	c.opts.Metrics.setLastSuccess(finished)
	if err := c.opts.State.Discard(); err != nil {
		c.log.Warn("cannot remove the finished crawl's checkpoint", zap.Error(err))
	}
	c.log.Info("crawl finished", zap.Time("started_at", sum.StartedAt), zap.Duration("duration", sum.Duration),
		zap.Int("pages", sum.Pages), zap.Int("accepted", sum.Accepted), zap.Int("rejected", sum.Rejected),
		zap.Int("duplicates", sum.Duplicates), zap.String("out", sum.Out))
	return sum, nil
}

// writeFile writes the crawler file atomically and returns its path.
func (c *Crawler) writeFile(r *run, sum Summary) (string, error) {
	records, err := r.journal.records()
	if err != nil {
		return "", err
	}
	ts := sum.StartedAt.UTC().Format(timestampLayout)
	path := strings.ReplaceAll(c.opts.Out, "{timestamp}", ts)
	b, err := marshalFile(File{
		CollectionInfo: CollectionInfo{Timestamp: ts, TotalMovies: len(records), CollectionDuration: sum.Duration.Seconds()},
		Movies:         records,
	})
	if err != nil {
		return "", err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := writeFileAtomic(path, b); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// Every crawls at once if the last success is older than interval (or an
// interrupted crawl waits), otherwise when it turns that old, and then
// every interval after each successful crawl's start; after a failed one it
// tries again after retry (at most interval), resuming at the page that
// failed. report, if not nil, is told each run's outcome. It returns when
// ctx ends.
func (c *Crawler) Every(ctx context.Context, interval, retry time.Duration, report func(Summary, error)) error {
	if interval <= 0 {
		return errors.New("crawl interval must be positive")
	}
	retry = min(max(retry, time.Second), interval)
	due := c.now()
	last, _ := c.opts.State.LastSuccess()
	cp, err := c.opts.State.LoadCheckpoint()
	if err == nil && cp == nil && !last.StartedAt.IsZero() {
		due = last.StartedAt.Add(interval)
	}
	for {
		if wait := due.Sub(c.now()); wait > 0 {
			c.log.Info("next crawl scheduled", zap.Time("at", due.UTC()), zap.Duration("in", wait))
			if sleep(ctx, wait) != nil {
				return nil
			}
		}
		sum, err := c.Run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if report != nil {
			report(sum, err)
		}
		if err != nil {
			due = c.now().Add(retry)
		} else {
			due = sum.StartedAt.Add(interval)
		}
	}
}
