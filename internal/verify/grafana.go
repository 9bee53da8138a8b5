package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// grafanaHealth wants /api/health to report its database ok.
func grafanaHealth(ctx context.Context, c *client, base string) (string, error) {
	var h struct {
		Database string `json:"database"`
		Version  string `json:"version"`
	}
	if err := c.getJSON(ctx, base+"/api/health", &h); err != nil {
		return "", err
	}
	if h.Database != "ok" {
		return "", fmt.Errorf("database %q (version %s)", h.Database, h.Version)
	}
	return fmt.Sprintf("version %s, database ok", h.Version), nil
}

// grafanaDatasource wants the provisioned Prometheus datasource (by its
// fixed uid) to exist and Grafana's health check of it to say OK: Grafana
// can query Prometheus.
func grafanaDatasource(ctx context.Context, c *client, base string) (string, error) {
	var ds struct {
		Name string `json:"name"`
		Type string `json:"type"`
		URL  string `json:"url"`
	}
	u := base + "/api/datasources/uid/" + datasourceUID
	code, body, err := c.get(ctx, u)
	if err != nil {
		return "", err
	}
	if code == http.StatusNotFound {
		return "", fmt.Errorf("no datasource with uid %q (check grafana/provisioning/datasources)", datasourceUID)
	}
	if code != http.StatusOK {
		return "", statusError(u, code, body)
	}
	if err := json.Unmarshal(body, &ds); err != nil {
		return "", fmt.Errorf("GET %s: decode: %w", u, err)
	}
	// The health check answers 200 with status OK, or 400 with status
	// ERROR and the reason.
	var h struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	code, body, err = c.get(ctx, u+"/health")
	if err != nil {
		return "", err
	}
	if json.Unmarshal(body, &h) != nil || h.Status == "" {
		return "", statusError(u+"/health", code, body)
	}
	what := fmt.Sprintf("%s (%s) at %s", ds.Name, ds.Type, ds.URL)
	if h.Status != "OK" || code != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %s", what, h.Status, h.Message)
	}
	return fmt.Sprintf("%s: %s", what, h.Message), nil
}

// grafanaDashboards wants both provisioned dashboards, found by their uids.
func grafanaDashboards(ctx context.Context, c *client, base string) (string, error) {
	var found, missing []string
	for _, uid := range []string{overviewDashboard, goRuntimeDashboard} {
		var d struct {
			Dashboard struct {
				Title string `json:"title"`
			} `json:"dashboard"`
			Meta struct {
				FolderTitle string `json:"folderTitle"`
			} `json:"meta"`
		}
		u := base + "/api/dashboards/uid/" + uid
		code, body, err := c.get(ctx, u)
		switch {
		case err != nil:
			return "", err
		case code == http.StatusNotFound:
			missing = append(missing, uid)
			continue
		case code != http.StatusOK:
			return "", statusError(u, code, body)
		}
		if err := json.Unmarshal(body, &d); err != nil {
			return "", fmt.Errorf("GET %s: decode: %w", u, err)
		}
		found = append(found, fmt.Sprintf("%q in %q", d.Dashboard.Title, d.Meta.FolderTitle))
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("missing dashboards %s (check grafana/provisioning/dashboards)", strings.Join(missing, ", "))
	}
	return strings.Join(found, ", "), nil
}
