package feature

import (
	"errors"
	"fmt"
)

// Code is a machine-readable error class. The HTTP layer maps each code to a
// status in one place; the client sees the code, the message and the fields,
// the log sees the wrapped cause.
type Code string

const (
	CodeInvalid     Code = "invalid"     // bad input: 400
	CodeNotFound    Code = "not_found"   // unknown group, entity or feature: 404
	CodeConflict    Code = "conflict"    // state conflict, e.g. a schema change that drops data: 409
	CodeTooLarge    Code = "too_large"   // request body or batch over its limit: 413
	CodeUnavailable Code = "unavailable" // a dependency is down; retry later: 503
	CodeInternal    Code = "internal"    // a bug: 500
	// CodeMethodNotAllowed is a known path asked with the wrong method: 405.
	CodeMethodNotAllowed Code = "method_not_allowed"
)

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

// Unavailable wraps a dependency failure; the client may retry.
func Unavailable(msg string, cause error) error {
	return &Error{Code: CodeUnavailable, Message: msg, Err: cause}
}

// Conflict is a state conflict.
func Conflict(msg string, fields ...FieldError) error {
	return &Error{Code: CodeConflict, Message: msg, Fields: fields}
}

// ErrorCode returns the code of err: the code of the first *Error in its
// chain, CodeInternal for any other non-nil error, "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
