package crawl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/featurestore/featurestore/internal/crawl/tmdbtest"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// TestCrawlCollectsValidatesAndDeduplicates crawls three lists of real TMDB
// records with malformed records and duplicates among them: every valid
// movie is written once, in crawl order, in the crawler file's exact shape,
// with the values ingest would read from the TMDB record; every invalid one
// is reported with its fields at fault.
func TestCrawlCollectsValidatesAndDeduplicates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		movies := tmdbtest.Movies()
		bad := []json.RawMessage{
			raw(`"not a movie"`),
			raw(`{"id": 9000001, "title": "", "vote_average": 11}`),
			raw(`{"title": "No id at all"}`),
		}
		// 64 records, 4 pages: the malformed ones at indexes 10-12 of page
		// 2, and the first movie again at the end (a duplicate in the list).
		f.double.SetList(tmdbtest.PathPopular, slices.Concat(movies[:30], bad, movies[30:], movies[:1]))
		reg := prometheus.NewPedanticRegistry()
		opts := f.options(t, f.openState(t))
		opts.Metrics = NewMetrics(reg)

		sum, err := mustNew(t, baseConfig(), opts).Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// top_rated (40) and now_playing (20) only repeat popular's movies.
		if want := (Counts{Pages: 4 + 2 + 1, Accepted: 60, Rejected: 3, Duplicates: 1 + 40 + 20}); sum.Counts != want {
			t.Errorf("counts %+v, want %+v", sum.Counts, want)
		}
		wantRejections := []Rejection{
			{Source: "popular", Page: 2, Index: 10, Fields: []feature.FieldError{{Field: "record", Problem: "must be a JSON object"}}},
			{Source: "popular", Page: 2, Index: 11, ID: 9000001, Fields: []feature.FieldError{
				{Field: "title", Problem: "must not be empty"}, {Field: "vote_average", Problem: "must be between 0 and 10"}}},
			{Source: "popular", Page: 2, Index: 12, Fields: []feature.FieldError{{Field: "id", Problem: "is required (as id or movie_id)"}}},
		}
		if diff := cmp.Diff(wantRejections, sum.Rejections); diff != "" {
			t.Errorf("rejections (-want +got):\n%s", diff)
		}

		// Every page once, each with the language, region and key.
		for path, pages := range map[string]int{tmdbtest.PathPopular: 4, tmdbtest.PathTopRated: 2, tmdbtest.PathNowPlaying: 1} {
			for p := 1; p <= pages; p++ {
				if n := f.double.Count(path, p); n != 1 {
					t.Errorf("%s page %d requested %d times, want 1", path, p, n)
				}
			}
		}
		reqs := f.double.Requests()
		if len(reqs) != 7 {
			t.Errorf("%d requests, want 7", len(reqs))
		}
		for _, r := range reqs {
			if r.Query.Get("language") != "ko-KR" || r.Query.Get("region") != "KR" || r.Auth != "api_key" {
				t.Errorf("request %s page %d: language %q, region %q, auth %q", r.Path, r.Page, r.Query.Get("language"), r.Query.Get("region"), r.Auth)
			}
		}

		// The crawler file: named by the start time (synctest's clock starts
		// at 2000-01-01 00:00 UTC), the movies in crawl order, each read by
		// the ingest rules exactly as the TMDB record it came from.
		if want := filepath.Join(f.dir, "out", "bulk_collection_20000101_000000.json"); sum.Out != want {
			t.Errorf("out %q, want %q", sum.Out, want)
		}
		file := readFile(t, sum.Out)
		if file.CollectionInfo.Timestamp != "20000101_000000" || file.CollectionInfo.TotalMovies != 60 {
			t.Errorf("collection_info %+v", file.CollectionInfo)
		}
		if len(file.Movies) != 60 {
			t.Fatalf("%d movies in the file, want 60", len(file.Movies))
		}
		for i, rec := range file.Movies {
			assertSameMovie(t, movies[i], rec)
			if rec.Source != "tmdb_api" || rec.CollectedAt != "2000-01-01T00:00:00.000000" {
				t.Errorf("movie %d: source %q, collected_at %q", rec.MovieID, rec.Source, rec.CollectedAt)
			}
		}
		assertCrawlerFileShape(t, sum.Out)
		// The whole file is an ingest payload of 60 valid records.
		body, _ := os.ReadFile(sum.Out)
		raws, err := tmdb.Decode(body)
		if err != nil || len(raws) != 60 {
			t.Fatalf("tmdb.Decode of the file: %d records, %v", len(raws), err)
		}

		for result, want := range map[string]float64{ResultAccepted: 60, ResultRejected: 3, ResultDuplicate: 61} {
			if got := testutil.ToFloat64(opts.Metrics.records.WithLabelValues(result)); got != want {
				t.Errorf("records_total{result=%q} = %v, want %v", result, got, want)
			}
		}
		if got := testutil.ToFloat64(opts.Metrics.pages.WithLabelValues(EndpointPopular)); got != 4 {
			t.Errorf("pages_total{endpoint=popular} = %v, want 4", got)
		}
		if cp, err := opts.State.LoadCheckpoint(); err != nil || cp != nil {
			t.Errorf("checkpoint after a finished crawl: %+v, %v", cp, err)
		}
		if last, err := opts.State.LastSuccess(); err != nil || last.Movies != 60 || last.Out != sum.Out {
			t.Errorf("last success %+v, %v", last, err)
		}
	})
}

