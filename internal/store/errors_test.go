package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/testenv"
)

func TestGroupNotFound(t *testing.T) {
	t.Parallel()
	names := []string{"b", "a", "b", "ä"}
	var e *feature.Error
	if err := GroupNotFound(names...); !errors.As(err, &e) || e.Code != feature.CodeNotFound {
		t.Fatalf("GroupNotFound = %v, want a NotFound error", err)
	}
	want := []feature.FieldError{
		{Field: "group", Problem: `unknown feature group "a"`},
		{Field: "group", Problem: `unknown feature group "b"`},
		{Field: "group", Problem: `unknown feature group "ä"`},
	}
	if diff := cmp.Diff(want, e.Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b", "a", "b", "ä"}, names); diff != "" {
		t.Errorf("GroupNotFound changed its argument (-want +got):\n%s", diff)
	}
}

// TestDependencyError: the context's error decides, then everything else
// is an unreachable dependency. SQLite reports an ended context as the
// context's error, so this is the SQLite store's classification too.
func TestDependencyError(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want feature.Code
	}{
		{fmt.Errorf("exec: %w", context.Canceled), feature.CodeCanceled},
		{fmt.Errorf("exec: %w", context.DeadlineExceeded), feature.CodeTimeout},
		{fmt.Errorf("read tcp: %w", os.ErrDeadlineExceeded), feature.CodeTimeout},
		{io.ErrUnexpectedEOF, feature.CodeUnavailable},
		{errors.New("connection refused"), feature.CodeUnavailable},
	} {
		got := DependencyError("sqlite store", c.err)
		if code := feature.ErrorCode(got); code != c.want || !errors.Is(got, c.err) {
			t.Errorf("DependencyError(%v) = %v (code %q), want code %q wrapping the cause", c.err, got, code, c.want)
		}
	}
}

// TestPostgresErrorCodes classifies server answers by SQLSTATE.
func TestPostgresErrorCodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sqlstate string
		want     feature.Code
		coded    bool // a *feature.Error, not a bare server error
	}{
		{"57014", feature.CodeTimeout, true},     // statement_timeout or a cancel request
		{"55P03", feature.CodeTimeout, true},     // lock_timeout
		{"25006", feature.CodeInternal, true},    // read-only: the message says so
		{"08006", feature.CodeUnavailable, true}, // connection failure
		{"40P01", feature.CodeUnavailable, true}, // deadlock
		{"53300", feature.CodeUnavailable, true}, // too many connections
		{"57P01", feature.CodeUnavailable, true}, // admin shutdown
		{"58030", feature.CodeUnavailable, true}, // I/O error
		{"23505", feature.CodeInternal, false},   // a constraint the store did not expect: a bug
		{"42P01", feature.CodeInternal, false},   // undefined table: a bug
	} {
		pgErr := &pgconn.PgError{Code: c.sqlstate, Message: "test"}
		got := PostgresError("op", pgErr)
		var fe *feature.Error
		if code := feature.ErrorCode(got); code != c.want || errors.As(got, &fe) != c.coded || !errors.Is(got, pgErr) {
			t.Errorf("SQLSTATE %s: %v (code %q, coded %v), want code %q, coded %v, wrapping the server error",
				c.sqlstate, got, code, fe != nil, c.want, c.coded)
		}
	}
}

