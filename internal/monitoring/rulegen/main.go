// Command rulegen renders the feature store's Prometheus rules and their
// promtool unit tests, from one source (prometheus/templates), for every
// place they run, the way the monitoring mixins render theirs from a
// _config of selectors:
//
//   - compose: the compose stack's scrape jobs (job="featurestore",
//     job="redis", job="postgres"), into prometheus/rules;
//   - kubernetes: the in-cluster Prometheus's kubernetes-service-endpoints
//     job, told apart by the Service (service="featurestore", ...) and
//     aggregated per namespace, into prometheus/kubernetes, into the
//     ConfigMap the in-cluster Prometheus loads
//     (deploy/kubernetes/prometheus/rules.yaml) and into a PrometheusRule for
//     the Prometheus Operator (deploy/kubernetes/prometheus-operator).
//
// It also renders the ConfigMaps of the in-cluster Alertmanager and alert
// receiver from prometheus/alertmanager.yml and
// prometheus/alert-receiver/hooks.yaml, the files compose mounts, so both
// stacks route and deliver alike.
//
// Run it from the repository root after editing any of those files:
//
//	go run ./internal/monitoring/rulegen
//
// With -check it writes nothing and fails when a committed rendering is out
// of date (its test does the same).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// target is one place the rules run: the selectors and aggregation labels
// the templates fill in, and the labels their tests' series carry.
type target struct {
	Name string
	// Dir receives the rendered rule files and tests, relative to the
	// repository root.
	Dir string
	// FS, Redis and Postgres are the label matchers of the feature store's
	// own series and of the two exporters'.
	FS, Redis, Postgres string
	// By is the aggregation of the feature store's recording rules: the
	// labels that tell one deployment of it from another.
	By string
	// Scope is what a deployment's service, its exporters and its alerts
	// share (empty in compose: one deployment); ScopeBy is the same with a
	// trailing ", " to prefix another label.
	Scope, ScopeBy string
	// ShortWindows and LongWindows are the SLI windows of the page group
	// (every 10 s) and of the long group (every minute).
	ShortWindows, LongWindows []string
	// Test holds the labels of the promtool tests' series.
	Test testLabels
}

// testLabels are the labels of the test series in a rendering: as series
// matchers (FS, ...), and as YAML flow-mapping entries (FSMap, ...) for
// exp_labels. Agg is what the recording rules keep.
type testLabels struct {
	Job, RedisJob, PostgresJob                       string
	FS, FSAgg, Redis, Postgres, Scope                string
	FSMap, FSAggMap, RedisMap, PostgresMap, ScopeMap string
	// AbsentMap is what absent(up{FS}) keeps: the equality matchers.
	AbsentMap string
}

var (
	shortWindows = []string{"1m", "5m", "30m", "1h"}
	longWindows  = []string{"2h", "6h", "1d", "3d"}
)

var targets = []target{
	{
		Name: "compose", Dir: "prometheus/rules",
		FS: `job="featurestore"`, Redis: `job="redis"`, Postgres: `job="postgres"`,
		By: "job", Scope: "", ScopeBy: "",
		ShortWindows: shortWindows, LongWindows: longWindows,
		Test: testLabels{
			Job: "featurestore", RedisJob: "redis", PostgresJob: "postgres",
			FS: `job="featurestore"`, FSAgg: `job="featurestore"`,
			Redis: `job="redis"`, Postgres: `job="postgres"`, Scope: ``,
			FSMap: `job: featurestore`, FSAggMap: `job: featurestore`,
			RedisMap: `job: redis`, PostgresMap: `job: postgres`, ScopeMap: ``,
			AbsentMap: `job: featurestore`,
		},
	},
	{
		Name: "kubernetes", Dir: "prometheus/kubernetes",
		FS:       `job="kubernetes-service-endpoints", service="featurestore"`,
		Redis:    `job="kubernetes-service-endpoints", service="redis-exporter"`,
		Postgres: `job="kubernetes-service-endpoints", service="postgres-exporter"`,
		By:       "job, namespace", Scope: "namespace", ScopeBy: "namespace, ",
		ShortWindows: shortWindows, LongWindows: longWindows,
		Test: testLabels{
			Job:         "kubernetes-service-endpoints",
			RedisJob:    "kubernetes-service-endpoints",
			PostgresJob: "kubernetes-service-endpoints",
			FS:          `job="kubernetes-service-endpoints", namespace="featurestore", service="featurestore"`,
			FSAgg:       `job="kubernetes-service-endpoints", namespace="featurestore"`,
			Redis:       `job="kubernetes-service-endpoints", namespace="featurestore", service="redis-exporter"`,
			Postgres:    `job="kubernetes-service-endpoints", namespace="featurestore", service="postgres-exporter"`,
			Scope:       `namespace="featurestore", `,
			FSMap:       `job: kubernetes-service-endpoints, namespace: featurestore, service: featurestore`,
			FSAggMap:    `job: kubernetes-service-endpoints, namespace: featurestore`,
			RedisMap:    `job: kubernetes-service-endpoints, namespace: featurestore, service: redis-exporter`,
			PostgresMap: `job: kubernetes-service-endpoints, namespace: featurestore, service: postgres-exporter`,
			ScopeMap:    `namespace: featurestore, `,
			AbsentMap:   `job: kubernetes-service-endpoints, service: featurestore`,
		},
	},
}

