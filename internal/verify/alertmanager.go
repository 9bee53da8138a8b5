package verify

import (
	"context"
	"errors"
	"fmt"
)

// alertmanagerStatus wants /api/v2/status to answer with a loaded
// configuration; the detail gives the version and the cluster state.
func alertmanagerStatus(ctx context.Context, c *client, base string) (string, error) {
	var st struct {
		Cluster struct {
			Status string `json:"status"`
		} `json:"cluster"`
		Config struct {
			Original string `json:"original"`
		} `json:"config"`
		VersionInfo struct {
			Version string `json:"version"`
		} `json:"versionInfo"`
		Uptime string `json:"uptime"`
	}
	if err := c.getJSON(ctx, base+"/api/v2/status", &st); err != nil {
		return "", err
	}
	if st.Config.Original == "" {
		return "", errors.New("no configuration loaded")
	}
	return fmt.Sprintf("version %s, cluster %s, up since %s", st.VersionInfo.Version, st.Cluster.Status, st.Uptime), nil
}
