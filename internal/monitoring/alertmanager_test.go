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
// severity still reaches a person. Every alert of the rule files, with its
// own labels, is routed by its severity.
func TestAlertmanagerRoutes(t *testing.T) {
	t.Parallel()
	amtool := testenv.RequireTool(t, "amtool")
	receiver := map[string]string{"critical": "pager", "warning": "ticket", "info": "null"}
	cases := []struct {
		labels []string
		want   string
	}{
		{[]string{"severity=critical"}, "pager"},
		{[]string{"severity=warning"}, "ticket"},
		{[]string{"severity=info"}, "null"},
		{[]string{"alertname=Unlabelled", "job=featurestore"}, "ticket"},
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
// alertname and job; a critical alert inhibits the warnings and infos of the
// same alertname and job; every inhibition names the labels that must be
// equal and only alerts that exist; the webhooks point at the URL the
// end-to-end test replaces; the info receiver notifies nobody.
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

	if !slices.Equal(cfg.Route.GroupBy, []string{"alertname", "job"}) {
		t.Errorf("group_by %q, want [alertname job]", cfg.Route.GroupBy)
	}

	alerts := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert != "" {
			alerts[r.Alert] = true
		}
	}
	names := regexp.MustCompile(`^alertname=~?"([^"]+)"$`)
	critical := false
	for i, ir := range cfg.InhibitRules {
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

	receivers := map[string]int{}
	for _, r := range cfg.Receivers {
		receivers[r.Name] = len(r.WebhookConfigs)
		for _, w := range r.WebhookConfigs {
			if !strings.HasPrefix(w.URL, "http://webhook:5001/alerts") {
				t.Errorf("receiver %s posts to %s, want http://webhook:5001/alerts...", r.Name, w.URL)
			}
		}
	}
	for name, webhooks := range map[string]int{"pager": 1, "ticket": 1, "null": 0} {
		if got, ok := receivers[name]; !ok || got != webhooks {
			t.Errorf("receiver %s has %d webhooks (present: %v), want %d", name, got, ok, webhooks)
		}
	}
}