// assertSameMovie checks that a crawler record reads, by the ingest rules,
// as the raw TMDB record it came from.
func assertSameMovie(t *testing.T, rawTMDB json.RawMessage, rec Record) {
	t.Helper()
	want, problems := tmdb.ParseMovie(rawTMDB)
	if problems != nil {
		t.Fatalf("fixture record invalid: %v", problems)
	}
	b, _ := marshal(rec)
	got, problems := tmdb.ParseMovie(b)
	if problems != nil {
		t.Errorf("movie %d: the crawler's record is invalid: %v", rec.MovieID, problems)
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("movie %d read back differently (-TMDB +crawler file):\n%s", rec.MovieID, diff)
	}
	var extras struct {
		PosterPath   *string `json:"poster_path"`
		BackdropPath *string `json:"backdrop_path"`
		Video        bool    `json:"video"`
	}
	_ = json.Unmarshal(rawTMDB, &extras)
	if diff := cmp.Diff([]any{extras.PosterPath, extras.BackdropPath, extras.Video}, []any{rec.PosterPath, rec.BackdropPath, rec.Video}); diff != "" {
		t.Errorf("movie %d poster_path, backdrop_path, video (-TMDB +crawler file):\n%s", rec.MovieID, diff)
	}
}

// assertCrawlerFileShape checks the keys, in order, against the original
// crawler's file (../shared/data/tmdb/SOURCE.md).
func assertCrawlerFileShape(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := regexp.MustCompile(`"([a-z_]+)":`)
	var got []string
	for _, m := range keys.FindAllStringSubmatch(string(b), 21) {
		got = append(got, m[1])
	}
	want := []string{"collection_info", "timestamp", "total_movies", "collection_duration", "movies",
		"movie_id", "title", "original_title", "overview", "release_date", "popularity", "vote_average", "vote_count",
		"genre_ids", "adult", "original_language", "poster_path", "backdrop_path", "video", "collected_at", "source"}
	if diff := cmp.Diff(want, got[:len(want)]); diff != "" {
		t.Errorf("key order (-original crawler file +written):\n%s", diff)
	}
	if !strings.HasPrefix(string(b), "{\n  \"collection_info\": {\n    \"timestamp\": ") {
		t.Errorf("not indented like the original file:\n%.80s", b)
	}
	if !strings.Contains(string(b), `"릴로 & 스티치"`) {
		t.Errorf("the Korean title with & is not written as is")
	}
}

