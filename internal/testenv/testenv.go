// Package testenv provides what the project's tests share: the repository
// root and the real TMDB records under testdata/, throwaway schemas on the
// shared Postgres, the shared Redis, private redis-server and Postgres
// instances a test may break, free ports, required tools and polling with a
// deadline.
//
// Under `go test -short` every helper that needs Postgres, Redis or an
// installed tool (promtool, amtool, prometheus, redis-server, ...) skips the
// test, so the short tier runs on a machine with nothing but Go.
//
// It is imported only from _test.go files.
package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RepoRoot is the directory holding go.mod, found by walking up from the
// test's working directory.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the test's working directory")
		}
		dir = parent
	}
}

// TMDBFile is the path of the real TMDB records committed under
// testdata/tmdb (see testdata/tmdb/SOURCE.md); the test fails when it is
// missing.
func TMDBFile(tb testing.TB) string {
	tb.Helper()
	p := filepath.Join(RepoRoot(tb), "testdata", "tmdb", "bulk_collection_20250605_022412.json")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("TMDB test data: %v", err)
	}
	return p
}

// CPUTime is the user and system CPU time the test process has used so
// far, for benchmarks to report CPU time per operation next to wall time,
// which a shared machine stretches.
func CPUTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SkipIfShort skips the test under `go test -short`, naming what it needs
// that the short tier does without.
func SkipIfShort(tb testing.TB, needs string) {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("-short: needs %s", needs)
	}
}

// PostgresURL is the shared test Postgres: $FEATURESTORE_TEST_POSTGRES_URL,
// or the `test` database on 127.0.0.1:5432. Tests isolate their data in a
// schema of their own (PostgresSchemaURL). Skipped under -short.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	SkipIfShort(tb, "the shared Postgres")
	if u := os.Getenv("FEATURESTORE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// RedisURL is the shared test Redis: $FEATURESTORE_TEST_REDIS_URL, or
// 127.0.0.1:6379 with generous timeouts, since every package's tests use
// it at once. Tests isolate their keys under a random prefix. Skipped under
// -short.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	SkipIfShort(tb, "the shared Redis")
	if u := os.Getenv("FEATURESTORE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0?" + patientRedisTimeouts
}

// patientRedisTimeouts are Redis client timeouts a loaded machine does not
// miss. The service's defaults (a few hundred milliseconds) are right for
// production, but on a test machine running the whole suite they turn a
// slow answer into a cache failure the test did not cause.
const patientRedisTimeouts = "read_timeout=5s&write_timeout=5s&dial_timeout=5s&pool_timeout=5s"

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// PostgresSchemaURL creates an empty schema <prefix>_<random> on the shared
// test Postgres, dropped at cleanup, and returns a URL whose search_path
// selects it. The prefix must be a lower-case SQL identifier. Skipped under
// -short.
func PostgresSchemaURL(tb testing.TB, prefix string) string {
	tb.Helper()
	base := PostgresURL(tb)
	if !identifier.MatchString(prefix) {
		tb.Fatalf("schema prefix %q is not a lower-case identifier", prefix)
	}
	schema := fmt.Sprintf("%s_%016x", prefix, rand.Uint64()) // #nosec G404 -- a unique test schema name, not a secret
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return fmt.Errorf("connect to test postgres: %w", err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parse test postgres URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// FreePort is a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RequireTool returns the path of a command-line tool. Without it the test
// is skipped on a developer machine and fails in CI ($CI set), where
// scripts/test.sh installs every tool. Skipped under -short, which needs no
// tool but Go.
func RequireTool(tb testing.TB, name string) string {
	tb.Helper()
	SkipIfShort(tb, name)
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "" {
			tb.Skipf("%s not installed (scripts/test.sh installs it)", name)
		}
		tb.Fatalf("%s is required in CI (scripts/test.sh installs it): %v", name, err)
	}
	return path
}

// pollInterval is how often Eventually looks at the state it waits for.
const pollInterval = 20 * time.Millisecond

// Eventually polls cond until it holds; past timeout it fails the test with
// what cond last saw (its second result). It waits for a state, never for
// a race to be over.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still not the case after %v; last saw %s", what, timeout, saw)
		}
		time.Sleep(pollInterval)
	}
}
