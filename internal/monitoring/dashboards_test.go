package monitoring

// Structural checks of the Grafana provisioning (grafana/provisioning) and
// the dashboards (grafana/dashboards). There is no Grafana binary for this
// machine, so Grafana itself is not run here: the tests parse the files, lint
// the dashboard model, validate every panel query with promtool and check
// every metric a query reads against the catalogue (docs/metrics.md). The
// end-to-end test runs the same queries, from dashboardQueries, against a real
// Prometheus scraping the service.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/featurestore/featurestore/internal/testenv"
)

// provisionedDatasourceUID is the fixed uid of the provisioned Prometheus
// datasource; every dashboard's datasource variable defaults to it.
const provisionedDatasourceUID = "prometheus"

// panelDatasource is the datasource every panel and target uses: the
// dashboard's datasource variable.
var panelDatasource = grafanaRef{Type: "prometheus", UID: "${datasource}"}

// grafanaRef is a datasource reference in the dashboard JSON model.
type grafanaRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// grafanaDashboard is the part of the Grafana dashboard JSON model the tests
// check.
type grafanaDashboard struct {
	ID            *int   `json:"id"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	Description   string `json:"description"`
	SchemaVersion int    `json:"schemaVersion"`
	Refresh       string `json:"refresh"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

// grafanaVariable is a template variable.
type grafanaVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *grafanaRef     `json:"datasource"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "..."} since Grafana 10
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Current    struct {
		Value json.RawMessage `json:"value"`
	} `json:"current"`
}

// queryString returns the variable's query, in either JSON form.
func (v grafanaVariable) queryString() (string, error) {
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &q); err != nil {
		return "", fmt.Errorf("variable %s: query is neither a string nor an object: %w", v.Name, err)
	}
	return q.Query, nil
}

// grafanaPanel is a panel, or a row (whose panels are nested only while it is
// collapsed).
type grafanaPanel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Datasource  *grafanaRef `json:"datasource"`
	GridPos     struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []grafanaTarget `json:"targets"`
	Panels  []grafanaPanel  `json:"panels"`
}

// grafanaTarget is a panel query.
type grafanaTarget struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *grafanaRef `json:"datasource"`
}

// dashboardFile is a parsed dashboard and the file it came from.
type dashboardFile struct {
	Name      string // file name, e.g. go-runtime.json
	Dashboard grafanaDashboard
}

// dashboardQuery is one PromQL query of a dashboard panel, as written in the
// dashboard (with Grafana's variables; see expandDashboardExpr).
type dashboardQuery struct {
	Dashboard string // dashboard uid
	PanelID   int
	Panel     string // panel title
	RefID     string
	Expr      string
}

func (q dashboardQuery) String() string {
	return fmt.Sprintf("%s panel %d %q query %s", q.Dashboard, q.PanelID, q.Panel, q.RefID)
}

// dashboardQueries returns every panel query of every dashboard in
// grafana/dashboards, in file and panel order.
func dashboardQueries(t testing.TB) []dashboardQuery {
	t.Helper()
	var qs []dashboardQuery
	for _, f := range loadDashboards(t) {
		for _, p := range flattenPanels(f.Dashboard.Panels) {
			for _, tg := range p.Targets {
				qs = append(qs, dashboardQuery{
					Dashboard: f.Dashboard.UID, PanelID: p.ID, Panel: p.Title, RefID: tg.RefID, Expr: tg.Expr,
				})
			}
		}
	}
	return qs
}

// grafanaVar matches a Grafana variable reference: $name or ${name}.
var grafanaVar = regexp.MustCompile(`\$(?:\{(\w+)\}|(\w+))`)

// expandDashboardExpr turns a panel query into plain PromQL the way Grafana
// would with every instance selected: $__rate_interval becomes rateInterval
// (a PromQL duration such as "1m"), $job and $instance become ".*". Any other
// variable is an error.
func expandDashboardExpr(expr, rateInterval string) (string, error) {
	values := map[string]string{"__rate_interval": rateInterval, "job": ".*", "instance": ".*", "redis_job": ".*", "postgres_job": ".*"}
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVar.FindStringSubmatch(ref)
		name := m[1] + m[2]
		v, ok := values[name]
		if !ok {
			unknown = append(unknown, ref)
			return ref
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variables %v in %q", unknown, expr)
	}
	return out, nil
}

// loadDashboards parses every grafana/dashboards/*.json, sorted by name.
func loadDashboards(t testing.TB) []dashboardFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "grafana", "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no dashboards in grafana/dashboards")
	}
	sort.Strings(paths)
	files := make([]dashboardFile, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f := dashboardFile{Name: filepath.Base(p)}
		if err := json.Unmarshal(data, &f.Dashboard); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		files = append(files, f)
	}
	return files
}

// flattenPanels returns the panels with the panels of collapsed rows, rows
// excluded.
func flattenPanels(panels []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range panels {
		if p.Type == "row" {
			out = append(out, flattenPanels(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// dashboardCatalogue maps every metric family of docs/metrics.md to its type.
func dashboardCatalogue(t testing.TB) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \\| (counter|gauge|histogram|summary) \\|")
	cat := map[string]string{}
	for _, m := range row.FindAllSubmatch(doc, -1) {
		cat[string(m[1])] = string(m[2])
	}
	if cat["feature_store_requests_total"] != "counter" || cat["go_goroutines"] != "gauge" {
		t.Fatalf("docs/metrics.md: catalogue rows not found (parsed %d)", len(cat))
	}
	return cat
}

// catalogueProblem says why a metric name a query reads has no series in the
// catalogue, or returns "". Histograms are read through _bucket, _sum and
// _count, summaries through their name (quantiles), _sum and _count.
func catalogueProblem(name string, cat map[string]string) string {
	if typ, ok := cat[name]; ok {
		if typ == "histogram" {
			return fmt.Sprintf("%s is a histogram: read %[1]s_bucket, _sum or _count", name)
		}
		return ""
	}
	for suffix, types := range map[string][]string{
		"_bucket": {"histogram"},
		"_sum":    {"histogram", "summary"},
		"_count":  {"histogram", "summary"},
	} {
		if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(types, cat[base]) {
			return ""
		}
	}
	return fmt.Sprintf("%s is not in docs/metrics.md", name)
}

// promqlSelector is a vector selector of an expression.
type promqlSelector struct {
	Metric   string
	Matchers map[string]string // label → operator and quoted value, e.g. `=~"$job"`; nil without braces
	Range    string            // the text between [ and ]; "" for an instant vector
}

// promqlLabelLists are the keywords followed by a parenthesised label list.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlKeywords are the other identifiers that are not metric names:
// operators, modifiers, and the aggregations (which may be followed by by or
// without rather than by their parenthesis).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// promqlSelectors lists the vector selectors of a PromQL expression (which
// may contain Grafana variables in ranges and label values). It is a small
// lexer, not a parser: promtool checks the syntax. Function and aggregation
// names, keywords, label lists, label matchers, strings and numbers are not
// metric names; a subquery or a selector without a metric name is an error.
func promqlSelectors(expr string) ([]promqlSelector, error) {
	var sels []promqlSelector
	last := -1 // the selector a following { or [ belongs to
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '"' || c == '\'' || c == '`':
			end, err := promqlStringEnd(expr, i)
			if err != nil {
				return nil, err
			}
			i, last = end+1, -1
		case c == '{':
			if last < 0 || sels[last].Matchers != nil {
				return nil, fmt.Errorf("label matchers without a metric name at offset %d", i)
			}
			end, err := promqlClosing(expr, i)
			if err != nil {
				return nil, err
			}
			m, err := promqlMatchers(expr[i+1 : end])
			if err != nil {
				return nil, err
			}
			sels[last].Matchers = m
			i = end + 1
		case c == '[':
			end := strings.IndexByte(expr[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [ at offset %d", i)
			}
			if last < 0 {
				return nil, fmt.Errorf("subquery or range without a selector at offset %d", i)
			}
			sels[last].Range = expr[i+1 : i+end]
			i, last = i+end+1, -1
		case c == '_' || c == ':' || isASCIILetter(c):
			j := i
			for j < len(expr) && (expr[j] == '_' || expr[j] == ':' || isASCIILetter(expr[j]) || isASCIIDigit(expr[j])) {
				j++
			}
			word := strings.ToLower(expr[i:j])
			k := j
			for k < len(expr) && strings.IndexByte(" \t\r\n", expr[k]) >= 0 {
				k++
			}
			next := byte(0)
			if k < len(expr) {
				next = expr[k]
			}
			switch {
			case promqlLabelLists[word]:
				if next == '(' {
					end, err := promqlClosing(expr, k)
					if err != nil {
						return nil, err
					}
					j = end + 1
				}
				last = -1
			case promqlKeywords[word], next == '(':
				last = -1 // a keyword, or a function or aggregation name
			default:
				sels = append(sels, promqlSelector{Metric: expr[i:j]})
				last = len(sels) - 1
			}
			i = j
		case isASCIIDigit(c) || c == '.':
			j := i + 1
			for j < len(expr) && (isASCIILetter(expr[j]) || isASCIIDigit(expr[j]) || expr[j] == '.' ||
				(strings.IndexByte("+-", expr[j]) >= 0 && strings.IndexByte("eE", expr[j-1]) >= 0)) {
				j++
			}
			i, last = j, -1
		case c == '$':
			return nil, fmt.Errorf("variable outside a range or a label value at offset %d", i)
		default:
			i, last = i+1, -1
		}
	}
	return sels, nil
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isASCIIDigit(c byte) bool  { return c >= '0' && c <= '9' }

// promqlStringEnd returns the index of the quote closing the string literal
// opened at i.
func promqlStringEnd(expr string, i int) (int, error) {
	q := expr[i]
	for j := i + 1; j < len(expr); j++ {
		switch {
		case expr[j] == '\\' && q != '`':
			j++
		case expr[j] == q:
			return j, nil
		}
	}
	return 0, fmt.Errorf("unclosed string at offset %d", i)
}

// promqlClosing returns the index of the bracket closing the one at i,
// skipping string literals.
func promqlClosing(expr string, i int) (int, error) {
	open := expr[i]
	closer := map[byte]byte{'(': ')', '{': '}', '[': ']'}[open]
	depth := 0
	for j := i; j < len(expr); j++ {
		switch expr[j] {
		case '"', '\'', '`':
			end, err := promqlStringEnd(expr, j)
			if err != nil {
				return 0, err
			}
			j = end
		case open:
			depth++
		case closer:
			depth--
			if depth == 0 {
				return j, nil
			}
		}
	}
	return 0, fmt.Errorf("unclosed %c at offset %d", open, i)
}

// promqlMatcher matches one label matcher and the comma after it.
var promqlMatcher = regexp.MustCompile(`^\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*` +
	`("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`" + `)\s*(?:,|$)`)

// promqlMatchers parses the label matchers between a selector's braces.
func promqlMatchers(s string) (map[string]string, error) {
	m := map[string]string{}
	for rest := s; strings.TrimSpace(rest) != ""; {
		g := promqlMatcher.FindStringSubmatch(rest)
		if g == nil {
			return nil, fmt.Errorf("cannot read label matchers %q", s)
		}
		m[g[1]] = g[2] + g[3]
		rest = rest[len(g[0]):]
	}
	return m, nil
}

// exporterJobVariable is the dashboard variable that selects the job of the
// exporter a metric comes from, by metric name prefix.
var exporterJobVariable = map[string]string{"redis_": "$redis_job", "pg_": "$postgres_job"}

// dashboardExporterMetrics are the exporter metrics the dashboards may read:
// seen in the /metrics of Debian's redis_exporter 1.45 and postgres_exporter
// 0.11 (pg_replication_lag from prometheus/postgres-exporter/queries.yaml),
// the versions compose pins; the end-to-end test runs every panel on them.
var dashboardExporterMetrics = map[string]bool{
	"redis_up": true, "redis_memory_used_bytes": true, "redis_memory_max_bytes": true, "redis_evicted_keys_total": true,
	"redis_keyspace_hits_total": true, "redis_keyspace_misses_total": true, "redis_connected_clients": true,
	"pg_up": true, "pg_stat_database_numbackends": true, "pg_settings_max_connections": true,
	"pg_database_size_bytes": true, "pg_replication_lag": true,
}

// recordingRuleName matches a recording rule's level:metric:operations name.
var recordingRuleName = regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`)

// lintDashboardExpr returns the problems of a panel query. The service's
// metrics want the job and instance filters and have series in the
// catalogue; recording rules (records: the rules' record names) want the
// job filter (they keep no instance) and must exist; exporter metrics want
// their exporter's job variable and must be known; ALERTS needs no filter.
// Every range is $__rate_interval.
func lintDashboardExpr(expr string, cat map[string]string, records map[string]bool) []string {
	sels, err := promqlSelectors(expr)
	if err != nil {
		return []string{err.Error()}
	}
	if len(sels) == 0 {
		return []string{"reads no metric"}
	}
	var problems []string
	want := func(s promqlSelector, label, value string) {
		if s.Matchers[label] != `=~"`+value+`"` {
			problems = append(problems, fmt.Sprintf("%s: want %s=~%q among its label matchers", s.Metric, label, value))
		}
	}
	for _, s := range sels {
		if s.Range != "" && s.Range != "$__rate_interval" {
			problems = append(problems, fmt.Sprintf("%s: range [%s], want [$__rate_interval]", s.Metric, s.Range))
		}
		switch exporter := exporterPrefix(s.Metric); {
		case s.Metric == "ALERTS":
		case recordingRuleName.MatchString(s.Metric):
			if !records[s.Metric] {
				problems = append(problems, fmt.Sprintf("%s is no recording rule of prometheus/rules", s.Metric))
			}
			want(s, "job", "$job")
		case exporter != "":
			if !dashboardExporterMetrics[s.Metric] {
				problems = append(problems, fmt.Sprintf("%s is not a known exporter metric", s.Metric))
			}
			want(s, "job", exporterJobVariable[exporter])
		default:
			want(s, "job", "$job")
			want(s, "instance", "$instance")
			if p := catalogueProblem(s.Metric, cat); p != "" {
				problems = append(problems, p)
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// exporterPrefix is the exporter prefix of a metric name ("redis_", "pg_"),
// or "".
func exporterPrefix(metric string) string {
	for prefix := range exporterJobVariable {
		if strings.HasPrefix(metric, prefix) {
			return prefix
		}
	}
	return ""
}

// recordingRules returns the record names of the compose rendering's rules.
func recordingRules(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Record != "" {
			out[r.Record] = true
		}
	}
	return out
}

// grafanaUnits are the Grafana unit ids the dashboards may use (a subset of
// packages/grafana-data/src/valueFormats/categories.ts); a typo shows raw
// numbers in Grafana, so an unknown id fails here. Add ids as needed.
var grafanaUnits = map[string]bool{
	"s": true, "ms": true, "bytes": true, "Bps": true, "percentunit": true, "percent": true, "short": true,
	"none": true, "string": true, "ops": true, "reqps": true, "wps": true, "rps": true, "recps": true, "cps": true,
	"eps": true,
}

// grafanaPanelTypes are the panel types allowed: current core panels only
// (no deprecated graph, singlestat or table-old).
var grafanaPanelTypes = map[string]bool{"row": true, "timeseries": true, "stat": true, "gauge": true, "table": true}

// TestDashboardProvisioningFiles parses the Grafana provisioning YAML
// strictly (unknown keys fail) and checks the datasource uid the dashboards
// default to and the dashboards directory the provider loads.
func TestDashboardProvisioningFiles(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			Type      string         `yaml:"type"`
			UID       string         `yaml:"uid"`
			Access    string         `yaml:"access"`
			URL       string         `yaml:"url"`
			IsDefault bool           `yaml:"isDefault"`
			Editable  bool           `yaml:"editable"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	decodeYAMLStrict(t, filepath.Join(root, "grafana", "provisioning", "datasources", "prometheus.yml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources: apiVersion %d with %d datasources, want 1 and 1", ds.APIVersion, len(ds.Datasources))
	}
	d := ds.Datasources[0]
	if d.Type != "prometheus" || d.UID != provisionedDatasourceUID || d.URL != "http://prometheus:9090" ||
		d.Access != "proxy" || !d.IsDefault {
		t.Errorf("datasource = %+v, want type prometheus, uid %q, url http://prometheus:9090, access proxy, default",
			d, provisionedDatasourceUID)
	}
	if ti, _ := d.JSONData["timeInterval"].(string); ti == "" {
		t.Error("datasource jsonData.timeInterval (the scrape interval $__rate_interval derives from) is not set")
	}

	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string `yaml:"name"`
			OrgID                 int    `yaml:"orgId"`
			Type                  string `yaml:"type"`
			Folder                string `yaml:"folder"`
			FolderUID             string `yaml:"folderUid"`
			DisableDeletion       bool   `yaml:"disableDeletion"`
			AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `yaml:"path"`
				FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeYAMLStrict(t, filepath.Join(root, "grafana", "provisioning", "dashboards", "dashboards.yml"), &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 {
		t.Fatalf("dashboard providers: apiVersion %d with %d providers, want 1 and 1", prov.APIVersion, len(prov.Providers))
	}
	p := prov.Providers[0]
	if p.Type != "file" || p.Folder != "Feature Store" || p.Options.Path != "/var/lib/grafana/dashboards" {
		t.Errorf("provider = %+v, want type file, folder \"Feature Store\", path /var/lib/grafana/dashboards", p)
	}
}

func decodeYAMLStrict(t *testing.T, path string, v any) {
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

// TestDashboardStructureWithoutGrafana lints the dashboard JSON model as
// Grafana would load it (no Grafana binary here): stable unique uids and
// titles, the datasource, job and instance variables, and on every panel a
// description, a unit, the ${datasource} datasource and queries, a current
// panel type and a layout without overlaps.
func TestDashboardStructureWithoutGrafana(t *testing.T) {
	t.Parallel()
	wantUIDs := map[string]string{
		"feature-store-overview.json": "featurestore-overview",
		"go-runtime.json":             "featurestore-go-runtime",
	}
	cat := dashboardCatalogue(t)
	files := loadDashboards(t)
	if len(files) != len(wantUIDs) {
		t.Errorf("%d dashboards in grafana/dashboards, want %d (%v)", len(files), len(wantUIDs), wantUIDs)
	}
	titles := map[string]string{}
	for _, f := range files {
		d := f.Dashboard
		if want, ok := wantUIDs[f.Name]; !ok || d.UID != want {
			t.Errorf("%s: uid %q, want %q (links and bookmarks use it: keep it stable)", f.Name, d.UID, want)
		}
		if d.Title == "" || d.Description == "" {
			t.Errorf("%s: title %q, description %q: both are required", f.Name, d.Title, d.Description)
		}
		if other, ok := titles[d.Title]; ok {
			t.Errorf("%s and %s share the title %q", other, f.Name, d.Title)
		}
		titles[d.Title] = f.Name
		if d.ID != nil {
			t.Errorf("%s: id %d, want null (Grafana assigns ids to provisioned dashboards)", f.Name, *d.ID)
		}
		if d.SchemaVersion < 36 {
			t.Errorf("%s: schemaVersion %d, want >= 36", f.Name, d.SchemaVersion)
		}
		if d.Time.From == "" || d.Time.To == "" || d.Refresh == "" {
			t.Errorf("%s: time %+v, refresh %q: a default range and refresh are required", f.Name, d.Time, d.Refresh)
		}
		checkDashboardVariables(t, f.Name, d.Templating.List, d.Panels, cat)
		checkDashboardPanels(t, f.Name, d.Panels)
	}
}

func checkDashboardVariables(t *testing.T, file string, vars []grafanaVariable, panels []grafanaPanel, cat map[string]string) {
	t.Helper()
	byName := map[string]grafanaVariable{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	ds, ok := byName["datasource"]
	var current string
	if ok {
		_ = json.Unmarshal(ds.Current.Value, &current)
	}
	if !ok || ds.Type != "datasource" || string(ds.Query) != `"prometheus"` || current != provisionedDatasourceUID {
		t.Errorf("%s: variable datasource: found %t, type %q, query %s, current %q; want type datasource, query "+
			"prometheus, current %q", file, ok, ds.Type, ds.Query, current, provisionedDatasourceUID)
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, name := range []string{"job", "instance", "redis_job", "postgres_job"} {
		v, ok := byName[name]
		if !ok {
			if strings.HasSuffix(name, "_job") && !usesVariable(panels, name) {
				continue // only the dashboards that read exporter metrics need them
			}
			t.Errorf("%s: no %s variable", file, name)
			continue
		}
		if v.Type != "query" || v.Datasource == nil || *v.Datasource != panelDatasource {
			t.Errorf("%s: variable %s: type %q, datasource %+v, want a query on %+v", file, name, v.Type, v.Datasource,
				panelDatasource)
		}
		if v.IncludeAll && v.AllValue != ".*" {
			t.Errorf("%s: variable %s: allValue %q, want .* (so All also matches targets that appear later)",
				file, name, v.AllValue)
		}
		q, err := v.queryString()
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		label := name // the label the variable lists: the exporters' variables list jobs
		if strings.HasSuffix(name, "_job") {
			label = "job"
		}
		if m == nil || m[2] != label {
			t.Errorf("%s: variable %s: query %q, want label_values(<selector>, %s)", file, name, q, label)
			continue
		}
		sels, err := promqlSelectors(m[1])
		if err != nil || len(sels) != 1 {
			t.Errorf("%s: variable %s: selector %q: %v", file, name, m[1], err)
			continue
		}
		if exporterPrefix(sels[0].Metric) != "" {
			if !dashboardExporterMetrics[sels[0].Metric] {
				t.Errorf("%s: variable %s: %s is not a known exporter metric", file, name, sels[0].Metric)
			}
		} else if p := catalogueProblem(sels[0].Metric, cat); p != "" {
			t.Errorf("%s: variable %s: %s", file, name, p)
		}
		if name == "instance" && sels[0].Matchers["job"] != `=~"$job"` {
			t.Errorf("%s: variable instance: query %q does not filter by job=~\"$job\"", file, q)
		}
	}
}

func checkDashboardPanels(t *testing.T, file string, panels []grafanaPanel) {
	t.Helper()
	ids := map[int]bool{}
	for _, p := range panels {
		for _, q := range append([]grafanaPanel{p}, p.Panels...) {
			if ids[q.ID] || q.ID <= 0 {
				t.Errorf("%s: panel %q: id %d is not a unique positive id", file, q.Title, q.ID)
			}
			ids[q.ID] = true
		}
	}
	checkDashboardLayout(t, file, panels)
	for _, p := range panels {
		if p.Type == "row" {
			if p.Title == "" || len(p.Targets) > 0 {
				t.Errorf("%s: row %d: a row needs a title and has no queries", file, p.ID)
			}
			checkDashboardLayout(t, file, p.Panels)
		}
	}
	if len(flattenPanels(panels)) == 0 {
		t.Errorf("%s: no panels", file)
	}
	for _, p := range flattenPanels(panels) {
		where := fmt.Sprintf("%s: panel %d %q", file, p.ID, p.Title)
		if !grafanaPanelTypes[p.Type] {
			t.Errorf("%s: type %q, want one of %v", where, p.Type, slices.Sorted(maps.Keys(grafanaPanelTypes)))
		}
		if p.Title == "" || strings.TrimSpace(p.Description) == "" {
			t.Errorf("%s: a title and a description are required", where)
		}
		if u := p.FieldConfig.Defaults.Unit; !grafanaUnits[u] {
			t.Errorf("%s: unit %q is not a known Grafana unit id (fieldConfig.defaults.unit)", where, u)
		}
		if p.Datasource == nil || *p.Datasource != panelDatasource {
			t.Errorf("%s: datasource %+v, want %+v", where, p.Datasource, panelDatasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q is empty or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || *tg.Datasource != panelDatasource {
				t.Errorf("%s query %s: datasource %+v, want %+v", where, tg.RefID, tg.Datasource, panelDatasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s query %s: empty expr", where, tg.RefID)
			}
		}
	}
}

// checkDashboardLayout checks that panels fit the 24-column grid and do not
// overlap.
func checkDashboardLayout(t *testing.T, file string, panels []grafanaPanel) {
	t.Helper()
	for i, a := range panels {
		g := a.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: panel %d %q: gridPos %+v does not fit the 24-column grid", file, a.ID, a.Title, g)
		}
		for _, b := range panels[i+1:] {
			h := b.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("%s: panels %d %q and %d %q overlap", file, a.ID, a.Title, b.ID, b.Title)
			}
		}
	}
}

// TestDashboardQueriesFilterAndUseCataloguedMetrics checks every panel
// query: each selector filters job=~"$job" and instance=~"$instance", each
// range is [$__rate_interval], each metric has series in docs/metrics.md (so
// a renamed metric fails here, not on a dashboard), and the variables expand.
func TestDashboardQueriesFilterAndUseCataloguedMetrics(t *testing.T) {
	t.Parallel()
	cat := dashboardCatalogue(t)
	records := recordingRules(t)
	qs := dashboardQueries(t)
	if len(qs) < 20 {
		t.Fatalf("found %d panel queries, want the dashboards' (at least 20)", len(qs))
	}
	for _, q := range qs {
		for _, p := range lintDashboardExpr(q.Expr, cat, records) {
			t.Errorf("%s: %s\n  %s", q, p, q.Expr)
		}
		if regexp.MustCompile(`\b(?:i?rate|increase)\s*\(`).MatchString(q.Expr) &&
			!strings.Contains(q.Expr, "[$__rate_interval]") {
			t.Errorf("%s: rate/irate/increase without [$__rate_interval]\n  %s", q, q.Expr)
		}
		if _, err := expandDashboardExpr(q.Expr, "1m"); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
}

// TestDashboardExprLint shows the query lint catches what it must: without
// it the test above could pass vacuously.
func TestDashboardExprLint(t *testing.T) {
	t.Parallel()
	cat := dashboardCatalogue(t)
	records := recordingRules(t)
	const f = `job=~"$job", instance=~"$instance"`
	cases := []struct {
		expr string
		want string // a substring of the only problem; "" for none
	}{
		{`sum by (le, operation) (rate(feature_store_request_duration_seconds_bucket{` + f + `}[$__rate_interval]))`, ""},
		{`sum by (feature_group, status) (rate(feature_store_feature_values_returned_total{` + f + `}[$__rate_interval]))
		  / ignoring (status) group_left
		  sum BY (feature_group) (rate(feature_store_feature_values_returned_total{` + f + `}[$__rate_interval]))`, ""},
		{`go_gc_duration_seconds{quantile="1", ` + f + `}`, ""},
		{`time() - max(feature_store_recompute_last_success_timestamp_seconds{` + f + `} > 0) * 1e-3`, ""},
		{`sum(rate(feature_store_cache_errors_total{` + f + `}[$__rate_interval])) or on () vector(0)`, ""},
		{`label_replace(go_goroutines {` + f + `}, "x", "{not_a_metric}", "job", "(.*)")`, ""},
		{`go_goroutines{x!~"a\"}b", ` + f + `} offset 5m`, ""},
		{`feature_store_request_total{` + f + `}`, "feature_store_request_total is not in docs/metrics.md"},
		{`go_goroutines_bucket{` + f + `}`, "not in docs/metrics.md"},
		{`feature_store_request_duration_seconds{` + f + `}`, "is a histogram"},
		{`go_goroutines{job=~"$job"}`, "instance=~\"$instance\""},
		{`go_goroutines{job="featurestore", instance=~"$instance"}`, "job=~\"$job\""},
		{`rate(go_gc_cycles_total_gc_cycles_total{` + f + `}[5m])`, "want [$__rate_interval]"},
		{`{__name__="go_goroutines", ` + f + `}`, "without a metric name"},
		{`vector(1)`, "reads no metric"},
		{`max_over_time(go_goroutines{` + f + `}[$__rate_interval:])`, "want [$__rate_interval]"},
		{`job:feature_store_slo_availability_errors:ratio_rate5m{job=~"$job"}`, ""},
		{`job:feature_store_slo_availability_errors:ratio_rate5m`, `want job=~"$job"`},
		{`job:feature_store_no_such:ratio_rate5m{job=~"$job"}`, "no recording rule"},
		{`redis_memory_used_bytes{job=~"$redis_job"}`, ""},
		{`redis_memory_used_bytes{job=~"$job", instance=~"$instance"}`, `want job=~"$redis_job"`},
		{`pg_no_such_metric{job=~"$postgres_job"}`, "not a known exporter metric"},
		{`count(ALERTS{alertstate="firing"})`, ""},
	}
	for _, c := range cases {
		got := lintDashboardExpr(c.expr, cat, records)
		switch {
		case c.want == "" && len(got) > 0:
			t.Errorf("lint(%s) = %q, want no problem", c.expr, got)
		case c.want != "" && (len(got) != 1 || !strings.Contains(got[0], c.want)):
			t.Errorf("lint(%s) = %q, want one problem containing %q", c.expr, got, c.want)
		}
	}
	got, err := expandDashboardExpr(`rate(x{job=~"$job", instance=~"${instance}"}[$__rate_interval])`, "1m")
	if want := `rate(x{job=~".*", instance=~".*"}[1m])`; err != nil || got != want {
		t.Errorf("expand = %q, %v, want %q", got, err, want)
	}
	if _, err := expandDashboardExpr(`up{job=~"$jobs"}`, "1m"); err == nil {
		t.Error("expand accepted an unknown variable $jobs")
	}
}

// TestDashboardQueriesPassPromtool writes every panel query, with the
// variables expanded, as a recording rule and runs `promtool check rules`
// (Prometheus 2.42's parser) on the file.
func TestDashboardQueriesPassPromtool(t *testing.T) {
	t.Parallel()
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	type group struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}
	var groups []group
	for _, q := range dashboardQueries(t) {
		expr, err := expandDashboardExpr(q.Expr, "1m")
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		name := strings.ReplaceAll(q.Dashboard, "-", "_")
		if len(groups) == 0 || groups[len(groups)-1].Name != name {
			groups = append(groups, group{Name: name})
		}
		g := &groups[len(groups)-1]
		g.Rules = append(g.Rules, rule{Record: fmt.Sprintf("dashboard:%s:panel%d_%s", name, q.PanelID, q.RefID), Expr: expr})
	}
	data, err := yaml.Marshal(map[string][]group{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	promtool := testenv.RequireTool(t, "promtool")
	file := filepath.Join(t.TempDir(), "dashboards.rules.yml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s\nrules:\n%s", err, out, data)
	}
	if !bytes.Contains(out, []byte("SUCCESS")) {
		t.Fatalf("promtool check rules did not report SUCCESS:\n%s", out)
	}
}

// usesVariable says whether a query of the panels uses $name or ${name}.
func usesVariable(panels []grafanaPanel, name string) bool {
	for _, p := range flattenPanels(panels) {
		for _, tg := range p.Targets {
			for _, m := range grafanaVar.FindAllStringSubmatch(tg.Expr, -1) {
				if m[1]+m[2] == name {
					return true
				}
			}
		}
	}
	return false
}
