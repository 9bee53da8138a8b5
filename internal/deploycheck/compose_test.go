package deploycheck

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/featurestore/featurestore/internal/testenv"
)

// composeServices is the stack the operators start, with each service's
// profiles: redis and postgres always run.
var composeServices = map[string][]string{
	"featurestore":      {"api"},
	"redis":             nil,
	"postgres":          nil,
	"prometheus":        {"monitoring"},
	"alertmanager":      {"monitoring"},
	"grafana":           {"monitoring"},
	"redis-exporter":    {"monitoring"},
	"postgres-exporter": {"monitoring"},
	"alert-receiver":    {"monitoring"},
}

// composeSecrets are the .env variables holding credentials.
var composeSecrets = []string{"POSTGRES_PASSWORD", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}

func envExample(t *testing.T) map[string]string {
	t.Helper()
	env, err := dotenv.Read(filepath.Join(testenv.RepoRoot(t), ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// composeEnv is .env.example with every credential set, as an operator's .env
// is (.env.example leaves them empty: TestEnvExample).
func composeEnv(t *testing.T) map[string]string {
	t.Helper()
	env := envExample(t)
	for _, name := range composeSecrets {
		env[name] = "s3cr3t-" + strings.ToLower(name)
	}
	return env
}

// loadCompose loads docker-compose.yml the way `docker compose` does, with
// env as the only environment (never the process's or a developer's .env).
func loadCompose(t *testing.T, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	root := testenv.RepoRoot(t)
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithEnv(list), cli.WithProfiles(profiles), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(t.Context())
}

func mustLoadCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(t, composeEnv(t), "api", "monitoring")
	if err != nil {
		t.Fatalf("load docker-compose.yml with .env.example, its passwords set, and profiles api, monitoring: %v", err)
	}
	return p
}

func env(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

func TestComposeServicesAndProfiles(t *testing.T) {
	t.Parallel()
	p := mustLoadCompose(t)
	if got, want := slices.Sorted(maps.Keys(p.Services)), slices.Sorted(maps.Keys(composeServices)); !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	for name, want := range composeServices {
		if got := p.Services[name].Profiles; !slices.Equal(got, want) {
			t.Errorf("%s: profiles = %v, want %v", name, got, want)
		}
	}
	// Each way of starting the stack loads (a depends_on on a service of an
	// inactive profile would fail here) and starts what the README says.
	for _, tc := range []struct {
		profiles []string
		want     []string
	}{
		{nil, []string{"postgres", "redis"}},
		{[]string{"api"}, []string{"featurestore", "postgres", "redis"}},
		{[]string{"monitoring"}, []string{"alert-receiver", "alertmanager", "grafana", "postgres", "postgres-exporter", "prometheus", "redis", "redis-exporter"}},
	} {
		p, err := loadCompose(t, composeEnv(t), tc.profiles...)
		if err != nil {
			t.Errorf("profiles %v: %v", tc.profiles, err)
			continue
		}
		if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, tc.want) {
			t.Errorf("profiles %v: services = %v, want %v", tc.profiles, got, tc.want)
		}
	}
}

func TestComposeImagesArePinned(t *testing.T) {
	t.Parallel()
	p := mustLoadCompose(t)
	tag := regexp.MustCompile(`:v?\d+(\.\d+)+(-[a-z0-9.]+)?$`)
	for name, s := range p.Services {
		if name == "featurestore" {
			continue
		}
		if !tag.MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to a version tag", name, s.Image)
		}
	}
}

func TestComposeFeatureStore(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	p := mustLoadCompose(t)
	fs := p.Services["featurestore"]

	if fs.Build == nil || fs.Build.Context != root || fs.Build.Dockerfile != "Dockerfile" {
		t.Errorf("build = %+v, want the Dockerfile at the repository root", fs.Build)
	} else if _, err := os.Stat(filepath.Join(root, fs.Build.Dockerfile)); err != nil {
		t.Error(err)
	}
	if fs.Build != nil {
		for _, arg := range []string{"VERSION", "REVISION"} {
			if fs.Build.Args[arg] == nil || *fs.Build.Args[arg] == "" {
				t.Errorf("build arg %s is not set", arg)
			}
		}
	}

	port := servicePort(t)
	if len(fs.Ports) != 1 || fs.Ports[0].Target != uint32(port) || fs.Ports[0].Published != "8002" || fs.Ports[0].HostIP != "127.0.0.1" {
		t.Errorf("ports = %+v, want 127.0.0.1:8002 -> %d (the original stack's published port, loopback by default)", fs.Ports, port)
	}
	for _, dep := range []string{"postgres", "redis"} {
		if got := fs.DependsOn[dep].Condition; got != types.ServiceConditionHealthy {
			t.Errorf("depends_on %s: condition %q, want %q", dep, got, types.ServiceConditionHealthy)
		}
	}
	// The image is distroless: a healthcheck would need a shell, curl or
	// wget that are not there and would mark the service unhealthy forever.
	if hc := fs.HealthCheck; hc != nil && !hc.Disable {
		t.Errorf("healthcheck %v: the distroless image has no tool to run it", hc.Test)
	}
	// SIGKILL must not cut the drain short (default --shutdown-timeout).
	timeout := durationDefault(t, "FEATURESTORE_SHUTDOWN_TIMEOUT")
	if fs.StopGracePeriod == nil || time.Duration(*fs.StopGracePeriod) <= timeout {
		t.Errorf("stop_grace_period must be more than the shutdown timeout %v", timeout)
	}
	if !fs.ReadOnly || !slices.Contains(fs.CapDrop, "ALL") {
		t.Errorf("read_only = %v, cap_drop = %v: want a read-only root and no capabilities", fs.ReadOnly, fs.CapDrop)
	}

	checkServiceEnv(t, "docker-compose.yml featurestore", slices.Collect(maps.Keys(fs.Environment)))
	for name, wantHost := range map[string]string{"FEATURESTORE_POSTGRES_URL": "postgres:5432", "FEATURESTORE_REDIS_URL": "redis:6379"} {
		u, err := url.Parse(env(fs, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if u.Host != wantHost {
			t.Errorf("%s points at %q, want the compose service %q", name, u.Host, wantHost)
		}
		if _, ok := u.User.Password(); !ok {
			t.Errorf("%s has no password", name)
		}
	}
}

func TestComposeDependencies(t *testing.T) {
	t.Parallel()
	p := mustLoadCompose(t)
	for name, tc := range map[string]struct{ check, data string }{
		"postgres": {"pg_isready", "/var/lib/postgresql/data"},
		"redis":    {"redis-cli ping", "/data"},
	} {
		s := p.Services[name]
		if hc := s.HealthCheck; hc == nil || hc.Disable || !strings.Contains(strings.Join(hc.Test, " "), tc.check) || hc.Interval == nil {
			t.Errorf("%s: healthcheck %+v, want %q with an interval", name, hc, tc.check)
		}
		var named bool
		for _, v := range s.Volumes {
			named = named || (v.Type == types.VolumeTypeVolume && v.Target == tc.data)
		}
		if !named {
			t.Errorf("%s: no named volume at %s: data would not survive `docker compose down`", name, tc.data)
		}
	}
	// Every named volume a service mounts is declared, and every declared one is used.
	used := map[string]bool{}
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume {
				used[v.Source] = true
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("volume %q is mounted but not declared", v.Source)
				}
			}
		}
	}
	for name := range p.Volumes {
		if !used[name] {
			t.Errorf("volume %q is declared but no service mounts it", name)
		}
	}
}