// TestCrawlRetries: 429 with Retry-After in seconds, 500, a truncated body
// and a 503 with Retry-After as an HTTP date are all retried, waiting what
// the server asked for or a jittered exponential backoff; the crawl then
// succeeds with every movie.
func TestCrawlRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		start := time.Now()
		f.double.AddFaults(tmdbtest.PathPopular, 1, tmdbtest.TooManyRequests("3"), tmdbtest.ServerError(500), tmdbtest.Truncated())
		at := start.Add(time.Minute)
		f.double.AddFaults(tmdbtest.PathPopular, 2, tmdbtest.Fault{Status: 503, RetryAfter: at.UTC().Format(http.TimeFormat)})
		opts := f.options(t, f.openState(t))
		opts.Metrics = NewMetrics(nil)
		cfg := baseConfig()
		cfg.Endpoints = []string{EndpointPopular}

		sum, err := mustNew(t, cfg, opts).Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sum.Accepted != 60 || sum.Pages != 3 {
			t.Errorf("counts %+v, want 3 pages, 60 accepted", sum.Counts)
		}
		var page1, page2 []time.Time
		for _, r := range f.double.Requests() {
			switch r.Page {
			case 1:
				page1 = append(page1, r.Time)
			case 2:
				page2 = append(page2, r.Time)
			}
		}
		if len(page1) != 4 || len(page2) != 2 {
			t.Fatalf("page 1 asked %d times (want 4), page 2 %d times (want 2)", len(page1), len(page2))
		}
		between := func(what string, d, lo, hi time.Duration) {
			t.Helper()
			if d < lo || d > hi {
				t.Errorf("%s: waited %v, want %v to %v", what, d, lo, hi)
			}
		}
		between("after 429 Retry-After: 3", page1[1].Sub(page1[0]), 3*time.Second, 3*time.Second)
		// The backoff doubles with each attempt: 2s after the second, 4s
		// after the third, each with jitter (half to all of it).
		between("after 500 (attempt 2)", page1[2].Sub(page1[1]), time.Second, 2*time.Second)
		between("after a truncated body (attempt 3)", page1[3].Sub(page1[2]), 2*time.Second, 4*time.Second)
		if !page2[1].Equal(at) {
			t.Errorf("after 503 with Retry-After %s: retried at %v", at.UTC().Format(http.TimeFormat), page2[1])
		}
		for reason, want := range map[string]float64{ReasonRateLimited: 1, ReasonServerError: 2, ReasonInvalidBody: 1, ReasonNetwork: 0} {
			if got := testutil.ToFloat64(opts.Metrics.retries.WithLabelValues(reason)); got != want {
				t.Errorf("retries_total{reason=%q} = %v, want %v", reason, got, want)
			}
		}
	})
}

// TestCrawlFailsAndResumes: a page that keeps failing ends the run after
// --max-attempts with the cause; the pages before it stay committed, and
// the next run starts at the failed page.
func TestCrawlFailsAndResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		f.double.AddFaults(tmdbtest.PathPopular, 2, slices.Repeat([]tmdbtest.Fault{tmdbtest.ServerError(502)}, 4)...)
		opts := f.options(t, f.openState(t))
		opts.Metrics = NewMetrics(nil)
		cfg := baseConfig()
		cfg.Endpoints = []string{EndpointPopular}
		c := mustNew(t, cfg, opts)

		_, err := c.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "popular page 2: giving up after 4 attempts") ||
			!strings.Contains(err.Error(), "502 Bad Gateway") {
			t.Fatalf("err = %v, want the page, the attempts and the last answer", err)
		}
		cp, err := opts.State.LoadCheckpoint()
		if err != nil || cp == nil {
			t.Fatalf("checkpoint after a failure: %v, %v", cp, err)
		}
		if cp.Sources[0].NextPage != 2 || cp.Counts.Pages != 1 || cp.Counts.Accepted != 20 || len(cp.Seen) != 20 {
			t.Errorf("checkpoint: next page %d, counts %+v, %d seen", cp.Sources[0].NextPage, cp.Counts, len(cp.Seen))
		}
		if _, err := os.Stat(filepath.Join(f.dir, "out")); !os.IsNotExist(err) {
			t.Errorf("a failed crawl wrote its file: %v", err)
		}

		sum, err := c.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !sum.Resumed || sum.Accepted != 60 || sum.Pages != 3 {
			t.Errorf("resumed run: %+v", sum)
		}
		if n := f.double.Count(tmdbtest.PathPopular, 1); n != 1 {
			t.Errorf("page 1 asked %d times, want once", n)
		}
		if got := len(readFile(t, sum.Out).Movies); got != 60 {
			t.Errorf("%d movies in the file, want 60", got)
		}
		if f, s := testutil.ToFloat64(opts.Metrics.runs.WithLabelValues("failure")), testutil.ToFloat64(opts.Metrics.runs.WithLabelValues("success")); f != 1 || s != 1 {
			t.Errorf("runs_total: failure %v, success %v; want 1, 1", f, s)
		}
	})
}

