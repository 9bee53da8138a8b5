package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/crawl/tmdbtest"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// crawlKey is the API key the TMDB double accepts; no output may show it.
const crawlKey = "crawl-test-key-5f2b9c0e8d7a6b5c4d3e"

// startTMDBDouble serves the TMDB test double on a loopback port.
func startTMDBDouble(t *testing.T) (*tmdbtest.Server, string) {
	t.Helper()
	double := tmdbtest.New(tmdbtest.Options{APIKey: crawlKey, BearerToken: crawlKey})
	srv := httptest.NewServer(double)
	t.Cleanup(srv.Close)
	return double, srv.URL + "/3"
}

// TestCrawlCommandIntoTheEmbeddedStore runs `featurestore crawl --ingest
// --out` against the TMDB double: the file holds every movie once, and the
// service reads a movie's features back from the embedded store.
func TestCrawlCommandIntoTheEmbeddedStore(t *testing.T) {
	t.Parallel()
	double, tmdbURL := startTMDBDouble(t)
	double.AddFaults(tmdbtest.PathTopRated, 1, tmdbtest.TooManyRequests("0"), tmdbtest.ServerError(502))
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	var stdout, stderr bytes.Buffer
	err := Run(t.Context(), []string{"crawl", "--tmdb-url", tmdbURL, "--language", "ko-KR", "--region", "KR",
		"--data-dir", dataDir, "--state-dir", filepath.Join(dir, "state"),
		"--ingest", "--out", filepath.Join(dir, "out", "bulk_collection_{timestamp}.json")},
		envFrom(map[string]string{"TMDB_API_KEY": crawlKey}), &stdout, &stderr)
	if err != nil {
		t.Fatalf("crawl: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	for _, want := range []string{"crawled 6 pages", "accepted 60, rejected 0, duplicates 60",
		"wrote 60 movies to " + filepath.Join(dir, "out", "bulk_collection_"), "ingested 60 movies into the feature store"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, &stdout)
		}
	}
	for _, want := range []string{`"msg":"starting the TMDB crawl"`, `"credential":"API key"`, `"msg":"retrying a TMDB request"`, `"msg":"crawl finished"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the log (stderr) lacks %s:\n%s", want, &stderr)
		}
	}
	assertNoCrawlKey(t, stdout.String()+stderr.String())

	files, _ := filepath.Glob(filepath.Join(dir, "out", "bulk_collection_*.json"))
	if len(files) != 1 {
		t.Fatalf("crawler files: %v", files)
	}
	body, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if raws, err := tmdb.Decode(body); err != nil || len(raws) != 60 {
		t.Errorf("the crawler file decodes to %d records, %v", len(raws), err)
	}

	// Read back through the service: the first recorded movie, Lilo & Stitch.
	b, err := openBackends(t.Context(), Config{DataDir: dataDir, CacheTTL: time.Hour, CacheAbsentTTL: time.Minute}, zap.NewNop(), nil, openOptions{memoryCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	svc, err := service.New(t.Context(), b.store, b.serviceOptions(service.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	basic, err := svc.GetEntity(t.Context(), "movie_basic", "552524", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if basic.Features["popularity"] != 630.3236 || basic.Features["vote_count"] != int64(460) || basic.Features["genre_family"] != true {
		t.Errorf("movie_basic of 552524: %v", basic.Features)
	}
	text, err := svc.GetEntity(t.Context(), "movie_text", "552524", []string{"title_length", "is_title_same_as_original"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if text.Features["title_length"] != int64(len([]rune("릴로 & 스티치"))) || text.Features["is_title_same_as_original"] != false {
		t.Errorf("movie_text of 552524: %v", text.Features)
	}
	stats, err := svc.GetEntity(t.Context(), "movie_statistical", "552524", []string{"rating_percentile"}, nil)
	if err != nil || stats.Statuses["rating_percentile"] != feature.StatusPresent {
		t.Errorf("movie_statistical of 552524 (recomputed after the crawl): %+v, %v", stats, err)
	}
	if n := svc.CorpusSize(); n != 60 {
		t.Errorf("corpus of %d movies, want 60", n)
	}
}

// TestCrawlCommandThroughTheAPI ingests through a running service with
// --api; the service serves the features at once.
func TestCrawlCommandThroughTheAPI(t *testing.T) {
	t.Parallel()
	_, tmdbURL := startTMDBDouble(t)
	base, _, _ := startServer(t, []string{"--data-dir", t.TempDir()}, nil)
	var stdout, stderr bytes.Buffer
	err := Run(t.Context(), []string{"crawl", "--tmdb-url", tmdbURL, "--endpoints", "now_playing",
		"--state-dir", t.TempDir(), "--ingest", "--api", base},
		envFrom(map[string]string{"TMDB_API_KEY": crawlKey}), &stdout, &stderr)
	if err != nil {
		t.Fatalf("crawl: %v\n%s\n%s", err, &stdout, &stderr)
	}
	if !strings.Contains(stdout.String(), "ingested 20 movies") {
		t.Errorf("stdout:\n%s", &stdout)
	}
	id := fmt.Sprint(idOfRecord(t, tmdbtest.Movies()[10])) // now_playing starts at the 11th record
	var ent service.EntityResult
	if st := doJSON(t, "GET", base+"/v1/feature-groups/movie_basic/entities/"+id, nil, &ent); st != 200 || ent.EntityID != id {
		t.Errorf("GET movie_basic/%s = %d %+v", id, st, ent)
	}
}

func idOfRecord(t *testing.T, raw []byte) int64 {
	t.Helper()
	m, problems := tmdb.ParseMovie(raw)
	if problems != nil {
		t.Fatal(problems)
	}
	return m.ID
}

// TestCrawlEveryServesMetrics runs the daily crawl as a service: the first
// crawl runs at once, its logs go to stdout, and /metrics on --metrics-addr
// shows the last success next to the Go and process metrics.
func TestCrawlEveryServesMetrics(t *testing.T) {
	t.Parallel()
	_, tmdbURL := startTMDBDouble(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ctx, cancel := context.WithCancel(t.Context())
	logs := &testenv.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"crawl", "--tmdb-url", tmdbURL, "--every", "24h", "--metrics-addr", addr,
			"--state-dir", t.TempDir(), "--out", filepath.Join(t.TempDir(), "movies.json")},
			envFrom(map[string]string{"TMDB_BEARER_TOKEN": crawlKey}), logs, io.Discard)
	}()
	var scrape string
	testenv.Eventually(t, 60*time.Second, "the crawler's /metrics shows a success", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		scrape = string(b)
		return strings.Contains(scrape, `feature_store_crawl_runs_total{result="success"} 1`), scrape
	})
	for _, want := range []string{"feature_store_crawl_last_success_timestamp_seconds ", `feature_store_crawl_pages_total{endpoint="popular"} 3`,
		"go_goroutines ", "process_start_time_seconds "} {
		if !strings.Contains(scrape, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(scrape)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("crawl --every after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("crawl --every did not stop")
	}
	for _, want := range []string{`"credential":"bearer token"`, `"msg":"crawl finished"`, `"msg":"next crawl scheduled"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log (stdout) lacks %s:\n%s", want, logs)
		}
	}
	assertNoCrawlKey(t, logs.String())
}

