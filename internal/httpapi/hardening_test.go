package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/service"
)

// hardGroup is a small user-defined group the hardening tests write to.
const hardGroup = `{"entity_key":"user_id","ttl_seconds":60,"description":"d","tags":{"team":"recs"},
	"features":[{"name":"age","type":"int64"},{"name":"name","type":"string"}]}`

// snapshot is what the store holds, to show that refused requests wrote
// nothing: the registry and the rows of every group.
func (e *env) snapshot(t *testing.T) string {
	t.Helper()
	st, err := e.st.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	groups, err := e.st.ListGroups(t.Context())
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	var b strings.Builder
	for _, g := range groups {
		b.WriteString(g.Name + ":" + mustJSON(t, g.Features) + mustJSON(t, g.Tags) + g.Description + "\n")
	}
	for _, g := range st.Groups {
		b.WriteString(mustJSON(t, g) + "\n")
	}
	return b.String()
}

// TestInputThatWasSilentlyChanged: each finding of "invalid UTF-8 inside
// JSON is silently replaced, duplicate keys, case-insensitive field names
// and 1e-400 as an int64 0 are accepted; NUL in a description or tag is a
// 500 on Postgres; years 0000 and 9999 are accepted" is a 400 naming the
// field, in both modes, and nothing is written.
func TestInputThatWasSilentlyChanged(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.putGroup(t, "users", hardGroup)
		e.writeRows(t, "users", map[string]any{"entity_id": "u1", "values": map[string]any{"age": 30, "name": "Ann"}})
		before := e.snapshot(t)
		rows := "/v1/feature-groups/users/rows"
		for _, c := range []struct {
			name, method, path, body string
			field                    string
		}{
			{"duplicate key in a group", "PUT", "/v1/feature-groups/g2", `{"entity_key":"a","entity_key":"b","features":[{"name":"x","type":"int64"}]}`, "body"},
			{"duplicate tag", "PUT", "/v1/feature-groups/g2", `{"entity_key":"a","features":[{"name":"x","type":"int64"}],"tags":{"t":"1","t":"2"}}`, "tags"},
			{"duplicate value key", "POST", rows, `[{"entity_id":"u2","values":{"age":1,"age":2}}]`, "rows[0].values"},
			{"case-folded field", "PUT", "/v1/feature-groups/g2", `{"Entity_Key":"a","features":[{"name":"x","type":"int64"}]}`, "body"},
			{"case-folded nested field", "PUT", "/v1/feature-groups/g2", `{"entity_key":"a","features":[{"NAME":"x","type":"int64"}]}`, "features[0]"},
			{"case-folded row field", "POST", rows, `[{"Entity_ID":"u2","values":{"age":1}}]`, "rows[0]"},
			{"invalid UTF-8 in a description", "PUT", "/v1/feature-groups/g2", "{\"entity_key\":\"a\",\"description\":\"\xff\",\"features\":[{\"name\":\"x\",\"type\":\"int64\"}]}", "description"},
			{"invalid UTF-8 in an entity id", "POST", rows, "[{\"entity_id\":\"u\xff\",\"values\":{\"age\":1}}]", "rows[0].entity_id"},
			{"lone surrogate in a value", "POST", rows, `[{"entity_id":"u2","values":{"name":"\ud800"}}]`, "rows[0].values.name"},
			{"NUL in a description", "PUT", "/v1/feature-groups/g2", `{"entity_key":"a","description":"x\u0000","features":[{"name":"x","type":"int64"}]}`, "description"},
			{"NUL in a tag", "PUT", "/v1/feature-groups/g2", `{"entity_key":"a","tags":{"t":"\u0000"},"features":[{"name":"x","type":"int64"}]}`, "tags.t"},
			{"NUL in an entity id", "POST", rows, `[{"entity_id":"u\u0000","values":{"age":1}}]`, "rows[0].entity_id"},
			{"1e-400 as int64", "POST", rows, `[{"entity_id":"u2","values":{"age":1e-400}}]`, "rows[0].values.age"},
			{"1e-400 as an entity id", "POST", rows, `[{"entity_id":1e-400,"values":{"age":1}}]`, "rows[0].entity_id"},
			{"1e-400 as a ttl", "PUT", "/v1/feature-groups/g2", `{"entity_key":"a","ttl_seconds":1e-400,"features":[{"name":"x","type":"int64"}]}`, "ttl_seconds"},
			{"year 0000", "POST", rows, `[{"entity_id":"u2","event_time":"0000-01-01T00:00:00Z","values":{"age":1}}]`, "rows[0].event_time"},
			{"year 9999", "POST", rows, `[{"entity_id":"u2","event_time":"9999-12-31T23:59:59Z","values":{"age":1}}]`, "rows[0].event_time"},
			{"year 1799", "POST", rows, `[{"entity_id":"u2","event_time":"1799-12-31T23:59:59Z","values":{"age":1}}]`, "rows[0].event_time"},
			{"nested too deep", "POST", "/get-online-features", `{"entities":{"movie_id":[` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `]},"features":["movie_basic:popularity"]}`, "entities.movie_id" + strings.Repeat("[0]", 62)},
		} {
			t.Run(c.name, func(t *testing.T) {
				w := e.do(c.method, c.path, c.body)
				wantError(t, w, http.StatusBadRequest, "invalid", c.field)
			})
		}
		if after := e.snapshot(t); after != before {
			t.Errorf("refused requests changed the store:\nbefore %s\nafter  %s", before, after)
		}
		// What is fine stays fine: 1e3 is an integer, 2200 a year.
		e.mustDo(t, http.StatusOK, "POST", rows, `[{"entity_id":"u3","event_time":"2200-01-01T00:00:00Z","values":{"age":1e3}}]`)
	})
}

