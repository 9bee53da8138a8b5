package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const userStatsGroup = `{"entity_key": "user_id", "ttl_seconds": 3600, "features": [
	{"name": "clicks", "type": "int64"}, {"name": "segment", "type": "string"},
	{"name": "score", "type": "float64"}, {"name": "active", "type": "bool"}]}`

const devicesGroup = `{"entity_key": "device_id", "features": [{"name": "os", "type": "string"}]}`

func TestGetOnlineFeatures(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		// First, so that its event time is t0 exactly.
		e.mustDo(t, http.StatusOK, "POST", "/v1/movies", fixture(t, "movie.json"))
		e.putGroup(t, "user_stats", userStatsGroup)
		e.putGroup(t, "devices", devicesGroup)
		e.writeRows(t, "user_stats",
			map[string]any{"entity_id": "1", "event_time": t0.Add(-10 * time.Minute),
				"values": map[string]any{"clicks": 5, "segment": "gold", "score": nil, "active": true}},
			// Two hours old with a one-hour TTL: outside its maximum age.
			map[string]any{"entity_id": 2, "event_time": t0.Add(-2 * time.Hour),
				"values": map[string]any{"clicks": 7, "segment": "silver", "score": 0.25, "active": false}},
		)

		epoch3 := `["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]`
		entityCol := `{"values": [1, "2", 3], "statuses": ["PRESENT", "PRESENT", "PRESENT"], "event_timestamps": ` + epoch3 + `}`
		ts := `["2025-06-05T02:50:00Z", "2025-06-05T01:00:00Z", "1970-01-01T00:00:00Z"]`
		tests := []struct {
			name string
			body string
			// want is the exact 200 body; otherwise status, code and fields.
			want   string
			status int
			code   string
			fields []string
		}{
			{
				name: "statuses, integer and string ids",
				body: `{"entities": {"user_id": [1, "2", 3]}, "features": ["user_stats:clicks", "user_stats:score", "user_stats:segment", "user_stats:active"]}`,
				want: `{"metadata": {"feature_names": ["user_id", "clicks", "score", "segment", "active"]}, "results": [` + entityCol + `,
					{"values": [5, 7, null], "statuses": ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"], "event_timestamps": ` + ts + `},
					{"values": [null, 0.25, null], "statuses": ["NULL_VALUE", "OUTSIDE_MAX_AGE", "NOT_FOUND"], "event_timestamps": ` + ts + `},
					{"values": ["gold", "silver", null], "statuses": ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"], "event_timestamps": ` + ts + `},
					{"values": [true, false, null], "statuses": ["PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"], "event_timestamps": ` + ts + `}]}`,
			},
			{
				name: "full feature names",
				body: `{"entities": {"user_id": ["1"]}, "features": ["user_stats:clicks"], "full_feature_names": true}`,
				want: `{"metadata": {"feature_names": ["user_id", "user_stats__clicks"]}, "results": [
					{"values": ["1"], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
					{"values": [5], "statuses": ["PRESENT"], "event_timestamps": ["2025-06-05T02:50:00Z"]}]}`,
			},
			{
				name: "built-in groups",
				body: `{"entities": {"movie_id": [101, 102]}, "features": ["movie_basic:vote_count", "movie_text:title_length"], "full_feature_names": true}`,
				want: `{"metadata": {"feature_names": ["movie_id", "movie_basic__vote_count", "movie_text__title_length"]}, "results": [
					{"values": [101, 102], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
					{"values": [30000, null], "statuses": ["PRESENT", "NOT_FOUND"], "event_timestamps": ["2025-06-05T03:00:00Z", "1970-01-01T00:00:00Z"]},
					{"values": [14, null], "statuses": ["PRESENT", "NOT_FOUND"], "event_timestamps": ["2025-06-05T03:00:00Z", "1970-01-01T00:00:00Z"]}]}`,
			},
			{name: "unknown group", body: `{"entities": {"user_id": [1]}, "features": ["user_stats:clicks", "nope:clicks"]}`,
				status: http.StatusNotFound, code: "not_found", fields: []string{"features[1]"}},
			{name: "unknown feature", body: `{"entities": {"user_id": [1]}, "features": ["user_stats:nope", "user_stats:clicks"]}`,
				status: http.StatusNotFound, code: "not_found", fields: []string{"features[0]"}},
			{name: "not a reference", body: `{"entities": {"user_id": [1]}, "features": ["clicks"]}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"features[0]"}},
			{name: "two entity keys", body: `{"entities": {"user_id": [1], "device_id": ["d"]}, "features": ["user_stats:clicks"]}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"entities"}},
			{name: "no entity key", body: `{"entities": {}, "features": ["user_stats:clicks"]}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"entities"}},
			{name: "wrong entity key for the group", body: `{"entities": {"device_id": ["d"]}, "features": ["devices:os", "user_stats:clicks"]}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"features[1]"}},
			{name: "no entities", body: `{"entities": {"user_id": []}, "features": ["user_stats:clicks"]}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"entities.user_id"}},
			{name: "no features", body: `{"entities": {"user_id": [1]}, "features": []}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"features"}},
			{name: "bad entity id", body: `{"entities": {"user_id": [1, 2.5, true, ""]}, "features": ["user_stats:clicks"]}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"entities.user_id[1]", "entities.user_id[2]", "entities.user_id[3]"}},
			{name: "over 1000 entities", body: `{"entities": {"user_id": [` + strings.Repeat("1,", 1000) + `1]}, "features": ["user_stats:clicks"]}`,
				status: http.StatusRequestEntityTooLarge, code: "too_large", fields: []string{"entities.user_id"}},
			{name: "unknown top-level field", body: `{"entities": {"user_id": [1]}, "features": ["user_stats:clicks"], "project": "x"}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"project"}},
			{name: "features of the wrong type", body: `{"entities": {"user_id": [1]}, "features": "x"}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"features"}},
			{name: "entities of the wrong type", body: `{"entities": [1], "features": ["user_stats:clicks"]}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"entities"}},
			{name: "malformed JSON", body: `{"entities": `,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"body"}},
			{name: "trailing data", body: `{"entities": {"user_id": [1]}, "features": ["user_stats:clicks"]} {}`,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"body"}},
			{name: "empty body", body: ``,
				status: http.StatusBadRequest, code: "invalid", fields: []string{"body"}},
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

		t.Run("exactly 1000 entities", func(t *testing.T) {
			ids := make([]string, 1000)
			for i := range ids {
				ids[i] = fmt.Sprint(i)
			}
			w := e.mustDo(t, http.StatusOK, "POST", "/get-online-features",
				mustJSON(t, map[string]any{"entities": map[string]any{"user_id": ids}, "features": []string{"user_stats:clicks"}}))
			got := object(t, w)["results"].([]any)
			if n := len(got[1].(map[string]any)["statuses"].([]any)); n != 1000 {
				t.Errorf("%d statuses, want 1000", n)
			}
		})
	})
}