// TestCrawlHelpShowsOnlyItsFlags: crawl --help describes the command and
// lists its flags and the store flags --ingest uses, not the server's.
func TestCrawlHelpShowsOnlyItsFlags(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	env := envFrom(map[string]string{"FEATURESTORE_POSTGRES_URL": "postgres://app:s3cret@db:5432/fs", "TMDB_API_KEY": crawlKey})
	if err := Run(t.Context(), []string{"crawl", "--help"}, env, &out, &out); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	for _, want := range []string{"featurestore crawl: collect movies from the TMDB API v3", "TMDB_API_KEY", "TMDB_BEARER_TOKEN",
		"-tmdb-url", "-endpoints", "-language", "-region", "-max-pages", "-discover-from", "-discover-window-days", "-details",
		"-rate", "-max-attempts", "-state-dir", "-out", "-ingest", "-api", "-every", "-metrics-addr", "FEATURESTORE_EVERY",
		"-data-dir", "-postgres-url", "-redis-url", "-log-level", "app:****@db"} {
		if !strings.Contains(help, want) {
			t.Errorf("crawl --help lacks %q", want)
		}
	}
	for _, unwanted := range []string{"  -addr ", "-shutdown-delay", "-max-body-bytes", "-recompute-delay", "-health-interval", "s3cret", crawlKey} {
		if strings.Contains(help, unwanted) {
			t.Errorf("crawl --help shows %q", unwanted)
		}
	}
	out.Reset()
	if err := Run(t.Context(), []string{"--help"}, envFrom(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "featurestore crawl [flags]") {
		t.Errorf("featurestore --help does not list crawl:\n%s", &out)
	}
}

func TestCrawlCommandErrors(t *testing.T) {
	t.Parallel()
	_, tmdbURL := startTMDBDouble(t)
	key := map[string]string{"TMDB_API_KEY": crawlKey}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--out", "x.json"}, nil, "no TMDB credentials: set TMDB_API_KEY"},
		{nil, key, "nothing to do: give --out FILE, --ingest, or both"},
		{[]string{"--out", "x.json", "--api", "http://localhost:8001"}, key, "--api sends the movies to a running service: give it with --ingest"},
		{[]string{"--ingest", "--api", "localhost:8001"}, key, `--api "localhost:8001" is not an http(s) URL`},
		{[]string{"--out", "x.json", "--rate", "100"}, key, "--rate must be between 1 and 50"},
		{[]string{"--out", "x.json", "--every", "10s"}, key, "--every must be 0 (crawl once) or at least 1m"},
		{[]string{"--out", "x.json", "--endpoints", "popular,trending"}, key, `endpoints: unknown "trending"`},
		{[]string{"--out", "x.json", "--max-pages", "501"}, key, "max-pages 501: want 1 to 500"},
		{[]string{"--out", "x.json", "extra"}, key, `crawl takes no arguments, got ["extra"]`},
		{[]string{"--out", "x.json"}, map[string]string{"TMDB_API_KEY": crawlKey, "FEATURESTORE_MAX_PAGES": "many"}, `FEATURESTORE_MAX_PAGES="many": not an integer`},
		{[]string{"--out", "x.json", "--log-level", "loud"}, key, "log-level must be debug, info, warn or error"},
		{[]string{"--out", "x.json", "--tmdb-url", tmdbURL}, map[string]string{"TMDB_API_KEY": "wrong-" + crawlKey},
			"TMDB answered 401 Unauthorized: Invalid API key: You must be granted a valid key."},
	} {
		args := append([]string{"crawl", "--state-dir", t.TempDir()}, tc.args...)
		var out bytes.Buffer
		err := Run(t.Context(), args, envFrom(tc.env), &out, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("crawl %q: err = %v, want %q", tc.args, err, tc.want)
			continue
		}
		assertNoCrawlKey(t, err.Error()+out.String())
	}
}

func assertNoCrawlKey(t *testing.T, text string) {
	t.Helper()
	if strings.Contains(text, crawlKey) {
		t.Errorf("output shows the TMDB credential:\n%s", text)
	}
}

// TestCrawlFlagsDocumented: docs/crawler.md names every flag of crawl --help.
func TestCrawlFlagsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "crawler.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Run(t.Context(), []string{"crawl", "--help"}, envFrom(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(out.String(), -1)
	if len(flags) < 20 {
		t.Fatalf("found %d flags in crawl --help", len(flags))
	}
	for _, f := range flags {
		if !strings.Contains(string(doc), "`--"+f[1]+"`") {
			t.Errorf("docs/crawler.md does not document --%s", f[1])
		}
	}
}
