package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/featurestore/featurestore/api"
	"github.com/featurestore/featurestore/internal/httpapi"
)

// The contract is api/openapi.yaml. Every request a test sends through
// serve (and so env.do) is checked against it with kin-openapi's
// openapi3filter, and so is every answer, error answers included:
//
//   - the answer's status is declared for the operation, and its headers
//     and body validate against the declared response;
//   - a request the description rejects is never answered 2xx: a gateway
//     validating requests against the description would refuse a payload
//     the service accepts;
//   - an answer to a path or method the description does not have (404 no
//     route, 405) is an Error.
//
// 499 is never read by a client (it is recorded for a client that went
// away): only its body is checked, as an Error.

var contractOnce struct {
	sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
}

// contract loads and validates the OpenAPI description once per test binary.
func contract(tb testing.TB) (*openapi3.T, routers.Router) {
	tb.Helper()
	c := &contractOnce
	c.Do(func() {
		loader := openapi3.NewLoader()
		c.doc, c.err = loader.LoadFromData(api.OpenAPI)
		if c.err != nil {
			return
		}
		if c.err = c.doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); c.err != nil {
			return
		}
		// Requests are matched by path alone, whatever host the test uses.
		c.doc.Servers = nil
		c.router, c.err = legacy.NewRouter(c.doc)
	})
	if c.err != nil {
		tb.Fatalf("api/openapi.yaml: %v", c.err)
	}
	return c.doc, c.router
}

func filterOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus:   true,
		MultiError:              true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.EnableFormatValidation()},
	}
}

// exchange is one request and its answer, as checkContract sees them.
type exchange struct {
	method, target string
	header         http.Header
	// body is the request body; nil when unknown (a reader that failed).
	body []byte
	w    *httptest.ResponseRecorder
}

// checkContract checks one exchange against the OpenAPI description and
// reports every mismatch with tb.Errorf (safe from any goroutine).
func checkContract(tb testing.TB, x exchange) {
	tb.Helper()
	doc, router := contract(tb)
	method := x.method
	if method == http.MethodHead {
		// Every GET route answers HEAD as GET does, without a body (the
		// description documents it once, in info).
		method = http.MethodGet
	}
	r := httptest.NewRequest(method, x.target, bytes.NewReader(x.body))
	r.Header = x.header.Clone()
	if r.URL.RawPath != "" {
		// An escaped slash in a path parameter (a%2Fb): match the path
		// as sent, as the service does, not as decoded.
		r.URL.Path, r.URL.RawPath = r.URL.RawPath, ""
	}
	if x.method == http.MethodOptions && x.header.Get("Access-Control-Request-Method") != "" {
		// A CORS preflight: answered by the CORS middleware for every
		// path (405 when CORS is off), outside the API the description
		// covers.
		if x.w.Code != http.StatusNoContent && x.w.Code != http.StatusForbidden && x.w.Code != http.StatusMethodNotAllowed {
			tb.Errorf("contract: CORS preflight %s answered %d, want 204, 403 or 405", x.target, x.w.Code)
		}
		return
	}
	route, params, err := router.FindRoute(r)
	if err != nil {
		// No such operation: the answer is a 404 or 405 Error, or 401 when
		// authentication is on and the caller has no credentials (the
		// API's shape is for its callers).
		if x.w.Code != http.StatusNotFound && x.w.Code != http.StatusMethodNotAllowed && x.w.Code != http.StatusUnauthorized {
			tb.Errorf("contract: %s %s is not in api/openapi.yaml (%v) but was answered %d", x.method, x.target, err, x.w.Code)
		}
		checkErrorBody(tb, doc, x)
		return
	}
	opts := filterOptions()
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	if x.body != nil {
		reqErr := openapi3filter.ValidateRequest(context.Background(), in)
		if reqErr != nil && x.w.Code >= 200 && x.w.Code < 300 {
			tb.Errorf("contract: api/openapi.yaml rejects a request the service accepted with %d: %s %s %s\n%v",
				x.w.Code, x.method, x.target, truncated(x.body), reqErr)
		}
	}
	if x.w.Code == httpapi.StatusClientClosedRequest {
		checkCanceled(tb, x)
		return
	}
	res := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.w.Code,
		Header: x.w.Header(), Options: opts}
	res.SetBodyBytes(x.w.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), res); err != nil {
		tb.Errorf("contract: the answer %d to %s %s does not match api/openapi.yaml: %v\nbody: %s",
			x.w.Code, x.method, x.target, err, truncated(x.w.Body.Bytes()))
	}
}