// TestComposeMountsExist checks that every bind mount's source is in the
// repository: Docker would create a missing one as an empty directory and the
// service would start with no configuration.
func TestComposeMountsExist(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	p := mustLoadCompose(t)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if rel, err := filepath.Rel(root, v.Source); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: bind mount %s is outside the repository", name, v.Source)
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount source: %v", name, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: bind mount %s is writable; configuration mounts are read-only", name, v.Source)
			}
		}
	}
	// What the mounted directories must contain for the services to start.
	for _, rel := range []string{"prometheus/prometheus.yml", "prometheus/alertmanager.yml", "grafana/provisioning/datasources", "grafana/provisioning/dashboards"} {
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			t.Errorf("mounted configuration missing: %v", err)
		}
	}
	checkBind(t, p.Services["prometheus"], filepath.Join(root, "prometheus"), "/etc/prometheus")
	checkBind(t, p.Services["alertmanager"], filepath.Join(root, "prometheus", "alertmanager.yml"), "/etc/alertmanager/alertmanager.yml")
	checkBind(t, p.Services["grafana"], filepath.Join(root, "grafana", "provisioning"), "/etc/grafana/provisioning")
	checkBind(t, p.Services["alert-receiver"], filepath.Join(root, "prometheus", "alert-receiver", "hooks.yaml"), "/etc/webhook/hooks.yaml")
	if !slices.Contains(p.Services["prometheus"].Command, "--config.file=/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus command %v does not load /etc/prometheus/prometheus.yml", p.Services["prometheus"].Command)
	}
	if !slices.Contains(p.Services["alertmanager"].Command, "--config.file=/etc/alertmanager/alertmanager.yml") {
		t.Errorf("alertmanager command %v does not load its mounted configuration", p.Services["alertmanager"].Command)
	}
}

