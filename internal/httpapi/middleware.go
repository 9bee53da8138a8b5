package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
)

type ctxKey struct{}

// requestState is what the middlewares keep about a request in its
// context: one value, for fewer context layers and request copies.
type requestState struct {
	id      string
	outcome outcome // the error the request was answered with, for accessLog
}

func stateOf(ctx context.Context) *requestState {
	st, _ := ctx.Value(ctxKey{}).(*requestState)
	return st
}

func requestID(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// withRequestID takes the client's X-Request-Id when it is sane, otherwise
// makes one, and echoes it in the response.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !feature.ValidEntityID(id) || len(id) > 128 {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, &requestState{id: id})))
	})
}

// statusWriter remembers the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// outcome is where writeError leaves the error a request was answered
// with, for its access log line.
type outcome struct{ err error }

// noteError records err as the request's error for the access log.
func noteError(ctx context.Context, err error) {
	if st := stateOf(ctx); st != nil {
		st.outcome.err = err
	}
}

// accessLog writes one JSON line per request, with the error code and cause
// of a request answered with an error, and turns a panic into a 500.
//
// Its level says who has to act. Info: a success, a client error (a 429
// included), or a client that went away (499: nobody to answer, nothing
// broken). Warn: a timeout (504), an unreachable dependency, a shed request
// or a write of unknown outcome (503), conditions of the
// environment the service reports and survives, which the dependency and
// burn-rate alerts watch. Error: an internal error (500), which takes a fix,
// so the error log holds what needs one.
//
// The request line carries no caller: it would always name logRequest,
// and finding it took a stack walk per request.
func accessLog(log *zap.Logger) func(http.Handler) http.Handler {
	reqLog := log.WithOptions(zap.WithCaller(false))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			st := stateOf(r.Context())
			if st == nil { // outside withRequestID
				st = &requestState{}
				r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, st))
			}
			o := &st.outcome
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					log.Error("handler panicked", zap.String("request_id", requestID(r.Context())),
						zap.String("panic", fmt.Sprint(p)), zap.Stack("stack"))
					if sw.status == 0 {
						writeError(sw, r, fmt.Errorf("panic: %v", p))
					}
				}
				logRequest(reqLog, r, sw, o.err, time.Since(start))
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// logRequest writes the access log line of one request.
func logRequest(log *zap.Logger, r *http.Request, sw *statusWriter, err error, d time.Duration) {
	route := "unmatched"
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		route = rc.RoutePattern()
	}
	st := sw.status
	if st == 0 {
		st = http.StatusOK
	}
	fp := logFields.Get().(*[]zap.Field)
	defer func() { clear(*fp); logFields.Put(fp) }()
	fields := append((*fp)[:0],
		zap.String("request_id", requestID(r.Context())),
		zap.String("method", r.Method),
		zap.String("route", route),
		zap.String("path", r.URL.Path),
		zap.Int("status", st),
		zap.Float64("duration_ms", float64(d.Microseconds())/1000),
		zap.Int("bytes", sw.bytes),
		zap.String("remote", r.RemoteAddr))
	fields = append(fields, callerFields(r.Context())...)
	lvl := zap.InfoLevel
	if err != nil {
		code := feature.ErrorCode(err)
		fields = append(fields, zap.String("code", string(code)), zap.Error(err))
		switch code {
		case feature.CodeTimeout, feature.CodeUnavailable, feature.CodeOverloaded, feature.CodeOutcomeUnknown:
			lvl = zap.WarnLevel
		case feature.CodeInternal:
			lvl = zap.ErrorLevel
		}
	}
	log.Log(lvl, "request", fields...)
	*fp = fields // keep what append grew
}

// logFields recycles the access log's field slices: zap reads a line's
// fields only while writing it, and a request's dozen fields were its
// largest allocation after the body.
var logFields = sync.Pool{New: func() any { s := make([]zap.Field, 0, 16); return &s }}

// limits bounds the request body and the time a request may take. A body
// declared larger than maxBody is answered 413 at once, without reading a
// byte of it, and the connection is closed (net/http does not drain it); an
// undeclared one is cut the moment it crosses maxBody (readBody). The bytes
// read are held against budget (nil: unbounded) until the request has been
// answered.
func limits(maxBody int64, budget *ByteBudget, timeout time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > maxBody {
				w.Header().Set("Connection", "close")
				writeError(w, r, tooLarge(maxBody))
				return
			}
			if r.Body != nil {
				r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			}
			st := &bodyState{max: maxBody, budget: budget}
			defer st.release()
			ctx := context.WithValue(r.Context(), bodyKey{}, st)
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// validInput answers 400 for a request whose path or query is not valid
// text (invalid UTF-8, or a NUL: Postgres refuses both, so they must never
// reach it) or whose query string is malformed (url.Query would drop the
// bad pair silently).
func validInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !feature.ValidText(r.URL.Path) {
			writeError(w, r, feature.Invalid("the path is not valid UTF-8 text",
				feature.FieldError{Field: "path", Problem: "must be valid UTF-8 without NUL characters"}))
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, r, feature.Invalid("malformed query string",
				feature.FieldError{Field: "query", Problem: err.Error()}))
			return
		}
		for k, vs := range q {
			ok := feature.ValidText(k)
			for _, v := range vs {
				ok = ok && feature.ValidText(v)
			}
			if !ok {
				writeError(w, r, feature.Invalid("the query string is not valid UTF-8 text",
					feature.FieldError{Field: "query", Problem: "must be valid UTF-8 without NUL characters"}))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