// Paths of the sources and of the Kubernetes renderings, relative to the
// repository root.
const (
	templateDir      = "prometheus/templates"
	alertmanagerFile = "prometheus/alertmanager.yml"
	hooksFile        = "prometheus/alert-receiver/hooks.yaml"
	rulesConfigMap   = "deploy/kubernetes/prometheus/rules.yaml"
	amConfigMap      = "deploy/kubernetes/prometheus/alertmanager-config.yaml"
	prometheusRule   = "deploy/kubernetes/prometheus-operator/prometheusrule.yaml"
)

func main() {
	check := flag.Bool("check", false, "write nothing; fail if a rendering differs from the committed file")
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	if err := run(*root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "rulegen:", err)
		os.Exit(1)
	}
}

func run(root string, check bool) error {
	files, err := render(root)
	if err != nil {
		return err
	}
	var stale []string
	for _, path := range slices.Sorted(maps.Keys(files)) {
		full := filepath.Join(root, path)
		old, err := os.ReadFile(full) // #nosec G304 -- a repository file named by the generator
		if err == nil && bytes.Equal(old, files[path]) {
			continue
		}
		if check {
			stale = append(stale, path)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil { // #nosec G301 -- generated repository files, world-readable like the checkout
			return err
		}
		if err := os.WriteFile(full, files[path], 0o644); err != nil { // #nosec G306 -- generated repository files, world-readable like the checkout
			return err
		}
		fmt.Println("wrote", path)
	}
	if len(stale) > 0 {
		return fmt.Errorf("out of date (run go run ./internal/monitoring/rulegen): %s", strings.Join(stale, ", "))
	}
	return nil
}

// render returns every generated file, keyed by its path relative to root.
func render(root string) (map[string][]byte, error) {
	sources, err := filepath.Glob(filepath.Join(root, templateDir, "*.yml"))
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("no templates in %s", templateDir)
	}
	slices.Sort(sources)
	out := map[string][]byte{}
	for _, tg := range targets {
		for _, src := range sources {
			data, err := renderTemplate(src, tg)
			if err != nil {
				return nil, err
			}
			out[filepath.ToSlash(filepath.Join(tg.Dir, filepath.Base(src)))] = data
		}
	}
	kube := targets[1]
	ruleFiles := map[string][]byte{}
	for _, src := range sources {
		if name := filepath.Base(src); strings.HasSuffix(name, ".rules.yml") {
			ruleFiles[name] = out[filepath.ToSlash(filepath.Join(kube.Dir, name))]
		}
	}
	if out[rulesConfigMap], err = configMap("prometheus-rules", "prometheus", templateDir,
		"The rules of prometheus/kubernetes (rendered from prometheus/templates), mounted at /etc/prometheus/rules.", ruleFiles); err != nil {
		return nil, err
	}
	if out[prometheusRule], err = prometheusRuleManifest(ruleFiles); err != nil {
		return nil, err
	}
	am, err := os.ReadFile(filepath.Join(root, alertmanagerFile)) // #nosec G304 -- a repository file named by the generator
	if err != nil {
		return nil, err
	}
	hooks, err := os.ReadFile(filepath.Join(root, hooksFile)) // #nosec G304 -- a repository file named by the generator
	if err != nil {
		return nil, err
	}
	amCM, err := configMap("alertmanager-config", "alertmanager", alertmanagerFile,
		"prometheus/alertmanager.yml, the compose stack's routing, verbatim.", map[string][]byte{"alertmanager.yml": am})
	if err != nil {
		return nil, err
	}
	hooksCM, err := configMap("alert-receiver-hooks", "alert-receiver", hooksFile,
		"prometheus/alert-receiver/hooks.yaml, the compose stack's receiver, verbatim.", map[string][]byte{"hooks.yaml": hooks})
	if err != nil {
		return nil, err
	}
	out[amConfigMap] = append(append(amCM, []byte("---\n")...), hooksCM...)
	return out, nil
}

