package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/export"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/service"
)

// handleHistorical is POST /get-historical-features: a training set,
// streamed. It is not an apiFunc: everything that can be checked before
// the first row (the format, the request, the features, the first chunk
// of entity rows, the store's first answer) is answered as an Error with
// its status; once the first byte of the table is out, an error can no
// longer change the status, so the response is aborted (the client sees a
// broken transfer, never a short table that looks whole) and the error is
// logged.
func handleHistorical(svc *service.Service, log *zap.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		format, err := historicalFormat(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		rc := http.NewResponseController(w)
		req, err := historicalRequest(r, rc)
		if err != nil {
			writeError(w, r, err)
			return
		}
		sink := &responseSink{w: w, rc: rc, format: format}
		res, err := svc.GetHistoricalFeatures(r.Context(), req, sink)
		if err == nil && sink.out != nil {
			err = sink.out.Close()
		}
		if err == nil {
			return
		}
		if !sink.begun() {
			writeError(w, r, err)
			return
		}
		noteError(r.Context(), err)
		log.Error("training set aborted after streaming began", zap.String("request_id", requestID(r.Context())),
			zap.Int("rows_written", res.Rows), zap.Error(err))
		panic(http.ErrAbortHandler)
	})
}

// historicalFormat is the output format: ?format= (csv, jsonl, parquet)
// when given, else the Accept header's choice (CSV when it names none in
// particular); 406 when Accept names only formats this service cannot
// write.
func historicalFormat(r *http.Request) (export.Format, error) {
	if s := r.URL.Query().Get("format"); s != "" {
		f, err := export.ParseFormat(s)
		if err != nil {
			return "", feature.Invalid(err.Error(), feature.FieldError{Field: "format", Problem: "must be csv, jsonl or parquet"})
		}
		return f, nil
	}
	accept := r.Header.Get("Accept")
	f, ok := export.Negotiate(accept)
	if !ok {
		return "", &feature.Error{Code: feature.CodeNotAcceptable,
			Message: "Accept " + strconv.Quote(printableHeader(accept, 100)) + " names no format a training set is written in: text/csv, application/jsonl (or application/x-ndjson), application/vnd.apache.parquet",
			Fields:  []feature.FieldError{{Field: "Accept", Problem: "must accept text/csv, application/jsonl or application/vnd.apache.parquet"}}}
	}
	return f, nil
}

// historicalRequest reads the request: a JSON body (Feast's entity
// dataframe in columns, with the features), or a CSV of entity rows whose
// features are named in the query (features, feature_service,
// full_feature_names). A CSV is streamed: the response begins while the
// rest of it is read, so the connection is made full duplex.
func historicalRequest(r *http.Request, rc *http.ResponseController) (service.HistoricalRequest, error) {
	var req service.HistoricalRequest
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	q := r.URL.Query()
	if mt != "text/csv" {
		for _, k := range []string{"features", "feature_service", "full_feature_names"} {
			if q.Has(k) {
				return req, feature.Invalid("with a JSON body, "+k+" belongs in the body, not the query",
					feature.FieldError{Field: k, Problem: "query parameter only taken with a text/csv body"})
			}
		}
		return req, decode(r, &req, "")
	}
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return req, err
	}
	for _, v := range q["features"] {
		for ref := range strings.SplitSeq(v, ",") {
			if ref = strings.TrimSpace(ref); ref != "" {
				req.Features = append(req.Features, ref)
			}
		}
	}
	req.FeatureService = q.Get("feature_service")
	if s := q.Get("full_feature_names"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return req, feature.Invalid("full_feature_names must be true or false",
				feature.FieldError{Field: "full_feature_names", Problem: "not a boolean"})
		}
		req.FullFeatureNames = b
	}
	rows, err := service.NewEntityCSV(r.Body)
	if err != nil {
		return req, bodyOrCSVError(err)
	}
	req.EntityRows = rows
	return req, nil
}

// bodyOrCSVError maps a failure to read the body (too large, cut off) to
// its error, and leaves the CSV's own errors as they are.
func bodyOrCSVError(err error) error {
	var fe *feature.Error
	if errors.As(err, &fe) {
		return err
	}
	return bodyError(err)
}

// responseSink writes a training set to the response: Begin sets the
// Content-Type and starts the format's writer, which flushes each part to
// the client as it is written.
type responseSink struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	format export.Format
	out    export.Writer
}

func (s *responseSink) begun() bool { return s.out != nil }

func (s *responseSink) Begin(cols []export.Column) error {
	s.w.Header().Set("Content-Type", s.format.ContentType())
	s.w.Header().Add("Vary", "Accept") // the format may come from Accept
	out, err := export.New(s.format, s.w, export.Options{Flush: s.flush})
	if err != nil {
		return err
	}
	s.out = out
	return out.Begin(cols)
}

func (s *responseSink) Write(row []any) error { return s.out.Write(row) }

// flush pushes what is written to the client; a writer that cannot flush
// (a recorder in a test) sends it at the end.
func (s *responseSink) flush() error {
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// featureServiceRequest is the body of PUT /v1/feature-services/{name}.
type featureServiceRequest struct {
	Features    []string          `json:"features"`
	Description string            `json:"description"`
	Tags        map[string]string `json:"tags"`
}

func handleListFeatureServices(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		list, err := svc.ListFeatureServices(r.Context())
		if err != nil {
			return response{}, err
		}
		return response{body: map[string]any{"feature_services": list}}, nil
	}
}

func handleGetFeatureService(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		return ok(svc.GetFeatureService(r.Context(), chi.URLParam(r, "name")))
	}
}

// putFeatureServiceAnswer is 201 for a service the PUT created (its first
// version), 200 for one it replaced, like a group's.
func putFeatureServiceAnswer(result any) (int, []byte) {
	fs, _ := result.(feature.FeatureService)
	if fs.SchemaVersion == 1 {
		return renderJSON(http.StatusCreated, result)
	}
	return renderJSON(http.StatusOK, result)
}

func handlePutFeatureService(svc *service.Service) apiFunc {
	return withBody(func(r *http.Request, req featureServiceRequest) (response, error) {
		fs := feature.FeatureService{Name: chi.URLParam(r, "name"), Features: req.Features,
			Description: req.Description, Tags: req.Tags}
		out, created, err := svc.PutFeatureService(r.Context(), fs)
		if err != nil {
			return response{}, err
		}
		if created {
			return response{status: http.StatusCreated, body: out}, nil
		}
		return response{body: out}, nil
	})
}

func handleDeleteFeatureService(svc *service.Service) apiFunc {
	return func(r *http.Request) (response, error) {
		if err := svc.DeleteFeatureService(r.Context(), chi.URLParam(r, "name")); err != nil {
			return response{}, err
		}
		return response{status: http.StatusNoContent}, nil
	}
}
