package crawl

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/featurestore/featurestore/internal/crawl/tmdbtest"
	"github.com/featurestore/featurestore/internal/testenv"
)

// TestLimiter: a bucket of 5 at 10 per second lets 5 requests through at
// once, then one every 100 ms; a caller that gives up returns its turn.
func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(10, 5)
		start := time.Now()
		var waited time.Duration
		for i := range 100 {
			d, err := l.Wait(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if i < 5 && d != 0 {
				t.Errorf("request %d of the burst waited %v", i, d)
			}
			waited += d
		}
		if d := time.Since(start); d != 9500*time.Millisecond {
			t.Errorf("100 requests took %v, want 9.5s (5 at once, then 95 at 10/s)", d)
		}
		// Idle time refills the bucket, up to the burst only.
		time.Sleep(time.Hour)
		start = time.Now()
		for range 6 {
			if _, err := l.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("after an idle hour, 6 requests took %v, want 100ms (a burst of 5)", d)
		}

		l = NewLimiter(1, 1)
		start = time.Now()
		if _, err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		if _, err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait past the deadline: %v", err)
		}
		if _, err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("the turn given back was not reused: next request at %v, want 1s", d)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 6, 5, 2, 24, 12, 500_000_000, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 3 ", 3 * time.Second, true},
		{"120", 2 * time.Minute, true},
		{"99999999999", 24 * time.Hour, true}, // capped, no overflow
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"Thu, 05 Jun 2025 02:24:20 GMT", 7500 * time.Millisecond, true},
		{"Thursday, 05-Jun-25 02:24:20 GMT", 7500 * time.Millisecond, true}, // RFC 850
		{"Thu Jun  5 02:24:20 2025", 7500 * time.Millisecond, true},         // asctime
		{"Thu, 05 Jun 2025 02:00:00 GMT", 0, true},                          // past
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{retry: RetryPolicy{BaseDelay: time.Second, MaxDelay: 5 * time.Second}}
	for _, tc := range []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{4, 2500 * time.Millisecond, 5 * time.Second},
		{60, 2500 * time.Millisecond, 5 * time.Second},
	} {
		for range 200 {
			if d := c.backoff(tc.attempt); d < tc.lo || d > tc.hi {
				t.Fatalf("backoff(%d) = %v, want %v to %v", tc.attempt, d, tc.lo, tc.hi)
			}
		}
	}
}

func TestDecodePage(t *testing.T) {
	good := `{"page":2,"results":[{"id":1,"title":"A"},"x"],"total_pages":7,"total_results":130}`
	p, err := decodePage([]byte(good), 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Number != 2 || p.TotalPages != 7 || p.TotalResults != 130 || len(p.Results) != 2 {
		t.Errorf("page %+v", p)
	}
	for _, tc := range []struct{ body, want string }{
		{good[:40], "not a TMDB list page: unexpected end of JSON input"},
		{`{"page":2,"total_pages":7}`, `no "results"`},
		{`{"results":[],"total_pages":7}`, `no "page" or "total_pages"`},
		{`{"page":3,"results":[],"total_pages":7}`, "asked for page 2, got page 3"},
		{`{"page":2,"results":{},"total_pages":7}`, `"results" must be an array of movies`},
		{`[1,2]`, "not a TMDB list page"},
		{`{"page":2,"results":[],"total_pages":-1}`, "negative"},
	} {
		if _, err := decodePage([]byte(tc.body), 2); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decodePage(%s) = %v, want %q", tc.body, err, tc.want)
		}
	}
}

