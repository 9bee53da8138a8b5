package httpapi_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// featuresPerMovie is how many feature values one ingested movie writes.
// featuresPerMovie is how many feature values an ingest writes per movie:
// every feature but the corpus-relative ones, which are computed at read
// time (docs/statistics.md).
func featuresPerMovie() int {
	n := 0
	for _, g := range tmdb.Groups() {
		n += len(g.Features)
	}
	return n - len(tmdb.CorpusRelative)
}

// entityBody is the body of GET .../entities/{id}, numbers kept exact.
type entityBody struct {
	Group     string            `json:"feature_group"`
	EntityKey string            `json:"entity_key"`
	EntityID  string            `json:"entity_id"`
	AsOf      *time.Time        `json:"as_of"`
	EventTime time.Time         `json:"event_time"`
	WriteTime time.Time         `json:"write_time"`
	Features  map[string]any    `json:"features"`
	Statuses  map[string]string `json:"statuses"`
}

// getEntity reads one entity and fails unless it is found.
func (e *env) getEntity(t testing.TB, group, id, query string) entityBody {
	t.Helper()
	target := "/v1/feature-groups/" + group + "/entities/" + id
	if query != "" {
		target += "?" + query
	}
	w := e.mustDo(t, http.StatusOK, "GET", target, "")
	var b entityBody
	dec := json.NewDecoder(strings.NewReader(w.Body.String()))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("GET %s: %v: %s", target, err, w.Body)
	}
	return b
}

// float reads a JSON number feature value.
func float(t testing.TB, v any) float64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("value %#v is not a number", v)
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// parseRecords decodes a payload the way the service does, for the
// expected values.
func parseRecords(t testing.TB, body string) []tmdb.Movie {
	t.Helper()
	raws, err := tmdb.Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var out []tmdb.Movie
	for _, raw := range raws {
		m, problems := tmdb.ParseMovie(raw)
		if len(problems) > 0 {
			t.Fatalf("fixture record is invalid: %v", problems)
		}
		out = append(out, m)
	}
	return out
}

// wantStatuses is PRESENT for every non-null value, NULL_VALUE for null.
func wantStatuses(values map[string]any) map[string]string {
	out := make(map[string]string, len(values))
	for k, v := range values {
		out[k] = "PRESENT"
		if v == nil {
			out[k] = "NULL_VALUE"
		}
	}
	return out
}

func TestIngestShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		ids  []int64
	}{
		{"single object", "movie.json", []int64{101}},
		{"array", "movies.json", []int64{201, 202}},
		{"TMDB list page", "page.json", []int64{301, 302}},
		{"crawler file", "crawler.json", []int64{401, 402}},
	}
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				e.clock.Advance(time.Minute)
				now := e.clock.Now()
				body := fixture(t, tc.file)
				w := e.mustDo(t, http.StatusOK, "POST", "/v1/movies", body)
				wantJSON(t, w.Body.Bytes(), map[string]any{
					"received": len(tc.ids), "accepted": len(tc.ids), "rejected": []any{},
					"features_written": len(tc.ids) * featuresPerMovie(),
					"event_time":       now, "movie_ids": tc.ids,
				})
				// Every group but the corpus-relative one is a pure function
				// of the record and the event time: what is served is exactly
				// what tmdb computes, with its types.
				for _, m := range parseRecords(t, body) {
					id := fmt.Sprint(m.ID)
					for group, values := range tmdb.Features(m, now, nil) {
						if group == tmdb.GroupStatistical {
							continue
						}
						got := e.getEntity(t, group, id, "")
						if !got.EventTime.Equal(now) || got.EntityID != id || got.EntityKey != "movie_id" {
							t.Errorf("%s/%s: event_time %v entity %q key %q, want %v %q movie_id", group, id, got.EventTime, got.EntityID, got.EntityKey, now, id)
						}
						wantJSON(t, []byte(mustJSON(t, got.Features)), map[string]any(values))
						if diff := cmp.Diff(wantStatuses(values), got.Statuses); diff != "" {
							t.Errorf("%s/%s statuses (-want +got):\n%s", group, id, diff)
						}
					}
				}
			})
		}
		// Hand-checked values of movie.json (ingested at t0+1m).
		text := e.getEntity(t, tmdb.GroupText, "101", "")
		wantJSON(t, []byte(mustJSON(t, text.Features)), `{
			"title_length": 14, "overview_length": 27, "title_word_count": 3, "overview_word_count": 6,
			"title_has_colon": true, "title_has_number": false, "title_has_sequel_indicator": true,
			"action_keyword_count": 2, "horror_keyword_count": 0, "romance_keyword_count": 1,
			"is_title_same_as_original": true}`)
		temporal := e.getEntity(t, tmdb.GroupTemporal, "101", "features=release_year,days_since_release,is_summer_release")
		wantJSON(t, []byte(mustJSON(t, temporal.Features)), `{"release_year": 2010, "days_since_release": 5438, "is_summer_release": true}`)
		basic := e.getEntity(t, tmdb.GroupBasic, "101", "features=popularity,vote_count,genre_action,genre_comedy,rating_tier")
		wantJSON(t, []byte(mustJSON(t, basic.Features)), `{"popularity": 80.5, "vote_count": 30000, "genre_action": true, "genre_comedy": false, "rating_tier": "excellent"}`)
	})
}