func checkBind(t *testing.T, s types.ServiceConfig, source, target string) {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Source == source && v.Target == target {
			return
		}
	}
	t.Errorf("%s: no bind mount %s -> %s", s.Name, source, target)
}

// TestComposeGrafana checks the Grafana service against its provisioning: the
// dashboards are mounted where the file provider reads them, and the
// datasource URL names the compose service of Prometheus.
func TestComposeGrafana(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	p := mustLoadCompose(t)
	g := p.Services["grafana"]

	var providers struct {
		Providers []struct {
			Name    string `json:"name"`
			Type    string `json:"type"`
			Options struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(root, "grafana", "provisioning", "dashboards", "dashboards.yml")), &providers); err != nil {
		t.Fatal(err)
	}
	if len(providers.Providers) == 0 {
		t.Fatal("grafana/provisioning/dashboards/dashboards.yml has no provider")
	}
	for _, pr := range providers.Providers {
		if pr.Type != "file" {
			continue
		}
		checkBind(t, g, filepath.Join(root, "grafana", "dashboards"), pr.Options.Path)
	}
	dashboards, _ := filepath.Glob(filepath.Join(root, "grafana", "dashboards", "*.json"))
	if len(dashboards) == 0 {
		t.Error("grafana/dashboards has no dashboard")
	}
	// The home dashboard is a file of the mounted directory.
	home := env(g, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
	if rel, ok := strings.CutPrefix(home, "/var/lib/grafana/dashboards/"); !ok {
		t.Errorf("home dashboard %q is not in the mounted dashboards", home)
	} else if _, err := os.Stat(filepath.Join(root, "grafana", "dashboards", rel)); err != nil {
		t.Errorf("home dashboard: %v", err)
	}

	var datasources struct {
		Datasources []struct {
			Type string `json:"type"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	files, _ := filepath.Glob(filepath.Join(root, "grafana", "provisioning", "datasources", "*.yml"))
	if len(files) == 0 {
		t.Fatal("no datasource provisioning file")
	}
	for _, f := range files {
		if err := yaml.Unmarshal(readFile(t, f), &datasources); err != nil {
			t.Fatal(err)
		}
		for _, ds := range datasources.Datasources {
			u, err := url.Parse(ds.URL)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if _, ok := p.Services[u.Hostname()]; !ok {
				t.Errorf("%s: datasource URL %s does not name a compose service", f, ds.URL)
			}
		}
	}
}

// TestComposePrometheusTargets checks that every scrape and alerting target
// of prometheus/prometheus.yml is a compose service (or Prometheus itself).
func TestComposePrometheusTargets(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	p := mustLoadCompose(t)
	var cfg struct {
		Alerting struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `json:"targets"`
				} `json:"static_configs"`
			} `json:"alertmanagers"`
		} `json:"alerting"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(root, "prometheus", "prometheus.yml")), &cfg); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
	}
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, s := range am.StaticConfigs {
			targets = append(targets, s.Targets...)
		}
	}
	if len(targets) == 0 {
		t.Fatal("prometheus/prometheus.yml has no static target")
	}
	for _, target := range targets {
		host, port, ok := strings.Cut(target, ":")
		if _, err := strconv.Atoi(port); !ok || err != nil {
			t.Errorf("target %q has no port", target)
		}
		if _, ok := p.Services[host]; !ok && host != "localhost" {
			t.Errorf("target %q is not a compose service", target)
		}
	}
	if !slices.Contains(targets, fmt.Sprintf("featurestore:%d", servicePort(t))) {
		t.Errorf("targets %v do not include the feature store at featurestore:%d", targets, servicePort(t))
	}
}

