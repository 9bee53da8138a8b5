package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/featurestore/featurestore/internal/testenv"
)

// TestRenderingsAreUpToDate renders every file from the committed sources
// and wants the committed renderings byte for byte: edit
// prometheus/templates, prometheus/alertmanager.yml or the receiver's
// hooks, then run `go run ./internal/monitoring/rulegen`.
func TestRenderingsAreUpToDate(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	files, err := render(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Fatalf("rendered %d files, want the rules and tests of both targets and the manifests", len(files))
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v (run go run ./internal/monitoring/rulegen)", path, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run go run ./internal/monitoring/rulegen", path)
		}
	}
	if err := run(root, true); err != nil {
		t.Error(err)
	}
}

// TestRenderingsDiffer shows the renderings are not copies: the Kubernetes
// one selects the kubernetes-service-endpoints job by Service and
// aggregates per namespace, the compose one selects its own jobs.
func TestRenderingsDiffer(t *testing.T) {
	t.Parallel()
	files, err := render(testenv.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	compose, kube := string(files["prometheus/rules/slo.rules.yml"]), string(files["prometheus/kubernetes/slo.rules.yml"])
	for _, c := range []struct {
		text, want, not string
	}{
		{compose, `up{job="featurestore"} == 0`, "kubernetes-service-endpoints"},
		{compose, `unless on () max_over_time(ALERTS`, "namespace"},
		{kube, `up{job="kubernetes-service-endpoints", service="featurestore"} == 0`, `job="featurestore"`},
		{kube, `sum by (job, namespace) (rate(feature_store_http_requests_total`, `sum by (job) (`},
		{kube, `count by (namespace, dependency)`, `count by (dependency)`},
	} {
		if !strings.Contains(c.text, c.want) || strings.Contains(c.text, c.not) {
			t.Errorf("rendering wants %q and not %q", c.want, c.not)
		}
	}
}

// TestRenderRejectsBrokenTemplates proves a template slip fails rendering
// rather than reaching Prometheus: an unknown field and invalid YAML.
func TestRenderRejectsBrokenTemplates(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"unknown field": "groups: [[ .NoSuchField ]]\n",
		"invalid YAML":  "groups:\n  - name: [[ .FS ]]\n   rules: x\n",
	} {
		path := filepath.Join(t.TempDir(), "x.rules.yml")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := renderTemplate(path, targets[0]); err == nil {
			t.Errorf("%s: rendered without error", name)
		}
	}
}

// TestKubernetesManifestsHoldTheKubernetesRendering checks the ConfigMap the
// in-cluster Prometheus loads and the PrometheusRule carry exactly the
// Kubernetes rendering's rule files and groups.
func TestKubernetesManifestsHoldTheKubernetesRendering(t *testing.T) {
	t.Parallel()
	files, err := render(testenv.RepoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(files[rulesConfigMap], &cm); err != nil {
		t.Fatal(err)
	}
	var names []string
	var groups []string
	for name, text := range cm.Data {
		names = append(names, name)
		if text != string(files["prometheus/kubernetes/"+name]) {
			t.Errorf("ConfigMap key %s differs from prometheus/kubernetes/%s", name, name)
		}
		var f struct {
			Groups []struct {
				Name string `yaml:"name"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal([]byte(text), &f); err != nil {
			t.Fatal(err)
		}
		for _, g := range f.Groups {
			groups = append(groups, g.Name)
		}
	}
	slices.Sort(names)
	sources, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), templateDir, "*.rules.yml"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("rule templates: %v, %v", sources, err)
	}
	var want []string
	for _, src := range sources {
		want = append(want, filepath.Base(src))
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("ConfigMap holds %v, want %v", names, want)
	}
	var pr struct {
		Spec struct {
			Groups []struct {
				Name string `yaml:"name"`
			} `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(files[prometheusRule], &pr); err != nil {
		t.Fatal(err)
	}
	var prGroups []string
	for _, g := range pr.Spec.Groups {
		prGroups = append(prGroups, g.Name)
	}
	slices.Sort(groups)
	slices.Sort(prGroups)
	if !slices.Equal(groups, prGroups) || len(groups) < 5 {
		t.Errorf("PrometheusRule groups %v, want the ConfigMap's %v", prGroups, groups)
	}
}
