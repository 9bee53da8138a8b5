package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/health"
	"github.com/featurestore/featurestore/internal/httpapi"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/testenv"
)

// rowCount is the number of history rows of a group.
func (e *env) rowCount(t *testing.T, group string) int64 {
	t.Helper()
	st, err := e.st.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range st.Groups {
		if g.Group == group {
			return g.Rows
		}
	}
	return 0
}

// TestIdempotencyKey: a write retried with its Idempotency-Key replays the
// recorded answer, byte for byte, and writes nothing more; the key with
// another request is 422; an invalid key is 400; after the key's lifetime
// it is a new request.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.putGroup(t, "users", hardGroup)
		rows := "/v1/feature-groups/users/rows"
		body := `[{"entity_id":"u1","values":{"age":30}}]`

		first := e.do("POST", rows, body, "Idempotency-Key", "k-rows")
		if first.Code != http.StatusOK || first.Header().Get("Idempotency-Replayed") != "" {
			t.Fatalf("first write: %d %v %s", first.Code, first.Header(), first.Body)
		}
		e.clock.Advance(time.Minute)
		again := e.do("POST", rows, body, "Idempotency-Key", "k-rows")
		if again.Code != http.StatusOK || again.Body.String() != first.Body.String() || again.Header().Get("Idempotency-Replayed") != "true" {
			t.Errorf("retry: %d %q replayed=%q; want 200 %q replayed", again.Code, again.Body, again.Header().Get("Idempotency-Replayed"), first.Body)
		}
		if n := e.rowCount(t, "users"); n != 1 {
			t.Errorf("%d rows after a write and its retry, want 1", n)
		}
		wantError(t, e.do("POST", rows, `[{"entity_id":"u2","values":{"age":31}}]`, "Idempotency-Key", "k-rows"),
			http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key")
		wantError(t, e.do("POST", "/v1/feature-groups/other/rows", body, "Idempotency-Key", "k-rows"),
			http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key")
		for _, bad := range []string{"", "has space", string(make([]byte, 256))} {
			wantError(t, e.do("POST", rows, body, "Idempotency-Key", bad), http.StatusBadRequest, "invalid", "Idempotency-Key")
		}
		if n := e.rowCount(t, "users"); n != 1 {
			t.Errorf("%d rows after refused retries, want 1", n)
		}

		// A failed write records nothing: the retry runs it again.
		wantError(t, e.do("POST", rows, `[{"entity_id":"u3","values":{"age":"x"}}]`, "Idempotency-Key", "k-bad"),
			http.StatusBadRequest, "invalid", "rows[0].values.age")
		e.mustDo(t, http.StatusOK, "POST", rows, `[{"entity_id":"u1","values":{"age":32}}]`)
		if w := e.do("POST", rows, `[{"entity_id":"u3","values":{"age":3}}]`, "Idempotency-Key", "k-bad"); w.Code != http.StatusOK {
			t.Errorf("a key whose first use failed: %d %s", w.Code, w.Body)
		}

		// Registry changes: created once (201 replayed), deleted once (204 replayed).
		put := e.do("PUT", "/v1/feature-groups/g2", hardGroup, "Idempotency-Key", "k-put")
		if put.Code != http.StatusCreated {
			t.Fatalf("PUT: %d %s", put.Code, put.Body)
		}
		if w := e.do("PUT", "/v1/feature-groups/g2", hardGroup, "Idempotency-Key", "k-put"); w.Code != http.StatusCreated || w.Body.String() != put.Body.String() {
			t.Errorf("PUT retry: %d %s; want the recorded 201 %s", w.Code, w.Body, put.Body)
		}
		if v := object(t, e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/g2", ""))["schema_version"]; fmt.Sprint(v) != "1" {
			t.Errorf("schema_version %v after a PUT and its retry, want 1", v)
		}
		for range 2 {
			if w := e.do("DELETE", "/v1/feature-groups/g2", "", "Idempotency-Key", "k-del"); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
				t.Errorf("DELETE (and retry): %d %q, want 204", w.Code, w.Body)
			}
		}

		// Ingest: the movies are written once.
		ing := e.do("POST", "/v1/movies", fixture(t, "movie.json"), "Idempotency-Key", "k-ingest")
		if ing.Code != http.StatusOK {
			t.Fatalf("ingest: %d %s", ing.Code, ing.Body)
		}
		basic := e.rowCount(t, "movie_basic")
		if w := e.do("POST", "/v1/movies", fixture(t, "movie.json"), "Idempotency-Key", "k-ingest"); w.Body.String() != ing.Body.String() {
			t.Errorf("ingest retry answered %s, want the recorded %s", w.Body, ing.Body)
		}
		if n := e.rowCount(t, "movie_basic"); n != basic {
			t.Errorf("the ingest retry wrote: %d rows, want %d", n, basic)
		}

		// Past --idempotency-ttl (24h) the key is new again.
		e.clock.Advance(25 * time.Hour)
		if w := e.do("POST", rows, `[{"entity_id":"u9","values":{"age":9}}]`, "Idempotency-Key", "k-rows"); w.Code != http.StatusOK || w.Header().Get("Idempotency-Replayed") != "" {
			t.Errorf("an expired key: %d replayed=%q %s", w.Code, w.Header().Get("Idempotency-Replayed"), w.Body)
		}
	})
}