// TestInvalidTextInPathAndQuery: "/entities/%FF answers 500 on Postgres
// (SQLSTATE 22021), 404 embedded". Invalid UTF-8 or NUL anywhere in the path
// or query, and a malformed query, are a 400 in both modes.
func TestInvalidTextInPathAndQuery(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, c := range []struct{ target, field string }{
			{"/v1/feature-groups/movie_basic/entities/%FF", "path"},
			{"/v1/feature-groups/movie_basic/entities/a%00b", "path"},
			{"/v1/feature-groups/%C3%28", "path"},
			{"/v1/feature-groups/movie_basic/entities/1?features=%FF", "query"},
			{"/v1/feature-groups/movie_basic/entities/1?as_of=%00", "query"},
			{"/v1/feature-groups/movie_basic/entities/1?features=%ZZ", "query"},
			{"/v1/stats?%FF=1", "query"},
		} {
			w := e.do("GET", c.target, "")
			wantError(t, w, http.StatusBadRequest, "invalid", c.field)
		}
		// Valid non-ASCII ids are fine (in a group with a string key:
		// movie_basic's is an int64).
		e.putGroup(t, "users", hardGroup)
		w := e.do("GET", "/v1/feature-groups/users/entities/%C3%A9t%C3%A9", "")
		wantError(t, w, http.StatusNotFound, "not_found", "id")
	})
}

