package httpapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/service"
)

const userProfileGroup = `{"entity_key": "user_id", "features": [
	{"name": "age", "type": "int64"}, {"name": "score", "type": "float64"},
	{"name": "premium", "type": "bool"}, {"name": "country", "type": "string"}]}`

// TestOnlineFeaturesFeastFields: every field a Feast client sends is
// accepted, and one that cannot be honoured is a 400 naming it.
func TestOnlineFeaturesFeastFields(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.mustDo(t, http.StatusOK, "POST", "/v1/movies", fixture(t, "movie.json"))
		e.putGroup(t, "user_profile", userProfileGroup)
		e.putGroup(t, "user_profile", userProfileGroup) // schema_version 2
		e.writeRows(t, "user_profile", map[string]any{"entity_id": "u1", "event_time": t0.Add(-time.Hour), "values": map[string]any{"age": 31}})

		tests := []struct {
			name, body string
			want       string // the exact 200 body; otherwise status, code, fields
			status     int
			code       string
			fields     []string
		}{
			{name: "every Feast field at its default",
				body: `{"entities": {"user_id": ["u1"]}, "features": ["user_profile:age"], "feature_service": null,
					"full_feature_names": false, "request_context": {}, "include_feature_view_version_metadata": false}`,
				want: `{"metadata": {"feature_names": ["user_id", "age"]}, "results": [
					{"values": ["u1"], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
					{"values": [31], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T02:00:00Z"]}]}`},
			{name: "version metadata: each group once, in order of first use",
				body: `{"entities": {"movie_id": [101]}, "features": ["movie_text:title_length", "movie_basic:vote_count", "movie_text:title_word_count"],
					"include_feature_view_version_metadata": true, "request_context": null}`,
				want: `{"metadata": {"feature_names": ["movie_id", "title_length", "vote_count", "title_word_count"],
					"feature_view_metadata": [{"name": "movie_text", "version": 1}, {"name": "movie_basic", "version": 1}]}, "results": [
					{"values": [101], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
					{"values": [14], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T03:00:00Z"]},
					{"values": [30000], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T03:00:00Z"]},
					{"values": [3], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T03:00:00Z"]}]}`},
			{name: "version metadata of a replaced group",
				body: `{"entities": {"user_id": ["u1"]}, "features": ["user_profile:age"], "include_feature_view_version_metadata": true, "full_feature_names": true}`,
				want: `{"metadata": {"feature_names": ["user_id", "user_profile__age"], "feature_view_metadata": [{"name": "user_profile", "version": 2}]}, "results": [
					{"values": ["u1"], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
					{"values": [31], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T02:00:00Z"]}]}`},
			{name: "unknown feature service",
				body:   `{"entities": {"user_id": ["u1"]}, "feature_service": "ranking_v1"}`,
				status: http.StatusNotFound, code: "not_found", fields: []string{"feature_service"}},
			{name: "feature service with an empty features list",
				body:   `{"entities": {"user_id": ["u1"]}, "feature_service": "ranking_v1", "features": []}`,
				status: http.StatusNotFound, code: "not_found", fields: []string{"feature_service"}},
			{name: "feature service and features",
				body:   `{"entities": {"user_id": ["u1"]}, "feature_service": "ranking_v1", "features": ["user_profile:age"]}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"feature_service"}},
			{name: "empty feature service name",
				body:   `{"entities": {"user_id": ["u1"]}, "feature_service": ""}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"feature_service"}},
			{name: "neither features nor a feature service",
				body:   `{"entities": {"user_id": ["u1"]}, "features": null}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"features"}},
			{name: "request data for on-demand features cannot be honoured",
				body:   `{"entities": {"user_id": ["u1"]}, "features": ["user_profile:age"], "request_context": {"val_to_add": [1]}}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"request_context"}},
			{name: "version metadata flag of the wrong type",
				body:   `{"entities": {"user_id": ["u1"]}, "features": ["user_profile:age"], "include_feature_view_version_metadata": "yes"}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"include_feature_view_version_metadata"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				w := e.do("POST", "/get-online-features", tc.body)
				if tc.status != 0 {
					wantError(t, w, tc.status, tc.code, tc.fields...)
					return
				}
				if w.Code != http.StatusOK {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				wantJSON(t, w.Body.Bytes(), tc.want)
			})
		}
	})
}

// TestEntityIDTypes: movie_id is an int64 entity key; an id of another JSON
// type is a 400, never read as the integer it spells. Other keys take
// string ids, and an integer names the entity of its decimal string.
func TestEntityIDTypes(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.mustDo(t, http.StatusOK, "POST", "/v1/movies", fixture(t, "movie.json"))
		e.putGroup(t, "movie_notes", `{"entity_key": "movie_id", "features": [{"name": "note", "type": "string"}]}`)
		e.putGroup(t, "user_profile", userProfileGroup)
		e.writeRows(t, "user_profile", map[string]any{"entity_id": 7, "event_time": t0.Add(-time.Minute), "values": map[string]any{"age": 40}})

		t.Run("an integer movie id reads the movie", func(t *testing.T) {
			w := e.mustDo(t, http.StatusOK, "POST", "/get-online-features", `{"entities": {"movie_id": [101]}, "features": ["movie_basic:vote_count"]}`)
			wantJSON(t, w.Body.Bytes(), `{"metadata": {"feature_names": ["movie_id", "vote_count"]}, "results": [
				{"values": [101], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
				{"values": [30000], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T03:00:00Z"]}]}`)
		})
		t.Run("an untyped key: 7 and \"7\" are one entity", func(t *testing.T) {
			w := e.mustDo(t, http.StatusOK, "POST", "/get-online-features", `{"entities": {"user_id": [7, "7"]}, "features": ["user_profile:age"]}`)
			wantJSON(t, w.Body.Bytes(), `{"metadata": {"feature_names": ["user_id", "age"]}, "results": [
				{"values": [7, "7"], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
				{"values": [40, 40], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["2025-06-05T02:59:00Z", "2025-06-05T02:59:00Z"]}]}`)
		})

		for _, c := range []struct {
			name, method, target, body string
			fields                     []string
		}{
			{"string for movie_id", "POST", "/get-online-features",
				`{"entities": {"movie_id": [101, "101"]}, "features": ["movie_basic:vote_count"]}`, []string{"entities.movie_id[1]"}},
			{"fraction or exponent for movie_id", "POST", "/get-online-features",
				`{"entities": {"movie_id": [101.0, 1.01e2]}, "features": ["movie_basic:vote_count"]}`, []string{"entities.movie_id[0]", "entities.movie_id[1]"}},
			{"path id that is not an integer", "GET", "/v1/feature-groups/movie_basic/entities/abc", "", []string{"id"}},
			{"path id not in canonical form", "GET", "/v1/feature-groups/movie_basic/entities/0101", "", []string{"id"}},
			{"string movie_id in a row of a user group keyed by movie_id", "POST", "/v1/feature-groups/movie_notes/rows",
				`[{"entity_id": "101", "values": {"note": "x"}}]`, []string{"rows[0].entity_id"}},
			{"string movie_id in a push", "POST", "/push",
				`{"push_source_name": "movie_notes", "df": {"movie_id": ["101"], "note": ["x"]}}`, []string{"df.movie_id[0]"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				wantError(t, e.do(c.method, c.target, c.body), http.StatusBadRequest, "invalid", c.fields...)
			})
		}
		// Nothing was written for 101 by the refused writes.
		wantError(t, e.do("GET", "/v1/feature-groups/movie_notes/entities/101", ""), http.StatusNotFound, "not_found", "id")
	})
}