// withOptions adds a Postgres run-time option (options=-c name=value) to a URL.
func withOptions(t *testing.T, raw, option string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	// pgx decodes %20, not +, as a space.
	u.RawQuery += "&options=" + strings.ReplaceAll(url.QueryEscape("-c "+option), "+", "%20")
	return u.String()
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestPostgresErrorsFromARealServer produces each class against the real
// Postgres and checks its code: the errors pgx really returns.
func TestPostgresErrorsFromARealServer(t *testing.T) {
	t.Parallel()
	base := testenv.PostgresSchemaURL(t, "fs_err")
	ctx := context.Background()

	t.Run("closed port: unavailable", func(t *testing.T) {
		t.Parallel()
		u := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable", testenv.FreePort(t))
		_, err := pgx.Connect(ctx, u)
		wantCode(t, PostgresError("connect", err), feature.CodeUnavailable, "")
	})

	t.Run("statement_timeout: timeout", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, withOptions(t, base, "statement_timeout=50ms"))
		// The statement is slower than the timeout whatever the load: the
		// server cancels it.
		_, err := conn.Exec(ctx, "SELECT pg_sleep(60)")
		wantCode(t, PostgresError("stats", err), feature.CodeTimeout, "ran out of time")
	})

	t.Run("read-only database: internal, saying so", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, withOptions(t, base, "default_transaction_read_only=on"))
		_, err := conn.Exec(ctx, "CREATE TABLE read_only_probe (a int)")
		wantCode(t, PostgresError("migrate", err), feature.CodeInternal, "read-only")
	})

	t.Run("request deadline mid-query: timeout", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, base)
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := conn.Exec(dctx, "SELECT pg_sleep(60)")
		wantCode(t, PostgresError("stats", err), feature.CodeTimeout, "")
	})

	t.Run("caller gone mid-query: canceled", func(t *testing.T) {
		t.Parallel()
		conn := connect(t, base)
		watcher := connect(t, base)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		pid := conn.PgConn().PID()
		go func() {
			// Cancel once the query runs on the server.
			for cctx.Err() == nil {
				var active bool
				err := watcher.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
					WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%')`, pid).Scan(&active)
				if err != nil || active {
					cancel()
					return
				}
			}
		}()
		_, err := conn.Exec(cctx, "SELECT pg_sleep(60)")
		wantCode(t, PostgresError("stats", err), feature.CodeCanceled, "")
	})
}

func wantCode(t *testing.T, err error, want feature.Code, message string) {
	t.Helper()
	var fe *feature.Error
	if code := feature.ErrorCode(err); code != want || !errors.As(err, &fe) || !strings.Contains(fe.Message, message) {
		t.Errorf("%v: code %q, want %q with a message containing %q", err, code, want, message)
	}
}

// TestPostgresWriteError: a write whose connection broke after it was sent
// is outcome_unknown; what is known to have failed before, or was answered
// by the server, keeps its class.
func TestPostgresWriteError(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name          string
		err           error
		write, commit feature.Code
	}{
		{"connection lost while reading the answer", io.ErrUnexpectedEOF, feature.CodeOutcomeUnknown, feature.CodeOutcomeUnknown},
		{"server terminated the session", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, feature.CodeOutcomeUnknown, feature.CodeOutcomeUnknown},
		{"statement failed", &pgconn.PgError{Severity: "ERROR", Code: "23505"}, feature.CodeInternal, feature.CodeInternal},
		{"invalid UTF-8 reached postgres", &pgconn.PgError{Severity: "ERROR", Code: "22021"}, feature.CodeInvalid, feature.CodeInvalid},
		{"NUL reached postgres", &pgconn.PgError{Severity: "ERROR", Code: "22P05"}, feature.CodeInvalid, feature.CodeInvalid},
		{"deadlock after retries", &pgconn.PgError{Severity: "ERROR", Code: "40P01"}, feature.CodeUnavailable, feature.CodeUnavailable},
		{"never connected", &pgconn.ConnectError{}, feature.CodeUnavailable, feature.CodeUnavailable},
		{"closed pool", fmt.Errorf("acquire: %w", puddle.ErrClosedPool), feature.CodeUnavailable, feature.CodeUnavailable},
		{"caller went away", context.Canceled, feature.CodeCanceled, feature.CodeCanceled},
		{"deadline", context.DeadlineExceeded, feature.CodeTimeout, feature.CodeTimeout},
	} {
		if got := feature.ErrorCode(PostgresWriteError("write", c.err)); got != c.write {
			t.Errorf("%s: PostgresWriteError = %s, want %s", c.name, got, c.write)
		}
		if got := feature.ErrorCode(PostgresCommitError("commit", c.err)); got != c.commit {
			t.Errorf("%s: PostgresCommitError = %s, want %s", c.name, got, c.commit)
		}
	}
}