// TestCrawlStopsOnPermanentErrors: a Retry-After longer than the crawler
// waits, and a rejected key, end the run at once (one request each).
func TestCrawlStopsOnPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*fixture, *Options)
		want  string
	}{
		{"Retry-After too long", func(f *fixture, _ *Options) {
			f.double.AddFaults(tmdbtest.PathPopular, 1, tmdbtest.TooManyRequests("3600"))
		}, "TMDB asks to retry after 1h0m0s, longer than the 1m0s the crawler waits"},
		{"wrong key", func(_ *fixture, o *Options) {
			o.Client.Credentials.APIKey = "wrong"
		}, "TMDB answered 401 Unauthorized: Invalid API key: You must be granted a valid key."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t)
				opts := f.options(t, f.openState(t))
				tc.setup(f, &opts)
				_, err := mustNew(t, baseConfig(), opts).Run(t.Context())
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				if n := len(f.double.Requests()); n != 1 {
					t.Errorf("%d requests, want 1 (no retry)", n)
				}
			})
		})
	}
}

// TestCrawlResumesAfterInterruption cancels a crawl in the middle (as
// SIGINT does), leaves half a page's records in the journal (as a crash
// between the journal and the checkpoint would), and runs again in a new
// state handle: no page done is asked again, and the file is the same as an
// uninterrupted crawl's.
func TestCrawlResumesAfterInterruption(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := baseConfig()
		ref := newFixture(t)
		refSum, err := mustNew(t, cfg, ref.options(t, ref.openState(t))).Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		refFile := readFile(t, refSum.Out)

		f := newFixture(t)
		stateDir := filepath.Join(f.dir, "state")
		st, err := OpenState(stateDir)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		f.double.AddFaults(tmdbtest.PathTopRated, 2, tmdbtest.Hang())
		f.double.OnRequest(func(r tmdbtest.Request) {
			if r.Path == tmdbtest.PathTopRated && r.Page == 2 {
				cancel()
			}
		})
		_, err = mustNew(t, cfg, f.options(t, st)).Run(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
		}
		cp, err := st.LoadCheckpoint()
		if err != nil || cp == nil {
			t.Fatalf("checkpoint: %v, %v", cp, err)
		}
		if !cp.Sources[0].Done || cp.Sources[1].NextPage != 2 || cp.Sources[2].NextPage != 1 {
			t.Errorf("checkpoint sources: %+v", cp.Sources)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		// A crash after the journal write of a page, before its checkpoint.
		jf, err := os.OpenFile(filepath.Join(stateDir, journalFile), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jf.WriteString(`{"movie_id":1,"title":"from a page never committed"}` + "\n" + `{"movie_id":2,"ti`); err != nil {
			t.Fatal(err)
		}
		jf.Close()

		f.double.OnRequest(nil)
		sum, err := mustNew(t, cfg, f.options(t, f.openState(t))).Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !sum.Resumed || sum.Counts != refSum.Counts {
			t.Errorf("resumed: %v, counts %+v, want %+v", sum.Resumed, sum.Counts, refSum.Counts)
		}
		for path, pages := range map[string]int{tmdbtest.PathPopular: 3, tmdbtest.PathTopRated: 2, tmdbtest.PathNowPlaying: 1} {
			for p := 1; p <= pages; p++ {
				want := 1
				if path == tmdbtest.PathTopRated && p == 2 {
					want = 2 // the interrupted page
				}
				if n := f.double.Count(path, p); n != want {
					t.Errorf("%s page %d asked %d times, want %d", path, p, n, want)
				}
			}
		}
		file := readFile(t, sum.Out)
		if diff := cmp.Diff(withoutCollectedAt(refFile.Movies), withoutCollectedAt(file.Movies)); diff != "" {
			t.Errorf("resumed crawl's movies differ from an uninterrupted crawl's (-want +got):\n%s", diff)
		}
		if file.CollectionInfo.Timestamp != refFile.CollectionInfo.Timestamp {
			t.Errorf("timestamp %q, want the first run's start %q", file.CollectionInfo.Timestamp, refFile.CollectionInfo.Timestamp)
		}
	})
}