func TestIngestRealFile(t *testing.T) {
	t.Parallel()
	body := readFile(t, testenv.TMDBFile(t))
	forEachBackend(t, func(t *testing.T, e *env) {
		w := e.mustDo(t, http.StatusOK, "POST", "/v1/movies", body)
		res := object(t, w)
		if res["received"] != json.Number("100") || res["accepted"] != json.Number("100") || len(res["rejected"].([]any)) != 0 {
			t.Fatalf("ingest of the real file: %s", w.Body)
		}
		if _, ok := res["superseded"]; ok {
			t.Errorf("superseded reported for a file without duplicates: %v", res["superseded"])
		}
		// The first record, as it is in the file.
		got := e.getEntity(t, tmdb.GroupBasic, "552524", "features=popularity,vote_average,vote_count,original_language")
		wantJSON(t, []byte(mustJSON(t, got.Features)), `{"popularity": 630.3236, "vote_average": 7.107, "vote_count": 460, "original_language": "en"}`)
		text := e.getEntity(t, tmdb.GroupText, "552524", "features=title_length,is_title_same_as_original")
		wantJSON(t, []byte(mustJSON(t, text.Features)), `{"title_length": 8, "is_title_same_as_original": false}`)
	})
}

func TestIngestMixedAndInvalid(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		t.Run("mixed valid and invalid", func(t *testing.T) {
			w := e.mustDo(t, http.StatusOK, "POST", "/v1/movies", fixture(t, "mixed.json"))
			var res struct {
				Received, Accepted int
				MovieIDs           []int64 `json:"movie_ids"`
				Rejected           []struct {
					Index  int
					Fields []struct{ Field, Problem string }
				}
			}
			if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if res.Received != 5 || res.Accepted != 2 || !slices.Equal(res.MovieIDs, []int64{501, 503}) {
				t.Errorf("received %d accepted %d ids %v, want 5 2 [501 503]", res.Received, res.Accepted, res.MovieIDs)
			}
			got := map[int][]string{}
			for _, r := range res.Rejected {
				for _, f := range r.Fields {
					got[r.Index] = append(got[r.Index], f.Field)
					if f.Problem == "" {
						t.Errorf("rejected[%d] field %s has no problem", r.Index, f.Field)
					}
				}
			}
			want := map[int][]string{
				1: {"release_date", "vote_average"},
				3: {"id", "title", "popularity", "genre_ids[1]"},
				4: {"record"},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rejected fields (-want +got):\n%s", diff)
			}
			for _, id := range []string{"501", "503"} {
				for _, g := range tmdb.Groups() {
					e.getEntity(t, g.Name, id, "")
				}
			}
			wantError(t, e.do("GET", "/v1/feature-groups/movie_basic/entities/502", ""), http.StatusNotFound, "not_found", "id")
			// 503 has no release date: its temporal features exist, all null.
			temporal := e.getEntity(t, tmdb.GroupTemporal, "503", "")
			for _, f := range builtinGroup(t, tmdb.GroupTemporal).Features {
				if v, ok := temporal.Features[f.Name]; !ok || v != nil || temporal.Statuses[f.Name] != "NULL_VALUE" {
					t.Errorf("temporal %s of a movie without release date: %v %s, want null NULL_VALUE", f.Name, v, temporal.Statuses[f.Name])
				}
			}
		})

		t.Run("all invalid", func(t *testing.T) {
			body := `[{"id": 601, "title": " "}, {"id": 602, "title": "x", "vote_count": -1}]`
			w := e.do("POST", "/v1/movies", body)
			wantError(t, w, http.StatusUnprocessableEntity, "invalid", "records[0].title", "records[1].vote_count")
			res := object(t, w)
			if res["received"] != json.Number("2") || res["accepted"] != json.Number("0") || len(res["rejected"].([]any)) != 2 {
				t.Errorf("422 body does not carry the ingest report: %s", w.Body)
			}
			for _, id := range []string{"601", "602"} {
				for _, g := range tmdb.Groups() {
					wantError(t, e.do("GET", "/v1/feature-groups/"+g.Name+"/entities/"+id, ""), http.StatusNotFound, "not_found", "id")
				}
			}
		})

		t.Run("duplicate ids: the later record wins", func(t *testing.T) {
			body := `[
				{"id": 701, "title": "First", "vote_average": 5},
				{"id": 702, "title": "Other"},
				{"id": 701, "title": "Second Title", "vote_average": 9},
				{"id": 703, "title": "A"}, {"id": 703, "title": "BB"}, {"id": 703, "title": "CCC"}
			]`
			w := e.mustDo(t, http.StatusOK, "POST", "/v1/movies", body)
			res := object(t, w)
			if diff := cmp.Diff([]any{json.Number("0"), json.Number("3"), json.Number("4")}, res["superseded"]); diff != "" {
				t.Errorf("superseded (-want +got):\n%s", diff)
			}
			if res["accepted"] != json.Number("3") {
				t.Errorf("accepted %v, want 3", res["accepted"])
			}
			ids := []string{}
			for _, id := range res["movie_ids"].([]any) {
				ids = append(ids, string(id.(json.Number)))
			}
			slices.Sort(ids)
			if !slices.Equal(ids, []string{"701", "702", "703"}) {
				t.Errorf("movie_ids %v, want 701, 702, 703 once each", ids)
			}
			got := e.getEntity(t, tmdb.GroupText, "701", "features=title_length")
			wantJSON(t, []byte(mustJSON(t, got.Features)), `{"title_length": 12}`)
			got = e.getEntity(t, tmdb.GroupBasic, "701", "features=vote_average")
			wantJSON(t, []byte(mustJSON(t, got.Features)), `{"vote_average": 9}`)
			got = e.getEntity(t, tmdb.GroupText, "703", "features=title_length")
			wantJSON(t, []byte(mustJSON(t, got.Features)), `{"title_length": 3}`)
		})
	})
}