// TestComposeCredentialsComeFromEnv checks that no credential is written in
// docker-compose.yml: each one is interpolated from .env, reaches every
// service that needs it, and is required (loading without it fails).
func TestComposeCredentialsComeFromEnv(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)

	// The raw file: a password-like key or a URL's userinfo password is only
	// ever an interpolation.
	secretKey := regexp.MustCompile(`(?i)^\s*-?\s*"?([A-Z_]*(PASSWORD|PASSWD|SECRET|TOKEN|_AUTH|API_KEY))"?\s*[:=]\s*(.*)$`)
	userinfo := regexp.MustCompile(`://[^/\s:@]*:([^@\s]*)@`)
	interpolation := regexp.MustCompile(`^"?\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}"?$`)
	for i, line := range strings.Split(string(readFile(t, filepath.Join(root, "docker-compose.yml"))), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if m := secretKey.FindStringSubmatch(line); m != nil && !interpolation.MatchString(strings.TrimSpace(m[3])) {
			t.Errorf("docker-compose.yml:%d: %s is not an interpolation: %s", i+1, m[1], strings.TrimSpace(line))
		}
		for _, m := range userinfo.FindAllStringSubmatch(line, -1) {
			if !interpolation.MatchString(m[1]) {
				t.Errorf("docker-compose.yml:%d: URL password %q is not an interpolation", i+1, m[1])
			}
		}
	}

	// Distinct values in, and each must come out where it belongs.
	vars := composeEnv(t)
	p, err := loadCompose(t, vars, "api", "monitoring")
	if err != nil {
		t.Fatal(err)
	}
	pg, rd, gf := vars["POSTGRES_PASSWORD"], vars["REDIS_PASSWORD"], vars["GRAFANA_ADMIN_PASSWORD"]
	for _, c := range []struct{ service, field, want string }{
		{"postgres", env(p.Services["postgres"], "POSTGRES_PASSWORD"), pg},
		{"featurestore", env(p.Services["featurestore"], "FEATURESTORE_POSTGRES_URL"), ":" + pg + "@postgres:5432/"},
		{"postgres-exporter", env(p.Services["postgres-exporter"], "DATA_SOURCE_NAME"), ":" + pg + "@postgres:5432/"},
		{"redis", strings.Join(p.Services["redis"].Command, " "), "--requirepass " + rd},
		{"redis", env(p.Services["redis"], "REDISCLI_AUTH"), rd},
		{"featurestore", env(p.Services["featurestore"], "FEATURESTORE_REDIS_URL"), ":" + rd + "@redis:6379/"},
		{"redis-exporter", env(p.Services["redis-exporter"], "REDIS_PASSWORD"), rd},
		{"grafana", env(p.Services["grafana"], "GF_SECURITY_ADMIN_PASSWORD"), gf},
	} {
		if !strings.Contains(c.field, c.want) {
			t.Errorf("%s: %q does not contain %q", c.service, c.field, c.want)
		}
	}

	// A missing credential stops `docker compose up`, naming the variable.
	for _, name := range composeSecrets {
		vars := composeEnv(t)
		delete(vars, name)
		if _, err := loadCompose(t, vars, "api", "monitoring"); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("loading without %s: error %v, want one naming it", name, err)
		}
		vars[name] = ""
		if _, err := loadCompose(t, vars, "api", "monitoring"); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("loading with an empty %s: error %v, want one naming it", name, err)
		}
	}
}

