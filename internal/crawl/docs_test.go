package crawl

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/featurestore/featurestore/internal/testenv"
)

func readCrawlerDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "crawler.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCatalogueMatchesExposition keeps the metrics table of docs/crawler.md
// exact: every family the crawler exposes is listed with its type, and
// nothing else.
func TestCatalogueMatchesExposition(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	m.setLastSuccess(time.Now())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exposed []string
	for _, f := range families {
		exposed = append(exposed, f.GetName()+" "+strings.ToLower(f.GetType().String()))
	}
	var catalogued []string
	row := regexp.MustCompile("(?m)^\\| `(feature_store_crawl_[a-z_]+)` \\| (counter|gauge) \\|")
	for _, m := range row.FindAllStringSubmatch(readCrawlerDoc(t), -1) {
		catalogued = append(catalogued, m[1]+" "+m[2])
	}
	slices.Sort(exposed)
	slices.Sort(catalogued)
	if !slices.Equal(exposed, catalogued) {
		t.Errorf("docs/crawler.md lists\n  %s\nthe crawler exposes\n  %s", strings.Join(catalogued, "\n  "), strings.Join(exposed, "\n  "))
	}
}

// TestRunbookQueries checks the PromQL of docs/crawler.md with promtool;
// each reads only catalogued crawler metrics.
func TestRunbookQueries(t *testing.T) {
	t.Parallel()
	doc := readCrawlerDoc(t)
	blocks := regexp.MustCompile("(?s)```promql\n(.*?)```").FindAllStringSubmatch(doc, -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d PromQL blocks in docs/crawler.md", len(blocks))
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: crawler_runbook\n    rules:\n")
	for i, b := range blocks {
		expr := strings.TrimSpace(b[1])
		for _, name := range regexp.MustCompile(`feature_store_crawl_[a-z_]+`).FindAllString(expr, -1) {
			if !strings.Contains(doc, "| `"+name+"` |") {
				t.Errorf("runbook query %d reads %s, which is not catalogued", i+1, name)
			}
		}
		fmt.Fprintf(&rules, "      - record: crawler_runbook:query%d\n        expr: |\n", i+1)
		for _, line := range strings.Split(expr, "\n") {
			fmt.Fprintf(&rules, "          %s\n", line)
		}
	}
	promtool := testenv.RequireTool(t, "promtool")
	file := filepath.Join(t.TempDir(), "runbook.rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
