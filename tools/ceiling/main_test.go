package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// upstream stands for featurestore: its answers depend on the method, the
// path and the body, carry a Content-Type of their own and bytes that a
// re-encoding would change (key order, spacing, no final newline, UTF-8).
func upstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/entities/"):
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = io.WriteString(w, `{"id":"`+strings.TrimPrefix(r.URL.Path, "/entities/")+`", "title":"릴로 & 스티치"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/batch" && r.Header.Get("Content-Type") == "application/json":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, `{"z":1,"a":`+string(b)+"}")
		default:
			http.Error(w, "no", http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeRequests(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "load.requests")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCeilingServesTheCapturedBytes(t *testing.T) {
	up := upstream(t)
	path := writeRequests(t,
		"GET\t/entities/7\t",
		"GET\t/entities/8?features=a,b\t",
		"POST\t/batch\t{\"ids\":[1,2]}",
		"POST\t/batch\t{\"ids\": [1,2]}", // another body, another answer
		"GET\t/entities/7\t",             // a repeated request is captured once
	)
	reqs, err := readRequests(path)
	if err != nil {
		t.Fatal(err)
	}
	as, err := capture(context.Background(), up.Client(), up.URL, reqs, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 4 {
		t.Fatalf("captured %d answers, want 4", len(as))
	}
	ceiling := httptest.NewServer(as)
	defer ceiling.Close()
	for _, r := range reqs {
		want := do(t, up.URL, r)
		got := do(t, ceiling.URL, r)
		if got.status != want.status || !bytes.Equal(got.body, want.body) ||
			got.contentType != want.contentType || got.contentLength != want.contentLength {
			t.Errorf("%s %s %s:\nceiling  %d %q %d %q\nupstream %d %q %d %q", r.method, r.path, r.body,
				got.status, got.contentType, got.contentLength, got.body,
				want.status, want.contentType, want.contentLength, want.body)
		}
	}
	if got := do(t, ceiling.URL, request{method: "POST", path: "/batch", body: `{"ids":[3]}`}); got.status != http.StatusNotFound {
		t.Errorf("a request not captured: %d, want 404", got.status)
	}
}

func TestCaptureFailsOnAnErrorAnswer(t *testing.T) {
	up := upstream(t)
	reqs := []request{{method: "GET", path: "/entities/1"}, {method: "GET", path: "/nothing"}}
	if _, err := capture(context.Background(), up.Client(), up.URL, reqs, 2); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("capture with a 400 answer: %v, want an error naming it", err)
	}
}

func TestReadRequestsRejectsABadLine(t *testing.T) {
	path := writeRequests(t, "GET\t/ok\t", "GET /no-tabs")
	if _, err := readRequests(path); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("readRequests: %v, want an error at line 2", err)
	}
}

type reply struct {
	status        int
	contentType   string
	contentLength int64
	body          []byte
}

func do(t *testing.T, base string, r request) reply {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, base+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, b}
}