// TestCheckpointOfAnotherCrawlIsNotResumed: a checkpoint left by a crawl of
// another configuration, or older than MaxResumeAge, is dropped with a
// warning and the crawl starts over.
func TestCheckpointOfAnotherCrawlIsNotResumed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config, *Options)
		reason string
	}{
		{"another language", func(c *Config, _ *Options) { c.Language = "en-US" }, "another crawl configuration"},
		{"too old", func(_ *Config, o *Options) { o.MaxResumeAge = time.Hour }, "more than 1h0m0s ago"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t)
				st := f.openState(t)
				f.double.AddFaults(tmdbtest.PathPopular, 2, slices.Repeat([]tmdbtest.Fault{tmdbtest.ServerError(500)}, 4)...)
				cfg := baseConfig()
				if _, err := mustNew(t, cfg, f.options(t, st)).Run(t.Context()); err == nil {
					t.Fatal("the first run did not fail")
				}
				time.Sleep(2 * time.Hour)
				opts := f.options(t, st)
				tc.change(&cfg, &opts)
				sum, err := mustNew(t, cfg, opts).Run(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if sum.Resumed || f.double.Count(tmdbtest.PathPopular, 1) != 2 {
					t.Errorf("resumed %v; page 1 asked %d times, want twice", sum.Resumed, f.double.Count(tmdbtest.PathPopular, 1))
				}
				if !strings.Contains(f.logs.String(), "starting the crawl over") || !strings.Contains(f.logs.String(), tc.reason) {
					t.Errorf("no warning naming %q:\n%s", tc.reason, f.logs)
				}
			})
		})
	}
}

// TestCredentialsNeverShown runs crawls that retry, fail on the network
// (with an error quoting the URL) and are refused, with the API key and
// with a bearer token: neither appears in any log line or error.
func TestCredentialsNeverShown(t *testing.T) {
	t.Run("api key", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFixture(t)
			f.double.AddFaults(tmdbtest.PathPopular, 1, tmdbtest.TooManyRequests("1"), tmdbtest.ServerError(500), tmdbtest.Truncated())
			opts := f.options(t, f.openState(t))
			if _, err := mustNew(t, baseConfig(), opts).Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(f.logs.String(), "retrying a TMDB request") {
				t.Fatalf("no retry logged:\n%s", f.logs)
			}
			assertNoSecret(t, "the logs", f.logs.String())
			if r := f.double.Requests()[0]; r.Auth != "api_key" {
				t.Errorf("the key was not sent: auth %q", r.Auth)
			}

			// A transport error that quotes the URL, key and all.
			opts.Client.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return nil, fmt.Errorf("dial %s: connection refused", r.URL)
			})}
			_, err := mustNew(t, baseConfig(), opts).Run(t.Context())
			if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "giving up after 4 attempts") {
				t.Fatalf("err = %v", err)
			}
			assertNoSecret(t, "the error", err.Error())
			assertNoSecret(t, "the logs", f.logs.String())
			if !strings.Contains(f.logs.String(), "api_key=****") {
				t.Errorf("the redacted URL is not in the logs:\n%s", f.logs)
			}
		})
	})
	t.Run("bearer token", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const token = "eyJhbGciOiJIUzI1NiJ9.v4-read-access-token.c2lnbmF0dXJl"
			f := newFixture(t)
			double := tmdbtest.New(tmdbtest.Options{BearerToken: token})
			srv, client := tmdbtest.StartInMemory(t, double)
			double.AddFaults(tmdbtest.PathPopular, 1, tmdbtest.ServerError(503))
			opts := f.options(t, f.openState(t))
			opts.Client.BaseURL, opts.Client.HTTPClient = srv.URL+"/3", client
			opts.Client.Credentials = Credentials{BearerToken: token}
			if _, err := mustNew(t, baseConfig(), opts).Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, r := range double.Requests() {
				if r.Auth != "bearer" || r.Query.Has("api_key") {
					t.Fatalf("request %s: auth %q, query %v", r.Path, r.Auth, r.Query)
				}
			}
			if strings.Contains(f.logs.String(), token) || strings.Contains(f.logs.String(), "v4-read-access-token") {
				t.Errorf("the logs show the token:\n%s", f.logs)
			}
		})
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestCrawlHonoursTheRateLimit crawls 66 requests (6 pages and 60 details,
// 4 at a time) at 5 requests per second with a burst of 1: no two requests
// reach TMDB less than 200 ms apart.
func TestCrawlHonoursTheRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		opts := f.options(t, f.openState(t))
		opts.Client.Limiter = NewLimiter(5, 1)
		opts.Metrics = NewMetrics(nil)
		cfg := baseConfig()
		cfg.Details = true
		start := time.Now()
		if _, err := mustNew(t, cfg, opts).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		reqs := f.double.Requests()
		if len(reqs) != 66 {
			t.Fatalf("%d requests, want 66", len(reqs))
		}
		for i := 1; i < len(reqs); i++ {
			if gap := reqs[i].Time.Sub(reqs[i-1].Time); gap < 200*time.Millisecond {
				t.Errorf("requests %d and %d only %v apart", i-1, i, gap)
			}
		}
		if d, want := time.Since(start), 65*200*time.Millisecond; d < want || d > want+time.Millisecond {
			t.Errorf("crawl took %v, want 65 × 200ms", d)
		}
		if w := testutil.ToFloat64(opts.Metrics.waits); w != 65 {
			t.Errorf("rate_limit_waits_total = %v, want 65 (all but the first request)", w)
		}
	})
}

