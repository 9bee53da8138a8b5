package deploycheck

import (
	"bytes"
	"errors"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/featurestore/featurestore/internal/testenv"
)

// manifest is one object of deploy/kubernetes, decoded into its API type.
type manifest struct {
	file string // relative to deploy/kubernetes
	obj  runtime.Object
}

// strictDecoder decodes YAML into the typed object its apiVersion and kind
// name, the way the API server's strict field validation does: duplicate
// keys (sigs.k8s.io/yaml's YAMLToJSONStrict), unknown fields and fields in
// the wrong case (sigs.k8s.io/json; encoding/json would accept
// "containerport" for containerPort) are errors.
func strictDecoder(t *testing.T) *kjson.Serializer {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, autoscalingv2.AddToScheme, rbacv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocuments splits a multi-document YAML file, dropping documents that
// hold only comments or blank lines.
func splitDocuments(b []byte) [][]byte {
	var docs [][]byte
	for _, doc := range docSeparator.Split(string(b), -1) {
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				docs = append(docs, []byte(doc))
				break
			}
		}
	}
	return docs
}

// operatorDir holds the manifests for the Prometheus Operator's custom
// resources, which the core API types cannot decode (TestPrometheusRule).
const operatorDir = "prometheus-operator"

func loadManifests(t *testing.T) []manifest {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "deploy", "kubernetes")
	dec := strictDecoder(t)
	var ms []manifest
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == operatorDir {
			return fs.SkipDir
		}
		if err != nil || d.IsDir() || (filepath.Ext(p) != ".yaml" && filepath.Ext(p) != ".yml") {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for i, doc := range splitDocuments(readFile(t, p)) {
			obj, _, err := dec.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s, document %d: %v", rel, i+1, err)
				continue
			}
			ms = append(ms, manifest{file: filepath.ToSlash(rel), obj: obj})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return ms
}

// find returns the object of type T named name.
func find[T runtime.Object](t *testing.T, ms []manifest, name string) T {
	t.Helper()
	for _, m := range ms {
		if obj, ok := m.obj.(T); ok {
			if acc, err := meta.Accessor(obj); err == nil && acc.GetName() == name {
				return obj
			}
		}
	}
	var zero T
	t.Fatalf("no %T named %q in deploy/kubernetes", zero, name)
	return zero
}

func TestManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()
	ms := loadManifests(t)
	type id struct{ file, kind, namespace, name string }
	var got []id
	namespaces := map[string]bool{}
	for _, m := range ms {
		acc, err := meta.Accessor(m.obj)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, id{m.file, m.obj.GetObjectKind().GroupVersionKind().Kind, acc.GetNamespace(), acc.GetName()})
		if _, ok := m.obj.(*corev1.Namespace); ok {
			namespaces[acc.GetName()] = true
		}
	}
	want := []id{
		{"configmap.yaml", "ConfigMap", "featurestore", "featurestore-config"},
		{"deployment.yaml", "Deployment", "featurestore", "featurestore"},
		{"examples/secret-tokens.yaml", "Secret", "featurestore", "featurestore-tokens"},
		{"examples/secret.yaml", "Secret", "featurestore", "featurestore-secrets"},
		{"hpa.yaml", "HorizontalPodAutoscaler", "featurestore", "featurestore"},
		{"namespace.yaml", "Namespace", "", "featurestore"},
		{"networkpolicy.yaml", "NetworkPolicy", "featurestore", "featurestore"},
		{"pdb.yaml", "PodDisruptionBudget", "featurestore", "featurestore"},
		{"prometheus/alert-receiver.yaml", "Deployment", "monitoring", "alert-receiver"},
		{"prometheus/alert-receiver.yaml", "Service", "monitoring", "alert-receiver"},
		{"prometheus/alertmanager-config.yaml", "ConfigMap", "monitoring", "alertmanager-config"},
		{"prometheus/alertmanager-config.yaml", "ConfigMap", "monitoring", "alert-receiver-hooks"},
		{"prometheus/alertmanager.yaml", "Deployment", "monitoring", "alertmanager"},
		{"prometheus/alertmanager.yaml", "Service", "monitoring", "alertmanager"},
		{"prometheus/configmap.yaml", "ConfigMap", "monitoring", "prometheus-config"},
		{"prometheus/deployment.yaml", "Deployment", "monitoring", "prometheus"},
		{"prometheus/namespace.yaml", "Namespace", "", "monitoring"},
		{"prometheus/rbac.yaml", "ServiceAccount", "monitoring", "prometheus"},
		{"prometheus/rbac.yaml", "ClusterRole", "", "featurestore-prometheus"},
		{"prometheus/rbac.yaml", "ClusterRoleBinding", "", "featurestore-prometheus"},
		{"prometheus/rules.yaml", "ConfigMap", "monitoring", "prometheus-rules"},
		{"prometheus/service.yaml", "Service", "monitoring", "prometheus"},
		{"service.yaml", "Service", "featurestore", "featurestore"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("objects:\n got %v\nwant %v", got, want)
	}
	for _, o := range got {
		clusterScoped := o.kind == "Namespace" || o.kind == "ClusterRole" || o.kind == "ClusterRoleBinding"
		if !clusterScoped && !namespaces[o.namespace] {
			t.Errorf("%s: %s %s is in namespace %q, which no manifest creates", o.file, o.kind, o.name, o.namespace)
		}
	}
}