// TestRegistryLimits: "10 MiB tags and descriptions, 2,000 groups × 512
// features all accepted". Past their limits, sizes are 413 and the group
// count 422, naming the field; nothing is registered.
func TestRegistryLimits(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, b, service.Options{Limits: feature.Limits{MaxGroups: 8, MaxFeatures: 3, MaxTags: 2, MaxTagBytes: 16, MaxDescriptionBytes: 32}})
			group := func(features int, desc string, tags map[string]string) string {
				fs := make([]map[string]string, features)
				for i := range fs {
					fs[i] = map[string]string{"name": "f" + string(rune('a'+i)), "type": "int64"}
				}
				return mustJSON(t, map[string]any{"entity_key": "id", "features": fs, "description": desc, "tags": tags})
			}
			before := e.snapshot(t)
			wantError(t, e.do("PUT", "/v1/feature-groups/wide", group(4, "", nil)), http.StatusRequestEntityTooLarge, "too_large", "features")
			wantError(t, e.do("PUT", "/v1/feature-groups/wordy", group(1, strings.Repeat("d", 33), nil)), http.StatusRequestEntityTooLarge, "too_large", "description")
			wantError(t, e.do("PUT", "/v1/feature-groups/tagged", group(1, "", map[string]string{"a": "1", "b": "2", "c": "3"})), http.StatusRequestEntityTooLarge, "too_large", "tags")
			wantError(t, e.do("PUT", "/v1/feature-groups/tagged", group(1, "", map[string]string{"team": strings.Repeat("x", 17)})), http.StatusRequestEntityTooLarge, "too_large", "tags.team")
			if after := e.snapshot(t); after != before {
				t.Errorf("refused groups were registered:\n%s", after)
			}
			// Six built-in groups: two more fit, the ninth does not.
			e.putGroup(t, "g1", group(3, strings.Repeat("d", 32), map[string]string{"a": "1", "b": strings.Repeat("x", 16)}))
			e.putGroup(t, "g2", group(1, "", nil))
			wantError(t, e.do("PUT", "/v1/feature-groups/g3", group(1, "", nil)), http.StatusUnprocessableEntity, "limit_exceeded", "name")
			// Replacing an existing group is not a new one.
			e.mustDo(t, http.StatusOK, "PUT", "/v1/feature-groups/g2", group(2, "", nil))
			e.mustDo(t, http.StatusNoContent, "DELETE", "/v1/feature-groups/g2", "")
			e.mustDo(t, http.StatusCreated, "PUT", "/v1/feature-groups/g3", group(1, "", nil))
		})
	}
}

// TestMethodNotAllowedSaysAllow: "405 has no Allow header; HEAD answers
// 405". A 405 lists the methods of the path; every GET route answers HEAD
// with the GET's status and headers and no body.
func TestMethodNotAllowedSaysAllow(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, c := range []struct{ method, target, allow string }{
			{"PATCH", "/v1/feature-groups/movie_basic", "DELETE, GET, HEAD, PUT"},
			{"DELETE", "/v1/movies", "POST"},
			{"HEAD", "/v1/movies", "POST"},
			{"POST", "/health", "GET, HEAD"},
			{"PUT", "/v1/recompute", "GET, HEAD, POST"},
		} {
			w := e.do(c.method, c.target, "")
			if c.method == "HEAD" {
				if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != c.allow {
					t.Errorf("HEAD %s: %d Allow %q, want 405 Allow %q", c.target, w.Code, w.Header().Get("Allow"), c.allow)
				}
				continue
			}
			wantError(t, w, http.StatusMethodNotAllowed, "method_not_allowed", "method")
			if got := w.Header().Get("Allow"); got != c.allow {
				t.Errorf("%s %s: Allow %q, want %q", c.method, c.target, got, c.allow)
			}
		}
		for _, target := range []string{"/health", "/health/live", "/info", "/openapi.yaml", "/v1/feature-groups",
			"/v1/feature-groups/movie_basic", "/v1/stats", "/v1/recompute", "/v1/feature-groups/nope"} {
			get, head := e.do("GET", target, ""), e.do("HEAD", target, "")
			if head.Code != get.Code || head.Header().Get("Content-Type") != get.Header().Get("Content-Type") {
				t.Errorf("HEAD %s: %d %q; GET: %d %q", target, head.Code, head.Header().Get("Content-Type"), get.Code, get.Header().Get("Content-Type"))
			}
		}
	})
}

// TestHealthDetailsHook: /health shows the full report to a caller the
// details hook allows and only the overall status to others.
func TestHealthDetailsHook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend{"embedded", openEmbedded})
	d := e.deps()
	d.HealthDetails = func(r *http.Request) bool { return r.Header.Get("X-Test-Reader") == "yes" }
	router := newRouterFrom(d)
	full := serve(t, router, "GET", "/health", "", "X-Test-Reader", "yes")
	summary := serve(t, router, "GET", "/health", "")
	if full.Code != 200 || summary.Code != 200 {
		t.Fatalf("status %d and %d", full.Code, summary.Code)
	}
	if m := object(t, full); m["components"] == nil {
		t.Errorf("a reader does not see the components: %s", full.Body)
	}
	var s map[string]json.RawMessage
	if err := json.Unmarshal(summary.Body.Bytes(), &s); err != nil || len(s) != 2 || s["status"] == nil || s["checked_at"] == nil {
		t.Errorf("anonymous /health = %s, want only status and checked_at", summary.Body)
	}
}
