package deploycheck

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/featurestore/featurestore/internal/testenv"
)

// mountedConfigMap returns the directory where container c of d mounts the
// ConfigMap named cm, or "".
func mountedConfigMap(d *appsv1.Deployment, c corev1.Container, cm string) string {
	for _, m := range c.VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm {
				return m.MountPath
			}
		}
	}
	return ""
}

// serviceFor returns the Service of ms that answers host:port (a name,
// name.namespace or name.namespace.svc in namespace ns) and selects the pods
// of a Deployment, failing the test otherwise.
func serviceFor(t *testing.T, ms []manifest, hostport, ns string) *corev1.Service {
	t.Helper()
	host, portText, _ := strings.Cut(hostport, ":")
	name, rest, _ := strings.Cut(host, ".")
	if rest != "" {
		ns, _, _ = strings.Cut(rest, ".")
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatalf("%s: no port", hostport)
	}
	svc := find[*corev1.Service](t, ms, name)
	if svc.Namespace != ns || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == port }) {
		t.Errorf("%s: Service %s/%s has no port %d in namespace %s", hostport, svc.Namespace, svc.Name, port, ns)
	}
	for _, m := range ms {
		if d, ok := m.obj.(*appsv1.Deployment); ok && d.Namespace == svc.Namespace &&
			labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			return svc
		}
	}
	t.Errorf("%s: Service %s selects no Deployment's pods", hostport, svc.Name)
	return svc
}