// TestStrictDecoderRejectsMistakes proves the checker can fail: each of
// these manifests has a mistake kubectl apply would reject or silently drop.
func TestStrictDecoderRejectsMistakes(t *testing.T) {
	t.Parallel()
	dec := strictDecoder(t)
	for name, doc := range map[string]string{
		"unknown field":  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetPorts: http}]}\n",
		"wrong case":     "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetport: http}]}\n",
		"duplicate key":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  a: '1'\n  a: '2'\n",
		"wrong type":     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n",
		"unknown kind":   "apiVersion: v1\nkind: Servic\nmetadata: {name: x}\n",
		"wrong version":  "apiVersion: autoscaling/v2beta1\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n",
		"no kind at all": "metadata: {name: x}\n",
	} {
		if _, _, err := dec.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if got := len(splitDocuments([]byte("# only a comment\n---\na: 1\n---\n\n---\nb: 2\n"))); got != 2 {
		t.Errorf("splitDocuments found %d documents, want 2", got)
	}
}

func featureStoreContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "featurestore" {
			return c
		}
	}
	t.Fatal("deployment featurestore has no container featurestore")
	return corev1.Container{}
}

// effectiveEnv is the environment the container gets: its envFrom sources
// in order, then env, which wins. Unset variables take the service's defaults.
func effectiveEnv(t *testing.T, ms []manifest, c corev1.Container, ns string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm := find[*corev1.ConfigMap](t, ms, src.ConfigMapRef.Name)
			if cm.Namespace != ns {
				t.Errorf("ConfigMap %s is in namespace %q, the pod in %q", cm.Name, cm.Namespace, ns)
			}
			for k, v := range cm.Data {
				vars[k] = v
			}
		case src.SecretRef != nil:
			s := find[*corev1.Secret](t, ms, src.SecretRef.Name)
			if s.Namespace != ns {
				t.Errorf("Secret %s is in namespace %q, the pod in %q", s.Name, s.Namespace, ns)
			}
			for k, v := range s.StringData {
				vars[k] = v
			}
		}
	}
	for _, e := range c.Env {
		vars[e.Name] = e.Value
	}
	return vars
}