func TestIngestBadBodies(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, e *env) {
		tests := []struct {
			name   string
			body   string
			status int
			code   string
		}{
			{"malformed JSON", `{"id": 1, "title": `, http.StatusBadRequest, "invalid"},
			{"malformed array", `[{"id": 1, "title": "x"}`, http.StatusBadRequest, "invalid"},
			{"empty body", "", http.StatusBadRequest, "invalid"},
			{"blank body", " \n\t ", http.StatusBadRequest, "invalid"},
			{"top-level scalar", `42`, http.StatusBadRequest, "invalid"},
			{"results not an array", `{"page": 1, "results": {"id": 1}}`, http.StatusBadRequest, "invalid"},
			{"page and crawler file at once", `{"results": [], "movies": []}`, http.StatusBadRequest, "invalid"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, e.do("POST", "/v1/movies", tc.body), tc.status, tc.code, "body")
			})
		}
		t.Run("body over the limit", func(t *testing.T) {
			small := e.newRouter(1024)
			w := serve(t, small, "POST", "/v1/movies", readFile(t, testenv.TMDBFile(t)))
			wantError(t, w, http.StatusRequestEntityTooLarge, "too_large", "body")
			wantError(t, e.do("GET", "/v1/feature-groups/movie_basic/entities/552524", ""), http.StatusNotFound, "not_found", "id")
		})
		t.Run("empty array", func(t *testing.T) {
			w := e.mustDo(t, http.StatusOK, "POST", "/v1/movies", `[]`)
			res := object(t, w)
			if res["received"] != json.Number("0") || res["accepted"] != json.Number("0") {
				t.Errorf("empty array: %s", w.Body)
			}
		})
	})
}

