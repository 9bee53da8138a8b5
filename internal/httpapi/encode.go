package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/strictjson"
)

// encode writes v as JSON with the given status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing left to tell it
}

// jsonAppender is a response that writes its own JSON, byte for byte what
// encoding/json would (the read responses: service.OnlineResponse and
// service.EntityView), failing on a value it cannot.
type jsonAppender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// bufPool holds response buffers for the appended responses.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf is the largest buffer put back in bufPool: a rare huge
// response is left to the collector rather than kept for ever.
const maxPooledBuf = 1 << 20

// jsonContentType is the Content-Type of encodeBody's answers, shared
// like the security headers' values (see securityHeaders).
var jsonContentType = []string{"application/json"}

// encodeBody is encode for a handler's answer: a jsonAppender appends its
// JSON to a pooled buffer, written with one Write as json.Encoder would,
// newline included; anything else, or an appender that failed, goes
// through encode.
func encodeBody(w http.ResponseWriter, status int, v any) {
	a, ok := v.(jsonAppender)
	if !ok {
		encode(w, status, v)
		return
	}
	bp, _ := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBuf {
			bufPool.Put(bp)
		}
	}()
	b, err := a.AppendJSON((*bp)[:0])
	*bp = b
	if err != nil {
		encode(w, status, v)
		return
	}
	*bp = append(b, '\n')
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(*bp) // the client went away; nothing left to tell it
}

// decode strictly decodes one JSON document into v: unknown fields, wrong
// types, trailing data and an oversized body are coded errors naming the
// field at fault; so is what encoding/json would accept silently (invalid
// UTF-8, NUL, duplicate keys, field names in another case: strictjson).
// Numbers in untyped places decode as json.Number.
//
// root names the document in field paths ("rows" makes [0].values.x
// rows[0].values.x); "" leaves paths as they are.
func decode(r *http.Request, v any, root string) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if req, ok := v.(*service.OnlineRequest); ok && decodeOnlineRequest(b, req) {
		return nil // the hot read's usual request, checked and decoded in one pass
	}
	if err := strictjson.Check(b, reflect.TypeOf(v)); err != nil {
		return strictError(err, root)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return feature.Invalid("malformed JSON: data after the document", feature.FieldError{Field: "body", Problem: "trailing data after the JSON document"})
	}
	return nil
}

// strictError codes a strictjson refusal: malformed JSON is about the
// body; a strict rule names the field it found at fault.
func strictError(err error, root string) error {
	var se *strictjson.Error
	if !errors.As(err, &se) {
		return feature.Invalid("invalid JSON: "+err.Error(), feature.FieldError{Field: "body", Problem: err.Error()})
	}
	if se.Syntax {
		return feature.Invalid(fmt.Sprintf("malformed JSON at byte %d", se.Offset), feature.FieldError{Field: "body", Problem: se.Problem})
	}
	field := se.Path
	switch {
	case root != "" && strings.HasPrefix(field, "["):
		field = root + field
	case root != "" && field != "":
		field = root + "." + field
	case field == "":
		field = "body"
	}
	return feature.Invalid(fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Problem), feature.FieldError{Field: field, Problem: se.Problem})
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		return feature.Canceled("the client closed the connection while sending the body", err)
	}
	return feature.Invalid("could not read the request body", feature.FieldError{Field: "body", Problem: err.Error()})
}

// jsonError turns a decoding error into a coded error naming the field.
func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return bodyError(err)
	case errors.As(err, &syn):
		return feature.Invalid(fmt.Sprintf("malformed JSON at byte %d", syn.Offset), feature.FieldError{Field: "body", Problem: syn.Error()})
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return feature.Invalid("malformed JSON: unexpected end of the document", feature.FieldError{Field: "body", Problem: "truncated JSON"})
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return feature.Invalid("wrong JSON type for "+field, feature.FieldError{Field: field, Problem: "must be " + jsonTypeName(typ.Type) + ", got " + typ.Value})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if name == "" {
			return feature.Invalid(`unknown field ""`, feature.FieldError{Field: "body", Problem: `unknown field ""`})
		}
		return feature.Invalid("unknown field "+name, feature.FieldError{Field: name, Problem: "unknown field"})
	}
	return feature.Invalid("invalid JSON: "+err.Error(), feature.FieldError{Field: "body", Problem: err.Error()})
}