func TestDetailsRecord(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"id":1,"title":"A & B","genres":[{"id":18,"name":"Drama"},{"id":35,"name":"Comedy"}],"runtime":90}`,
			`{"genre_ids":[18,35],"id":1,"runtime":90,"title":"A & B"}`},
		{`{"id":1,"genres":[]}`, `{"genre_ids":[],"id":1}`},
		{`{"id":1,"genres":"Drama"}`, `{"genre_ids":"Drama","id":1}`}, // left for validation to reject
		{`{"id":1,"genres":[{"name":"Drama"}]}`, `{"genre_ids":[{"name":"Drama"}],"id":1}`},
		{`{"id":1,"genre_ids":[18],"genres":[{"id":35}]}`, `{"genre_ids":[18],"id":1}`},
	} {
		got, err := detailsRecord([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("detailsRecord(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{`null`, `{"id":1`, `[1]`} {
		if _, err := detailsRecord([]byte(in)); err == nil {
			t.Errorf("detailsRecord(%s): no error", in)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := baseConfig().Validate(); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Endpoints = nil }, "at least one of popular, top_rated, now_playing, discover"},
		{func(c *Config) { c.Endpoints = []string{"trending"} }, `unknown "trending"`},
		{func(c *Config) { c.Endpoints = []string{"popular", "popular"} }, `"popular" given twice`},
		{func(c *Config) { c.Language = "korean" }, `language "korean"`},
		{func(c *Config) { c.Region = "kr" }, `region "kr"`},
		{func(c *Config) { c.MaxPages = 501 }, "max-pages 501: want 1 to 500"},
		{func(c *Config) { c.MaxPages = 0 }, "max-pages 0"},
		{func(c *Config) { c.Endpoints = []string{"discover"}; c.DiscoverFrom = "yesterday" }, `discover-from: "yesterday" is not YYYY-MM-DD, today or -Nd`},
		{func(c *Config) {
			c.Endpoints = []string{"discover"}
			c.DiscoverFrom, c.DiscoverTo = "2025-02-01", "2025-01-01"
		}, "discover-from 2025-02-01 is after discover-to 2025-01-01"},
		{func(c *Config) { c.Endpoints = []string{"discover"}; c.DiscoverSort = "popularity" }, `discover-sort "popularity"`},
		{func(c *Config) {
			c.Endpoints = []string{"discover"}
			c.DiscoverFrom, c.DiscoverTo, c.DiscoverWindowDays = "1900-01-01", "2025-01-01", 1
		}, "more than 1000 windows"},
	} {
		c := baseConfig()
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
}

func TestSourcesResolveRelativeDates(t *testing.T) {
	now := time.Date(2025, 6, 5, 2, 24, 12, 0, time.FixedZone("KST", 9*3600))
	c := baseConfig()
	c.Endpoints = []string{EndpointDiscover, EndpointPopular}
	c.DiscoverFrom, c.DiscoverTo, c.DiscoverWindowDays = "-30d", "today", 14
	want := []Source{
		{Endpoint: "discover", From: "2025-05-05", To: "2025-05-18"},
		{Endpoint: "discover", From: "2025-05-19", To: "2025-06-01"},
		{Endpoint: "discover", From: "2025-06-02", To: "2025-06-04"},
		{Endpoint: "popular"},
	}
	if diff := cmp.Diff(want, c.sources(now)); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
}

func TestNewClientChecks(t *testing.T) {
	for _, tc := range []struct {
		opts ClientOptions
		want string
	}{
		{ClientOptions{Retry: DefaultRetryPolicy}, "set TMDB_API_KEY (v3 API key) or TMDB_BEARER_TOKEN"},
		{ClientOptions{Credentials: Credentials{APIKey: "k"}, BaseURL: "api.themoviedb.org/3", Retry: DefaultRetryPolicy}, "is not an http(s) URL"},
		{ClientOptions{Credentials: Credentials{APIKey: testKey}, BaseURL: "https://x/3?api_key=" + testKey, Retry: DefaultRetryPolicy}, `"https://x/3?api_key=****" is not an http(s) URL without a query`},
		{ClientOptions{Credentials: Credentials{APIKey: "k"}}, "max attempts must be at least 1"},
	} {
		if _, err := NewClient(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewClient(%+v) = %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// TestStateIsExclusive: one crawler per state directory.
func TestStateIsExclusive(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenState(dir); !errors.Is(err, ErrStateLocked) {
		t.Errorf("second OpenState: %v, want ErrStateLocked", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = OpenState(dir)
	if err != nil {
		t.Fatalf("OpenState after Close: %v", err)
	}
	st.Close()
}

// TestStateRefusesCorruptFiles: a corrupt checkpoint or a journal shorter
// than its checkpoint is an error naming the file, never a silent restart.
func TestStateRefusesCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SaveCheckpoint(&Checkpoint{JournalBytes: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.openJournal(100); err == nil || !strings.Contains(err.Error(), "shorter (0 bytes) than its checkpoint says (100)") {
		t.Errorf("short journal: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, checkpointFile), []byte(`{"version":1,`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LoadCheckpoint(); err == nil || !strings.Contains(err.Error(), "is corrupt") {
		t.Errorf("corrupt checkpoint: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, checkpointFile), []byte(`{"version":99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LoadCheckpoint(); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("future checkpoint: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// TestMetricsExposition: the crawler's registry passes the client library's
// lint and promtool check metrics; the last success is absent until there
// is one.
func TestMetricsExposition(t *testing.T) {
	var before, after []byte
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		reg := prometheus.NewPedanticRegistry()
		opts := f.options(t, f.openState(t))
		opts.Metrics = NewMetrics(reg)
		opts.Client.Limiter = NewLimiter(20, 1)
		f.double.AddFaults(tmdbtest.PathPopular, 2, tmdbtest.TooManyRequests("1"))
		before = scrape(t, reg)
		if _, err := mustNew(t, baseConfig(), opts).Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		after = scrape(t, reg)
		problems, err := testutil.GatherAndLint(reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	})
	const last = "feature_store_crawl_last_success_timestamp_seconds"
	if bytes.Contains(before, []byte(last+" ")) {
		t.Errorf("%s exposed before any success:\n%s", last, before)
	}
	for _, want := range []string{
		last + " 9.4668", // 2000-01-01, synctest's epoch, and a few seconds
		`feature_store_crawl_pages_total{endpoint="details"} 0`,
		`feature_store_crawl_pages_total{endpoint="popular"} 3`,
		`feature_store_crawl_records_total{result="duplicate"} 60`,
		`feature_store_crawl_retries_total{reason="rate_limited"} 1`,
		`feature_store_crawl_runs_total{result="success"} 1`,
		`feature_store_crawl_runs_total{result="failure"} 0`,
		"feature_store_crawl_rate_limit_waits_total ",
	} {
		if !bytes.Contains(after, []byte(want)) {
			t.Errorf("scrape lacks %q:\n%s", want, after)
		}
	}
	promtool := testenv.RequireTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(after)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func scrape(t *testing.T, reg *prometheus.Registry) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.Bytes()
}
