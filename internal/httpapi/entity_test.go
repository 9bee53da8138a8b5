package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/tmdb"
)

const pricesGroup = `{"entity_key": "sku", "ttl_seconds": 0, "features": [
	{"name": "price", "type": "float64"}, {"name": "qty", "type": "int64"}, {"name": "label", "type": "string"}]}`

func TestGetEntity(t *testing.T) {
	t.Parallel()
	jan := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	mar := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	forEachBackend(t, func(t *testing.T, e *env) {
		e.mustDo(t, http.StatusOK, "POST", "/v1/movies", fixture(t, "movie.json"))
		e.mustDo(t, http.StatusOK, "POST", "/v1/movies", `{"id": 900, "title": "No Date", "release_date": ""}`)
		e.putGroup(t, "prices", pricesGroup)
		e.writeRows(t, "prices", map[string]any{"entity_id": "a", "event_time": jan, "values": map[string]any{"price": 1.5, "qty": 10, "label": "old"}})
		e.writeRows(t, "prices", map[string]any{"entity_id": "a", "event_time": mar, "values": map[string]any{"price": 2.5, "qty": 20, "label": "new"}})

		older := `{"price": 1.5, "qty": 10, "label": "old"}`
		newer := `{"price": 2.5, "qty": 20, "label": "new"}`
		present3 := `{"price": "PRESENT", "qty": "PRESENT", "label": "PRESENT"}`
		tests := []struct {
			name   string
			target string
			// For a 200: the features and statuses, and the event time.
			features, statuses string
			eventTime          time.Time
			// For an error: status, code and fields.
			status int
			code   string
			fields []string
		}{
			{name: "subset", target: "/v1/feature-groups/movie_basic/entities/101?features=popularity,vote_count",
				features: `{"popularity": 80.5, "vote_count": 30000}`, statuses: `{"popularity": "PRESENT", "vote_count": "PRESENT"}`, eventTime: t0},
			{name: "subset with blanks", target: "/v1/feature-groups/movie_basic/entities/101?features=%20adult%20,,rating_tier",
				features: `{"adult": false, "rating_tier": "excellent"}`, statuses: `{"adult": "PRESENT", "rating_tier": "PRESENT"}`, eventTime: t0},
			{name: "latest of a user group", target: "/v1/feature-groups/prices/entities/a",
				features: newer, statuses: present3, eventTime: mar},
			{name: "as of between two writes", target: "/v1/feature-groups/prices/entities/a?as_of=2025-02-01T00:00:00Z",
				features: older, statuses: present3, eventTime: jan},
			{name: "as of with an offset", target: "/v1/feature-groups/prices/entities/a?as_of=2025-01-01T01:00:00%2B01:00",
				features: older, statuses: present3, eventTime: jan},
			{name: "as of the second write", target: "/v1/feature-groups/prices/entities/a?as_of=2025-03-01T00:00:00Z",
				features: newer, statuses: present3, eventTime: mar},
			{name: "as of a microsecond before the second write", target: "/v1/feature-groups/prices/entities/a?as_of=2025-02-28T23:59:59.999999Z",
				features: older, statuses: present3, eventTime: jan},
			{name: "as of with a subset", target: "/v1/feature-groups/prices/entities/a?as_of=2025-02-01T00:00:00Z&features=qty",
				features: `{"qty": 10}`, statuses: `{"qty": "PRESENT"}`, eventTime: jan},
			{name: "no release date: temporal features null", target: "/v1/feature-groups/movie_temporal/entities/900?features=release_year,is_recent,days_since_release",
				features: `{"release_year": null, "is_recent": null, "days_since_release": null}`,
				statuses: `{"release_year": "NULL_VALUE", "is_recent": "NULL_VALUE", "days_since_release": "NULL_VALUE"}`, eventTime: t0.Add(time.Microsecond)},

			{name: "unknown feature", target: "/v1/feature-groups/movie_basic/entities/101?features=popularity,nope,vote_count,zzz",
				status: http.StatusNotFound, code: "not_found", fields: []string{"features[1]", "features[3]"}},
			{name: "unknown group", target: "/v1/feature-groups/nope/entities/101",
				status: http.StatusNotFound, code: "not_found", fields: []string{"group"}},
			{name: "unknown entity", target: "/v1/feature-groups/movie_basic/entities/999",
				status: http.StatusNotFound, code: "not_found", fields: []string{"id"}},
			{name: "unknown entity of a user group", target: "/v1/feature-groups/prices/entities/b",
				status: http.StatusNotFound, code: "not_found", fields: []string{"id"}},
			{name: "as of before the first write", target: "/v1/feature-groups/prices/entities/a?as_of=2024-12-31T23:59:59Z",
				status: http.StatusNotFound, code: "not_found", fields: []string{"id"}},
			{name: "bad as_of", target: "/v1/feature-groups/prices/entities/a?as_of=yesterday",
				status: http.StatusBadRequest, code: "invalid", fields: []string{"as_of"}},
			{name: "as_of without a time", target: "/v1/feature-groups/prices/entities/a?as_of=2025-02-01",
				status: http.StatusBadRequest, code: "invalid", fields: []string{"as_of"}},
			{name: "entity id with a control character", target: "/v1/feature-groups/prices/entities/a%01b",
				status: http.StatusBadRequest, code: "invalid", fields: []string{"id"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.status != 0 {
					wantError(t, e.do("GET", tc.target, ""), tc.status, tc.code, tc.fields...)
					return
				}
				w := e.mustDo(t, http.StatusOK, "GET", tc.target, "")
				got := object(t, w)
				wantJSON(t, []byte(mustJSON(t, got["features"])), tc.features)
				wantJSON(t, []byte(mustJSON(t, got["statuses"])), tc.statuses)
				if et, _ := time.Parse(time.RFC3339Nano, got["event_time"].(string)); !et.Equal(tc.eventTime) {
					t.Errorf("event_time %v, want %v", got["event_time"], tc.eventTime)
				}
			})
		}

		t.Run("all features", func(t *testing.T) {
			got := e.getEntity(t, tmdb.GroupBasic, "101", "")
			want := builtinGroup(t, tmdb.GroupBasic).FeatureNames()
			if len(got.Features) != len(want) || len(got.Statuses) != len(want) {
				t.Errorf("%d features, %d statuses, want %d", len(got.Features), len(got.Statuses), len(want))
			}
			for _, n := range want {
				if _, ok := got.Features[n]; !ok || got.Statuses[n] != "PRESENT" {
					t.Errorf("feature %s: %v %s, want present", n, got.Features[n], got.Statuses[n])
				}
			}
			if got.Group != "movie_basic" || got.EntityKey != "movie_id" || got.EntityID != "101" || got.AsOf != nil ||
				!got.EventTime.Equal(t0) || got.WriteTime.Before(got.EventTime) {
				t.Errorf("header fields %+v", got)
			}
		})

		t.Run("escaped entity ids", func(t *testing.T) {
			ids := []string{"a/b", "a b", "a%b", "ünï", "A"}
			rows := make([]any, len(ids))
			for i, id := range ids {
				rows[i] = map[string]any{"entity_id": id, "event_time": jan, "values": map[string]any{"qty": i}}
			}
			e.writeRows(t, "prices", rows...)
			for _, c := range []struct{ path, id string }{
				{"a%2Fb", "a/b"}, {"a%2fb", "a/b"}, {"a%20b", "a b"}, {"a%25b", "a%b"},
				{"%C3%BCn%C3%AF", "ünï"}, {"%41", "A"}, {"A", "A"},
			} {
				got := e.getEntity(t, "prices", c.path, "features=qty")
				if got.EntityID != c.id {
					t.Errorf("GET .../entities/%s: entity %q, want %q", c.path, got.EntityID, c.id)
				}
			}
		})

		t.Run("outside max age", func(t *testing.T) {
			ttl := time.Duration(builtinGroup(t, tmdb.GroupBasic).TTL)
			e.clock.Advance(ttl)
			if st := e.getEntity(t, tmdb.GroupBasic, "101", "features=popularity").Statuses["popularity"]; st != "PRESENT" {
				t.Errorf("exactly one TTL old: %s, want PRESENT", st)
			}
			e.clock.Advance(time.Second)
			got := e.getEntity(t, tmdb.GroupBasic, "101", "features=popularity,vote_count,adult")
			wantJSON(t, []byte(mustJSON(t, got.Features)), `{"popularity": 80.5, "vote_count": 30000, "adult": false}`)
			wantJSON(t, []byte(mustJSON(t, got.Statuses)), `{"popularity": "OUTSIDE_MAX_AGE", "vote_count": "OUTSIDE_MAX_AGE", "adult": "OUTSIDE_MAX_AGE"}`)
			// A null stays NULL_VALUE however old it is.
			nulls := e.getEntity(t, tmdb.GroupTemporal, "900", "features=release_year")
			if nulls.Statuses["release_year"] != "NULL_VALUE" {
				t.Errorf("old null: %s, want NULL_VALUE", nulls.Statuses["release_year"])
			}
			// A group without a TTL never ages.
			if st := e.getEntity(t, "prices", "a", "").Statuses["price"]; st != "PRESENT" {
				t.Errorf("ttl 0 group: %s, want PRESENT", st)
			}
		})
	})
}
