package verify

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/envflag"
)

const usageText = `featurestore verify: the operators' monitoring checklist, as a command.

Usage:
  featurestore verify [flags]

Checks the feature store's /health (UP; DEGRADED fails, naming the component)
and /health/ready; Prometheus health, readiness, configuration, targets (all
up), rules (loaded and evaluating; firing alerts are listed), that it sends
alerts to an Alertmanager, and that the seven feature_store_* metrics are
present and fresh; Alertmanager health and status; Grafana health, the
Prometheus datasource (uid prometheus) and the dashboards featurestore-overview
and featurestore-go-runtime. A component whose URL is not given is skipped.
Prints a table (or --json) and exits non-zero when a check fails.

Example (the compose stack):
  featurestore verify --api http://localhost:8002 --prometheus http://localhost:9090 \
    --alertmanager http://localhost:9093 --grafana http://localhost:3000

Every flag but --json can also be set through the environment variable named
after it (FEATURESTORE_GRAFANA_PASSWORD keeps the password off the command line).
When the feature store requires authentication, give it a reader's token with
--token-file or FEATURESTORE_TOKEN; without one /health shows its status only.

Flags:
`

// Command is `featurestore verify`: it parses args (after the command name)
// with defaults from the FEATURESTORE_* environment read through getenv,
// runs the checks and writes the report on stdout. It returns an error
// naming the failed checks when one fails.
func Command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg Config
	var asJSON bool
	fs := flag.NewFlagSet("featurestore verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := envflag.New(fs, getenv)
	str, dur := flags.String, flags.Duration
	str(&cfg.API, "api", "", "base URL of the feature store, e.g. http://localhost:8002 (empty: skip its checks)")
	str(&cfg.Prometheus, "prometheus", "", "base URL of Prometheus, e.g. http://localhost:9090 (empty: skip)")
	str(&cfg.Alertmanager, "alertmanager", "", "base URL of Alertmanager, e.g. http://localhost:9093 (empty: skip)")
	str(&cfg.Grafana, "grafana", "", "base URL of Grafana, e.g. http://localhost:3000 (empty: skip)")
	str(&cfg.GrafanaUser, "grafana-user", "admin", "Grafana user for its API (basic auth)")
	flags.Secret(&cfg.GrafanaPassword, "grafana-password", "Grafana password for its API (empty: no authentication); prefer the environment variable",
		func(string) string { return "****" })
	var tokenFile string
	str(&tokenFile, "token-file", "", "a file holding the bearer token sent to --api (default: the "+auth.TokenEnv+" variable); a reader's token shows /health's components")
	dur(&cfg.Timeout, "timeout", 10*time.Second, "deadline of each check")
	dur(&cfg.Freshness, "freshness", 30*time.Second, "largest accepted age of a metric's newest sample in Prometheus")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := flags.Err(); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("verify takes no arguments, got %q", fs.Args())
	}
	tok, tokErr := auth.ClientToken(tokenFile, getenv(auth.TokenEnv))
	if tokErr != nil {
		return tokErr
	}
	cfg.APIToken = tok
	if err := cfg.validate(); err != nil {
		return err
	}

	checks := Run(ctx, cfg)
	var err error
	if asJSON {
		err = WriteJSON(stdout, checks)
	} else {
		err = WriteTable(stdout, checks)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if failed := Failed(checks); len(failed) > 0 {
		return fmt.Errorf("verify: %d of %d checks failed: %s", len(failed), len(checks), strings.Join(failed, ", "))
	}
	return nil
}

// validate wants at least one URL, each absolute http(s), and positive
// durations.
func (c Config) validate() error {
	var errs []string
	given := 0
	for _, f := range []struct{ flag, url string }{
		{"api", c.API}, {"prometheus", c.Prometheus}, {"alertmanager", c.Alertmanager}, {"grafana", c.Grafana},
	} {
		if f.url == "" {
			continue
		}
		given++
		u, err := url.Parse(f.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Sprintf("--%s %q is not an http(s) URL such as http://localhost:9090", f.flag, f.url))
		}
	}
	if given == 0 {
		errs = append(errs, "nothing to verify: give at least one of --api, --prometheus, --alertmanager, --grafana")
	}
	if c.Timeout <= 0 {
		errs = append(errs, "--timeout must be positive")
	}
	if c.Freshness <= 0 {
		errs = append(errs, "--freshness must be positive")
	}
	if len(errs) > 0 {
		return fmt.Errorf("verify: %s", strings.Join(errs, "; "))
	}
	return nil
}

// WriteTable writes the checks as an aligned table (check, result, time,
// detail: the detail last, as it is the longest) and a summary line.
func WriteTable(w io.Writer, checks []Check) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tTIME\tDETAIL")
	for _, c := range checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.Result, formatDuration(c), oneLine(c.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := summarize(checks)
	_, err := fmt.Fprintf(w, "\n%d passed, %d failed, %d skipped\n", s.Passed, s.Failed, s.Skipped)
	return err
}

func formatDuration(c Check) string {
	if c.Result == Skip {
		return "-"
	}
	return strconv.FormatFloat(durationMS(c.Duration), 'f', 1, 64) + "ms"
}

func durationMS(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// oneLine keeps a table row on one line whatever an error message holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Summary counts the checks by result; OK is true when none failed.
type Summary struct {
	Passed  int  `json:"passed"`
	Failed  int  `json:"failed"`
	Skipped int  `json:"skipped"`
	OK      bool `json:"ok"`
}

func summarize(checks []Check) Summary {
	var s Summary
	for _, c := range checks {
		switch c.Result {
		case Pass:
			s.Passed++
		case Fail:
			s.Failed++
		case Skip:
			s.Skipped++
		}
	}
	s.OK = s.Failed == 0
	return s
}

// Report is the JSON form of a run: {"checks": [...], "summary": {...}}.
type Report struct {
	Checks []ReportCheck `json:"checks"`
	// Failed names the failed checks (empty when none failed).
	Failed  []string `json:"failed"`
	Summary Summary  `json:"summary"`
}

// ReportCheck is one check in the JSON report.
type ReportCheck struct {
	Check      string  `json:"check"`
	Result     Result  `json:"result"`
	Detail     string  `json:"detail"`
	DurationMS float64 `json:"duration_ms"`
}

// WriteJSON writes the checks as one indented JSON Report.
func WriteJSON(w io.Writer, checks []Check) error {
	rep := Report{Checks: make([]ReportCheck, len(checks)), Failed: Failed(checks), Summary: summarize(checks)}
	if rep.Failed == nil {
		rep.Failed = []string{}
	}
	for i, c := range checks {
		rep.Checks[i] = ReportCheck{Check: c.Name, Result: c.Result, Detail: c.Detail, DurationMS: durationMS(c.Duration)}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
