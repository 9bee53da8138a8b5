package crawl

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/featurestore/featurestore/internal/crawl/tmdbtest"
	"github.com/featurestore/featurestore/internal/testenv"
)

// testKey is the API key the TMDB double accepts; no test output may show it.
const testKey = "k3y0f7h3735td0ub1e5ecr37aaaa0001"

// fixture is a TMDB double served in memory (usable in a synctest bubble)
// and what a crawler against it needs.
type fixture struct {
	double *tmdbtest.Server
	base   string
	client *http.Client
	logs   *testenv.SyncBuffer
	log    *zap.Logger
	dir    string // the state directory
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	double := tmdbtest.New(tmdbtest.Options{APIKey: testKey})
	srv, client := tmdbtest.StartInMemory(t, double)
	logs := &testenv.SyncBuffer{}
	enc := zap.NewProductionEncoderConfig()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(logs), zapcore.DebugLevel))
	return &fixture{double: double, base: srv.URL + "/3", client: client, logs: logs, log: log, dir: t.TempDir()}
}

// baseConfig crawls popular, top_rated and now_playing in ko-KR/KR.
func baseConfig() Config {
	return Config{
		Endpoints: []string{EndpointPopular, EndpointTopRated, EndpointNowPlaying},
		Language:  "ko-KR", Region: "KR", MaxPages: MaxPage,
		DiscoverFrom: "-30d", DiscoverTo: "today", DiscoverSort: "popularity.desc",
	}
}

// options returns crawler options against the double: fast backoffs (the
// tests run in synctest bubbles, so waits cost no real time anyway), a
// state directory of its own, the crawler file in the test's directory.
func (f *fixture) options(t *testing.T, st *State) Options {
	t.Helper()
	return Options{
		Client: ClientOptions{
			BaseURL: f.base, Credentials: Credentials{APIKey: testKey}, HTTPClient: f.client,
			Retry: RetryPolicy{MaxAttempts: 4, BaseDelay: time.Second, MaxDelay: 10 * time.Second, MaxRetryAfter: time.Minute},
		},
		State:  st,
		Out:    filepath.Join(f.dir, "out", "bulk_collection_{timestamp}.json"),
		Logger: f.log,
	}
}

// openState opens the fixture's state directory, closed at cleanup.
func (f *fixture) openState(t *testing.T) *State {
	t.Helper()
	st, err := OpenState(filepath.Join(f.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func mustNew(t *testing.T, cfg Config, opts Options) *Crawler {
	t.Helper()
	c, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readFile decodes a crawler file.
func readFile(t *testing.T, path string) File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// withoutCollectedAt drops the fetch times, which differ between crawls.
func withoutCollectedAt(recs []Record) []Record {
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.CollectedAt = ""
		out[i] = r
	}
	return out
}

// assertNoSecret fails when any text shows the API key.
func assertNoSecret(t *testing.T, what, text string) {
	t.Helper()
	if strings.Contains(text, testKey) {
		t.Errorf("%s shows the API key:\n%s", what, text)
	}
}

// raw is a JSON literal as a record.
func raw(s string) json.RawMessage { return json.RawMessage(s) }
