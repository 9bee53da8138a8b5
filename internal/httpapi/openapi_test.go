package httpapi

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/api"
	"github.com/featurestore/featurestore/internal/feature"
)

// documented returns "METHOD path" for every operation of the OpenAPI
// document: paths are the lines "  /...:", methods the lines "    get:" etc.
// under them (a minimal parse; there is no YAML library in go.mod).
func documented(t *testing.T, doc string) []string {
	t.Helper()
	pathRE := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRE := regexp.MustCompile(`^    (get|put|post|delete|patch|head|options):`)
	var out []string
	path := ""
	for line := range strings.Lines(doc) {
		line = strings.TrimRight(line, "\r\n")
		if m := pathRE.FindStringSubmatch(line); m != nil {
			path = m[1]
			continue
		}
		if !strings.HasPrefix(line, "  ") {
			path = "" // left the paths section
			continue
		}
		if m := methodRE.FindStringSubmatch(line); m != nil {
			if path == "" {
				t.Fatalf("method %q outside a path: %q", m[1], line)
			}
			out = append(out, strings.ToUpper(m[1])+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// routed returns "METHOD pattern" for every route of the router.
func routed(t *testing.T, h http.Handler) []string {
	t.Helper()
	r, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("router %T is not a chi.Routes", h)
	}
	var out []string
	err := chi.Walk(r, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestOpenAPIMatchesRouter: every route is documented with its method, and
// every documented operation is routed; the route table used to pre-create
// the metric series is the same set.
func TestOpenAPIMatchesRouter(t *testing.T) {
	t.Parallel()
	router := NewRouter(Deps{MetricsHandler: http.NotFoundHandler()})
	got := routed(t, router)
	doc := documented(t, string(api.OpenAPI))
	if len(doc) == 0 {
		t.Fatal("no operation found in the OpenAPI document")
	}
	if diff := cmp.Diff(doc, got); diff != "" {
		t.Errorf("OpenAPI operations (-) vs routes (+):\n%s", diff)
	}
	var table []string
	for _, r := range routes {
		table = append(table, r[0]+" "+r[1])
	}
	slices.Sort(table)
	if diff := cmp.Diff(table, got); diff != "" {
		t.Errorf("route table (-) vs router (+):\n%s", diff)
	}
}

// TestOpenAPIErrorCodes: the Error schema lists every code the API answers.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	m := regexp.MustCompile(`(?m)^\s+code: \{type: string, enum: \[([^\]]*)\]\}`).FindStringSubmatch(string(api.OpenAPI))
	if m == nil {
		t.Fatal("no code enum in the Error schema")
	}
	enum := strings.Split(strings.ReplaceAll(m[1], " ", ""), ",")
	for _, c := range []feature.Code{feature.CodeInvalid, feature.CodeNotFound, feature.CodeConflict, feature.CodeTooLarge,
		feature.CodeUnavailable, feature.CodeInternal, feature.CodeMethodNotAllowed} {
		if !slices.Contains(enum, string(c)) {
			t.Errorf("code %q is not in the Error schema's enum %v", c, enum)
		}
	}
}
