package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/store"
)

// response is what a handler answers when it does not fail: a status (0
// means 200), a value encoded as JSON (none when nil: a 204) and headers to
// set.
type response struct {
	status int
	body   any
	raw    []byte // a JSON body already encoded (a replayed answer); wins over body
	header map[string]string
}

// apiFunc is the shape of every JSON handler: it returns its answer or an
// error, and wrap does the rest.
type apiFunc func(r *http.Request) (response, error)

// wrap makes an apiFunc a handler: the answer is encoded as JSON with its
// status, an error becomes the error response of its code (writeError).
func wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := f(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		for k, v := range res.header {
			w.Header().Set(k, v)
		}
		st := res.status
		if st == 0 {
			st = http.StatusOK
		}
		if res.raw != nil {
			if len(res.raw) > 0 {
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(st)
			_, _ = w.Write(res.raw)
			return
		}
		if res.body == nil {
			w.WriteHeader(st)
			return
		}
		encodeBody(w, st, res.body)
	})
}

// withBody decodes the request body strictly into a T (decode) before
// calling f with it.
func withBody[T any](f func(r *http.Request, req T) (response, error)) apiFunc {
	return withBodyAt("", f)
}

// withBodyAt is withBody naming the document root in field paths.
func withBodyAt[T any](root string, f func(r *http.Request, req T) (response, error)) apiFunc {
	return func(r *http.Request) (response, error) {
		var req T
		if err := decode(r, &req, root); err != nil {
			return response{}, err
		}
		return f(r, req)
	}
}

// ok answers 200 with v, or fails with err: return ok(svc.Call(ctx)).
func ok[T any](v T, err error) (response, error) {
	if err != nil {
		return response{}, err
	}
	return response{body: v}, nil
}

func errNoRoute(r *http.Request) error {
	return feature.NotFound("no route for "+r.Method+" "+r.URL.Path, feature.FieldError{Field: "path", Problem: "no such endpoint"})
}

func errMethod(r *http.Request) error {
	return &feature.Error{Code: feature.CodeMethodNotAllowed, Message: "method " + r.Method + " is not allowed on " + r.URL.Path,
		Fields: []feature.FieldError{{Field: "method", Problem: "not allowed"}}}
}

// HealthReporter answers /health: a *health.Cache, which re-checks the
// dependencies at most once per its max age however often it is asked.
type HealthReporter interface {
	Check(ctx context.Context) health.Report
}

// healthSummary is what /health shows a caller not allowed the details.
type healthSummary struct {
	Status    store.HealthStatus `json:"status"`
	CheckedAt time.Time          `json:"checked_at"`
}

// handleHealth answers the (cached) health report: in full to a caller
// details allows (nil: everyone), as its overall status otherwise.
func handleHealth(h HealthReporter, details func(*http.Request) bool) apiFunc {
	return func(r *http.Request) (response, error) {
		rep := h.Check(r.Context())
		st := http.StatusOK
		if rep.Status == store.HealthDown {
			st = http.StatusServiceUnavailable
		}
		if details != nil && !details(r) {
			return response{status: st, body: healthSummary{Status: rep.Status, CheckedAt: rep.CheckedAt}}, nil
		}
		return response{status: st, body: rep}, nil
	}
}

func handleLive() apiFunc {
	return func(*http.Request) (response, error) {
		return response{body: map[string]store.HealthStatus{"status": store.HealthUp}}, nil
	}
}

func handleReady(ready func() bool) apiFunc {
	return func(*http.Request) (response, error) {
		if ready != nil && ready() {
			return response{body: map[string]store.HealthStatus{"status": store.HealthUp}}, nil
		}
		return response{status: http.StatusServiceUnavailable, body: map[string]store.HealthStatus{"status": store.HealthDown}}, nil
	}
}

func handleInfo(info Info) apiFunc {
	return func(*http.Request) (response, error) {
		return response{body: struct {
			Info
			UptimeSeconds float64 `json:"uptime_seconds"`
		}{info, time.Since(info.StartTime).Seconds()}}, nil
	}
}

// handleOpenAPI serves the API description: YAML, not an apiFunc.
func handleOpenAPI(doc []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Cache-Control", "public, max-age=300") // static for a build; unlike the API answers, meant to be cached
		_, _ = w.Write(doc)
	})
}

// The answers of the writes, as their results render: one function per
// write for the handler and for the record an Idempotency-Key keeps.
func ingestAnswer(result any) (int, []byte) { return renderJSON(http.StatusOK, result) }

func rowsAnswer(result any) (int, []byte) { return renderJSON(http.StatusOK, result) }

// putGroupStatus is 201 for a group the PUT created (its first schema
// version), 200 for one it replaced.
func putGroupStatus(g feature.Group) int {
	if g.SchemaVersion == 1 {
		return http.StatusCreated
	}
	return http.StatusOK
}