func TestDeployment(t *testing.T) {
	t.Parallel()
	ms := loadManifests(t)
	d := find[*appsv1.Deployment](t, ms, "featurestore")
	spec := d.Spec.Template.Spec
	c := featureStoreContainer(t, d)

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Error("replicas is not 2")
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the pod labels %v (%v)", d.Spec.Selector, d.Spec.Template.Labels, err)
	}
	if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		t.Errorf("image %q: want an explicit version tag", c.Image)
	}

	port := servicePort(t)
	var named bool
	for _, p := range c.Ports {
		named = named || (p.Name == "http" && p.ContainerPort == int32(port))
	}
	if !named {
		t.Errorf("ports %v: want a port named http on %d", c.Ports, port)
	}
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/health/live"},
		{"livenessProbe", c.LivenessProbe, "/health/live"},
		{"readinessProbe", c.ReadinessProbe, "/health/ready"},
	} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s: want an HTTP GET of %s", pr.name, pr.path)
			continue
		}
		if g := pr.probe.HTTPGet; g.Path != pr.path || g.Port != intstr.FromString("http") {
			t.Errorf("%s: GET %s on port %s, want %s on the named port http", pr.name, g.Path, g.Port.String(), pr.path)
		}
	}

	for _, r := range []struct {
		list corev1.ResourceList
		name corev1.ResourceName
		what string
	}{
		{c.Resources.Requests, corev1.ResourceCPU, "requests.cpu"},
		{c.Resources.Requests, corev1.ResourceMemory, "requests.memory"},
		{c.Resources.Limits, corev1.ResourceCPU, "limits.cpu"},
		{c.Resources.Limits, corev1.ResourceMemory, "limits.memory"},
	} {
		if q, ok := r.list[r.name]; !ok || q.Sign() <= 0 {
			t.Errorf("resources.%s is not set", r.what)
		}
	}
	if req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]; req.Cmp(lim) > 0 {
		t.Errorf("memory request %s above the limit %s", req.String(), lim.String())
	}

	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("pod or container securityContext missing")
	}
	nonRoot := (psc.RunAsNonRoot != nil && *psc.RunAsNonRoot) || (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)
	if !nonRoot || (psc.RunAsUser != nil && *psc.RunAsUser == 0) {
		t.Error("the pod may run as root: want runAsNonRoot and a non-zero runAsUser")
	}
	if uid := dockerfileUID(t); psc.RunAsUser == nil || strconv.FormatInt(*psc.RunAsUser, 10) != uid {
		t.Errorf("runAsUser is not the Dockerfile's USER %s", uid)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("seccompProfile is not RuntimeDefault")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Error("capabilities: want drop ALL and nothing added")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken: the service never calls the Kubernetes API, want false")
	}

	vars := effectiveEnv(t, ms, c, d.Namespace)
	checkServiceEnv(t, "deployment featurestore (env, ConfigMap, Secret)", slices.Collect(maps.Keys(vars)))
	for _, name := range []string{"FEATURESTORE_POSTGRES_URL", "FEATURESTORE_REDIS_URL"} {
		var fromSecret bool
		for _, src := range c.EnvFrom {
			if src.SecretRef != nil {
				_, fromSecret = find[*corev1.Secret](t, ms, src.SecretRef.Name).StringData[name]
			}
		}
		if !fromSecret {
			t.Errorf("%s does not come from a Secret", name)
		}
	}
	duration := func(name string) time.Duration {
		v, ok := vars[name]
		if !ok {
			return durationDefault(t, name)
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, v, err)
		}
		return d
	}
	checkTokensMounted(t, ms, d, c, vars["FEATURESTORE_AUTH_TOKENS_FILE"])
	delay, timeout := duration("FEATURESTORE_SHUTDOWN_DELAY"), duration("FEATURESTORE_SHUTDOWN_TIMEOUT")
	if delay != 5*time.Second {
		t.Errorf("FEATURESTORE_SHUTDOWN_DELAY = %v, want 5s so endpoints drop the pod before it drains", delay)
	}
	if grace := spec.TerminationGracePeriodSeconds; grace == nil || time.Duration(*grace)*time.Second <= delay+timeout {
		t.Errorf("terminationGracePeriodSeconds must be more than shutdown delay + timeout = %v", delay+timeout)
	}
}

func TestService(t *testing.T) {
	t.Parallel()
	ms := loadManifests(t)
	d := find[*appsv1.Deployment](t, ms, "featurestore")
	s := find[*corev1.Service](t, ms, "featurestore")
	c := featureStoreContainer(t, d)

	if s.Namespace != d.Namespace || s.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("service: namespace %q type %q, want %q ClusterIP", s.Namespace, s.Spec.Type, d.Namespace)
	}
	if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("service selector %v does not select the deployment's pods %v", s.Spec.Selector, d.Spec.Template.Labels)
	}
	var containerPort int32
	for _, p := range s.Spec.Ports {
		if p.Name != "http" {
			continue
		}
		for _, cp := range c.Ports {
			if (p.TargetPort.Type == intstr.String && p.TargetPort.StrVal == cp.Name) || (p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == cp.ContainerPort) {
				containerPort = cp.ContainerPort
			}
		}
	}
	if containerPort == 0 {
		t.Fatalf("service ports %v: no port named http targeting a container port", s.Spec.Ports)
	}
	want := map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/port":   strconv.Itoa(int(containerPort)),
		"prometheus.io/path":   "/metrics",
	}
	for k, v := range want {
		if s.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, s.Annotations[k], v)
		}
	}
}

func TestDisruptionBudgetAndAutoscaler(t *testing.T) {
	t.Parallel()
	ms := loadManifests(t)
	d := find[*appsv1.Deployment](t, ms, "featurestore")
	pdb := find[*policyv1.PodDisruptionBudget](t, ms, "featurestore")
	hpa := find[*autoscalingv2.HorizontalPodAutoscaler](t, ms, "featurestore")

	if pdb.Namespace != d.Namespace || pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != intstr.FromInt32(1) || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PDB: namespace %q, want %q, minAvailable 1 and no maxUnavailable", pdb.Namespace, d.Namespace)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("PDB selector %v does not select the deployment's pods (%v)", pdb.Spec.Selector, err)
	}

	ref := hpa.Spec.ScaleTargetRef
	if hpa.Namespace != d.Namespace || ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA targets %s %s/%s in %q, want apps/v1 Deployment %s in %q", ref.APIVersion, ref.Kind, ref.Name, hpa.Namespace, d.Name, d.Namespace)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 10 {
		t.Errorf("HPA replicas: want 2..10 (max is %d)", hpa.Spec.MaxReplicas)
	}
	if d.Spec.Replicas != nil && hpa.Spec.MinReplicas != nil && *d.Spec.Replicas < *hpa.Spec.MinReplicas {
		t.Errorf("deployment replicas %d below the HPA minimum %d", *d.Spec.Replicas, *hpa.Spec.MinReplicas)
	}
	var cpu bool
	for _, m := range hpa.Spec.Metrics {
		cpu = cpu || (m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil)
	}
	if !cpu {
		t.Error("HPA: no CPU utilization metric")
	}
	// Utilization is relative to the request: without one the HPA does nothing.
	if q := featureStoreContainer(t, d).Resources.Requests[corev1.ResourceCPU]; q.IsZero() {
		t.Error("HPA on CPU utilization but the container has no CPU request")
	}
}

