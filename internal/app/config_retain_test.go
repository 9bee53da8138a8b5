package app

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestHistoryAndReplicaConfig: the read URL, statement timeout and history
// flags are checked before anything is opened, with the secret masked.
func TestHistoryAndReplicaConfig(t *testing.T) {
	t.Parallel()
	valid := func() Config {
		// Every flag at its default, as a server started without any.
		var cfg Config
		flagSet("featurestore serve", &cfg, func(string) string { return "" }, io.Discard)
		cfg.DataDir = "d"
		return cfg
	}
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string // "" when valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"read url with primary", func(c *Config) {
			c.PostgresURL, c.PostgresReadURL = "postgres://db/fs", "postgres://replica/fs"
		}, ""},
		{"read url alone", func(c *Config) { c.PostgresReadURL = "postgres://replica/fs" }, "postgres-read-url needs postgres-url"},
		{"malformed read url", func(c *Config) {
			c.PostgresURL, c.PostgresReadURL = "postgres://db/fs", "postgres://app:s3cret@replica:99999999/fs"
		}, "postgres-read-url is not a valid Postgres URL"},
		{"negative statement timeout", func(c *Config) { c.PostgresStatementTimeout = -time.Second }, "postgres-statement-timeout must be >= 0"},
		{"negative retention", func(c *Config) { c.HistoryRetention = -time.Hour }, "history-retention must be between"},
		{"retention of 200 years", func(c *Config) { c.HistoryRetention = 200 * 8766 * time.Hour }, "history-retention must be between"},
		{"prune interval too short", func(c *Config) { c.HistoryPruneInterval = time.Millisecond }, "history-prune-interval must be at least 1s"},
	} {
		cfg := valid()
		c.edit(&cfg)
		err := cfg.validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: validate = %v, want nil", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: validate = %v, want an error containing %q", c.name, err, c.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%s: the password is in the error: %v", c.name, err)
		}
	}
}