// header is the first line of every rendering.
func header(source string) string {
	return "# Code generated by `go run ./internal/monitoring/rulegen` from " + source + ". DO NOT EDIT."
}

// windowed is the argument of the templates' "availability" and "latency"
// definitions: the target and one window.
type windowed struct {
	T     target
	Range string
}

// renderTemplate renders one template of prometheus/templates for tg. The
// delimiters are [[ ]]: {{ }} belongs to the alerts' annotation templates.
func renderTemplate(path string, tg target) ([]byte, error) {
	src, err := os.ReadFile(path) // #nosec G304 -- a repository file named by the generator
	if err != nil {
		return nil, err
	}
	rel := filepath.ToSlash(filepath.Join(templateDir, filepath.Base(path)))
	tmpl, err := template.New(filepath.Base(path)).Delims("[[", "]]").Option("missingkey=error").Funcs(template.FuncMap{
		"header": func() string { return header(rel) },
		"window": func(t target, w string) windowed { return windowed{T: t, Range: "[" + w + "]"} },
	}).Parse(string(src))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, tg); err != nil {
		return nil, fmt.Errorf("%s for %s: %w", rel, tg.Name, err)
	}
	// Every rendering must be YAML: a template slip shows here, not in
	// Prometheus.
	var doc yaml.Node
	if err := yaml.Unmarshal(b.Bytes(), &doc); err != nil {
		return nil, fmt.Errorf("%s for %s renders invalid YAML: %w", rel, tg.Name, err)
	}
	return b.Bytes(), nil
}

// objectMeta is the metadata of a generated Kubernetes object.
type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

func meta(name, app, description string) objectMeta {
	return objectMeta{
		Name: name, Namespace: "monitoring",
		Labels: map[string]string{
			"app.kubernetes.io/name":    app,
			"app.kubernetes.io/part-of": "featurestore",
		},
		Annotations: map[string]string{"featurestore.io/description": description},
	}
}

// configMap renders a ConfigMap in namespace monitoring holding files,
// generated from source.
func configMap(name, app, source, description string, files map[string][]byte) ([]byte, error) {
	data := map[string]string{}
	for k, v := range files {
		data[k] = string(v)
	}
	obj := struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   objectMeta        `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
	}{"v1", "ConfigMap", meta(name, app, description), data}
	return marshal(obj, source)
}

// prometheusRuleManifest renders the rule files as one PrometheusRule
// (monitoring.coreos.com/v1) whose spec.groups are their groups, in file
// order.
func prometheusRuleManifest(ruleFiles map[string][]byte) ([]byte, error) {
	var groups []*yaml.Node
	for _, name := range slices.Sorted(maps.Keys(ruleFiles)) {
		var doc yaml.Node
		if err := yaml.Unmarshal(ruleFiles[name], &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "groups" {
				groups = append(groups, root.Content[i+1].Content...)
			}
		}
	}
	m := meta("featurestore", "featurestore", "The rules of prometheus/kubernetes for the Prometheus Operator.")
	m.Labels["role"] = "alert-rules"
	obj := struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   objectMeta `yaml:"metadata"`
		Spec       struct {
			Groups []*yaml.Node `yaml:"groups"`
		} `yaml:"spec"`
	}{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule", Metadata: m}
	obj.Spec.Groups = groups
	return marshal(obj, "prometheus/templates")
}

func marshal(obj any, source string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header(source) + "\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(obj); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