// TestIdempotencyKeyFeastAndServices: the Feast writes (/push,
// /write-to-online-store) and the feature-service PUT and DELETE honour the
// Idempotency-Key like the other writes: a retry replays the recorded
// answer and writes nothing more.
func TestIdempotencyKeyFeastAndServices(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.putGroup(t, "users", hardGroup)
		for _, c := range []struct{ path, body string }{
			{"/push", `{"push_source_name": "users", "df": {"user_id": ["u1"], "age": [30]}}`},
			{"/write-to-online-store", `{"feature_view_name": "users", "df": {"user_id": ["u2"], "age": [31]}}`},
		} {
			first := e.do("POST", c.path, c.body, "Idempotency-Key", "k"+c.path)
			if first.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", c.path, first.Code, first.Body)
			}
			rows := e.rowCount(t, "users")
			e.clock.Advance(time.Second)
			again := e.do("POST", c.path, c.body, "Idempotency-Key", "k"+c.path)
			if again.Code != http.StatusOK || again.Body.String() != first.Body.String() || again.Header().Get("Idempotency-Replayed") != "true" {
				t.Errorf("%s retry: %d %s replayed=%q; want the recorded %s", c.path, again.Code, again.Body, again.Header().Get("Idempotency-Replayed"), first.Body)
			}
			if n := e.rowCount(t, "users"); n != rows {
				t.Errorf("%s retry wrote: %d rows, want %d", c.path, n, rows)
			}
			wantError(t, e.do("POST", c.path, strings.Replace(c.body, "3", "4", 1), "Idempotency-Key", "k"+c.path),
				http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key")
		}

		svc := "/v1/feature-services/ranker"
		put := e.do("PUT", svc, `{"features": ["users:age"]}`, "Idempotency-Key", "k-svc")
		if put.Code != http.StatusCreated {
			t.Fatalf("PUT service: %d %s", put.Code, put.Body)
		}
		if w := e.do("PUT", svc, `{"features": ["users:age"]}`, "Idempotency-Key", "k-svc"); w.Code != http.StatusCreated || w.Body.String() != put.Body.String() {
			t.Errorf("PUT service retry: %d %s; want the recorded 201 %s", w.Code, w.Body, put.Body)
		}
		if v := object(t, e.mustDo(t, http.StatusOK, "GET", svc, ""))["schema_version"]; fmt.Sprint(v) != "1" {
			t.Errorf("schema_version %v after a PUT and its retry, want 1", v)
		}
		for range 2 {
			if w := e.do("DELETE", svc, "", "Idempotency-Key", "k-svc-del"); w.Code != http.StatusNoContent {
				t.Errorf("DELETE service (and retry): %d %s, want 204", w.Code, w.Body)
			}
		}
		wantError(t, e.do("GET", svc, ""), http.StatusNotFound, "not_found", "feature_service")
		// A failed service write records nothing: the key is still free.
		wantError(t, e.do("PUT", svc, `{"features": ["nope:age"]}`, "Idempotency-Key", "k-svc-bad"), http.StatusNotFound, "not_found", "features[0]")
		if w := e.do("PUT", svc, `{"features": ["users:name"]}`, "Idempotency-Key", "k-svc-bad"); w.Code != http.StatusCreated {
			t.Errorf("a key whose first use failed: %d %s", w.Code, w.Body)
		}
	})
}

// TestIdempotencyKeyConcurrent: the same write sent many times at once
// with one key is written once; every caller gets its answer (or, while
// the first is still committing, a 409 it can retry).
func TestIdempotencyKeyConcurrent(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.putGroup(t, "users", hardGroup)
		const n = 12
		body := `[{"entity_id":"u1","values":{"age":30}},{"entity_id":"u2","values":{"age":31}}]`
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			codes = map[int]int{}
			ok    = map[string]bool{}
		)
		for range n {
			wg.Go(func() {
				w := e.do("POST", "/v1/feature-groups/users/rows", body, "Idempotency-Key", "same")
				mu.Lock()
				defer mu.Unlock()
				codes[w.Code]++
				if w.Code == http.StatusOK {
					ok[w.Body.String()] = true
				}
			})
		}
		wg.Wait()
		if codes[http.StatusOK] < 1 || codes[http.StatusOK]+codes[http.StatusConflict] != n || len(ok) != 1 {
			t.Errorf("answers %v with %d distinct 200 bodies; want 200s (and 409s) with one body", codes, len(ok))
		}
		if rows := e.rowCount(t, "users"); rows != 2 {
			t.Errorf("%d rows, want the 2 of one write", rows)
		}
	})
}

