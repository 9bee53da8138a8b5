package feature

import (
	"context"
	"errors"
	"fmt"
)

// Code is a machine-readable error class: what happened, not where. The HTTP
// layer maps each code to a status in one place; the client sees the code,
// the message and the fields, the log sees the wrapped cause.
//
// The server-side classes are kept apart because they call for different
// actions: canceled is no failure at all (the client left), timeout is work
// that ran out of time, unavailable a dependency that cannot be reached, and
// internal a failure that neither waiting nor retrying fixes.
type Code string

const (
	CodeInvalid  Code = "invalid"   // bad input: 400
	CodeNotFound Code = "not_found" // unknown group, entity or feature: 404
	// CodeMethodNotAllowed is a known path asked with the wrong method: 405.
	CodeMethodNotAllowed Code = "method_not_allowed"
	CodeConflict         Code = "conflict"  // state conflict, e.g. a schema change that drops data: 409
	CodeTooLarge         Code = "too_large" // request body or batch over its limit: 413
	// CodeUnauthenticated is a request to a protected route without valid
	// credentials (none, malformed, unknown, expired): 401 with
	// WWW-Authenticate.
	CodeUnauthenticated Code = "unauthenticated"
	// CodeForbidden is a caller whose role does not allow the route, or a
	// cross-origin write a browser was made to send: 403.
	CodeForbidden Code = "forbidden"
	// CodeUnsupportedMediaType is a request body that is not
	// application/json: 415.
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	// CodeNotAcceptable is a request whose Accept header names no format
	// the answer can be written in: 406.
	CodeNotAcceptable Code = "not_acceptable"
	// CodeHistoryExpired is an as-of read of a time older than the group's
	// history retention: the history that would answer it may have been
	// pruned, so no value is given rather than a possibly wrong one: 410.
	CodeHistoryExpired Code = "history_expired"
	// CodeCanceled is a request whose client went away before the answer
	// (context.Canceled): 499, as nginx and Prometheus record it. It is not a
	// server error; the client never reads the answer.
	CodeCanceled Code = "canceled"
	// CodeInternal is a failure the client cannot fix and a retry will not
	// fix: a bug, or a misconfigured dependency (a read-only database): 500.
	CodeInternal Code = "internal"
	// CodeUnavailable is a dependency that cannot be reached or cannot
	// serve now (refused or dropped connections, a database shutting down or
	// out of connections); the client may retry: 503.
	CodeUnavailable Code = "unavailable"
	// CodeTimeout is work that ran out of time: the request's deadline
	// passed, or the database cancelled a statement (statement_timeout,
	// lock_timeout): 504.
	CodeTimeout Code = "timeout"
	// CodeRateLimited is a client over its request rate or connection
	// allowance: 429 with Retry-After. Not a server error.
	CodeRateLimited Code = "rate_limited"
	// CodeOverloaded is a request shed because the service is at its
	// concurrency limit: 503 with Retry-After, answered at once so that the
	// requests it does take keep their latency. Nothing was done.
	CodeOverloaded Code = "overloaded"
	// CodeOutcomeUnknown is a write whose commit outcome is unknown: the
	// connection to the system of record broke after the write was sent, so
	// it may or may not have been committed: 503. Retrying with the same
	// Idempotency-Key is safe.
	CodeOutcomeUnknown Code = "outcome_unknown"
	// CodeIdempotencyKeyReused is an Idempotency-Key already used for a
	// different request (another method, path or body): 422.
	CodeIdempotencyKeyReused Code = "idempotency_key_reused"
	// CodeLimitExceeded is a request that would take the registry past a
	// configured limit (the number of feature groups): 422.
	CodeLimitExceeded Code = "limit_exceeded"
)

// Codes returns every code, in the order above.
func Codes() []Code {
	return []Code{
		CodeInvalid, CodeNotFound, CodeMethodNotAllowed, CodeConflict, CodeTooLarge,
		CodeUnauthenticated, CodeForbidden, CodeUnsupportedMediaType, CodeNotAcceptable, CodeHistoryExpired,
		CodeCanceled, CodeInternal, CodeUnavailable, CodeTimeout,
		CodeRateLimited, CodeOverloaded, CodeOutcomeUnknown, CodeIdempotencyKeyReused, CodeLimitExceeded,
	}
}

// FieldError names one field at fault and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Problem string `json:"problem"`
}

// Error is a domain error with a code, a message safe to show to clients,
// the fields at fault, and the underlying cause (never shown to clients).
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Invalid is a bad-input error naming the fields at fault.
func Invalid(msg string, fields ...FieldError) error {
	return &Error{Code: CodeInvalid, Message: msg, Fields: fields}
}

// NotFound is an error for something that does not exist.
func NotFound(msg string, fields ...FieldError) error {
	return &Error{Code: CodeNotFound, Message: msg, Fields: fields}
}

// Unavailable wraps the failure of a dependency that cannot be reached;
// the client may retry.
func Unavailable(msg string, cause error) error {
	return &Error{Code: CodeUnavailable, Message: msg, Err: cause}
}

// Timeout wraps work that ran out of time.
func Timeout(msg string, cause error) error {
	return &Error{Code: CodeTimeout, Message: msg, Err: cause}
}

// Canceled wraps work abandoned because its caller went away.
func Canceled(msg string, cause error) error {
	return &Error{Code: CodeCanceled, Message: msg, Err: cause}
}

// Conflict is a state conflict.
func Conflict(msg string, fields ...FieldError) error {
	return &Error{Code: CodeConflict, Message: msg, Fields: fields}
}

// HistoryExpired is an as-of read older than the retained history.
func HistoryExpired(msg string, fields ...FieldError) error {
	return &Error{Code: CodeHistoryExpired, Message: msg, Fields: fields}
}

// TooLarge is a request, or a part of it, over its size limit.
func TooLarge(msg string, fields ...FieldError) error {
	return &Error{Code: CodeTooLarge, Message: msg, Fields: fields}
}

// OutcomeUnknown wraps a write whose commit outcome is unknown.
func OutcomeUnknown(msg string, cause error) error {
	return &Error{Code: CodeOutcomeUnknown, Message: msg, Err: cause}
}

// ErrorCode returns the code of err: the code of the first *Error in its
// chain; for an uncoded error, CodeCanceled if it comes from a canceled
// context, CodeTimeout if from a passed deadline, and CodeInternal
// otherwise; "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	}
	return CodeInternal
}

// Classify returns err coded by what happened to the work, judged from its
// context first: once ctx has ended, a canceled context (the client went
// away) makes any error CodeCanceled, whatever the interrupted work reported
// (a broken connection, a query cancelled on its behalf); a passed deadline
// makes a server-side failure (internal, unavailable, timeout) a CodeTimeout
// that says the request's deadline passed. An answer
// the work had already decided (invalid, not found, ...) stands. While ctx
// is live, err is returned unchanged. nil stays nil.
func Classify(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	code := ErrorCode(err)
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		if code == CodeCanceled {
			return err
		}
		return Canceled("the client went away before the answer", err)
	case code == CodeInternal || code == CodeUnavailable || code == CodeTimeout:
		return Timeout("the request did not finish within its deadline", err)
	}
	return err
}
