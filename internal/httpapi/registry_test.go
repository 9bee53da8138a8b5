package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFeatureGroups(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		v1 := `{"entity_key": "user_id", "ttl_seconds": 3600, "description": "per-user stats", "tags": {"team": "growth"},
			"features": [{"name": "clicks", "type": "int64", "description": "click count"}]}`
		v1Stored := `{"name": "user_stats", "entity_key": "user_id", "ttl_seconds": 3600, "description": "per-user stats",
			"tags": {"team": "growth"}, "features": [{"name": "clicks", "type": "int64", "description": "click count"}],
			"schema_version": 1, "created_at": "2025-06-05T03:00:00Z", "updated_at": "2025-06-05T03:00:00Z"}`
		v2 := `{"entity_key": "user_id", "ttl_seconds": 60,
			"features": [{"name": "clicks", "type": "int64"}, {"name": "segment", "type": "string"}]}`
		v2Stored := `{"name": "user_stats", "entity_key": "user_id", "ttl_seconds": 60,
			"features": [{"name": "clicks", "type": "int64"}, {"name": "segment", "type": "string"}],
			"schema_version": 2, "created_at": "2025-06-05T03:00:00Z", "updated_at": "2025-06-05T03:01:00Z"}`

		t.Run("create", func(t *testing.T) {
			wantJSON(t, e.mustDo(t, http.StatusCreated, "PUT", "/v1/feature-groups/user_stats", v1).Body.Bytes(), v1Stored)
			wantJSON(t, e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/user_stats", "").Body.Bytes(), v1Stored)
		})
		t.Run("replace", func(t *testing.T) {
			e.clock.Advance(time.Minute)
			wantJSON(t, e.mustDo(t, http.StatusOK, "PUT", "/v1/feature-groups/user_stats", v2).Body.Bytes(), v2Stored)
			wantJSON(t, e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/user_stats", "").Body.Bytes(), v2Stored)
		})
		t.Run("list", func(t *testing.T) {
			var names []string
			for _, g := range object(t, e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups", ""))["feature_groups"].([]any) {
				names = append(names, g.(map[string]any)["name"].(string))
			}
			want := "movie_audience movie_basic movie_interaction movie_statistical movie_temporal movie_text user_stats"
			if got := strings.Join(names, " "); got != want {
				t.Errorf("groups %s, want %s", got, want)
			}
		})

		tests := []struct {
			name, method, target, body string
			status                     int
			code                       string
			fields                     []string
		}{
			{"change a feature's type", "PUT", "/v1/feature-groups/user_stats",
				`{"entity_key": "user_id", "features": [{"name": "segment", "type": "string"}, {"name": "clicks", "type": "float64"}]}`,
				http.StatusConflict, "conflict", []string{"features[1].type"}},
			{"change the entity key", "PUT", "/v1/feature-groups/user_stats",
				`{"entity_key": "account_id", "features": [{"name": "clicks", "type": "int64"}]}`,
				http.StatusConflict, "conflict", []string{"entity_key"}},
			{"change both", "PUT", "/v1/feature-groups/user_stats",
				`{"entity_key": "account_id", "features": [{"name": "clicks", "type": "bool"}]}`,
				http.StatusConflict, "conflict", []string{"entity_key", "features[0].type"}},
			{"invalid names", "PUT", "/v1/feature-groups/Bad-Name",
				`{"entity_key": "1x", "ttl_seconds": -5, "features": [{"name": "ok", "type": "int64"}, {"name": "Bad", "type": "int32"}, {"name": "ok", "type": "string"}]}`,
				http.StatusBadRequest, "invalid", []string{"name", "entity_key", "features[1].name", "features[1].type", "features[2].name", "ttl_seconds"}},
			{"no features", "PUT", "/v1/feature-groups/empty",
				`{"entity_key": "k", "features": []}`,
				http.StatusBadRequest, "invalid", []string{"features"}},
			{"unknown field", "PUT", "/v1/feature-groups/extra",
				`{"entity_key": "k", "features": [{"name": "a", "type": "bool"}], "owner": "me"}`,
				http.StatusBadRequest, "invalid", []string{"owner"}},
			{"wrong JSON type", "PUT", "/v1/feature-groups/typed",
				`{"entity_key": "k", "features": {"name": "a"}}`,
				http.StatusBadRequest, "invalid", []string{"features"}},
			{"empty body", "PUT", "/v1/feature-groups/nobody", ``,
				http.StatusBadRequest, "invalid", []string{"body"}},
			{"replace a built-in group", "PUT", "/v1/feature-groups/movie_basic",
				`{"entity_key": "movie_id", "features": [{"name": "popularity", "type": "float64"}]}`,
				http.StatusConflict, "conflict", []string{"name"}},
			{"delete a built-in group", "DELETE", "/v1/feature-groups/movie_text", ``,
				http.StatusConflict, "conflict", []string{"group"}},
			{"delete an unknown group", "DELETE", "/v1/feature-groups/nope", ``,
				http.StatusNotFound, "not_found", []string{"group"}},
			{"get an unknown group", "GET", "/v1/feature-groups/nope", ``,
				http.StatusNotFound, "not_found", []string{"group"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, e.do(tc.method, tc.target, tc.body), tc.status, tc.code, tc.fields...)
			})
		}
		t.Run("wrong JSON type names the type", func(t *testing.T) {
			body := wantError(t, e.do("PUT", "/v1/feature-groups/typed", `{"entity_key": "k", "features": [{"name": "a", "type": 5}]}`),
				http.StatusBadRequest, "invalid", "features.type")
			if len(body.Fields) == 1 && body.Fields[0].Problem != "must be a string, got number" {
				t.Errorf("problem %q, want must be a string, got number", body.Fields[0].Problem)
			}
			body = wantError(t, e.do("PUT", "/v1/feature-groups/typed", `{"entity_key": "k", "features": [{"name": "a", "type": "bool"}], "tags": {"a": 1}}`),
				http.StatusBadRequest, "invalid", "tags")
			if len(body.Fields) == 1 && body.Fields[0].Problem != "must be a string, got number" {
				t.Errorf("problem %q, want must be a string, got number", body.Fields[0].Problem)
			}
		})
		t.Run("refused changes left the group alone", func(t *testing.T) {
			wantJSON(t, e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/user_stats", "").Body.Bytes(), v2Stored)
			e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/movie_basic", "")
			e.mustDo(t, http.StatusNotFound, "GET", "/v1/feature-groups/Bad-Name", "")
		})

		t.Run("a feature dropped and re-added with another type", func(t *testing.T) {
			e.putGroup(t, "reuse", `{"entity_key": "k", "features": [{"name": "a", "type": "string"}, {"name": "b", "type": "int64"}]}`)
			e.writeRows(t, "reuse", map[string]any{"entity_id": "x", "values": map[string]any{"a": "text", "b": 1}})
			e.putGroup(t, "reuse", `{"entity_key": "k", "features": [{"name": "b", "type": "int64"}]}`)
			e.putGroup(t, "reuse", `{"entity_key": "k", "features": [{"name": "b", "type": "int64"}, {"name": "a", "type": "bool"}]}`)
			// The stored "text" is not a value of the bool feature a.
			got := e.getEntity(t, "reuse", "x", "")
			wantJSON(t, []byte(mustJSON(t, got.Features)), `{"a": null, "b": 1}`)
			wantJSON(t, []byte(mustJSON(t, got.Statuses)), `{"a": "NULL_VALUE", "b": "PRESENT"}`)
			w := e.mustDo(t, http.StatusOK, "POST", "/get-online-features", `{"entities": {"k": ["x"]}, "features": ["reuse:a", "reuse:b"]}`)
			wantJSON(t, w.Body.Bytes(), `{"metadata": {"feature_names": ["k", "a", "b"]}, "results": [
				{"values": ["x"], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
				{"values": [null], "statuses": ["NULL_VALUE"], "event_timestamps": ["2025-06-05T03:01:00Z"]},
				{"values": [1], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T03:01:00Z"]}]}`)
		})

		t.Run("delete removes the rows", func(t *testing.T) {
			e.writeRows(t, "user_stats", map[string]any{"entity_id": "u1", "values": map[string]any{"clicks": 3, "segment": "x"}})
			e.getEntity(t, "user_stats", "u1", "") // cached now
			w := e.mustDo(t, http.StatusNoContent, "DELETE", "/v1/feature-groups/user_stats", "")
			if w.Body.Len() != 0 {
				t.Errorf("204 with a body: %s", w.Body)
			}
			wantError(t, e.do("GET", "/v1/feature-groups/user_stats", ""), http.StatusNotFound, "not_found", "group")
			wantError(t, e.do("GET", "/v1/feature-groups/user_stats/entities/u1", ""), http.StatusNotFound, "not_found", "group")
			wantError(t, e.do("DELETE", "/v1/feature-groups/user_stats", ""), http.StatusNotFound, "not_found", "group")
			// Re-created (on a clock that stood still): a new, empty group.
			w = e.mustDo(t, http.StatusCreated, "PUT", "/v1/feature-groups/user_stats", v2)
			if v := object(t, w)["schema_version"]; v != json.Number("1") {
				t.Errorf("re-created group has schema_version %v, want 1", v)
			}
			wantError(t, e.do("GET", "/v1/feature-groups/user_stats/entities/u1", ""), http.StatusNotFound, "not_found", "id")
			w = e.mustDo(t, http.StatusOK, "POST", "/get-online-features", `{"entities": {"user_id": ["u1"]}, "features": ["user_stats:clicks"]}`)
			if st := object(t, w)["results"].([]any)[1].(map[string]any)["statuses"].([]any)[0]; st != "NOT_FOUND" {
				t.Errorf("row of the deleted group still served: %s", w.Body)
			}
		})
	})
}