// TestInClusterAlerting follows an alert through the Kubernetes manifests:
// the in-cluster Prometheus loads the Kubernetes rendering of the rules
// from a mounted ConfigMap and sends to the Alertmanager Service; that
// Alertmanager loads the compose stack's alertmanager.yml, whose receivers
// are the alert-receiver Service, which loads the compose stack's hooks.
func TestInClusterAlerting(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	ms := loadManifests(t)
	cfgText, _ := inClusterPrometheus(t, ms)
	var cfg struct {
		Global struct {
			ScrapeInterval     string `json:"scrape_interval"`
			EvaluationInterval string `json:"evaluation_interval"`
		} `json:"global"`
		RuleFiles []string `json:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `json:"targets"`
				} `json:"static_configs"`
			} `json:"alertmanagers"`
		} `json:"alerting"`
		ScrapeConfigs []struct {
			JobName        string `json:"job_name"`
			ScrapeInterval string `json:"scrape_interval"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Global.EvaluationInterval != "10s" {
		t.Errorf("evaluation_interval %q, want 10s like compose (docs/alerting.md)", cfg.Global.EvaluationInterval)
	}
	for _, j := range cfg.ScrapeConfigs {
		if j.JobName == "kubernetes-service-endpoints" && j.ScrapeInterval != "5s" {
			t.Errorf("kubernetes-service-endpoints scrape_interval %q, want 5s like compose's featurestore job", j.ScrapeInterval)
		}
	}

	// The rules: the ConfigMap prometheus-rules, mounted where rule_files
	// looks, holding exactly the Kubernetes rendering.
	prom := find[*appsv1.Deployment](t, ms, "prometheus")
	c := prom.Spec.Template.Spec.Containers[0]
	rulesDir := mountedConfigMap(prom, c, "prometheus-rules")
	if len(cfg.RuleFiles) != 1 || rulesDir == "" || path.Dir(cfg.RuleFiles[0]) != rulesDir {
		t.Errorf("rule_files %v, ConfigMap prometheus-rules mounted at %q: Prometheus would load no rules", cfg.RuleFiles, rulesDir)
	}
	rules := find[*corev1.ConfigMap](t, ms, "prometheus-rules")
	rendered, _ := filepath.Glob(filepath.Join(root, "prometheus", "kubernetes", "*.rules.yml"))
	if len(rendered) == 0 || len(rules.Data) != len(rendered) {
		t.Errorf("ConfigMap prometheus-rules holds %d files, prometheus/kubernetes %d rule files", len(rules.Data), len(rendered))
	}
	for _, f := range rendered {
		name := filepath.Base(f)
		if ok, _ := path.Match(path.Base(cfg.RuleFiles[0]), name); !ok {
			t.Errorf("rule_files %s does not match %s", cfg.RuleFiles[0], name)
		}
		if rules.Data[name] != string(readFile(t, f)) {
			t.Errorf("ConfigMap prometheus-rules: %s differs from prometheus/kubernetes/%s (run go run ./internal/monitoring/rulegen)", name, name)
		}
	}

	// Prometheus -> Alertmanager.
	var ams []string
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			ams = append(ams, sc.Targets...)
		}
	}
	if len(ams) != 1 {
		t.Fatalf("alerting targets %v, want the one Alertmanager", ams)
	}
	amSvc := serviceFor(t, ms, ams[0], prom.Namespace)
	am := find[*appsv1.Deployment](t, ms, "alertmanager")
	if !labels.SelectorFromSet(amSvc.Spec.Selector).Matches(labels.Set(am.Spec.Template.Labels)) {
		t.Errorf("Service %s does not select the alertmanager pods", amSvc.Name)
	}
	amc := am.Spec.Template.Spec.Containers[0]
	if amc.Image != mustLoadCompose(t).Services["alertmanager"].Image {
		t.Errorf("alertmanager image %s, compose runs %s", amc.Image, mustLoadCompose(t).Services["alertmanager"].Image)
	}
	amDir := mountedConfigMap(am, amc, "alertmanager-config")
	if !slices.Contains(amc.Args, "--config.file="+amDir+"/alertmanager.yml") || amDir == "" {
		t.Errorf("alertmanager args %v do not load the mounted alertmanager-config (%q)", amc.Args, amDir)
	}
	amCfg := find[*corev1.ConfigMap](t, ms, "alertmanager-config")
	if amCfg.Data["alertmanager.yml"] != string(readFile(t, filepath.Join(root, "prometheus", "alertmanager.yml"))) {
		t.Error("ConfigMap alertmanager-config differs from prometheus/alertmanager.yml (run go run ./internal/monitoring/rulegen)")
	}

	// Alertmanager -> the receiver.
	var amc2 struct {
		Receivers []struct {
			Name           string `json:"name"`
			WebhookConfigs []struct {
				URL string `json:"url"`
			} `json:"webhook_configs"`
		} `json:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(amCfg.Data["alertmanager.yml"]), &amc2); err != nil {
		t.Fatal(err)
	}
	for _, r := range amc2.Receivers {
		for _, w := range r.WebhookConfigs {
			hostport := strings.TrimPrefix(w.URL, "http://")
			hostport, _, _ = strings.Cut(hostport, "/")
			serviceFor(t, ms, hostport, am.Namespace)
		}
	}
	rcv := find[*appsv1.Deployment](t, ms, "alert-receiver")
	rc := rcv.Spec.Template.Spec.Containers[0]
	hooksDir := mountedConfigMap(rcv, rc, "alert-receiver-hooks")
	if hooksDir == "" || !slices.Contains(rc.Args, "-hooks="+hooksDir+"/hooks.yaml") {
		t.Errorf("alert-receiver args %v do not load the mounted hooks (%q)", rc.Args, hooksDir)
	}
	hooks := find[*corev1.ConfigMap](t, ms, "alert-receiver-hooks")
	if hooks.Data["hooks.yaml"] != string(readFile(t, filepath.Join(root, "prometheus", "alert-receiver", "hooks.yaml"))) {
		t.Error("ConfigMap alert-receiver-hooks differs from prometheus/alert-receiver/hooks.yaml (run go run ./internal/monitoring/rulegen)")
	}
	if rc.Image != mustLoadCompose(t).Services["alert-receiver"].Image {
		t.Errorf("alert-receiver image %s, compose builds %s", rc.Image, mustLoadCompose(t).Services["alert-receiver"].Image)
	}
	for _, d := range []*appsv1.Deployment{am, rcv} {
		sc := d.Spec.Template.Spec.SecurityContext
		csc := d.Spec.Template.Spec.Containers[0].SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil ||
			csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			t.Errorf("%s: want runAsNonRoot, a seccomp profile and a read-only root filesystem", d.Name)
		}
		if d.Spec.Template.Spec.Containers[0].ReadinessProbe == nil {
			t.Errorf("%s: no readiness probe", d.Name)
		}
	}
}

// prometheusRule is monitoring.coreos.com/v1 PrometheusRule as the
// Prometheus Operator's CRD defines it (no Go module of the operator is a
// dependency): decoded strictly, an unknown or misspelt field fails.
type prometheusRule struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Record      string            `json:"record,omitempty"`
				Alert       string            `json:"alert,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// TestPrometheusRule decodes the PrometheusRule strictly, checks its spec
// with promtool as the rule file it is, and wants it to hold the groups and
// rules of the Kubernetes rendering, in order.
func TestPrometheusRule(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	file := filepath.Join(root, "deploy", "kubernetes", operatorDir, "prometheusrule.yaml")
	var pr prometheusRule
	if err := yaml.UnmarshalStrict(readFile(t, file), &pr); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" || pr.Metadata.Namespace == "" {
		t.Errorf("%s: %s %s %s/%s, want a named, namespaced monitoring.coreos.com/v1 PrometheusRule", file, pr.APIVersion, pr.Kind, pr.Metadata.Namespace, pr.Metadata.Name)
	}

	var want []string
	rendered, _ := filepath.Glob(filepath.Join(root, "prometheus", "kubernetes", "*.rules.yml"))
	slices.Sort(rendered)
	for _, f := range rendered {
		var rf struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Record string `json:"record"`
					Alert  string `json:"alert"`
					Expr   string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := yaml.Unmarshal(readFile(t, f), &rf); err != nil {
			t.Fatal(err)
		}
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				want = append(want, g.Name+"/"+r.Record+r.Alert+"/"+r.Expr)
			}
		}
	}
	var got []string
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			got = append(got, g.Name+"/"+r.Record+r.Alert+"/"+r.Expr)
		}
	}
	if len(want) < 40 || !slices.Equal(got, want) {
		t.Errorf("PrometheusRule holds %d rules, prometheus/kubernetes %d; they differ (run go run ./internal/monitoring/rulegen)", len(got), len(want))
	}

	spec, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	promtool := testenv.RequireTool(t, "promtool")
	tmp := filepath.Join(t.TempDir(), "spec.rules.yml")
	if err := os.WriteFile(tmp, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", tmp).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("SUCCESS")) {
		t.Errorf("promtool check rules on the PrometheusRule's spec: %v\n%s", err, out)
	}
}