// TestRetryAfterOutcomeUnknown is the finding "when Postgres stops
// mid-commit, writes answered '503, nothing was written' were in fact
// committed", end to end: the connection to Postgres is cut right after the
// COMMIT reached it. The client gets 503 outcome_unknown (not
// unavailable), retries with its Idempotency-Key and gets the answer the
// committed write recorded; the rows exist once.
func TestRetryAfterOutcomeUnknown(t *testing.T) {
	t.Parallel()
	raw := testenv.PostgresSchemaURL(t, "fs_t")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartCutProxy(t, u.Host)
	pg, err := postgres.Open(t.Context(), proxy.URL(t, raw), postgres.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	ropts, err := cache.RedisOptionsFromURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(ropts)
	t.Cleanup(func() { client.Close() })
	rc := cache.NewRedis(client, cache.RedisOptions{Prefix: fmt.Sprintf("fs_t_outcome_%d", time.Now().UnixNano())})
	t.Cleanup(func() { _ = rc.Clear(context.Background()) })
	st := cache.Wrap(pg, rc, cache.WrapOptions{})
	t.Cleanup(func() { st.Close() })
	e := newEnvWith(t, backend{"proxied postgres", func(testing.TB) (store.Store, []health.Component) {
		return st, []health.Component{{Name: "postgres", Critical: true, Checker: pg}}
	}}, serviceOptions())
	e.putGroup(t, "users", hardGroup)
	rows := "/v1/feature-groups/users/rows"
	body := `[{"entity_id":"u1","values":{"age":30,"name":"Ann"}}]`

	cut := proxy.Arm("commit")
	lost := e.do("POST", rows, body, "Idempotency-Key", "retry-me")
	<-cut
	wantError(t, lost, http.StatusServiceUnavailable, "outcome_unknown")
	if lost.Header().Get("Retry-After") == "" {
		t.Error("outcome_unknown without Retry-After")
	}
	retry := e.do("POST", rows, body, "Idempotency-Key", "retry-me")
	if retry.Code != http.StatusOK || retry.Header().Get("Idempotency-Replayed") != "true" {
		t.Fatalf("retry: %d replayed=%q %s; want the recorded 200", retry.Code, retry.Header().Get("Idempotency-Replayed"), retry.Body)
	}
	if n := e.rowCount(t, "users"); n != 1 {
		t.Errorf("%d rows after the lost commit and its retry, want 1", n)
	}
	// The read after the acknowledged (replayed) write sees it: the cache
	// did not keep an older answer.
	if v := object(t, e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/users/entities/u1", ""))["features"]; fmt.Sprint(v) != "map[age:30 name:Ann]" {
		t.Errorf("read after the retry: %v", v)
	}
}

var _ httpapi.IdempotencyStore = (*postgres.Store)(nil)

// TestIdempotencyKeyPerCaller: with authentication on, keys are kept per
// caller: another caller's identical request with the same key is its own
// first write, never a replay of someone else's answer, and cannot be
// blocked by a key another caller used.
func TestIdempotencyKeyPerCaller(t *testing.T) {
	t.Parallel()
	a := newAuthed(t)
	if w := a.do("PUT", "/v1/feature-groups/user_profile", userGroup, bearer(adminToken)...); w.Code != http.StatusCreated {
		t.Fatalf("admin PUT: %d %s", w.Code, w.Body)
	}
	const rows = "/v1/feature-groups/user_profile/rows"
	body := `[{"entity_id": "u1", "values": {"age": 7}}]`
	with := func(token string) []string { return append(bearer(token), "Idempotency-Key", "shared-key") }

	first := a.do("POST", rows, body, with(writerToken)...)
	if first.Code != http.StatusOK || first.Header().Get("Idempotency-Replayed") != "" {
		t.Fatalf("writer's write: %d %v %s", first.Code, first.Header(), first.Body)
	}
	a.clock.Advance(time.Second)
	other := a.do("POST", rows, body, with(adminToken)...)
	if other.Code != http.StatusOK || other.Header().Get("Idempotency-Replayed") != "" || other.Body.String() == first.Body.String() {
		t.Errorf("another caller's request with the same key: %d replayed=%q %s; want its own write", other.Code, other.Header().Get("Idempotency-Replayed"), other.Body)
	}
	if n := a.rowCount(t, "user_profile"); n != 2 {
		t.Errorf("%d rows, want 2: one per caller", n)
	}
	if w := a.do("POST", rows, body, with(writerToken)...); w.Header().Get("Idempotency-Replayed") != "true" || w.Body.String() != first.Body.String() {
		t.Errorf("the writer's retry: replayed=%q %s; want its own recorded answer %s", w.Header().Get("Idempotency-Replayed"), w.Body, first.Body)
	}
	wantError(t, a.do("POST", rows, `[{"entity_id": "u2", "values": {"age": 8}}]`, with(adminToken)...),
		http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key")
}
