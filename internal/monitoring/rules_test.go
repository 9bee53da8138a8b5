package monitoring

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/featurestore/featurestore/internal/testenv"
)

// runTool runs a tool and fails the test with its output when it fails.
func runTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// promRuleFile is a Prometheus rule file.
type promRuleFile struct {
	Groups []struct {
		Name     string     `yaml:"name"`
		Interval string     `yaml:"interval"`
		Rules    []promRule `yaml:"rules"`
	} `yaml:"groups"`
}

// promRule is a recording rule (Record set) or an alerting rule (Alert set).
type promRule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// promTestFile is a promtool unit test file.
type promTestFile struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	Tests              []struct {
		Name        string `yaml:"name"`
		Interval    string `yaml:"interval"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTests  []promAlertTest `yaml:"alert_rule_test"`
		PromQLExprTests []struct {
			Expr       string `yaml:"expr"`
			EvalTime   string `yaml:"eval_time"`
			ExpSamples []struct {
				Labels string  `yaml:"labels"`
				Value  float64 `yaml:"value"`
			} `yaml:"exp_samples"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

// promAlertTest is one alert_rule_test case: the alerts of one name firing at
// one time. An empty ExpAlerts asserts that none fires.
type promAlertTest struct {
	EvalTime  string `yaml:"eval_time"`
	Alertname string `yaml:"alertname"`
	ExpAlerts []struct {
		ExpLabels      map[string]string `yaml:"exp_labels"`
		ExpAnnotations map[string]string `yaml:"exp_annotations"`
	} `yaml:"exp_alerts"`
}

// decodeRulesYAML decodes a YAML file into v, refusing unknown fields (a
// misspelt exp_annotations would otherwise be ignored).
func decodeRulesYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// rulesDir is prometheus/rules of the repository: the compose rendering of
// prometheus/templates, which the compose stack and the end-to-end test
// load.
func rulesDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(testenv.RepoRoot(t), "prometheus", "rules")
}

// renderingDirs are the directories of every rendering of the rules and
// their tests (internal/monitoring/rulegen): compose and Kubernetes.
func renderingDirs(t *testing.T) []string {
	t.Helper()
	root := testenv.RepoRoot(t)
	return []string{filepath.Join(root, "prometheus", "rules"), filepath.Join(root, "prometheus", "kubernetes")}
}

// globRules returns the files of dir matching pattern, failing when there are none.
func globRules(t *testing.T, dir, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no %s in %s", pattern, dir)
	}
	return files
}

// loadRuleFiles returns the rule files (rules/*.rules.yml), keyed by base name.
func loadRuleFiles(t *testing.T) map[string]promRuleFile {
	t.Helper()
	out := map[string]promRuleFile{}
	for _, path := range globRules(t, rulesDir(t), "*.rules.yml") {
		var f promRuleFile
		decodeRulesYAML(t, path, &f)
		out[filepath.Base(path)] = f
	}
	return out
}

// loadRuleTests returns the promtool test files (rules/*_test.yml), keyed by
// base name.
func loadRuleTests(t *testing.T) map[string]promTestFile {
	t.Helper()
	out := map[string]promTestFile{}
	for _, path := range globRules(t, rulesDir(t), "*_test.yml") {
		var f promTestFile
		decodeRulesYAML(t, path, &f)
		out[filepath.Base(path)] = f
	}
	return out
}

// loadRules returns every rule of every rule file, in file order.
func loadRules(t *testing.T) []promRule {
	t.Helper()
	files := loadRuleFiles(t)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []promRule
	for _, name := range names {
		for _, g := range files[name].Groups {
			out = append(out, g.Rules...)
		}
	}
	return out
}

