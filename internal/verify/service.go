package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/store"
)

// serviceHealth wants GET /health to say UP. DEGRADED (the cache is down:
// reads still work, slower) fails too, naming the component, because the
// operators must know; DOWN (503) fails with the components at fault.
func serviceHealth(ctx context.Context, c *client, base string) (string, error) {
	url := base + "/health"
	code, body, err := c.get(ctx, url)
	if err != nil {
		return "", err
	}
	var rep health.Report
	if err := json.Unmarshal(body, &rep); err != nil || rep.Status == "" {
		return "", statusError(url, code, body)
	}
	names := make([]string, 0, len(rep.Components))
	for name := range rep.Components {
		names = append(names, name)
	}
	slices.Sort(names)
	var parts, down []string
	for _, name := range names {
		comp := rep.Components[name]
		parts = append(parts, name+" "+string(comp.Status))
		if comp.Status != store.HealthUp {
			d := name + " " + string(comp.Status)
			if comp.Error != "" {
				d += " (" + comp.Error + ")"
			}
			down = append(down, d)
		}
	}
	if rep.Status != store.HealthUp || code != http.StatusOK {
		if len(down) == 0 {
			down = append(down, fmt.Sprintf("HTTP %d", code))
		}
		return "", fmt.Errorf("%s: %s", rep.Status, strings.Join(down, "; "))
	}
	if len(parts) == 0 {
		return string(store.HealthUp) + " (status only: send a reader's token to see the components)", nil
	}
	return string(store.HealthUp) + ": " + strings.Join(parts, ", "), nil
}

// serviceReady wants GET /health/ready to answer 200.
func serviceReady(ctx context.Context, c *client, base string) (string, error) {
	if _, err := c.ok(ctx, base+"/health/ready"); err != nil {
		return "", err
	}
	return "ready", nil
}