// relabelConfig is one rule of a Prometheus relabel_configs list.
type relabelConfig struct {
	SourceLabels []string `json:"source_labels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	TargetLabel  string   `json:"target_label,omitempty"`
	Replacement  string   `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// withDefaults fills in Prometheus's defaults so rules compare by meaning.
func (c relabelConfig) withDefaults() relabelConfig {
	if c.Action == "" {
		c.Action = "replace"
	}
	if c.Separator == "" {
		c.Separator = ";"
	}
	if c.Regex == "" {
		c.Regex = "(.*)"
	}
	if c.Replacement == "" {
		c.Replacement = "$1"
	}
	return c
}

// serviceEndpointsRelabelling is the kubernetes-service-endpoints job's
// relabelling of the scrape-by-annotation convention, rule for rule and in
// order: keep on scrape=true, drop scrape_slow=true, scheme, path,
// address:port, URL parameters, the Service's labels, namespace, service, node.
var serviceEndpointsRelabelling = []relabelConfig{
	{Action: "keep", Regex: "true", SourceLabels: []string{"__meta_kubernetes_service_annotation_prometheus_io_scrape"}},
	{Action: "drop", Regex: "true", SourceLabels: []string{"__meta_kubernetes_service_annotation_prometheus_io_scrape_slow"}},
	{Action: "replace", Regex: "(https?)", SourceLabels: []string{"__meta_kubernetes_service_annotation_prometheus_io_scheme"}, TargetLabel: "__scheme__"},
	{Action: "replace", Regex: "(.+)", SourceLabels: []string{"__meta_kubernetes_service_annotation_prometheus_io_path"}, TargetLabel: "__metrics_path__"},
	{Action: "replace", Regex: `(.+?)(?::\d+)?;(\d+)`, Replacement: "$1:$2", SourceLabels: []string{"__address__", "__meta_kubernetes_service_annotation_prometheus_io_port"}, TargetLabel: "__address__"},
	{Action: "labelmap", Regex: "__meta_kubernetes_service_annotation_prometheus_io_param_(.+)", Replacement: "__param_$1"},
	{Action: "labelmap", Regex: "__meta_kubernetes_service_label_(.+)"},
	{Action: "replace", SourceLabels: []string{"__meta_kubernetes_namespace"}, TargetLabel: "namespace"},
	{Action: "replace", SourceLabels: []string{"__meta_kubernetes_service_name"}, TargetLabel: "service"},
	{Action: "replace", SourceLabels: []string{"__meta_kubernetes_pod_node_name"}, TargetLabel: "node"},
}

type scrapeJob struct {
	JobName             string `json:"job_name"`
	HonorLabels         bool   `json:"honor_labels"`
	KubernetesSDConfigs []struct {
		Role string `json:"role"`
	} `json:"kubernetes_sd_configs"`
	RelabelConfigs []relabelConfig `json:"relabel_configs"`
}

// inClusterPrometheus returns the prometheus.yml of the in-cluster
// Prometheus's ConfigMap and its kubernetes-service-endpoints job.
func inClusterPrometheus(t *testing.T, ms []manifest) (string, scrapeJob) {
	t.Helper()
	cm := find[*corev1.ConfigMap](t, ms, "prometheus-config")
	cfg, ok := cm.Data["prometheus.yml"]
	if !ok {
		t.Fatal("ConfigMap prometheus-config has no prometheus.yml")
	}
	var parsed struct {
		ScrapeConfigs []scrapeJob `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(cfg), &parsed); err != nil {
		t.Fatal(err)
	}
	for _, j := range parsed.ScrapeConfigs {
		if j.JobName == "kubernetes-service-endpoints" {
			return cfg, j
		}
	}
	t.Fatal("prometheus.yml has no job kubernetes-service-endpoints")
	return "", scrapeJob{}
}

func TestPrometheusConfigIsValid(t *testing.T) {
	t.Parallel()
	cfg, _ := inClusterPrometheus(t, loadManifests(t))
	promtool := testenv.RequireTool(t, "promtool")
	check := func(cfg []byte) ([]byte, error) {
		file := filepath.Join(t.TempDir(), "prometheus.yml")
		if err := os.WriteFile(file, cfg, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(t.Context(), promtool, "check", "config", file).CombinedOutput()
		if err == nil && !bytes.Contains(out, []byte("SUCCESS")) {
			err = errors.New("no SUCCESS in the output")
		}
		return out, err
	}
	out, err := check([]byte(cfg))
	if err != nil && bytes.Contains(out, []byte("field kubernetes_sd_configs not found")) {
		// Debian's promtool is built without Kubernetes service discovery.
		// Check everything else — global settings, the job, every relabel
		// rule (regular expressions, actions, target labels) — with static
		// targets in its place; TestPrometheusServiceEndpointsJob checks
		// the discovery block itself.
		t.Log("this promtool has no Kubernetes service discovery: checking the configuration with static targets in its place")
		out, err = check(withoutKubernetesSD(t, cfg))
	}
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// withoutKubernetesSD replaces every kubernetes_sd_configs block of a
// Prometheus configuration with a static target.
func withoutKubernetesSD(t *testing.T, cfg string) []byte {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(cfg), &doc); err != nil {
		t.Fatal(err)
	}
	jobs, _ := doc["scrape_configs"].([]any)
	for _, j := range jobs {
		job := j.(map[string]any)
		if _, ok := job["kubernetes_sd_configs"]; ok {
			delete(job, "kubernetes_sd_configs")
			job["static_configs"] = []any{map[string]any{"targets": []any{"10.1.2.3:8001"}}}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPrometheusServiceEndpointsJob(t *testing.T) {
	t.Parallel()
	_, job := inClusterPrometheus(t, loadManifests(t))
	if !job.HonorLabels || len(job.KubernetesSDConfigs) != 1 || job.KubernetesSDConfigs[0].Role != "endpoints" {
		t.Errorf("job: honor_labels %v, kubernetes_sd_configs %+v; want true and one role: endpoints", job.HonorLabels, job.KubernetesSDConfigs)
	}
	normalize := func(cs []relabelConfig) []relabelConfig {
		out := make([]relabelConfig, len(cs))
		for i, c := range cs {
			out[i] = c.withDefaults()
		}
		return out
	}
	got, want := normalize(job.RelabelConfigs), normalize(serviceEndpointsRelabelling)
	if len(got) != len(want) {
		t.Fatalf("relabel_configs has %d rules, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range want {
		if !slices.Equal(got[i].SourceLabels, want[i].SourceLabels) || got[i].Separator != want[i].Separator || got[i].Regex != want[i].Regex ||
			got[i].TargetLabel != want[i].TargetLabel || got[i].Replacement != want[i].Replacement || got[i].Action != want[i].Action {
			t.Errorf("relabel rule %d:\n got %+v\nwant %+v", i+1, got[i], want[i])
		}
	}
}

// sanitize is Prometheus's label-name sanitising of Kubernetes names.
var sanitize = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// discoveredTarget is the label set Kubernetes service discovery (role
// endpoints) gives one endpoint of s on a pod at 10.1.2.3 on node-a, with the
// job's defaults.
func discoveredTarget(s *corev1.Service, port int32) map[string]string {
	lset := map[string]string{
		"job":                             "kubernetes-service-endpoints",
		"__scheme__":                      "http",
		"__metrics_path__":                "/metrics",
		"__address__":                     "10.1.2.3:" + strconv.Itoa(int(port)),
		"__meta_kubernetes_namespace":     s.Namespace,
		"__meta_kubernetes_service_name":  s.Name,
		"__meta_kubernetes_pod_node_name": "node-a",
	}
	for k, v := range s.Labels {
		lset["__meta_kubernetes_service_label_"+sanitize.ReplaceAllString(k, "_")] = v
	}
	for k, v := range s.Annotations {
		lset["__meta_kubernetes_service_annotation_"+sanitize.ReplaceAllString(k, "_")] = v
	}
	return lset
}

// relabel applies rules the way Prometheus does (anchored regular
// expressions, $n expansion, an empty result deletes the label) and returns
// the target's public labels plus address, scheme and path, or false when
// the target is dropped. Only the actions the job uses are implemented.
func relabel(t *testing.T, lset map[string]string, rules []relabelConfig) (map[string]string, bool) {
	t.Helper()
	out := map[string]string{}
	for k, v := range lset {
		out[k] = v
	}
	for _, c := range rules {
		c = c.withDefaults()
		re, err := regexp.Compile("^(?s:" + c.Regex + ")$")
		if err != nil {
			t.Fatalf("relabel rule %+v: %v", c, err)
		}
		vals := make([]string, len(c.SourceLabels))
		for i, l := range c.SourceLabels {
			vals[i] = out[l]
		}
		val := strings.Join(vals, c.Separator)
		switch c.Action {
		case "keep":
			if !re.MatchString(val) {
				return nil, false
			}
		case "drop":
			if re.MatchString(val) {
				return nil, false
			}
		case "replace":
			idx := re.FindStringSubmatchIndex(val)
			if idx == nil {
				continue
			}
			target := string(re.ExpandString(nil, c.TargetLabel, val, idx))
			if res := string(re.ExpandString(nil, c.Replacement, val, idx)); res == "" {
				delete(out, target)
			} else {
				out[target] = res
			}
		case "labelmap":
			snapshot := map[string]string{}
			for k, v := range out {
				snapshot[k] = v
			}
			for k, v := range snapshot {
				if re.MatchString(k) {
					out[re.ReplaceAllString(k, c.Replacement)] = v
				}
			}
		default:
			t.Fatalf("relabel action %q not simulated", c.Action)
		}
	}
	for k := range out {
		if strings.HasPrefix(k, "__meta_") {
			delete(out, k)
		}
	}
	return out, true
}

// TestServiceEndpointsJobScrapesTheService runs the job's relabelling on the
// targets discovery makes of the feature store's Service, as shipped and
// with its annotations changed.
func TestServiceEndpointsJobScrapesTheService(t *testing.T) {
	t.Parallel()
	ms := loadManifests(t)
	_, job := inClusterPrometheus(t, ms)
	svc := find[*corev1.Service](t, ms, "featurestore")
	port := int32(servicePort(t))

	got, kept := relabel(t, discoveredTarget(svc, port), job.RelabelConfigs)
	want := map[string]string{
		"job":                    "kubernetes-service-endpoints",
		"__address__":            "10.1.2.3:" + strconv.Itoa(int(port)),
		"__scheme__":             "http",
		"__metrics_path__":       "/metrics",
		"namespace":              "featurestore",
		"service":                "featurestore",
		"node":                   "node-a",
		"app_kubernetes_io_name": "featurestore",
	}
	if !kept {
		t.Fatal("the feature store's Service is not scraped")
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}

	annotated := func(set map[string]string) *corev1.Service {
		s := svc.DeepCopy()
		for k, v := range set {
			s.Annotations[k] = v
		}
		return s
	}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		keep        bool
		label, want string
	}{
		{"scrape false", map[string]string{"prometheus.io/scrape": "false"}, false, "", ""},
		{"scrape True is not true", map[string]string{"prometheus.io/scrape": "True"}, false, "", ""},
		{"scrape_slow", map[string]string{"prometheus.io/scrape_slow": "true"}, false, "", ""},
		{"port rewrite", map[string]string{"prometheus.io/port": "9102"}, true, "__address__", "10.1.2.3:9102"},
		{"named port ignored", map[string]string{"prometheus.io/port": "http"}, true, "__address__", "10.1.2.3:" + strconv.Itoa(int(port))},
		{"https", map[string]string{"prometheus.io/scheme": "https"}, true, "__scheme__", "https"},
		{"other scheme ignored", map[string]string{"prometheus.io/scheme": "ftp"}, true, "__scheme__", "http"},
		{"path", map[string]string{"prometheus.io/path": "/internal/metrics"}, true, "__metrics_path__", "/internal/metrics"},
		{"URL parameter", map[string]string{"prometheus.io/param_format": "prometheus"}, true, "__param_format", "prometheus"},
	} {
		got, kept := relabel(t, discoveredTarget(annotated(tc.annotations), port), job.RelabelConfigs)
		if kept != tc.keep {
			t.Errorf("%s: kept = %v, want %v", tc.name, kept, tc.keep)
		} else if kept && got[tc.label] != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.name, tc.label, got[tc.label], tc.want)
		}
	}
}

func TestPrometheusDeployment(t *testing.T) {
	t.Parallel()
	ms := loadManifests(t)
	d := find[*appsv1.Deployment](t, ms, "prometheus")
	spec := d.Spec.Template.Spec

	// Service discovery: the pod's ServiceAccount may list and watch what
	// role: endpoints reads, in every namespace.
	sa := find[*corev1.ServiceAccount](t, ms, spec.ServiceAccountName)
	if sa.Namespace != d.Namespace {
		t.Errorf("ServiceAccount %s in %q, Prometheus in %q", sa.Name, sa.Namespace, d.Namespace)
	}
	crb := find[*rbacv1.ClusterRoleBinding](t, ms, "featurestore-prometheus")
	if !slices.ContainsFunc(crb.Subjects, func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.ServiceAccountKind && s.Name == sa.Name && s.Namespace == sa.Namespace
	}) {
		t.Errorf("ClusterRoleBinding subjects %v do not include ServiceAccount %s/%s", crb.Subjects, sa.Namespace, sa.Name)
	}
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.APIGroup != rbacv1.GroupName {
		t.Errorf("roleRef %+v is not a ClusterRole", crb.RoleRef)
	}
	role := find[*rbacv1.ClusterRole](t, ms, crb.RoleRef.Name)
	for _, res := range []string{"services", "endpoints", "pods"} {
		for _, verb := range []string{"get", "list", "watch"} {
			if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
				return slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, verb)
			}) {
				t.Errorf("ClusterRole %s does not allow %s on %s", role.Name, verb, res)
			}
		}
	}
	for _, r := range role.Rules {
		for _, verb := range r.Verbs {
			if !slices.Contains([]string{"get", "list", "watch"}, verb) {
				t.Errorf("ClusterRole %s allows %q: Prometheus only reads", role.Name, verb)
			}
		}
	}

	// The configuration file it loads is the ConfigMap's prometheus.yml.
	if len(spec.Containers) != 1 {
		t.Fatalf("prometheus pod has %d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	var configFile string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			configFile = v
		}
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == "prometheus-config" && m.MountPath == path.Dir(configFile) {
				mounted = true
			}
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--web.enable-lifecycle") || strings.HasPrefix(a, "--web.enable-admin-api") {
			t.Errorf("prometheus args have %s: anything reaching its port could shut it down or delete data", a)
		}
	}
	if !mounted || path.Base(configFile) != "prometheus.yml" {
		t.Errorf("--config.file=%s is not the prometheus.yml of the mounted ConfigMap prometheus-config", configFile)
	}
	if cm := find[*corev1.ConfigMap](t, ms, "prometheus-config"); cm.Namespace != d.Namespace {
		t.Errorf("ConfigMap prometheus-config in %q, Prometheus in %q", cm.Namespace, d.Namespace)
	}

	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil {
		t.Error("prometheus pod: want runAsNonRoot and a seccomp profile")
	}
	if c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Error("prometheus container: want readiness and liveness probes")
	}
	// The same Prometheus as the compose stack.
	if want := mustLoadCompose(t).Services["prometheus"].Image; c.Image != want {
		t.Errorf("image %s, compose runs %s", c.Image, want)
	}
	svc := find[*corev1.Service](t, ms, "prometheus")
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("service prometheus does not select the prometheus pod")
	}
}

// checkTokensMounted wants authentication on: file, the token file the
// container is given, is a key of the Secret featurestore-tokens mounted as a
// whole directory (a subPath mount is a copy the kubelet never updates, so a
// rotated token would not reach the pods), not optional.
func checkTokensMounted(t *testing.T, ms []manifest, d *appsv1.Deployment, c corev1.Container, file string) {
	t.Helper()
	if file == "" {
		t.Error("FEATURESTORE_AUTH_TOKENS_FILE is not set: the API would be open")
		return
	}
	secret := find[*corev1.Secret](t, ms, "featurestore-tokens")
	if secret.Namespace != d.Namespace {
		t.Errorf("Secret featurestore-tokens in %q, the pods in %q", secret.Namespace, d.Namespace)
	}
	if _, ok := secret.StringData[path.Base(file)]; !ok {
		t.Errorf("FEATURESTORE_AUTH_TOKENS_FILE %s: Secret featurestore-tokens has no key %s", file, path.Base(file))
	}
	for _, m := range c.VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil || v.Secret.SecretName != secret.Name {
				continue
			}
			if m.SubPath != "" || m.SubPathExpr != "" {
				t.Errorf("volume %s is mounted with a subPath: Secret updates would never reach the pods", m.Name)
			}
			if m.MountPath != path.Dir(file) || !m.ReadOnly {
				t.Errorf("volume %s is mounted at %s (read-only %v), want %s read-only", m.Name, m.MountPath, m.ReadOnly, path.Dir(file))
			}
			if v.Secret.Optional != nil && *v.Secret.Optional {
				t.Errorf("volume %s: the Secret is optional", m.Name)
			}
			return
		}
	}
	t.Errorf("Secret %s is not mounted in container %s", secret.Name, c.Name)
}

// namespaceLabels are the labels of namespace ns as the API server keeps
// them: the manifest's and kubernetes.io/metadata.name.
func namespaceLabels(t *testing.T, ms []manifest, ns string) labels.Set {
	t.Helper()
	set := labels.Set{"kubernetes.io/metadata.name": ns}
	maps.Copy(set, find[*corev1.Namespace](t, ms, ns).Labels)
	return set
}

// admits reports whether peer lets in the pods of d.
func admits(t *testing.T, ms []manifest, policyNS string, peer networkingv1.NetworkPolicyPeer, d *appsv1.Deployment) bool {
	t.Helper()
	if peer.NamespaceSelector == nil && d.Namespace != policyNS {
		return false
	}
	if peer.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
		if err != nil || !sel.Matches(namespaceLabels(t, ms, d.Namespace)) {
			return false
		}
	}
	if peer.PodSelector == nil {
		return true
	}
	sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
	return err == nil && sel.Matches(labels.Set(d.Spec.Template.Labels))
}

type protoPort struct {
	proto corev1.Protocol
	port  string
}

func policyPorts(ports []networkingv1.NetworkPolicyPort) []protoPort {
	var out []protoPort
	for _, p := range ports {
		pp := protoPort{corev1.ProtocolTCP, "all"}
		if p.Protocol != nil {
			pp.proto = *p.Protocol
		}
		if p.Port != nil {
			pp.port = p.Port.String()
		}
		if p.EndPort != nil {
			pp.port += "-" + strconv.Itoa(int(*p.EndPort))
		}
		out = append(out, pp)
	}
	return out
}

// TestNetworkPolicy checks that the feature store's pods take connections on
// the API port only, from the in-cluster Prometheus and from labelled
// clients, never from everyone; and connect only to Postgres, Redis and DNS,
// on the ports of the URLs the Secret example gives.
func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	ms := loadManifests(t)
	d := find[*appsv1.Deployment](t, ms, "featurestore")
	np := find[*networkingv1.NetworkPolicy](t, ms, "featurestore")
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || np.Namespace != d.Namespace || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("NetworkPolicy %s/%s selects %v: want the featurestore pods of namespace %s", np.Namespace, np.Name, np.Spec.PodSelector, d.Namespace)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes %v: want Ingress and Egress", np.Spec.PolicyTypes)
	}

	api := protoPort{corev1.ProtocolTCP, strconv.Itoa(servicePort(t))}
	prometheus := false
	for i, r := range np.Spec.Ingress {
		if got := policyPorts(r.Ports); len(got) == 0 || slices.ContainsFunc(got, func(p protoPort) bool { return p != api && p != (protoPort{corev1.ProtocolTCP, "http"}) }) {
			t.Errorf("ingress rule %d: ports %v, want only %v", i, got, api)
		}
		if len(r.From) == 0 {
			t.Errorf("ingress rule %d has no from: it admits everyone", i)
		}
		for _, peer := range r.From {
			if peer.IPBlock == nil && (peer.PodSelector == nil || len(peer.PodSelector.MatchLabels)+len(peer.PodSelector.MatchExpressions) == 0) {
				t.Errorf("ingress rule %d: peer %+v admits every pod of a namespace: want a pod selector", i, peer)
			}
		}
		prometheus = prometheus || slices.ContainsFunc(r.From, func(p networkingv1.NetworkPolicyPeer) bool {
			return admits(t, ms, np.Namespace, p, find[*appsv1.Deployment](t, ms, "prometheus"))
		})
	}
	if !prometheus {
		t.Error("no ingress rule admits the in-cluster Prometheus: it could not scrape /metrics")
	}

	// Egress: exactly Postgres, Redis and DNS, on every rule a port.
	var got []protoPort
	for i, r := range np.Spec.Egress {
		if len(r.Ports) == 0 {
			t.Errorf("egress rule %d has no ports: it allows every port", i)
		}
		got = append(got, policyPorts(r.Ports)...)
	}
	want := []protoPort{{corev1.ProtocolTCP, "53"}, {corev1.ProtocolUDP, "53"}}
	secret := find[*corev1.Secret](t, ms, "featurestore-secrets")
	for _, name := range []string{"FEATURESTORE_POSTGRES_URL", "FEATURESTORE_REDIS_URL"} {
		u, err := url.Parse(secret.StringData[name])
		if err != nil || u.Port() == "" {
			t.Fatalf("Secret featurestore-secrets: %s has no port (%v)", name, err)
		}
		want = append(want, protoPort{corev1.ProtocolTCP, u.Port()})
	}
	key := func(p protoPort) string { return string(p.proto) + "/" + p.port }
	gotKeys, wantKeys := mapSlice(got, key), mapSlice(want, key)
	slices.Sort(gotKeys)
	slices.Sort(wantKeys)
	if !slices.Equal(slices.Compact(gotKeys), wantKeys) {
		t.Errorf("egress ports %v, want %v (Postgres, Redis, DNS)", gotKeys, wantKeys)
	}
}

func mapSlice[T, U any](s []T, f func(T) U) []U {
	out := make([]U, 0, len(s))
	for _, v := range s {
		out = append(out, f(v))
	}
	return out
}