// ruleKnownMetrics returns every metric name a rule or query may read, with
// where it comes from: the service's catalogue (docs/metrics.md) and the
// crawler's (docs/crawler.md; in both a
// histogram's _bucket, _sum and _count, a summary's _sum and _count), and the
// other components' metrics listed here.
func ruleKnownMetrics(t *testing.T) map[string]string {
	t.Helper()
	known := map[string]string{
		// Prometheus: the synthetic series it writes for every scrape target.
		"up": "prometheus",
		// prometheus-redis-exporter 1.45.0 (Debian bookworm), seen in its
		// /metrics scraping a Redis 7 (redis_up is 0 when Redis is down).
		"redis_up":                "redis_exporter",
		"redis_memory_used_bytes": "redis_exporter",
		"redis_memory_max_bytes":  "redis_exporter",
		// prometheus-postgres-exporter 0.11.1 (Debian bookworm), seen in its
		// /metrics scraping a PostgreSQL 15 (pg_up is 0 when Postgres is down;
		// both others carry a server label).
		"pg_up":                        "postgres_exporter",
		"pg_stat_database_numbackends": "postgres_exporter",
		"pg_settings_max_connections":  "postgres_exporter",
		// Prometheus 2.42 and Alertmanager 0.25 about themselves, seen in
		// their /metrics; ALERTS is the series Prometheus writes for every
		// pending or firing alert.
		"ALERTS": "prometheus",
		"prometheus_config_last_reload_successful":   "prometheus",
		"prometheus_rule_evaluation_failures_total":  "prometheus",
		"prometheus_notifications_errors_total":      "prometheus",
		"alertmanager_notifications_failed_total":    "alertmanager",
		"alertmanager_config_last_reload_successful": "alertmanager",
	}
	for doc, least := range map[string]int{"metrics.md": 50, "crawler.md": 5} {
		addCatalogue(t, known, doc, least)
	}
	return known
}

// addCatalogue adds the metrics of the catalogue table of docs/<doc> to
// known (a histogram's _bucket, _sum and _count, a summary's _sum and
// _count); it fails when it finds fewer than least.
func addCatalogue(t *testing.T, known map[string]string, doc string, least int) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", doc))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_:][a-z0-9_:]*)` \\| (counter|gauge|histogram|summary) \\|")
	rows := row.FindAllSubmatch(text, -1)
	if len(rows) < least {
		t.Fatalf("found %d metrics in docs/%s, want the catalogue", len(rows), doc)
	}
	from := "docs/" + doc
	for _, m := range rows {
		name, typ := string(m[1]), string(m[2])
		known[name] = from
		switch typ {
		case "histogram":
			known[name+"_bucket"] = from
			fallthrough
		case "summary":
			known[name+"_sum"] = from
			known[name+"_count"] = from
		}
	}
}

// ruleMetricNames returns the metric names a PromQL expression reads: the
// identifiers left once strings, label matchers, grouping labels and ranges
// are removed, that are not keywords, numbers or function calls. It is a
// scanner, not a parser (the Prometheus parser is not a dependency); promtool
// checks the syntax, TestRuleMetricNames pins the cases the rules use.
func ruleMetricNames(expr string) []string {
	strs := regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	matchers := regexp.MustCompile(`\{[^}]*\}`)
	grouping := regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	ranges := regexp.MustCompile(`\[[^\]]*\]|\boffset\s+-?[0-9a-z]+`)
	ident := regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	keywords := []string{"and", "or", "unless", "bool", "by", "without", "on", "ignoring",
		"group_left", "group_right", "offset", "inf", "nan"}

	s := strs.ReplaceAllString(expr, `""`)
	s = matchers.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range ident.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && (s[loc[0]-1] == '.' || unicode.IsDigit(rune(s[loc[0]-1]))) {
			continue // the exponent of a number: 1e-6
		}
		if slices.Contains(keywords, strings.ToLower(name)) {
			continue
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// githubAnchors returns the anchors GitHub gives the headings of a Markdown
// document: lower case, punctuation other than - and _ removed, spaces turned
// into -, and -1, -2, ... appended to repeats. Fenced code is skipped.
func githubAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		anchor := b.String()
		if n := seen[anchor]; n > 0 {
			seen[anchor]++
			anchor = fmt.Sprintf("%s-%d", anchor, n)
		} else {
			seen[anchor] = 1
		}
		anchors[anchor] = true
	}
	return anchors
}

// TestPromtoolCheckConfig checks prometheus/prometheus.yml, and the rule files
// it loads, with promtool.
func TestPromtoolCheckConfig(t *testing.T) {
	t.Parallel()
	promtool := testenv.RequireTool(t, "promtool")
	dir := filepath.Join(testenv.RepoRoot(t), "prometheus")
	out := runTool(t, dir, promtool, "check", "config", "prometheus.yml")
	for _, want := range []string{"alerts.rules.yml", "recording.rules.yml", "slo.rules.yml"} {
		if !strings.Contains(out, want) {
			t.Errorf("promtool check config did not load %s:\n%s", want, out)
		}
	}
}