// TestBuiltinGroupsRefuseRowWrites: the six movie_* groups are written by
// the TMDB ingest only; a generic write is a 409 and changes nothing.
func TestBuiltinGroupsRefuseRowWrites(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.mustDo(t, http.StatusOK, "POST", "/v1/movies", fixture(t, "movie.json"))
		before := e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/movie_basic/entities/101", "").Body.String()
		corpus := object(t, e.mustDo(t, http.StatusOK, "GET", "/v1/stats", ""))["corpus_movies"]
		e.clock.Advance(time.Minute)
		for _, g := range []string{"movie_basic", "movie_temporal", "movie_statistical", "movie_text", "movie_interaction", "movie_audience"} {
			t.Run(g, func(t *testing.T) {
				wantError(t, e.do("POST", "/v1/feature-groups/"+g+"/rows", `[{"entity_id": 101, "values": {}}]`),
					http.StatusConflict, "conflict", "group")
				wantError(t, e.do("POST", "/push", `{"push_source_name": "`+g+`", "df": {"movie_id": [101]}}`),
					http.StatusConflict, "conflict", "push_source_name")
				wantError(t, e.do("POST", "/write-to-online-store", `{"feature_view_name": "`+g+`", "df": {"movie_id": [101]}}`),
					http.StatusConflict, "conflict", "feature_view_name")
			})
		}
		if after := e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/movie_basic/entities/101", "").Body.String(); after != before {
			t.Errorf("movie 101 changed:\nbefore %s\nafter  %s", before, after)
		}
		if got := object(t, e.mustDo(t, http.StatusOK, "GET", "/v1/stats", ""))["corpus_movies"]; got != corpus {
			t.Errorf("corpus_movies %v, want %v", got, corpus)
		}
	})
}