// checkErrorBody checks that an answer is an Error.
func checkErrorBody(tb testing.TB, doc *openapi3.T, x exchange) {
	tb.Helper()
	schema := doc.Components.Schemas["Error"].Value
	var v any
	if err := json.Unmarshal(x.w.Body.Bytes(), &v); err != nil {
		tb.Errorf("contract: the answer %d to %s %s is not JSON: %v", x.w.Code, x.method, x.target, err)
		return
	}
	if err := schema.VisitJSON(v, openapi3.EnableFormatValidation()); err != nil {
		tb.Errorf("contract: the answer %d to %s %s is not an Error: %v", x.w.Code, x.method, x.target, err)
	}
}

// checkCanceled checks a 499: an Error body with code canceled, a code the
// description leaves out since no client reads it.
func checkCanceled(tb testing.TB, x exchange) {
	tb.Helper()
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Fields  []any  `json:"fields"`
	}
	if err := json.Unmarshal(x.w.Body.Bytes(), &body); err != nil || body.Code != "canceled" || body.Message == "" || body.Fields == nil {
		tb.Errorf("contract: the 499 to %s %s is not an Error with code canceled: %s", x.method, x.target, x.w.Body)
	}
}

func truncated(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// serveChecked serves r through h and checks the exchange against the
// contract; body is r's body (nil when it cannot be known).
func serveChecked(tb testing.TB, h http.Handler, r *http.Request, body []byte) *httptest.ResponseRecorder {
	tb.Helper()
	header := r.Header.Clone()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	checkContract(tb, exchange{method: r.Method, target: r.URL.RequestURI(), header: header, body: body, w: w})
	return w
}

// TestContractCatchesDrift: the checker itself fails on what it must
// catch, so a green suite means something.
func TestContractCatchesDrift(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		x    exchange
	}{
		{"undeclared status", exchange{method: "GET", target: "/v1/stats", w: recorded(418, `{"code":"invalid","message":"x","fields":[]}`)}},
		{"body not matching", exchange{method: "GET", target: "/health/live", w: recorded(200, `{"status":"SIDEWAYS"}`)}},
		{"accepted a request the description rejects", exchange{method: "POST", target: "/get-online-features",
			body: []byte(`{"entities": {"movie_id": [1]}, "features": ["a:b"], "nope": 1}`), w: recorded(200, `{"metadata":{"feature_names":[]},"results":[]}`)}},
		{"error that is not an Error", exchange{method: "GET", target: "/nowhere", w: recorded(404, `{"error":"x"}`)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			rec := &recordingTB{TB: t}
			if c.x.header == nil {
				c.x.header = http.Header{"Content-Type": {"application/json"}}
			}
			checkContract(rec, c.x)
			if !rec.failed {
				t.Errorf("the contract check passed %s", c.name)
			}
		})
	}
}

func recorded(status int, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.Copy(w, strings.NewReader(body))
	return w
}

// recordingTB records failures instead of failing the test.
type recordingTB struct {
	testing.TB
	mu     sync.Mutex
	failed bool
}

func (r *recordingTB) Errorf(string, ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}

func (r *recordingTB) Helper() {}

// TestOpenAPIDescription: api/openapi.yaml is a valid OpenAPI 3 document
// (kin-openapi's validation, examples included: the offline stand-in for
// `npx @redocly/cli lint`), and every operation has a unique operationId.
func TestOpenAPIDescription(t *testing.T) {
	t.Parallel()
	doc, _ := contract(t)
	seen := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			switch prev, dup := seen[op.OperationID]; {
			case op.OperationID == "":
				t.Errorf("%s has no operationId", where)
			case dup:
				t.Errorf("%s and %s share the operationId %q", prev, where, op.OperationID)
			}
			seen[op.OperationID] = where
		}
	}
}