// TestEnvExample checks .env.example against the variables the compose file
// interpolates: all defined, none unused, credentials empty (so a copied
// .env.example does not start with a known password: compose refuses it),
// and the real .env kept out of git.
func TestEnvExample(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithInterpolation(false))
	if err != nil {
		t.Fatal(err)
	}
	model, err := opts.LoadModel(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	used := template.ExtractVariables(model, template.DefaultPattern)
	example := envExample(t)
	if diff := cmp.Diff(slices.Sorted(maps.Keys(used)), slices.Sorted(maps.Keys(example))); diff != "" {
		t.Errorf("variables of docker-compose.yml (-) vs .env.example (+):\n%s", diff)
	}
	for _, name := range composeSecrets {
		if !used[name].Required {
			t.Errorf("%s has a default in docker-compose.yml; a credential must be required (${%s:?...})", name, name)
		}
		if example[name] != "" {
			t.Errorf(".env.example: %s = %q, want it empty: a value there is a password anyone can read", name, example[name])
		}
	}
	if _, err := loadCompose(t, example, "api", "monitoring"); err == nil {
		t.Error("docker-compose.yml loads with .env.example as it is: want it refused until every password is set")
	}
	if !slices.Contains(strings.Fields(string(readFile(t, filepath.Join(root, ".gitignore")))), "/.env") {
		t.Error(".gitignore does not ignore /.env")
	}
}

// TestComposeAlertDelivery checks that alerts have somewhere to go inside
// the stack: every webhook URL of prometheus/alertmanager.yml names the
// alert-receiver service and its port, the receiver is built from
// deploy/alert-receiver and loads the mounted hooks, and it keeps what it
// receives in a named volume.
func TestComposeAlertDelivery(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	p := mustLoadCompose(t)
	r := p.Services["alert-receiver"]
	if r.Build == nil || r.Build.Context != filepath.Join(root, "deploy", "alert-receiver") {
		t.Errorf("alert-receiver build = %+v, want deploy/alert-receiver", r.Build)
	} else if _, err := os.Stat(filepath.Join(r.Build.Context, "Dockerfile")); err != nil {
		t.Error(err)
	}
	if !slices.Contains(r.Command, "-hooks=/etc/webhook/hooks.yaml") || !slices.Contains(r.Command, "-port=9000") {
		t.Errorf("alert-receiver command %v, want -hooks=/etc/webhook/hooks.yaml and -port=9000", r.Command)
	}
	logVolume := false
	for _, v := range r.Volumes {
		logVolume = logVolume || (v.Type == types.VolumeTypeVolume && strings.HasPrefix(env(r, "ALERT_LOG"), v.Target+"/"))
	}
	if !logVolume {
		t.Errorf("alert-receiver: ALERT_LOG %q is not on a named volume", env(r, "ALERT_LOG"))
	}
	var am struct {
		Receivers []struct {
			Name           string `json:"name"`
			WebhookConfigs []struct {
				URL string `json:"url"`
			} `json:"webhook_configs"`
		} `json:"receivers"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(root, "prometheus", "alertmanager.yml")), &am); err != nil {
		t.Fatal(err)
	}
	urls := 0
	for _, rcv := range am.Receivers {
		for _, w := range rcv.WebhookConfigs {
			urls++
			u, err := url.Parse(w.URL)
			if err != nil {
				t.Errorf("receiver %s: %v", rcv.Name, err)
				continue
			}
			if _, ok := p.Services[u.Hostname()]; !ok || u.Port() != "9000" {
				t.Errorf("receiver %s posts to %s: not a service of the stack on the receiver's port 9000", rcv.Name, w.URL)
			}
		}
	}
	if urls == 0 {
		t.Error("prometheus/alertmanager.yml has no webhook: alerts would go nowhere")
	}
}

// TestComposeRunsTheTestedVersions checks that compose runs the Prometheus
// and Alertmanager the rules and the end-to-end test are tested with
// (Debian's, which scripts/test.sh installs): compose is pinned to them
// (docs/alerting.md, "Versions").
func TestComposeRunsTheTestedVersions(t *testing.T) {
	t.Parallel()
	p := mustLoadCompose(t)
	for service, tool := range map[string]string{"prometheus": "promtool", "alertmanager": "amtool"} {
		path := testenv.RequireTool(t, tool)
		out, err := exec.CommandContext(t.Context(), path, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v\n%s", tool, err, out)
		}
		m := regexp.MustCompile(`version (\d+\.\d+\.\d+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("%s --version: no version in %q", tool, out)
		}
		_, tag, _ := strings.Cut(p.Services[service].Image, ":")
		if tag != "v"+string(m[1]) {
			t.Errorf("%s runs %s, the tests run %s %s: pin compose to what is tested", service, p.Services[service].Image, tool, m[1])
		}
	}
	for _, want := range []string{"featurestore", "alert-receiver"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("no service %s", want)
		}
	}
	if got := env(p.Services["featurestore"], "FEATURESTORE_HEALTH_INTERVAL"); got != "5s" {
		t.Errorf("featurestore: FEATURESTORE_HEALTH_INTERVAL %q, want 5s (the dependency pages' arithmetic, docs/alerting.md)", got)
	}
}