func putGroupAnswer(result any) (int, []byte) {
	g, _ := result.(feature.Group)
	return renderJSON(putGroupStatus(g), result)
}

func noContentAnswer(any) (int, []byte) { return http.StatusNoContent, nil }

func handleIngest(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		body, err := readBody(r)
		if err != nil {
			return response{}, err
		}
		res, err := svc.IngestPayload(r.Context(), body)
		if fe, isFE := err.(*feature.Error); isFE && fe.Code == feature.CodeInvalid && res.Received > 0 {
			// Nothing was valid: 422 with the per-record report.
			return response{status: http.StatusUnprocessableEntity, body: struct {
				errorBody
				service.IngestResult
			}{errorBody{Code: fe.Code, Message: fe.Message, Fields: fe.Fields, RequestID: requestID(r.Context())}, res}}, nil
		}
		return ok(res, err)
	}
}

func handleListGroups(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		return response{body: map[string]any{"feature_groups": svc.ListGroups(r.Context())}}, nil
	}
}

func handleGetGroup(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		return ok(svc.GetGroup(r.Context(), chi.URLParam(r, "group")))
	}
}

// groupRequest is the body of PUT /v1/feature-groups/{group}.
type groupRequest struct {
	EntityKey   string            `json:"entity_key"`
	Features    []feature.Spec    `json:"features"`
	TTL         feature.Duration  `json:"ttl_seconds"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
}

func handlePutGroup(svc *service.Service) apiFunc {
	return withBody(func(r *http.Request, req groupRequest) (response, error) {
		g := feature.Group{Name: chi.URLParam(r, "group"), EntityKey: req.EntityKey, Features: req.Features,
			TTL: req.TTL, Description: req.Description, Tags: req.Tags}
		out, _, err := svc.PutGroup(r.Context(), g)
		if err != nil {
			return response{}, err
		}
		return response{status: putGroupStatus(out), body: out}, nil
	})
}

func handleDeleteGroup(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		if err := svc.DeleteGroup(r.Context(), chi.URLParam(r, "group")); err != nil {
			return response{}, err
		}
		return response{status: http.StatusNoContent}, nil
	}
}

func handleGetEntity(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		q := r.URL.Query()
		var features []string
		if f := q.Get("features"); f != "" {
			for _, name := range strings.Split(f, ",") {
				if name = strings.TrimSpace(name); name != "" {
					features = append(features, name)
				}
			}
		}
		var asOf *time.Time
		if s := q.Get("as_of"); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return response{}, feature.Invalid("as_of must be an RFC 3339 time, e.g. 2025-06-05T02:24:12Z",
					feature.FieldError{Field: "as_of", Problem: "not an RFC 3339 time"})
			}
			asOf = &t
		}
		id := chi.URLParam(r, "id")
		if r.URL.RawPath != "" {
			// chi matched the escaped path, so the id is still escaped
			// (an id with a slash arrives as a%2Fb).
			if u, err := url.PathUnescape(id); err == nil {
				id = u
			}
		}
		return ok(svc.GetEntityView(r.Context(), chi.URLParam(r, "group"), id, features, asOf))
	}
}

func handleWriteRows(svc *service.Service) apiFunc {
	return withBodyAt("rows", func(r *http.Request, rows []service.RowInput) (response, error) {
		return ok(svc.WriteRows(r.Context(), chi.URLParam(r, "group"), rows))
	})
}

func handleOnlineFeatures(svc *service.Service) apiFunc {
	return withBody(func(r *http.Request, req service.OnlineRequest) (response, error) {
		return ok(svc.GetOnlineFeatures(r.Context(), req))
	})
}

// handlePush is Feast's POST /push: a push source name names a group.
func handlePush(svc *service.Service) apiFunc {
	return withBody(func(r *http.Request, req service.PushRequest) (response, error) {
		return ok(svc.Push(r.Context(), req))
	})
}

// handleWriteToOnlineStore is Feast's POST /write-to-online-store.
func handleWriteToOnlineStore(svc *service.Service) apiFunc {
	return withBody(func(r *http.Request, req service.WriteToOnlineStoreRequest) (response, error) {
		return ok(svc.WriteToOnlineStore(r.Context(), req))
	})
}

func handleStats(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		return ok(svc.Stats(r.Context()))
	}
}

func handleRecomputeStatus(svc *service.Service) apiFunc {
	return func(*http.Request) (response, error) {
		return response{body: svc.RecomputeStatus()}, nil
	}
}

func handleRecompute(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		if err := svc.StartRecompute(r.Context()); err != nil {
			return response{}, err
		}
		return response{status: http.StatusAccepted, body: svc.RecomputeStatus(),
			header: map[string]string{"Location": "/v1/recompute"}}, nil
	}
}
