package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/store"
)

func errNoRoute(r *http.Request) error {
	return feature.NotFound("no route for "+r.Method+" "+r.URL.Path, feature.FieldError{Field: "path", Problem: "no such endpoint"})
}

func errMethod(r *http.Request) error {
	return &feature.Error{Code: feature.CodeMethodNotAllowed, Message: "method " + r.Method + " is not allowed on " + r.URL.Path,
		Fields: []feature.FieldError{{Field: "method", Problem: "not allowed"}}}
}

func handleHealth(h interface {
	Check(ctx context.Context) health.Report
}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := h.Check(r.Context())
		st := http.StatusOK
		if rep.Status == store.HealthDown {
			st = http.StatusServiceUnavailable
		}
		encode(w, st, rep)
	})
}

func handleLive() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]store.HealthStatus{"status": store.HealthUp})
	})
}

func handleReady(ready func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ready != nil && ready() {
			encode(w, http.StatusOK, map[string]store.HealthStatus{"status": store.HealthUp})
			return
		}
		encode(w, http.StatusServiceUnavailable, map[string]store.HealthStatus{"status": store.HealthDown})
	})
}

func handleInfo(info Info) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, struct {
			Info
			UptimeSeconds float64 `json:"uptime_seconds"`
		}{info, time.Since(info.StartTime).Seconds()})
	})
}

func handleOpenAPI(doc []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(doc)
	})
}

func handleIngest(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		res, err := svc.IngestPayload(r.Context(), body)
		if err != nil {
			if fe, ok := err.(*feature.Error); ok && fe.Code == feature.CodeInvalid && res.Received > 0 {
				// Nothing was valid: 422 with the per-record report.
				encode(w, http.StatusUnprocessableEntity, struct {
					errorBody
					service.IngestResult
				}{errorBody{Code: fe.Code, Message: fe.Message, Fields: fe.Fields, RequestID: requestID(r.Context())}, res})
				return
			}
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, res)
	})
}

func handleListGroups(svc *service.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]any{"feature_groups": svc.ListGroups(r.Context())})
	})
}

func handleGetGroup(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := svc.GetGroup(r.Context(), chi.URLParam(r, "group"))
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, g)
	})
}

// groupRequest is the body of PUT /v1/feature-groups/{group}.
type groupRequest struct {
	EntityKey   string            `json:"entity_key"`
	Features    []feature.Spec    `json:"features"`
	TTL         feature.Duration  `json:"ttl_seconds"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
}

func handlePutGroup(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req groupRequest
		if err := decode(r, &req); err != nil {
			writeError(w, r, log, err)
			return
		}
		g := feature.Group{Name: chi.URLParam(r, "group"), EntityKey: req.EntityKey, Features: req.Features,
			TTL: req.TTL, Description: req.Description, Tags: req.Tags}
		out, created, err := svc.PutGroup(r.Context(), g)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		st := http.StatusOK
		if created {
			st = http.StatusCreated
		}
		encode(w, st, out)
	})
}

func handleDeleteGroup(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := svc.DeleteGroup(r.Context(), chi.URLParam(r, "group")); err != nil {
			writeError(w, r, log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func handleGetEntity(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
				writeError(w, r, log, feature.Invalid("as_of must be an RFC 3339 time, e.g. 2025-06-05T02:24:12Z",
					feature.FieldError{Field: "as_of", Problem: "not an RFC 3339 time"}))
				return
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
		res, err := svc.GetEntity(r.Context(), chi.URLParam(r, "group"), id, features, asOf)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, res)
	})
}

func handleWriteRows(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rows []service.RowInput
		if err := decode(r, &rows); err != nil {
			writeError(w, r, log, err)
			return
		}
		res, err := svc.WriteRows(r.Context(), chi.URLParam(r, "group"), rows)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, res)
	})
}

func handleOnlineFeatures(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req service.OnlineRequest
		if err := decode(r, &req); err != nil {
			writeError(w, r, log, err)
			return
		}
		resp, err := svc.GetOnlineFeatures(r.Context(), req)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, resp)
	})
}

func handleStats(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := svc.Stats(r.Context())
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		encode(w, http.StatusOK, st)
	})
}

func handleRecomputeStatus(svc *service.Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, svc.RecomputeStatus())
	})
}

func handleRecompute(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := svc.StartRecompute(r.Context()); err != nil {
			writeError(w, r, log, err)
			return
		}
		w.Header().Set("Location", "/v1/recompute")
		encode(w, http.StatusAccepted, svc.RecomputeStatus())
	})
}
