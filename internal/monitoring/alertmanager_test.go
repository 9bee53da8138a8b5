package monitoring

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/featurestore/featurestore/internal/testenv"
)

// alertmanagerConfig is the part of prometheus/alertmanager.yml the tests
// read; amtool checks the whole file.
type alertmanagerConfig struct {
	Route struct {
		Receiver string   `yaml:"receiver"`
		GroupBy  []string `yaml:"group_by"`
		Routes   []struct {
			Receiver      string   `yaml:"receiver"`
			Matchers      []string `yaml:"matchers"`
			GroupWait     string   `yaml:"group_wait"`
			GroupInterval string   `yaml:"group_interval"`
		} `yaml:"routes"`
	} `yaml:"route"`
	InhibitRules []struct {
		SourceMatchers []string `yaml:"source_matchers"`
		TargetMatchers []string `yaml:"target_matchers"`
		Equal          []string `yaml:"equal"`
	} `yaml:"inhibit_rules"`
	Receivers []struct {
		Name           string `yaml:"name"`
		WebhookConfigs []struct {
			URL string `yaml:"url"`
		} `yaml:"webhook_configs"`
	} `yaml:"receivers"`
}

func alertmanagerFile(t *testing.T) string {
	t.Helper()
	return filepath.Join(testenv.RepoRoot(t), "prometheus", "alertmanager.yml")
}

// TestAmtoolCheckConfig checks prometheus/alertmanager.yml with amtool.
func TestAmtoolCheckConfig(t *testing.T) {
	t.Parallel()
	amtool := testenv.RequireTool(t, "amtool")
	out := runTool(t, "", amtool, "check-config", alertmanagerFile(t))
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("amtool check-config:\n%s", out)
	}
}

// TestAlertmanagerRoutes asks amtool where alerts go: by severity, critical
// pages, warning opens a ticket, info notifies nobody; an alert without a
// severity still reaches a person; the Watchdog has its own route. Every
// alert of the rule files, with its own labels, is routed by its severity.
func TestAlertmanagerRoutes(t *testing.T) {
	t.Parallel()
	amtool := testenv.RequireTool(t, "amtool")
	receiver := map[string]string{"critical": "pager", "warning": "ticket", "info": "null", "none": "watchdog"}
	cases := []struct {
		labels []string
		want   string
	}{
		{[]string{"severity=critical"}, "pager"},
		{[]string{"severity=warning"}, "ticket"},
		{[]string{"severity=info"}, "null"},
		{[]string{"alertname=Unlabelled", "job=featurestore"}, "ticket"},
		{[]string{"alertname=Watchdog"}, "watchdog"},
		{[]string{"alertname=Watchdog", "severity=critical"}, "watchdog"},
	}
	for _, r := range loadRules(t) {
		if r.Alert != "" {
			labels := []string{"alertname=" + r.Alert, "job=featurestore"}
			for name, value := range r.Labels {
				labels = append(labels, name+"="+value)
			}
			slices.Sort(labels)
			cases = append(cases, struct {
				labels []string
				want   string
			}{labels, receiver[r.Labels["severity"]]})
		}
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.labels, ","), func(t *testing.T) {
			t.Parallel()
			args := append([]string{"config", "routes", "test", "--config.file=" + alertmanagerFile(t),
				"--verify.receivers=" + tc.want}, tc.labels...)
			if got := strings.TrimSpace(lastLine(runTool(t, "", amtool, args...))); got != tc.want {
				t.Errorf("labels %v route to %q, want %q", tc.labels, got, tc.want)
			}
		})
	}
}

