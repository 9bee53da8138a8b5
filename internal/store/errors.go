package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/featurestore/featurestore/internal/feature"
)

// GroupNotFound is the feature.NotFound error a backend returns for
// unregistered groups: one field error per distinct name, in byte order.
func GroupNotFound(names ...string) error {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	fields := make([]feature.FieldError, len(names))
	for i, n := range names {
		fields[i] = feature.FieldError{Field: "group", Problem: "unknown feature group " + strconv.Quote(n)}
	}
	return feature.NotFound("feature group not found", fields...)
}

// HistoryExpired is the error of an as-of read at asOf, before the group's
// prune watermark: the history that would answer it may be gone.
func HistoryExpired(group string, asOf, watermark time.Time) error {
	return feature.HistoryExpired(fmt.Sprintf("as_of %s is before the retained history of group %s, which begins at %s",
		asOf.UTC().Format(time.RFC3339Nano), group, watermark.UTC().Format(time.RFC3339Nano)),
		feature.FieldError{Field: "as_of", Problem: "older than the group's history retention"})
}

// DependencyError codes the failure of a call to a storage dependency that
// gave no answer of its own (no server error code): the caller's context
// decides first, since an ended context is why a driver gives up.
//
//   - context.Canceled: feature.CodeCanceled (the caller went away);
//   - context.DeadlineExceeded, or an I/O deadline on the connection:
//     feature.CodeTimeout (the dependency did not answer in time);
//   - anything else, a refused, reset or closed connection: the dependency
//     cannot be reached, feature.CodeUnavailable.
//
// dependency names it in the message ("postgres", "sqlite store").
func DependencyError(dependency string, err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return feature.Canceled("the caller went away before "+dependency+" answered", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return feature.Timeout(dependency+" did not answer in time", err)
	}
	return feature.Unavailable(dependency+" is unavailable", err)
}

// PostgresError classifies an error from pgx, prefixed with op:
//
//   - a canceled context: feature.CodeCanceled;
//   - a failed connection attempt (refused, no route, connect_timeout, too
//     many connections, authentication, shutting down): CodeUnavailable;
//   - a passed deadline: CodeTimeout;
//   - a statement the server cancelled (57014 query_canceled: a
//     statement_timeout, or a cancel request; 55P03 lock_not_available: a
//     lock_timeout): CodeTimeout;
//   - a read-only database (25006): CodeInternal with a message that says
//     so; it takes an operator, not a retry;
//   - text Postgres cannot store (22021 invalid UTF-8, 22P05 NUL):
//     CodeInvalid, as a last line of defence behind the input checks;
//   - connection exceptions (08), insufficient resources (53), operator
//     intervention such as a shutdown (57) and system errors (58):
//     CodeUnavailable; so are transaction rollbacks (40: a deadlock or
//     serialization failure left after the store's own retries), which a
//     retry resolves;
//   - any other server error (a bug in a query, a violated constraint the
//     store did not expect) stays uncoded, an internal error;
//   - any other error (a broken connection, a closed pool): DependencyError.
//
// The context's error is looked at first because pgx reports a cancelled
// query as the context's error.
func PostgresError(op string, err error) error {
	err = fmt.Errorf("postgres: %s: %w", op, err)
	var (
		pgErr   *pgconn.PgError
		connErr *pgconn.ConnectError
	)
	switch {
	case errors.Is(err, context.Canceled):
		return DependencyError("postgres", err)
	case errors.As(err, &connErr):
		// Before the deadline: connect_timeout is a deadline too, and a
		// server that does not accept a connection in time is unreachable.
		return feature.Unavailable("postgres is unavailable", err)
	case errors.As(err, &pgErr):
		return postgresServerError(pgErr, err)
	}
	return DependencyError("postgres", err)
}

// postgresServerError classifies an error the server answered, by its
// SQLSTATE; err is the wrapped error to return.
func postgresServerError(pgErr *pgconn.PgError, err error) error {
	switch pgErr.Code {
	case "57014", // query_canceled: statement_timeout, or a cancel request
		"55P03": // lock_not_available: lock_timeout
		return feature.Timeout("postgres cancelled a statement that ran out of time", err)
	case "22021", // character_not_in_repertoire: invalid UTF-8
		"22P05": // untranslatable_character: NUL (\u0000) in text or jsonb
		// A last line of defence: the service refuses such text before it
		// reaches a store (feature.ValidText, strictjson), so this is a
		// client error that slipped through, not a server failure.
		return &feature.Error{Code: feature.CodeInvalid, Err: err,
			Message: "the input holds text postgres cannot store (invalid UTF-8 or a NUL character)",
			Fields:  []feature.FieldError{{Field: "body", Problem: "invalid UTF-8 or NUL character"}}}
	case "25006": // read_only_sql_transaction
		return &feature.Error{Code: feature.CodeInternal, Err: err,
			Message: "postgres is read-only (a standby, or default_transaction_read_only is on); the system of record must accept writes"}
	}
	class := pgErr.Code
	if len(class) > 2 {
		class = class[:2]
	}
	switch class {
	case "08", // connection exception
		"40", // transaction rollback: deadlock, serialization failure
		"53", // insufficient resources: too many connections, disk full
		"57", // operator intervention: admin shutdown, cannot connect now
		"58": // system error: I/O
		return feature.Unavailable("postgres is unavailable", err)
	}
	return err
}

// PostgresWriteError is PostgresError for a statement that commits a write
// (an autocommitted write, or a COMMIT): when the connection broke after
// the statement was sent, the server may have committed it before the
// answer was lost, so the failure is feature.CodeOutcomeUnknown (503,
// "retry with the same Idempotency-Key"), not unavailable ("nothing was
// written"). So is a FATAL or PANIC error, which ends the session and can
// arrive after the commit (a shutdown's 57P01 admin_shutdown). A failure
// known to precede any data sent (pgconn.SafeToRetry: a refused connection,
// a closed pool), an error the statement itself got, and an ended context
// keep their PostgresError class.
func PostgresWriteError(op string, err error) error {
	return postgresWriteError(op, err, false)
}

// PostgresCommitError is PostgresWriteError for the COMMIT of a
// transaction. A COMMIT is only reached once every statement before it
// succeeded on a live connection, so a connection failure now is taken as
// lost after sending even when the driver calls it safe to retry: pgx
// reports an answer lost to a COMMIT as "conn closed", a lock error it
// marks safe to retry, though the COMMIT had reached the server.
func PostgresCommitError(op string, err error) error {
	return postgresWriteError(op, err, true)
}

func postgresWriteError(op string, err error, commit bool) error {
	coded := PostgresError(op, err)
	if writeOutcomeUnknown(err, commit) {
		return feature.OutcomeUnknown("the connection to postgres was lost while the write was committing: "+
			"it may or may not have been committed; retry with the same Idempotency-Key", coded)
	}
	return coded
}

func writeOutcomeUnknown(err error, commit bool) bool {
	var (
		pgErr   *pgconn.PgError
		connErr *pgconn.ConnectError
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &connErr), errors.Is(err, puddle.ErrClosedPool):
		return false
	case errors.As(err, &pgErr):
		return pgErr.Severity == "FATAL" || pgErr.Severity == "PANIC"
	}
	return commit || !pgconn.SafeToRetry(err)
}