// TestCrawlDetails: with details, each new movie's /movie/{id} values are
// kept (genres mapped to genre_ids); a movie without details keeps its list
// record; one with invalid details is rejected with its field.
func TestCrawlDetails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		movies := tmdbtest.Movies()[10:30] // now_playing
		ids := make([]int64, len(movies))
		for i, m := range movies {
			ids[i] = recordID(m)
		}
		var changed map[string]any
		_ = json.Unmarshal(movies[0], &changed)
		changed["title"] = "상세 정보의 제목"
		b, _ := json.Marshal(changed)
		f.double.SetDetails(ids[0], b)
		f.double.SetDetails(ids[1], nil)
		f.double.SetDetails(ids[2], raw(fmt.Sprintf(`{"id": %d, "title": "T", "vote_count": -1}`, ids[2])))
		opts := f.options(t, f.openState(t))
		opts.Metrics = NewMetrics(nil)
		cfg := baseConfig()
		cfg.Endpoints, cfg.Details = []string{EndpointNowPlaying}, true

		sum, err := mustNew(t, cfg, opts).Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if want := (Counts{Pages: 1, Accepted: 19, Rejected: 1}); sum.Counts != want {
			t.Errorf("counts %+v, want %+v", sum.Counts, want)
		}
		wantRej := []Rejection{{Source: "details of now_playing", Page: 1, Index: 2, ID: ids[2],
			Fields: []feature.FieldError{{Field: "vote_count", Problem: "must be >= 0"}}}}
		if diff := cmp.Diff(wantRej, sum.Rejections); diff != "" {
			t.Errorf("rejections (-want +got):\n%s", diff)
		}
		file := readFile(t, sum.Out)
		if file.Movies[0].Title != "상세 정보의 제목" {
			t.Errorf("movie %d: title %q, want the details' title", file.Movies[0].MovieID, file.Movies[0].Title)
		}
		// The others, from their details (genres → genre_ids) or, without
		// details, from the list: the same values as the list records.
		for i, rec := range file.Movies[1:] {
			src := movies[i+1]
			if i >= 1 {
				src = movies[i+2] // movies[2] was rejected
			}
			assertSameMovie(t, src, rec)
		}
		for _, id := range ids {
			if n := f.double.Count("/3/movie/"+strconv.FormatInt(id, 10), 0); n != 1 {
				t.Errorf("details of %d asked %d times, want once", id, n)
			}
		}
		for _, r := range f.double.Requests() {
			if r.Query.Get("language") != "ko-KR" {
				t.Errorf("%s without the language", r.Path)
			}
		}
		if got := testutil.ToFloat64(opts.Metrics.pages.WithLabelValues(EndpointDetails)); got != 19 {
			t.Errorf("pages_total{endpoint=details} = %v, want 19", got)
		}
	})
}