// lastLine is the last non-empty line of amtool's output (it warns first that
// --config.file overrides --alertmanager.url).
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// TestAlertmanagerConfig checks what amtool cannot: alerts are grouped by
// alertname, job and namespace; a critical alert inhibits the warnings and
// infos of the same alert; the causes (the service, Postgres, Redis down)
// inhibit their symptoms (the burn rates, the error ratio, the error-log
// rate); every inhibition names the labels that must be equal and only
// alerts that exist, and never targets the Watchdog; every receiver but
// null posts to the stack's alert receiver, one hook per receiver, and the
// hooks exist in prometheus/alert-receiver/hooks.yaml; pages resolve
// quickly (group_interval at most 30s).
func TestAlertmanagerConfig(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(alertmanagerFile(t))
	if err != nil {
		t.Fatal(err)
	}
	var cfg alertmanagerConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}

	if !slices.Equal(cfg.Route.GroupBy, []string{"alertname", "job", "namespace"}) {
		t.Errorf("group_by %q, want [alertname job namespace]", cfg.Route.GroupBy)
	}
	for _, r := range cfg.Route.Routes {
		if slices.Contains(r.Matchers, `severity="critical"`) && (r.GroupWait != "10s" || r.GroupInterval != "30s") {
			t.Errorf("the critical route waits %s and %s, want group_wait 10s and group_interval 30s (docs/alerting.md)", r.GroupWait, r.GroupInterval)
		}
	}

	alerts := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert != "" {
			alerts[r.Alert] = true
		}
	}
	names := regexp.MustCompile(`^alertname=~?"([^"]+)"$`)
	critical := false
	symptoms := map[string]bool{}
	for i, ir := range cfg.InhibitRules {
		if slices.Equal(ir.SourceMatchers, []string{`alertname=~"FeatureStoreDown|PostgresDown|RedisDown"`}) && len(ir.TargetMatchers) == 1 {
			if sub := names.FindStringSubmatch(ir.TargetMatchers[0]); sub != nil {
				for _, name := range strings.Split(sub[1], "|") {
					symptoms[name] = true
				}
			}
		}
		for _, m := range ir.TargetMatchers {
			if strings.Contains(m, "Watchdog") || m == `severity="none"` {
				t.Errorf("inhibit rule %d can silence the Watchdog (%s)", i, m)
			}
		}
		if len(ir.Equal) == 0 {
			t.Errorf("inhibit rule %d has no equal labels: it would inhibit across jobs", i)
		}
		for _, m := range append(slices.Clone(ir.SourceMatchers), ir.TargetMatchers...) {
			if sub := names.FindStringSubmatch(m); sub != nil {
				for _, name := range strings.Split(sub[1], "|") {
					if !alerts[name] {
						t.Errorf("inhibit rule %d matches alert %q, which does not exist", i, name)
					}
				}
			}
		}
		if slices.Equal(ir.SourceMatchers, []string{`severity="critical"`}) &&
			slices.Equal(ir.TargetMatchers, []string{`severity=~"warning|info"`}) &&
			slices.Contains(ir.Equal, "alertname") && slices.Contains(ir.Equal, "job") {
			critical = true
		}
	}
	if !critical {
		t.Error(`no inhibit rule from severity="critical" to warning and info with equal [alertname, job]`)
	}
	for _, name := range []string{"FeatureStoreAvailabilityBudgetBurn", "FeatureStoreLatencyBudgetBurn",
		"FeatureStoreHighErrorRatio", "FeatureStoreErrorLogRate"} {
		if !symptoms[name] {
			t.Errorf("no inhibit rule from the causes (FeatureStoreDown|PostgresDown|RedisDown) to %s", name)
		}
	}

	hooks := receiverHooks(t)
	receivers := map[string]int{}
	for _, r := range cfg.Receivers {
		receivers[r.Name] = len(r.WebhookConfigs)
		for _, w := range r.WebhookConfigs {
			if want := "http://alert-receiver:9000/hooks/" + r.Name; w.URL != want {
				t.Errorf("receiver %s posts to %s, want %s (the stack's alert receiver)", r.Name, w.URL, want)
			}
			if !hooks[r.Name] {
				t.Errorf("receiver %s: prometheus/alert-receiver/hooks.yaml has no hook %q", r.Name, r.Name)
			}
		}
	}
	for name, webhooks := range map[string]int{"pager": 1, "ticket": 1, "watchdog": 1, "null": 0} {
		if got, ok := receivers[name]; !ok || got != webhooks {
			t.Errorf("receiver %s has %d webhooks (present: %v), want %d", name, got, ok, webhooks)
		}
	}
}

// receiverHooks returns the hook ids of prometheus/alert-receiver/hooks.yaml,
// the alert receiver's configuration (webhook's hooks file).
func receiverHooks(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "prometheus", "alert-receiver", "hooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var hooks []struct {
		ID                     string `yaml:"id"`
		ExecuteCommand         string `yaml:"execute-command"`
		PassArgumentsToCommand []struct {
			Source string `yaml:"source"`
			Name   string `yaml:"name"`
		} `yaml:"pass-arguments-to-command"`
	}
	if err := yaml.Unmarshal(data, &hooks); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, h := range hooks {
		out[h.ID] = true
		args := h.PassArgumentsToCommand
		if h.ExecuteCommand != "/bin/sh" || len(args) != 5 || args[3].Name != h.ID || args[4].Source != "entire-payload" {
			t.Errorf("hook %s: %s %+v, want /bin/sh recording the route %q and the entire payload", h.ID, h.ExecuteCommand, args, h.ID)
		}
	}
	return out
}
