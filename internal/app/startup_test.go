package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

// Start-up: an outage is waited out for --startup-timeout; a permanent
// configuration error fails at once with a message that names it. The
// start-up timeout in these tests is an hour, and Run gets a context that
// ends after two minutes: a permanent error retried like an outage would
// end with that context's error instead of its own. The context bounds the
// test; nothing times the answer.

// runServe runs the service with env until it returns, under the guard
// context; it returns the log and Run's error.
func runServe(t *testing.T, env map[string]string) (string, error) {
	t.Helper()
	guard, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &testenv.SyncBuffer{}
	err := Run(guard, []string{"serve", "--addr", "127.0.0.1:0", "--startup-timeout", "1h"}, envFrom(env), logs, io.Discard)
	if guard.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("start-up was still retrying when the guard ended: %v\n%s", err, logs)
	}
	return logs.String(), err
}

func TestMalformedURLsFailStartUpAtOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env, url, want, secret string
	}{
		{"FEATURESTORE_POSTGRES_URL", "postgres://app:s3cret@db:99999999/fs", "postgres-url is not a valid Postgres URL", "s3cret"},
		{"FEATURESTORE_POSTGRES_URL", "postgres://app:s3cret@db/fs?sslmode=sometimes", "sslmode is invalid", "s3cret"},
		{"FEATURESTORE_POSTGRES_URL", "host=db password=s3cret port=notaport", "invalid port", "s3cret"},
		{"FEATURESTORE_REDIS_URL", "redis://:hunter2@cache:6379/notanumber", "redis-url is not a valid Redis URL", "hunter2"},
		{"FEATURESTORE_REDIS_URL", "redis://:hunter2@cache:port/0", "invalid port", "hunter2"},
		{"FEATURESTORE_REDIS_URL", "mysql://cache:6379", "invalid URL scheme", ""},
	} {
		env := map[string]string{c.env: c.url, "FEATURESTORE_DATA_DIR": t.TempDir()}
		logs, err := runServe(t, env)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s=%s: Run = %v, want an error containing %q", c.env, c.url, err, c.want)
			continue
		}
		if c.secret != "" && (strings.Contains(err.Error(), c.secret) || strings.Contains(logs, c.secret)) {
			t.Errorf("%s=%s: the password is in the error or the log: %v\n%s", c.env, c.url, err, logs)
		}
	}
}

func TestReadOnlyPostgresFailsStartUpAtOnce(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(testenv.PostgresSchemaURL(t, "fs_ro"))
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery += "&options=-c%20default_transaction_read_only%3Don" // pgx decodes %20, not +
	logs, err := runServe(t, map[string]string{"FEATURESTORE_POSTGRES_URL": u.String()})
	if err == nil || !strings.Contains(err.Error(), "postgres is read-only") {
		t.Fatalf("Run = %v, want an error saying postgres is read-only\n%s", err, logs)
	}
	if strings.Contains(logs, "retrying") {
		t.Errorf("a read-only database was retried like an outage:\n%s", logs)
	}
}

// TestUnreachablePostgresIsRetried: the other side of the rule: a closed
// port is an outage, retried until the start-up timeout, then reported as
// unavailable.
func TestUnreachablePostgresIsRetried(t *testing.T) {
	t.Parallel()
	pgURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable", testenv.FreePort(t))
	logs := &testenv.SyncBuffer{}
	err := Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--startup-timeout", "1s"},
		envFrom(map[string]string{"FEATURESTORE_POSTGRES_URL": pgURL}), logs, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "postgres is unavailable") {
		t.Fatalf("Run = %v, want postgres unavailable\n%s", err, logs)
	}
	if !strings.Contains(logs.String(), "storage not available yet; retrying") {
		t.Errorf("an unreachable postgres was not retried:\n%s", logs)
	}
}