// corpusPoint is one movie of the real file's corpus.
type corpusPoint struct {
	id                      int64
	voteAverage, popularity float64
}

func realCorpus(t testing.TB) []corpusPoint {
	t.Helper()
	var f struct {
		Movies []struct {
			MovieID     int64   `json:"movie_id"`
			VoteAverage float64 `json:"vote_average"`
			Popularity  float64 `json:"popularity"`
		} `json:"movies"`
	}
	if err := json.Unmarshal([]byte(readFile(t, testenv.TMDBFile(t))), &f); err != nil {
		t.Fatal(err)
	}
	out := make([]corpusPoint, len(f.Movies))
	for i, m := range f.Movies {
		out[i] = corpusPoint{m.MovieID, m.VoteAverage, m.Popularity}
	}
	return out
}

// statsOf computes, independently of the service, a movie's corpus-relative
// features: rating z-score, popularity z-score (population std) and rating
// percentile.
func statsOf(corpus []corpusPoint, voteAverage, popularity float64) (rz, pz, pct float64) {
	n := float64(len(corpus))
	var sr, sp float64
	for _, c := range corpus {
		sr += c.voteAverage
		sp += c.popularity
	}
	mr, mp := sr/n, sp/n
	var vr, vp float64
	le := 0
	for _, c := range corpus {
		vr += (c.voteAverage - mr) * (c.voteAverage - mr)
		vp += (c.popularity - mp) * (c.popularity - mp)
		if c.voteAverage <= voteAverage {
			le++
		}
	}
	rz = (voteAverage - mr) / (math.Sqrt(vr/n) + 1e-8)
	pz = (popularity - mp) / (math.Sqrt(vp/n) + 1e-8)
	return rz, pz, 100 * float64(le) / n
}