const typedGroup = `{"entity_key": "id", "features": [{"name": "big", "type": "int64"}, {"name": "flag", "type": "bool"},
	{"name": "name", "type": "string"}, {"name": "ratio", "type": "float64"}, {"name": "missing", "type": "string"}]}`

func TestWriteRows(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		e.putGroup(t, "typed", typedGroup)

		t.Run("values round trip", func(t *testing.T) {
			e.clock.Advance(time.Second)
			w := e.mustDo(t, http.StatusOK, "POST", "/v1/feature-groups/typed/rows", `[
				{"entity_id": "e1", "values": {"big": 9007199254740993, "flag": true, "name": "h\u00e9llo \"q\" \u2603", "ratio": null}},
				{"entity_id": "e2", "values": {"big": 9223372036854775807, "flag": false, "name": "", "ratio": 3}},
				{"entity_id": 42, "values": {"big": -9223372036854775808, "ratio": 1e300}},
				{"entity_id": "e4", "values": {"big": 460.0, "ratio": -0.5}}]`)
			wantJSON(t, w.Body.Bytes(), `{"feature_group": "typed", "rows": 4, "features_written": 20, "write_time": "2025-06-05T03:00:01Z"}`)
			for _, c := range []struct{ id, features, statuses string }{
				{"e1", `{"big": 9007199254740993, "flag": true, "name": "h\u00e9llo \"q\" \u2603", "ratio": null, "missing": null}`,
					`{"big": "PRESENT", "flag": "PRESENT", "name": "PRESENT", "ratio": "NULL_VALUE", "missing": "NULL_VALUE"}`},
				{"e2", `{"big": 9223372036854775807, "flag": false, "name": "", "ratio": 3, "missing": null}`,
					`{"big": "PRESENT", "flag": "PRESENT", "name": "PRESENT", "ratio": "PRESENT", "missing": "NULL_VALUE"}`},
				{"42", `{"big": -9223372036854775808, "flag": null, "name": null, "ratio": 1e+300, "missing": null}`,
					`{"big": "PRESENT", "flag": "NULL_VALUE", "name": "NULL_VALUE", "ratio": "PRESENT", "missing": "NULL_VALUE"}`},
				{"e4", `{"big": 460, "flag": null, "name": null, "ratio": -0.5, "missing": null}`,
					`{"big": "PRESENT", "flag": "NULL_VALUE", "name": "NULL_VALUE", "ratio": "PRESENT", "missing": "NULL_VALUE"}`},
			} {
				w := e.mustDo(t, http.StatusOK, "GET", "/v1/feature-groups/typed/entities/"+c.id, "")
				got := object(t, w)
				wantJSON(t, []byte(mustJSON(t, got["features"])), c.features)
				wantJSON(t, []byte(mustJSON(t, got["statuses"])), c.statuses)
				if got["event_time"] != "2025-06-05T03:00:01Z" || got["write_time"] != "2025-06-05T03:00:01Z" {
					t.Errorf("%s: event_time %v write_time %v, want the write time", c.id, got["event_time"], got["write_time"])
				}
			}
			if !strings.Contains(e.do("GET", "/v1/feature-groups/typed/entities/e1", "").Body.String(), `"big":9007199254740993`) {
				t.Error("int64 beyond 2^53 not served exactly")
			}
		})

		tests := []struct {
			name, group, body string
			status            int
			code              string
			fields            []string
			// unwritten are entities that must not exist afterwards.
			unwritten []string
		}{
			{"one invalid row among valid ones", "typed",
				`[{"entity_id": "v1", "values": {"flag": true}}, {"entity_id": "v2", "values": {"flag": "yes", "big": 1}}, {"entity_id": "v3", "values": {"name": "n"}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[1].values.flag"}, []string{"v1", "v2", "v3"}},
			{"unknown feature", "typed", `[{"entity_id": "v4", "values": {"zzz": 1, "big": 2}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[0].values.zzz"}, []string{"v4"}},
			{"missing entity_id", "typed", `[{"values": {"big": 1}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[0].entity_id"}, nil},
			{"empty entity_id", "typed", `[{"entity_id": "v5", "values": {}}, {"entity_id": "", "values": {"big": 1}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[1].entity_id"}, []string{"v5"}},
			{"fractional int64", "typed", `[{"entity_id": "v6", "values": {"big": 1.5}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[0].values.big"}, []string{"v6"}},
			{"int64 out of range", "typed", `[{"entity_id": "v7", "values": {"big": 9223372036854775808}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[0].values.big"}, []string{"v7"}},
			{"wrong types", "typed", `[{"entity_id": "v8", "values": {"name": 5, "ratio": "x", "big": true}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[0].values.big", "rows[0].values.name", "rows[0].values.ratio"}, []string{"v8"}},
			{"values missing", "typed", `[{"entity_id": "v9"}]`,
				http.StatusBadRequest, "invalid", []string{"rows[0].values"}, []string{"v9"}},
			{"same entity and event time twice", "typed",
				`[{"entity_id": "v10", "event_time": "2025-01-01T00:00:00Z", "values": {}}, {"entity_id": "v10", "event_time": "2025-01-01T00:00:00Z", "values": {}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[1].event_time"}, []string{"v10"}},
			{"no rows", "typed", `[]`, http.StatusBadRequest, "invalid", []string{"rows"}, nil},
			{"not an array", "typed", `{"entity_id": "v11", "values": {}}`, http.StatusBadRequest, "invalid", []string{"body"}, []string{"v11"}},
			{"unknown field in a row", "typed", `[{"entity_id": "v12", "values": {}, "ttl": 1}]`,
				http.StatusBadRequest, "invalid", []string{"ttl"}, []string{"v12"}},
			{"NUL in a string", "typed", `[{"entity_id": "v15", "values": {"name": "x\u0000y"}}, {"entity_id": "v16", "values": {"name": "ok"}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[0].values.name"}, []string{"v15", "v16"}},
			{"bad event_time", "typed", `[{"entity_id": "v17", "event_time": "0001-01-01T00:00:00Z", "values": {}}]`,
				http.StatusBadRequest, "invalid", []string{"rows[0].event_time"}, []string{"v17"}},
			{"unknown group", "nope", `[{"entity_id": "v13", "values": {}}]`,
				http.StatusNotFound, "not_found", []string{"group"}, nil},
			{"too many rows", "typed", "[" + strings.Repeat(`{"entity_id": "v14", "values": {}},`, 10000) + `{"entity_id": "v14", "values": {}}]`,
				http.StatusRequestEntityTooLarge, "too_large", []string{"rows"}, []string{"v14"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, e.do("POST", "/v1/feature-groups/"+tc.group+"/rows", tc.body), tc.status, tc.code, tc.fields...)
				for _, id := range tc.unwritten {
					wantError(t, e.do("GET", "/v1/feature-groups/typed/entities/"+id, ""), http.StatusNotFound, "not_found", "id")
				}
			})
		}
	})
}
