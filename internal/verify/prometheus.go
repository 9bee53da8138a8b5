package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// promGet calls a Prometheus HTTP API endpoint and decodes its data.
func promGet(ctx context.Context, c *client, u string, data any) error {
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := c.getJSON(ctx, u, &env); err != nil {
		return err
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: status %q: %s", u, env.Status, env.Error)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return fmt.Errorf("GET %s: decode data: %w", u, err)
	}
	return nil
}

// promConfig wants the configuration loaded, and names its scrape jobs.
func promConfig(ctx context.Context, c *client, base string) (string, error) {
	var data struct {
		YAML string `json:"yaml"`
	}
	if err := promGet(ctx, c, base+"/api/v1/status/config", &data); err != nil {
		return "", err
	}
	if strings.TrimSpace(data.YAML) == "" {
		return "", errors.New("the configuration is empty")
	}
	var jobs []string
	for _, line := range strings.Split(data.YAML, "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- job_name: "); ok {
			jobs = append(jobs, strings.Trim(name, `"'`))
		}
	}
	if len(jobs) == 0 {
		return "", errors.New("loaded, but with no scrape job")
	}
	return fmt.Sprintf("loaded; scrape jobs: %s", strings.Join(jobs, ", ")), nil
}

// promTargets wants every active target up, and lists those that are not.
func promTargets(ctx context.Context, c *client, base string) (string, error) {
	var data struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := promGet(ctx, c, base+"/api/v1/targets?state=active", &data); err != nil {
		return "", err
	}
	if len(data.ActiveTargets) == 0 {
		return "", errors.New("no active targets (check scrape_configs)")
	}
	var jobs, down []string
	for _, t := range data.ActiveTargets {
		job := t.Labels["job"]
		if !slices.Contains(jobs, job) {
			jobs = append(jobs, job)
		}
		if t.Health != "up" {
			d := fmt.Sprintf("%s %s %s", job, t.Labels["instance"], t.Health)
			if t.LastError != "" {
				d += " (" + t.LastError + ")"
			}
			down = append(down, d)
		}
	}
	slices.Sort(jobs)
	if len(down) > 0 {
		return "", fmt.Errorf("%d of %d targets not up: %s", len(down), len(data.ActiveTargets), strings.Join(down, "; "))
	}
	return fmt.Sprintf("%d/%d up; jobs: %s", len(data.ActiveTargets), len(data.ActiveTargets), strings.Join(jobs, ", ")), nil
}

// promRules wants at least one rule group and no rule failing to evaluate;
// it counts the rules and lists the firing alerts (firing is not a failure
// of the monitoring: it is the monitoring working).
func promRules(ctx context.Context, c *client, base string) (string, error) {
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Type      string `json:"type"`
				State     string `json:"state"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				Alerts    []struct {
					State string `json:"state"`
				} `json:"alerts"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := promGet(ctx, c, base+"/api/v1/rules", &data); err != nil {
		return "", err
	}
	if len(data.Groups) == 0 {
		return "", errors.New("no rule groups loaded (check rule_files)")
	}
	var alerting, recording int
	var broken, firing []string
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			switch r.Type {
			case "alerting":
				alerting++
			case "recording":
				recording++
			}
			if r.Health == "err" {
				broken = append(broken, fmt.Sprintf("%s/%s: %s", g.Name, r.Name, r.LastError))
			}
			if r.Type == "alerting" && r.State == "firing" {
				n := 0
				for _, a := range r.Alerts {
					if a.State == "firing" {
						n++
					}
				}
				firing = append(firing, fmt.Sprintf("%s (%d)", r.Name, n))
			}
		}
	}
	detail := fmt.Sprintf("%s: %s, %s", plural(len(data.Groups), "rule group"), plural(alerting, "alerting rule"), plural(recording, "recording rule"))
	if len(broken) > 0 {
		return "", fmt.Errorf("%s; failing to evaluate: %s", detail, strings.Join(broken, "; "))
	}
	if len(firing) > 0 {
		return detail + "; firing: " + strings.Join(firing, ", "), nil
	}
	return detail + "; none firing", nil
}

// promAlertmanagers wants Prometheus to send its alerts to at least one
// Alertmanager.
func promAlertmanagers(ctx context.Context, c *client, base string) (string, error) {
	var data struct {
		Active []struct {
			URL string `json:"url"`
		} `json:"activeAlertmanagers"`
	}
	if err := promGet(ctx, c, base+"/api/v1/alertmanagers", &data); err != nil {
		return "", err
	}
	if len(data.Active) == 0 {
		return "", errors.New("alerts go to no Alertmanager (check the alerting section)")
	}
	urls := make([]string, len(data.Active))
	for i, a := range data.Active {
		urls[i] = a.URL
	}
	return "sending alerts to " + strings.Join(urls, ", "), nil
}

// promSample is one element of an instant vector: its labels and
// [evaluation time, value].
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promMetricFresh wants metric in Prometheus with its newest sample at most
// limit old. It asks for timestamp(metric) (the _count series of a
// histogram) and compares the newest with the query's own evaluation time,
// so the clocks of this host and Prometheus's do not matter.
func promMetricFresh(ctx context.Context, c *client, base, metric string, limit time.Duration) (string, error) {
	series := metric
	if metric == "feature_store_request_duration_seconds" { // the one histogram
		series = metric + "_count"
	}
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	u := base + "/api/v1/query?" + url.Values{"query": {"timestamp(" + series + ")"}}.Encode()
	if err := promGet(ctx, c, u, &data); err != nil {
		return "", err
	}
	if data.ResultType != "vector" {
		return "", fmt.Errorf("query timestamp(%s): result type %q, want vector", series, data.ResultType)
	}
	return judgeFreshness(series, data.Result, limit)
}

// judgeFreshness decides a metric's check from the samples of
// timestamp(series): present, and the newest sample at most limit old at
// the evaluation time.
func judgeFreshness(series string, samples []promSample, limit time.Duration) (string, error) {
	if len(samples) == 0 {
		return "", fmt.Errorf("no %s series in Prometheus (not scraped yet, or its target is down)", series)
	}
	evalAt, newest := math.Inf(-1), math.Inf(-1)
	for _, s := range samples {
		at, ok1 := s.Value[0].(float64)
		v, ok2 := s.Value[1].(string)
		ts, err := strconv.ParseFloat(v, 64)
		if !ok1 || !ok2 || err != nil {
			return "", fmt.Errorf("unexpected sample %v", s.Value)
		}
		evalAt, newest = max(evalAt, at), max(newest, ts)
	}
	age := time.Duration(max(evalAt-newest, 0) * float64(time.Second))
	if age > limit {
		return "", fmt.Errorf("%d series, but the newest sample is %s old (limit %s)", len(samples), age.Round(100*time.Millisecond), limit)
	}
	return fmt.Sprintf("%d series, newest sample %s old", len(samples), age.Round(100*time.Millisecond)), nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