// builtinGroup is the definition of one of the TMDB groups.
func builtinGroup(t testing.TB, name string) feature.Group {
	t.Helper()
	for _, g := range tmdb.Groups() {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no built-in group %s", name)
	return feature.Group{}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// checkStats compares a movie's served statistical features with statsOf.
func checkStats(t testing.TB, what string, got map[string]any, corpus []corpusPoint, voteAverage, popularity float64) {
	t.Helper()
	rz, pz, pct := statsOf(corpus, voteAverage, popularity)
	for _, c := range []struct {
		name string
		want float64
	}{{"rating_zscore", rz}, {"popularity_zscore", pz}, {"rating_percentile", pct}} {
		if g := float(t, got[c.name]); !near(g, c.want) {
			t.Errorf("%s: %s = %v, want %v (corpus of %d)", what, c.name, g, c.want, len(corpus))
		}
	}
}

// TestStatisticalAgainstCorpus: a movie ingested alone is scored against the
// stored corpus, not against its one-movie batch (the original's bug), and
// every stored movie is scored against the grown corpus as soon as it grows.
func TestStatisticalAgainstCorpus(t *testing.T) {
	t.Parallel()
	corpus := realCorpus(t)
	body := readFile(t, testenv.TMDBFile(t))
	forEachBackend(t, func(t *testing.T, e *env) {
		e.mustDo(t, http.StatusOK, "POST", "/v1/movies", body)
		old := corpus[0]
		oldID := fmt.Sprint(old.id)
		before := e.getEntity(t, tmdb.GroupStatistical, oldID, "")
		checkStats(t, "old movie after the file", before.Features, corpus, old.voteAverage, old.popularity)

		e.clock.Advance(time.Minute)
		newcomer := corpusPoint{id: 990000001, voteAverage: 7.9, popularity: 42}
		e.mustDo(t, http.StatusOK, "POST", "/v1/movies",
			`{"id": 990000001, "title": "Newcomer", "vote_average": 7.9, "popularity": 42, "vote_count": 10}`)
		grown := append(slices.Clone(corpus), newcomer)
		got := e.getEntity(t, tmdb.GroupStatistical, "990000001", "")
		if float(t, got.Features["rating_zscore"]) == 0 || float(t, got.Features["rating_percentile"]) == 100 {
			t.Errorf("one-movie ingest scored against itself: %v", got.Features)
		}
		checkStats(t, "newcomer", got.Features, grown, newcomer.voteAverage, newcomer.popularity)
		// The old movie is scored against the grown corpus at once: the
		// corpus-relative features are computed at read time, nothing waits
		// for a recompute.
		now := e.getEntity(t, tmdb.GroupStatistical, oldID, "")
		if now.Features["rating_zscore"] == before.Features["rating_zscore"] {
			t.Errorf("old movie's rating_zscore unchanged by the newcomer: %v", now.Features["rating_zscore"])
		}
		checkStats(t, "old movie after the newcomer", now.Features, grown, old.voteAverage, old.popularity)

		// The deprecated recompute writes nothing and reports the corpus.
		e.clock.Advance(time.Minute)
		w := e.mustDo(t, http.StatusAccepted, "POST", "/v1/recompute", "")
		status := object(t, w)
		if status["state"] != "succeeded" || status["total"] != json.Number("101") || status["done"] != json.Number("101") {
			t.Fatalf("recompute status %v, want succeeded 101/101", status)
		}
		after := e.getEntity(t, tmdb.GroupStatistical, oldID, "")
		if !after.EventTime.Equal(now.EventTime) {
			t.Errorf("the recompute changed the old movie's row: event time %v, was %v", after.EventTime, now.EventTime)
		}
		checkStats(t, "old movie after the recompute", after.Features, grown, old.voteAverage, old.popularity)

		// Every stored movie, in one batch read.
		ids := make([]int64, len(grown))
		for i, c := range grown {
			ids[i] = c.id
		}
		w = e.mustDo(t, http.StatusOK, "POST", "/get-online-features", mustJSON(t, map[string]any{
			"entities": map[string]any{"movie_id": ids},
			"features": []string{"movie_statistical:rating_zscore", "movie_statistical:popularity_zscore", "movie_statistical:rating_percentile"},
		}))
		var resp struct {
			Results []struct {
				Values   []json.Number
				Statuses []string
			}
		}
		dec := json.NewDecoder(strings.NewReader(w.Body.String()))
		dec.UseNumber()
		if err := dec.Decode(&resp); err != nil {
			t.Fatal(err)
		}
		for i, c := range grown {
			rz, pz, pct := statsOf(grown, c.voteAverage, c.popularity)
			for j, want := range []float64{rz, pz, pct} {
				col := resp.Results[j+1]
				g, _ := col.Values[i].Float64()
				if !near(g, want) || col.Statuses[i] != "PRESENT" {
					t.Errorf("movie %d feature %d: %v %s, want %v PRESENT", c.id, j, g, col.Statuses[i], want)
				}
			}
		}
	})
}
