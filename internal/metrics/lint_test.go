package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/testenv"
)

// fullRegistry registers everything the service registers, real pools
// included, and puts a sample in every family.
func fullRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m := New(reg, BuildInfo{Version: "0.1.0", Revision: "deadbeef"}, nil)
	if err := m.Register(NewPgxPoolCollector(testPgxPool(t).Stat)); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(NewRedisPoolCollector(testRedis(t).PoolStats)); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(NewNearCacheCollector(func() NearCacheStats { return NearCacheStats{Hits: 1, Usable: true} })); err != nil {
		t.Fatal(err)
	}
	m.ObserveRequest(feature.OpGetOnlineFeatures, "movie_stats", time.Millisecond)
	m.CacheHit(CacheRedis, "movie_stats", 1)
	m.CacheMiss(CacheRedis, "movie_stats", 1)
	m.CacheError(CacheRedis, "get")
	m.CacheMismatch(CacheRedis, "identity")
	m.FeaturesWritten("movie_stats", 1)
	m.SetStorageBytes("postgres", 1)
	m.Error(feature.OpGetEntity, feature.CodeNotFound)
	m.FeatureStatuses("movie_stats", 1, 1, 1, 1)
	m.Ingested(1, 1)
	m.SetNewestEvent("movie_stats", time.Now())
	m.SetDependency(DepPostgres, true, time.Millisecond)
	m.SetReady(time.Second)
	m.Recomputed(1, time.Second, nil)
	m.RegisterCacheState(func() int { return 0 }, func() bool { return true })
	m.InitRoutes([][2]string{{"GET", "/v1/feature-groups/{group}"}})
	zap.New(m.CountingCore(zapcore.NewNopCore())).Info("x")
	sec := NewSecurity(reg)
	sec.SetAuth(true, []string{"ci-ingest"}, true)
	sec.AuthDecision("ci-ingest", "allowed")
	sec.ReloadFiles("tokens")
	sec.Reloaded("tokens", true)
	sec.SetCertificateExpiry(time.Now())
	one := func() float64 { return 1 }
	l := NewLimits(reg, map[string]float64{"max_body_bytes": 1}, LimitGauges{OpenConnections: one, RateLimitClients: one, BodyBytesHeld: one})
	l.RateLimited()
	l.Shed()
	l.ConnRejected()
	l.AcceptFailed(true)
	return reg
}

func TestGatherAndLint(t *testing.T) {
	t.Parallel()
	problems, err := testutil.GatherAndLint(fullRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestPromtoolCheckMetrics runs the real promtool (Prometheus 2.42, as the
// monitoring stack uses) over the exposition a scrape gets.
func TestPromtoolCheckMetrics(t *testing.T) {
	t.Parallel()
	promtool := testenv.RequireTool(t, "promtool")
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(fullRegistry(t), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(rec.Body.Bytes())
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("promtool: %v", err)
		}
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestCatalogueMatchesExposition keeps docs/metrics.md exact: every family
// a scrape shows is catalogued, and every catalogued family exists (so a Go
// upgrade that renames a runtime metric fails here, not on a dashboard).
func TestCatalogueMatchesExposition(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	var catalogued []string
	for _, m := range catalogueRow.FindAllSubmatch(doc, -1) {
		catalogued = append(catalogued, string(m[1]))
	}
	exposed := families(t, fullRegistry(t))
	for name := range exposed {
		if !slices.Contains(catalogued, name) {
			t.Errorf("%s is exposed but not in docs/metrics.md", name)
		}
	}
	for _, name := range catalogued {
		if _, ok := exposed[name]; !ok {
			t.Errorf("%s is in docs/metrics.md but not exposed", name)
		}
	}
}

// catalogueRow matches a catalogue row: "| `name` | type |".
var catalogueRow = regexp.MustCompile("(?m)^\\| `([a-z_:][a-z0-9_:]*)` \\| (?:counter|gauge|histogram|summary) \\|")

// TestCookbookParses checks every PromQL block of docs/metrics.md with
// promtool, and that each metric it reads is catalogued.
func TestCookbookParses(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```promql\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 10 {
		t.Fatalf("found %d PromQL blocks, want the cookbook", len(blocks))
	}
	catalogued := map[string]bool{}
	for _, m := range catalogueRow.FindAllSubmatch(doc, -1) {
		catalogued[string(m[1])] = true
	}
	var rules strings.Builder
	rules.WriteString("groups:\n- name: cookbook\n  rules:\n")
	for i, b := range blocks {
		expr := strings.TrimSpace(string(b[1]))
		for _, name := range regexp.MustCompile(`\b(?:feature_store|go|process)_[a-z0-9_]+`).FindAllString(expr, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if s, ok := strings.CutSuffix(name, suffix); ok && catalogued[s] {
					base = s
				}
			}
			if !catalogued[base] {
				t.Errorf("cookbook block %d reads %s, which is not catalogued", i+1, name)
			}
		}
		fmt.Fprintf(&rules, "  - record: cookbook:expr%d\n    expr: |\n", i+1)
		for _, line := range strings.Split(expr, "\n") {
			fmt.Fprintf(&rules, "      %s\n", line)
		}
	}
	promtool := testenv.RequireTool(t, "promtool")
	file := filepath.Join(t.TempDir(), "cookbook.rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
