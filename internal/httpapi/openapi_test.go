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

// TestOpenAPIMatchesRouter: every route of the router (built from the one
// route table, which also names the metric series) is documented with its
// method, and every documented operation is routed.
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
}

// TestOpenAPIErrorCodes: the Error schema lists exactly the codes a client
// can receive: every code but canceled, whose client is gone.
func TestOpenAPIErrorCodes(t *testing.T) {
	t.Parallel()
	m := regexp.MustCompile(`(?m)^\s+code: \{type: string, enum: \[([^\]]*)\]\}`).FindStringSubmatch(string(api.OpenAPI))
	if m == nil {
		t.Fatal("no code enum in the Error schema")
	}
	enum := strings.Split(strings.ReplaceAll(m[1], " ", ""), ",")
	var want []string
	for _, c := range feature.Codes() {
		if status(c) != StatusClientClosedRequest {
			want = append(want, string(c))
		}
	}
	slices.Sort(enum)
	slices.Sort(want)
	if diff := cmp.Diff(want, enum); diff != "" {
		t.Errorf("Error schema code enum (-want +got):\n%s", diff)
	}
}