// TestCrawlDiscoverWindows crawls discover over the first half of 2025 in
// 31-day windows: each window is asked with its release-date range and sort,
// and every recorded movie released in the range is collected once.
func TestCrawlDiscoverWindows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		cfg := baseConfig()
		cfg.Endpoints = []string{EndpointDiscover}
		cfg.DiscoverFrom, cfg.DiscoverTo, cfg.DiscoverWindowDays = "2025-01-01", "2025-06-30", 31
		sum, err := mustNew(t, cfg, f.options(t, f.openState(t))).Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, m := range tmdbtest.Movies() {
			var r struct {
				ReleaseDate string `json:"release_date"`
			}
			_ = json.Unmarshal(m, &r)
			if r.ReleaseDate >= "2025-01-01" && r.ReleaseDate <= "2025-06-30" {
				want++
			}
		}
		if want == 0 || sum.Accepted != want || sum.Duplicates != 0 {
			t.Errorf("accepted %d, duplicates %d; want %d, 0", sum.Accepted, sum.Duplicates, want)
		}
		var ranges []string
		for _, r := range f.double.Requests() {
			if r.Query.Get("sort_by") != "popularity.desc" || r.Path != tmdbtest.PathDiscover {
				t.Errorf("request %s %v", r.Path, r.Query)
			}
			ranges = append(ranges, r.Query.Get("primary_release_date.gte")+".."+r.Query.Get("primary_release_date.lte"))
		}
		wantRanges := []string{"2025-01-01..2025-01-31", "2025-02-01..2025-03-03", "2025-03-04..2025-04-03",
			"2025-04-04..2025-05-04", "2025-05-05..2025-06-04", "2025-06-05..2025-06-30"}
		if diff := cmp.Diff(wantRanges, slices.Compact(ranges)); diff != "" {
			t.Errorf("discover windows (-want +got):\n%s", diff)
		}
	})
}

// TestEvery runs the daily crawl for two days of fake time: the first run
// fails and is retried 30 minutes later, then a crawl starts every 24 hours
// after the last success's start. A restarted crawler waits for the next
// due time instead of crawling at once.
func TestEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		f.double.AddFaults(tmdbtest.PathPopular, 1, slices.Repeat([]tmdbtest.Fault{tmdbtest.ServerError(500)}, 4)...)
		st := f.openState(t)
		opts := f.options(t, st)
		reg := prometheus.NewPedanticRegistry()
		opts.Metrics = NewMetrics(reg)
		opts.MaxResumeAge = 24 * time.Hour
		cfg := baseConfig()
		cfg.Endpoints, cfg.MaxPages = []string{EndpointPopular}, 1
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Hour)
		defer cancel()
		var outcomes []string
		err := mustNew(t, cfg, opts).Every(ctx, 24*time.Hour, 30*time.Minute, func(s Summary, err error) {
			outcomes = append(outcomes, fmt.Sprintf("%v %d", err == nil, s.Accepted))
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"false 0", "true 20", "true 20", "true 20"}, outcomes); diff != "" {
			t.Errorf("outcomes (-want +got):\n%s", diff)
		}
		var times []time.Duration
		for _, r := range f.double.Requests() {
			times = append(times, r.Time.Sub(start))
		}
		if len(times) != 7 {
			t.Fatalf("requests at %v, want 4 failed attempts and 3 crawls", times)
		}
		failedAt := times[3]
		want := []time.Duration{failedAt + 30*time.Minute, failedAt + 30*time.Minute + 24*time.Hour, failedAt + 30*time.Minute + 48*time.Hour}
		if diff := cmp.Diff(want, times[4:]); diff != "" {
			t.Errorf("crawl starts (-want +got):\n%s", diff)
		}
		lastStart := start.Add(times[6])
		lastSuccess := float64(lastStart.UnixNano()) / 1e9 // the crawl takes no fake time
		if got := testutil.ToFloat64(opts.Metrics.lastSuccess); got != lastSuccess {
			t.Errorf("last success %v, want %v", got, lastSuccess)
		}

		// A restart 2 hours after the last crawl: the next one is still due
		// at its start + 24h.
		time.Sleep(time.Until(lastStart.Add(2 * time.Hour)))
		ctx2, cancel2 := context.WithCancel(t.Context())
		defer cancel2()
		opts.Metrics = NewMetrics(nil)
		c := mustNew(t, cfg, opts)
		if got := testutil.ToFloat64(opts.Metrics.lastSuccess); got != lastSuccess {
			t.Errorf("after a restart, last success %v, want %v (from the state directory)", got, lastSuccess)
		}
		f.double.OnRequest(func(tmdbtest.Request) { cancel2() })
		if err := c.Every(ctx2, 24*time.Hour, 30*time.Minute, nil); err != nil {
			t.Fatal(err)
		}
		reqs := f.double.Requests()
		if got := reqs[len(reqs)-1].Time; len(reqs) != 8 || !got.Equal(lastStart.Add(24*time.Hour)) {
			t.Errorf("after the restart, %d requests, the last at %v; want 8, at %v", len(reqs), got.Sub(start), lastStart.Add(24*time.Hour).Sub(start))
		}
	})
}