// TestPush: Feast's push and write-to-online-store request shapes write
// validated rows, all or nothing.
func TestPush(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.putGroup(t, "user_profile", userProfileGroup)
		read := func(t *testing.T, ids string) string {
			t.Helper()
			return e.mustDo(t, http.StatusOK, "POST", "/get-online-features",
				`{"entities": {"user_id": [`+ids+`]}, "features": ["user_profile:age", "user_profile:country"]}`).Body.String()
		}

		t.Run("the issue's push", func(t *testing.T) {
			w := e.mustDo(t, http.StatusOK, "POST", "/push",
				`{"push_source_name": "user_profile", "df": {"user_id": ["u1"], "age": [31], "event_timestamp": ["2025-06-01T10:00:00Z"]}, "to": "online"}`)
			wantJSON(t, w.Body.Bytes(), `{"feature_group": "user_profile", "rows": 1, "features_written": 4, "write_time": "2025-06-05T03:00:00Z"}`)
			wantJSON(t, []byte(read(t, `"u1"`)), `{"metadata": {"feature_names": ["user_id", "age", "country"]}, "results": [
				{"values": ["u1"], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
				{"values": [31], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-01T10:00:00Z"]},
				{"values": [null], "statuses": ["NULL_VALUE"], "event_timestamps": ["2025-06-01T10:00:00Z"]}]}`)
		})
		t.Run("Feast's documented shape: Python timestamps, a scalar column, every field", func(t *testing.T) {
			e.mustDo(t, http.StatusOK, "POST", "/push", `{"push_source_name": "user_profile", "df": {
				"user_id": ["u2", "u3"], "event_timestamp": ["2025-05-13 10:59:42", "2025-05-13 12:59:42+02:00"],
				"age": [20, 21.0], "score": [1.0, 2], "country": "KR"},
				"to": "online_and_offline", "allow_registry_cache": true, "transform_on_write": true}`)
			wantJSON(t, []byte(read(t, `"u2", "u3"`)), `{"metadata": {"feature_names": ["user_id", "age", "country"]}, "results": [
				{"values": ["u2", "u3"], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
				{"values": [20, 21], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["2025-05-13T10:59:42Z", "2025-05-13T10:59:42Z"]},
				{"values": ["KR", "KR"], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["2025-05-13T10:59:42Z", "2025-05-13T10:59:42Z"]}]}`)
		})
		t.Run("what Feast's remote online store sends", func(t *testing.T) {
			// Its online_write_batch: join keys, features, naive UTC ISO
			// event and created timestamps (created may be null), and
			// allow_registry_cache false.
			e.mustDo(t, http.StatusOK, "POST", "/write-to-online-store", `{"feature_view_name": "user_profile", "df": {
				"user_id": ["r1", "r2"], "age": [33, null], "country": ["SE", "NO"],
				"event_timestamp": ["2025-06-01T10:00:00", "2025-06-01T10:00:00.250000"],
				"created": ["2025-06-01T10:00:01", null]}, "allow_registry_cache": false}`)
			wantJSON(t, []byte(read(t, `"r1", "r2"`)), `{"metadata": {"feature_names": ["user_id", "age", "country"]}, "results": [
				{"values": ["r1", "r2"], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
				{"values": [33, null], "statuses": ["PRESENT", "NULL_VALUE"], "event_timestamps": ["2025-06-01T10:00:00Z", "2025-06-01T10:00:00.25Z"]},
				{"values": ["SE", "NO"], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["2025-06-01T10:00:00Z", "2025-06-01T10:00:00.25Z"]}]}`)
		})
		t.Run("write-to-online-store, no event_timestamp: the write time", func(t *testing.T) {
			e.clock.Advance(time.Second)
			e.mustDo(t, http.StatusOK, "POST", "/write-to-online-store",
				`{"feature_view_name": "user_profile", "df": {"user_id": ["u4"], "age": [44]}, "allow_registry_cache": true, "transform_on_write": false}`)
			wantJSON(t, []byte(read(t, `"u4"`)), `{"metadata": {"feature_names": ["user_id", "age", "country"]}, "results": [
				{"values": ["u4"], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
				{"values": [44], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T03:00:01Z"]},
				{"values": [null], "statuses": ["NULL_VALUE"], "event_timestamps": ["2025-06-05T03:00:01Z"]}]}`)
		})

		tests := []struct {
			name, target, body string
			status             int
			code               string
			fields             []string
		}{
			{"one bad value rejects every row", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1", "x2"], "age": [1, "two"]}}`,
				http.StatusBadRequest, "invalid", []string{"df.age[1]"}},
			{"a bad event time rejects every row", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1", "x2"], "event_timestamp": ["2025-01-01T00:00:00Z", "yesterday"]}}`,
				http.StatusBadRequest, "invalid", []string{"df.event_timestamp[1]"}},
			{"an empty entity id", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1", ""], "age": [1, 2]}}`,
				http.StatusBadRequest, "invalid", []string{"df.user_id[1]"}},
			{"same entity and event time twice", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1", "x1"], "event_timestamp": "2025-01-01T00:00:00Z"}}`,
				http.StatusBadRequest, "invalid", []string{"df.event_timestamp[1]"}},
			{"unknown columns", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1"], "zzz": [2], "nope": [1]}}`,
				http.StatusBadRequest, "invalid", []string{"df.nope", "df.zzz"}},
			{"a created timestamp that is not a time", "/write-to-online-store", `{"feature_view_name": "user_profile", "df": {"user_id": ["x1", "x2"], "created": [null, 5]}}`,
				http.StatusBadRequest, "invalid", []string{"df.created[1]"}},
			{"no entity key column", "/push", `{"push_source_name": "user_profile", "df": {"age": [1]}}`,
				http.StatusBadRequest, "invalid", []string{"df.user_id"}},
			{"columns of different lengths", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1", "x2"], "age": [1]}}`,
				http.StatusBadRequest, "invalid", []string{"df.user_id"}},
			{"only scalars", "/push", `{"push_source_name": "user_profile", "df": {"user_id": "x1"}}`,
				http.StatusBadRequest, "invalid", []string{"df"}},
			{"no rows", "/push", `{"push_source_name": "user_profile", "df": {"user_id": []}}`,
				http.StatusBadRequest, "invalid", []string{"df"}},
			{"no df", "/push", `{"push_source_name": "user_profile"}`,
				http.StatusBadRequest, "invalid", []string{"df"}},
			{"offline only", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1"]}, "to": "offline"}`,
				http.StatusBadRequest, "invalid", []string{"to"}},
			{"unknown push mode", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1"]}, "to": "both"}`,
				http.StatusBadRequest, "invalid", []string{"to"}},
			{"unknown group", "/push", `{"push_source_name": "nope", "df": {"user_id": ["x1"]}}`,
				http.StatusNotFound, "not_found", []string{"push_source_name"}},
			{"no push source name", "/push", `{"df": {"user_id": ["x1"]}}`,
				http.StatusBadRequest, "invalid", []string{"push_source_name"}},
			{"unknown field", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ["x1"]}, "feature_view_name": "user_profile"}`,
				http.StatusBadRequest, "invalid", []string{"feature_view_name"}},
			{"write-to-online-store: unknown group", "/write-to-online-store", `{"feature_view_name": "nope", "df": {"user_id": ["x1"]}}`,
				http.StatusNotFound, "not_found", []string{"feature_view_name"}},
			{"write-to-online-store: push mode is not a field", "/write-to-online-store", `{"feature_view_name": "user_profile", "df": {"user_id": ["x1"]}, "to": "online"}`,
				http.StatusBadRequest, "invalid", []string{"to"}},
			{"too many rows", "/push", `{"push_source_name": "user_profile", "df": {"user_id": ` + mustJSON(t, make([]string, service.DefaultMaxBatchRecords+1)) + `}}`,
				http.StatusRequestEntityTooLarge, "too_large", []string{"df"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, e.do("POST", tc.target, tc.body), tc.status, tc.code, tc.fields...)
			})
		}
		// None of the refused writes stored anything.
		wantJSON(t, []byte(read(t, `"x1", "x2"`)), `{"metadata": {"feature_names": ["user_id", "age", "country"]}, "results": [
			{"values": ["x1", "x2"], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
			{"values": [null, null], "statuses": ["NOT_FOUND", "NOT_FOUND"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
			{"values": [null, null], "statuses": ["NOT_FOUND", "NOT_FOUND"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]}]}`)
	})
}

// TestPushRegistryCache: allow_registry_cache false re-reads the registry
// from the system of record, so a group another replica just created can
// be written at once.
func TestPushRegistryCache(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		other, err := service.New(context.Background(), e.st, service.Options{Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := other.PutGroup(context.Background(), feature.Group{Name: "fresh", EntityKey: "k",
			Features: []feature.Spec{{Name: "v", Type: feature.Int64}}}); err != nil {
			t.Fatal(err)
		}
		body := func(cache bool) string {
			return `{"push_source_name": "fresh", "df": {"k": ["a"], "v": [1]}, "allow_registry_cache": ` + mustJSON(t, cache) + `}`
		}
		wantError(t, e.do("POST", "/push", body(true)), http.StatusNotFound, "not_found", "push_source_name")
		e.mustDo(t, http.StatusOK, "POST", "/push", body(false))
	})
}

// TestMethodNotAllowedNamesTheMethods: a 405 has an Allow header listing
// the path's methods (RFC 9110).
func TestMethodNotAllowedNamesTheMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t, backend{"embedded", openEmbedded})
	for target, want := range map[string]string{
		"/get-online-features":            "POST",
		"/v1/feature-groups/x":            "DELETE, GET, HEAD, PUT",
		"/v1/recompute":                   "GET, HEAD, POST",
		"/v1/feature-groups/x/rows":       "POST",
		"/v1/feature-groups/x/entities/1": "GET, HEAD",
	} {
		w := e.do("PATCH", target, "")
		wantError(t, w, http.StatusMethodNotAllowed, "method_not_allowed", "method")
		if got := w.Header().Get("Allow"); got != want {
			t.Errorf("PATCH %s: Allow %q, want %q", target, got, want)
		}
	}
}