// TestPrometheusConfig checks what the compose stack relies on: the scrape
// jobs and their targets, the intervals, the Alertmanager, and a rule_files
// glob that loads every rule file and no promtool test file.
func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testenv.RepoRoot(t), "prometheus")
	var cfg struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			ScrapeTimeout      string `yaml:"scrape_timeout"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			ScrapeInterval string `yaml:"scrape_interval"`
			ScrapeTimeout  string `yaml:"scrape_timeout"`
			MetricsPath    string `yaml:"metrics_path"`
			StaticConfigs  []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	decodeRulesYAML(t, filepath.Join(dir, "prometheus.yml"), &cfg)

	// docs/alerting.md adds these up to the time from a fault to its page.
	if cfg.Global.ScrapeInterval != "10s" || cfg.Global.ScrapeTimeout != "5s" || cfg.Global.EvaluationInterval != "10s" {
		t.Errorf("scrape_interval %q, scrape_timeout %q, evaluation_interval %q; want 10s, 5s and 10s (docs/alerting.md)",
			cfg.Global.ScrapeInterval, cfg.Global.ScrapeTimeout, cfg.Global.EvaluationInterval)
	}
	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		// What the pages read is scraped every 5 s.
		fast := sc.JobName == "featurestore" || sc.JobName == "redis" || sc.JobName == "postgres"
		if got := [2]string{sc.ScrapeInterval, sc.ScrapeTimeout}; fast && got != [2]string{"5s", "4s"} {
			t.Errorf("job %s: scrape_interval and scrape_timeout %v, want 5s and 4s (docs/alerting.md)", sc.JobName, got)
		}
		for _, st := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], st.Targets...)
		}
		if sc.JobName == "featurestore" && sc.MetricsPath != "/metrics" {
			t.Errorf("featurestore metrics_path %q, want /metrics", sc.MetricsPath)
		}
	}
	want := map[string][]string{
		"featurestore": {"featurestore:8001"},
		"prometheus":   {"localhost:9090"},
		"alertmanager": {"alertmanager:9093"},
		"redis":        {"redis-exporter:9121"},
		"postgres":     {"postgres-exporter:9187"},
	}
	if diff := cmp.Diff(want, jobs); diff != "" {
		t.Errorf("scrape jobs (-want +got):\n%s", diff)
	}
	var ams []string
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, st := range am.StaticConfigs {
			ams = append(ams, st.Targets...)
		}
	}
	if diff := cmp.Diff([]string{"alertmanager:9093"}, ams); diff != "" {
		t.Errorf("alertmanagers (-want +got):\n%s", diff)
	}

	var loaded []string
	for _, pattern := range cfg.RuleFiles {
		files, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			t.Fatal(err)
		}
		loaded = append(loaded, files...)
	}
	slices.Sort(loaded)
	var loadRuleFiles []string
	entries, err := os.ReadDir(filepath.Join(dir, "rules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yml") && !strings.HasSuffix(e.Name(), "_test.yml") {
			loadRuleFiles = append(loadRuleFiles, filepath.Join(dir, "rules", e.Name()))
		}
	}
	if diff := cmp.Diff(loadRuleFiles, loaded); diff != "" {
		t.Errorf("rule_files %q load (-rule files +loaded):\n%s", cfg.RuleFiles, diff)
	}
}

// TestPromtoolCheckRules checks every rule file of every rendering with
// promtool.
func TestPromtoolCheckRules(t *testing.T) {
	t.Parallel()
	promtool := testenv.RequireTool(t, "promtool")
	for _, dir := range renderingDirs(t) {
		for _, path := range globRules(t, dir, "*.rules.yml") {
			runTool(t, dir, promtool, "check", "rules", path)
		}
	}
}

// TestPromtoolTestRules runs every promtool unit test file of every
// rendering: the Kubernetes rules pass the same cases as the compose ones.
func TestPromtoolTestRules(t *testing.T) {
	t.Parallel()
	promtool := testenv.RequireTool(t, "promtool")
	for _, dir := range renderingDirs(t) {
		tests := globRules(t, dir, "*_test.yml")
		if len(tests) < 3 {
			t.Errorf("%s: %d promtool test files, want one per rule file", dir, len(tests))
		}
		for _, path := range tests {
			t.Run(filepath.Base(dir)+"/"+filepath.Base(path), func(t *testing.T) {
				t.Parallel()
				out := runTool(t, dir, promtool, "test", "rules", path)
				if !strings.Contains(out, "SUCCESS") {
					t.Errorf("promtool test rules %s did not report SUCCESS:\n%s", path, out)
				}
			})
		}
	}
}

// TestAlertConventions holds every alert to the conventions: a severity label
// of critical, warning or info; a static summary; a description with a
// template; a runbook_url at the alert's own section of docs/runbooks.md.
func TestAlertConventions(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := githubAnchors(string(doc))
	const runbooks = "https://github.com/featurestore/featurestore/blob/main/docs/runbooks.md#"
	severities := map[string]bool{"critical": true, "warning": true, "info": true}
	const watchdog = "Watchdog" // severity none, its own route; nothing in it varies
	alerts := 0
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		alerts++
		if sev := r.Labels["severity"]; !severities[sev] && (r.Alert != watchdog || sev != "none") {
			t.Errorf("%s: severity %q, want critical, warning or info (none for %s only)", r.Alert, sev, watchdog)
		}
		for name := range r.Annotations {
			if name != "summary" && name != "description" && name != "runbook_url" {
				t.Errorf("%s: unexpected annotation %q", r.Alert, name)
			}
		}
		if s := r.Annotations["summary"]; s == "" || strings.Contains(s, "{{") {
			t.Errorf("%s: summary %q, want a static text", r.Alert, s)
		}
		if d := r.Annotations["description"]; !strings.Contains(d, "{{") && r.Alert != watchdog {
			t.Errorf("%s: description %q has no template", r.Alert, d)
		}
		url := r.Annotations["runbook_url"]
		anchor, ok := strings.CutPrefix(url, runbooks)
		switch {
		case !ok:
			t.Errorf("%s: runbook_url %q is not in %s", r.Alert, url, runbooks)
		case !anchors[anchor]:
			t.Errorf("%s: runbook_url anchor #%s is no heading of docs/runbooks.md", r.Alert, anchor)
		case anchor != strings.ToLower(r.Alert):
			t.Errorf("%s: runbook_url anchor #%s, want the alert's own section #%s", r.Alert, anchor, strings.ToLower(r.Alert))
		}
	}
	if alerts < 15 {
		t.Errorf("found %d alerts, want the whole set", alerts)
	}
}

// TestEveryRuleIsTested checks the promtool tests cover the rules: every
// alert name is asserted silent at least once, every (alert, severity) is
// asserted firing with its annotations, every recording rule's value is
// asserted, and the tests name no alert that does not exist.
func TestEveryRuleIsTested(t *testing.T) {
	t.Parallel()
	type key struct{ alert, severity string }
	alerts := map[string]bool{}
	severities := map[key]bool{}
	records := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert != "" {
			alerts[r.Alert] = true
			severities[key{r.Alert, r.Labels["severity"]}] = true
		} else {
			records[r.Record] = true
		}
	}

	silent := map[string]bool{}
	firing := map[key]bool{}
	valued := map[string]bool{}
	for file, f := range loadRuleTests(t) {
		for _, tc := range f.Tests {
			for _, at := range tc.AlertRuleTests {
				if !alerts[at.Alertname] {
					t.Errorf("%s, %q: alert %q does not exist", file, tc.Name, at.Alertname)
					continue
				}
				if len(at.ExpAlerts) == 0 {
					silent[at.Alertname] = true
				}
				for _, exp := range at.ExpAlerts {
					k := key{at.Alertname, exp.ExpLabels["severity"]}
					if !severities[k] {
						t.Errorf("%s, %q: %s has no severity %q", file, tc.Name, k.alert, k.severity)
					}
					for _, a := range []string{"summary", "description", "runbook_url"} {
						if exp.ExpAnnotations[a] == "" {
							t.Errorf("%s, %q: firing %s expects no %s", file, tc.Name, at.Alertname, a)
						}
					}
					firing[k] = true
				}
			}
			for _, et := range tc.PromQLExprTests {
				for _, name := range ruleMetricNames(et.Expr) {
					valued[name] = true
				}
			}
		}
	}
	for name := range alerts {
		if !silent[name] && name != "Watchdog" { // it always fires
			t.Errorf("no test asserts that %s stays silent (exp_alerts: [])", name)
		}
	}
	for k := range severities {
		if !firing[k] {
			t.Errorf("no test asserts that %s fires with severity %s", k.alert, k.severity)
		}
	}
	for name := range records {
		if !valued[name] {
			t.Errorf("no promql_expr_test asserts the value of recording rule %s", name)
		}
	}
}

// TestRulesReadKnownMetrics checks that every metric a rule reads, and every
// input series of the promtool tests, is a metric of docs/metrics.md, a
// verified exporter metric, or a recording rule defined here: a misspelt name
// would make an alert silently never fire, and its silent test pass.
func TestRulesReadKnownMetrics(t *testing.T) {
	t.Parallel()
	known := ruleKnownMetrics(t)
	rules := loadRules(t)
	for _, r := range rules {
		if r.Record != "" {
			known[r.Record] = "recording rule"
		}
	}
	for _, r := range rules {
		name := r.Record + r.Alert
		for _, m := range ruleMetricNames(r.Expr) {
			if known[m] == "" {
				t.Errorf("%s reads %s, which is neither catalogued nor a known exporter metric", name, m)
			}
		}
		if r.Record != "" && !regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`).MatchString(r.Record) {
			t.Errorf("recording rule %s is not named level:metric:operations", r.Record)
		}
	}
	for file, f := range loadRuleTests(t) {
		for _, tc := range f.Tests {
			for _, in := range tc.InputSeries {
				name, _, _ := strings.Cut(in.Series, "{")
				if known[name] == "" || known[name] == "recording rule" {
					t.Errorf("%s, %q: input series %s is neither catalogued nor a known exporter metric", file, tc.Name, name)
				}
			}
		}
	}
}