// composeExporters are the services only Prometheus needs to reach.
var composeExporters = []string{"redis-exporter", "postgres-exporter"}

// TestComposeSafeByDefault checks what a plain `docker compose up` exposes:
// every published port on loopback (the API's by a documented override),
// no exporter published or on a network with a route out, Prometheus
// without its lifecycle API, Grafana without anonymous access, and the API
// with authentication on from a token file that git ignores.
func TestComposeSafeByDefault(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	p := mustLoadCompose(t)

	for name, s := range p.Services {
		for _, port := range s.Ports {
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %s -> %d is published on %q, want 127.0.0.1", name, port.Published, port.Target, port.HostIP)
			}
		}
	}
	vars := composeEnv(t)
	vars["FEATURESTORE_HOST_ADDRESS"] = "0.0.0.0"
	if open, err := loadCompose(t, vars, "api"); err != nil {
		t.Error(err)
	} else if ports := open.Services["featurestore"].Ports; len(ports) != 1 || ports[0].HostIP != "0.0.0.0" {
		t.Errorf("FEATURESTORE_HOST_ADDRESS=0.0.0.0: featurestore ports %+v, want the API on 0.0.0.0", ports)
	}

	prom := p.Services["prometheus"]
	for _, name := range composeExporters {
		s := p.Services[name]
		if len(s.Ports) > 0 || len(s.Expose) > 0 {
			t.Errorf("%s: ports %+v, expose %v: want none, Prometheus scrapes it inside the stack", name, s.Ports, s.Expose)
		}
		if len(s.Networks) == 0 {
			t.Errorf("%s: on the default network, want only internal ones", name)
		}
		shared := false
		for n := range s.Networks {
			if !p.Networks[n].Internal {
				t.Errorf("%s: on network %q, which is not internal", name, n)
			}
			_, withProm := prom.Networks[n]
			shared = shared || withProm
		}
		if !shared {
			t.Errorf("%s: shares no network with prometheus, which scrapes it", name)
		}
	}
	for _, a := range prom.Command {
		if strings.HasPrefix(a, "--web.enable-lifecycle") || strings.HasPrefix(a, "--web.enable-admin-api") {
			t.Errorf("prometheus command has %s: anyone reaching its port could shut it down or delete data", a)
		}
	}
	if g := p.Services["grafana"]; env(g, "GF_AUTH_ANONYMOUS_ENABLED") != "false" || env(g, "GF_USERS_ALLOW_SIGN_UP") != "false" {
		t.Error("grafana: want anonymous access and sign-up off")
	}

	// The API: its token file is a compose secret, mounted where
	// FEATURESTORE_AUTH_TOKENS_FILE points, from secrets/, which git ignores.
	fs := p.Services["featurestore"]
	file := env(fs, "FEATURESTORE_AUTH_TOKENS_FILE")
	var secret types.SecretConfig
	for _, s := range fs.Secrets {
		if s.Target == file {
			secret = p.Secrets[s.Source]
		}
	}
	if file == "" || secret.File == "" {
		t.Fatalf("featurestore: FEATURESTORE_AUTH_TOKENS_FILE %q is not the target of a file secret (%+v)", file, fs.Secrets)
	}
	if filepath.Dir(secret.File) != filepath.Join(root, "secrets") {
		t.Errorf("secret file %s, want it in secrets/", secret.File)
	}
	ignore := strings.Fields(string(readFile(t, filepath.Join(root, "secrets", ".gitignore"))))
	if !slices.Contains(ignore, "*") || slices.ContainsFunc(ignore, func(l string) bool { return l != "!.gitignore" && strings.HasPrefix(l, "!") }) {
		t.Errorf("secrets/.gitignore %q: want every file but itself ignored", ignore)
	}
}