// jsonTypeName names the JSON type a Go type decodes from, by its kind: a
// named type such as feature.ValueType is a string, not an object.
func jsonTypeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Time]():
		return "an RFC 3339 time string"
	case reflect.TypeFor[feature.Duration]():
		return "a whole number of seconds"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	}
	return t.String()
}

// errorBody is every error response: a machine-readable code, a message
// safe to show, the fields at fault and the request id to quote.
type errorBody struct {
	Code      feature.Code         `json:"code"`
	Message   string               `json:"message"`
	Fields    []feature.FieldError `json:"fields"`
	RequestID string               `json:"request_id,omitempty"`
}

// StatusClientClosedRequest is the status recorded for a request whose
// client went away before the answer (nginx's 499, also Prometheus's). The
// client never reads it; the access log and the HTTP metrics do.
const StatusClientClosedRequest = 499

// status maps an error code to its HTTP status: the one place it is done.
func status(c feature.Code) int {
	switch c {
	case feature.CodeInvalid:
		return http.StatusBadRequest
	case feature.CodeNotFound:
		return http.StatusNotFound
	case feature.CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case feature.CodeConflict:
		return http.StatusConflict
	case feature.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case feature.CodeUnauthenticated:
		return http.StatusUnauthorized
	case feature.CodeForbidden:
		return http.StatusForbidden
	case feature.CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	case feature.CodeNotAcceptable:
		return http.StatusNotAcceptable
	case feature.CodeHistoryExpired:
		return http.StatusGone
	case feature.CodeCanceled:
		return StatusClientClosedRequest
	case feature.CodeUnavailable:
		return http.StatusServiceUnavailable
	case feature.CodeTimeout:
		return http.StatusGatewayTimeout
	case feature.CodeRateLimited:
		return http.StatusTooManyRequests
	case feature.CodeOverloaded, feature.CodeOutcomeUnknown:
		return http.StatusServiceUnavailable
	case feature.CodeIdempotencyKeyReused, feature.CodeLimitExceeded:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// coded returns err as a *feature.Error: err itself when it is one (or
// wraps one), otherwise a new one of err's code with a safe message and err
// as the cause.
func coded(err error) *feature.Error {
	var fe *feature.Error
	if errors.As(err, &fe) {
		return fe
	}
	code := feature.ErrorCode(err)
	msg := "internal error"
	switch code {
	case feature.CodeCanceled:
		msg = "the client went away before the answer"
	case feature.CodeTimeout:
		msg = "the request did not finish within its deadline"
	}
	return &feature.Error{Code: code, Message: msg, Err: err}
}

// writeError answers with err's code, judged by the request's context first
// (feature.Classify: a client that went away is 499 canceled, a passed
// deadline 504 timeout). The client gets the code, the message and the
// fields; the cause goes to the access log only.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	err = feature.Classify(r.Context(), err)
	fe := coded(err)
	noteError(r.Context(), err)
	body := errorBody{Code: fe.Code, Message: fe.Message, Fields: fe.Fields, RequestID: requestID(r.Context())}
	if body.Fields == nil {
		body.Fields = []feature.FieldError{}
	}
	switch fe.Code {
	case feature.CodeUnavailable, feature.CodeOverloaded, feature.CodeOutcomeUnknown, feature.CodeRateLimited:
		if w.Header().Get("Retry-After") == "" { // the rate limiter sets its own
			w.Header().Set("Retry-After", "1")
		}
	}
	encode(w, status(fe.Code), body)
}