// TestRunbookQueries checks every PromQL block of docs/runbooks.md with
// promtool, and that it reads only known metrics and recording rules.
func TestRunbookQueries(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```promql\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 20 {
		t.Fatalf("found %d PromQL blocks in docs/runbooks.md, want the runbooks' queries", len(blocks))
	}
	known := ruleKnownMetrics(t)
	for _, r := range loadRules(t) {
		if r.Record != "" {
			known[r.Record] = "recording rule"
		}
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: runbooks\n    rules:\n")
	for i, b := range blocks {
		expr := strings.TrimSpace(b[1])
		for _, m := range ruleMetricNames(expr) {
			if known[m] == "" {
				t.Errorf("runbook query %d reads %s, which is unknown:\n%s", i+1, m, expr)
			}
		}
		fmt.Fprintf(&rules, "      - record: runbook:query%d\n        expr: |\n", i+1)
		for _, line := range strings.Split(expr, "\n") {
			fmt.Fprintf(&rules, "          %s\n", line)
		}
	}
	promtool := testenv.RequireTool(t, "promtool")
	file := filepath.Join(t.TempDir(), "runbooks.rules.yml")
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, "", promtool, "check", "rules", file)
}

// TestRuleMetricNames pins the PromQL metric-name extraction the tests above rely on.
func TestRuleMetricNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`sum by (job, le) (rate(a_bucket{route=~"/v1/.+|x", le="0.1"}[5m])) / ignoring (le) group_left b`, []string{"a_bucket", "b"}},
		{`up{job="x"} == 0 or absent(up{job="x"})`, []string{"up"}},
		{`round(job:x:rate5m, 1e-6) > 7 * 86400 and on (job, instance) c offset 5m`, []string{"job:x:rate5m", "c"}},
		{`predict_linear(go_goroutines[1h], 4 * 3600) > 2 * go_goroutines unless d`, []string{"go_goroutines", "d"}},
		{`sum(rate(e[5m])) without (instance) > bool 0.5`, []string{"e"}},
	} {
		if diff := cmp.Diff(tc.want, ruleMetricNames(tc.expr)); diff != "" {
			t.Errorf("ruleMetricNames(%q) (-want +got):\n%s", tc.expr, diff)
		}
	}
}

// TestGithubAnchors pins the anchor rules runbook_url relies on.
func TestGithubAnchors(t *testing.T) {
	t.Parallel()
	got := githubAnchors("# Runbooks\n## FeatureStoreDown\n```sh\n# not a heading\n```\n## Service level objectives\n### What's `new`?\n## FeatureStoreDown\n")
	want := map[string]bool{"runbooks": true, "featurestoredown": true, "service-level-objectives": true,
		"whats-new": true, "featurestoredown-1": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("githubAnchors (-want +got):\n%s", diff)
	}
}

// TestRunbookLinks checks the links of docs/runbooks.md: every #anchor is a
// heading of the document and every relative file link exists.
func TestRunbookLinks(t *testing.T) {
	t.Parallel()
	docs := filepath.Join(testenv.RepoRoot(t), "docs")
	doc, err := os.ReadFile(filepath.Join(docs, "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := githubAnchors(string(doc))
	links := regexp.MustCompile(`\]\(([^)\s]+)\)`).FindAllStringSubmatch(string(doc), -1)
	if len(links) < 20 {
		t.Fatalf("found %d links in docs/runbooks.md, want the cross-references", len(links))
	}
	for _, l := range links {
		target := l[1]
		switch {
		case strings.HasPrefix(target, "#"):
			if !anchors[target[1:]] {
				t.Errorf("link %s: no such heading", target)
			}
		case strings.Contains(target, "://"):
		default:
			path, _, _ := strings.Cut(target, "#")
			if _, err := os.Stat(filepath.Join(docs, path)); err != nil {
				t.Errorf("link %s: %v", target, err)
			}
		}
	}
}
