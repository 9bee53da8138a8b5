package tmdb

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ids parses each record and returns its id, or -1 for a rejected record.
func ids(t *testing.T, recs []json.RawMessage) []int64 {
	t.Helper()
	out := make([]int64, len(recs))
	for i, r := range recs {
		m, errs := ParseMovie(r)
		if errs != nil {
			out[i] = -1
			continue
		}
		out[i] = m.ID
	}
	return out
}

func TestDecodeShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []int64
	}{
		{"movie.json", []int64{101}},
		{"movies.json", []int64{201, 202, -1}}, // the string element is ParseMovie's to reject
		{"page.json", []int64{301, 302}},
		{"crawler.json", []int64{401, 402}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			recs, err := Decode(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, ids(t, recs)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeEmptyLists(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`[]`, `{"page":1,"results":[]}`, `{"collection_info":{},"movies":[]}`, " \n[ ]\t"} {
		recs, err := Decode([]byte(body))
		if err != nil || len(recs) != 0 {
			t.Errorf("Decode(%q) = %d records, %v; want 0 records, nil", body, len(recs), err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		``,
		`   `,
		`garbage`,
		`{"id": 1,`,
		`[{"id": 1}`,
		`{"id": 1} {"id": 2}`,
		`[{"id": 1}] trailing`,
		// What encoding/json accepts silently (strictjson).
		`{"id": 1, "id": 2, "title": "T"}`,
		`[{"id": 1, "title": "T\u0000"}]`,
		"[{\"id\": 1, \"title\": \"\xff\"}]",
		`{"results": [{"id": 1, "title": "\ud800"}], "page": 1}`,
		strings.Repeat("[", 65) + strings.Repeat("]", 65),
		`42`,
		`"a string"`,
		`null`,
		`true`,
		`{"page": 1, "results": null}`,
		`{"page": 1, "results": {"id": 1}}`,
		`{"movies": "nope"}`,
		`{"results": [], "movies": []}`,
		"\u00a0{\"id\": 1}", // a non-JSON space
	} {
		recs, err := Decode([]byte(body))
		if err == nil {
			t.Errorf("Decode(%q) = %d records, want an error", body, len(recs))
			continue
		}
		var fe *feature.Error
		if !errors.As(err, &fe) || fe.Code != feature.CodeInvalid || len(fe.Fields) != 1 || fe.Fields[0].Field != "body" {
			t.Errorf("Decode(%q) error = %#v, want an invalid error on field body", body, err)
		}
	}
}

func TestDecodeSingleIsACopy(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id": 7, "title": "T"}`)
	recs, err := Decode(body)
	if err != nil || len(recs) != 1 {
		t.Fatalf("Decode = %v, %v", recs, err)
	}
	body[7] = '8'
	if m, errs := ParseMovie(recs[0]); errs != nil || m.ID != 7 {
		t.Errorf("record changed with the caller's buffer: %+v %v", m, errs)
	}
}

func TestParseMovieFull(t *testing.T) {
	t.Parallel()
	m, errs := ParseMovie(readTestdata(t, "movie.json"))
	if errs != nil {
		t.Fatalf("ParseMovie: %v", errs)
	}
	want := Movie{
		ID: 101, Title: "Star Wars: Part II", OriginalTitle: "Star Wars: Part II",
		Overview:    "A hero must fight evil and find love.",
		ReleaseDate: "1999-07-16", Release: time.Date(1999, 7, 16, 0, 0, 0, 0, time.UTC),
		Popularity: 45, VoteAverage: 8, VoteCount: 300, GenreIDs: []int64{28, 12, 878},
		OriginalLanguage: "en",
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("movie (-want +got):\n%s", diff)
	}
	if m.Release.Location() != time.UTC {
		t.Errorf("Release location = %v, want UTC", m.Release.Location())
	}
}

func TestParseMovieDefaults(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"id": 5, "title": "Minimal"}`,
		`{"id": 5, "title": "Minimal", "original_title": null, "overview": null, "release_date": null,
		  "popularity": null, "vote_average": null, "vote_count": null, "genre_ids": null, "adult": null,
		  "original_language": null}`,
	} {
		m, errs := ParseMovie(json.RawMessage(raw))
		if errs != nil {
			t.Fatalf("ParseMovie(%s): %v", raw, errs)
		}
		want := Movie{ID: 5, Title: "Minimal", OriginalLanguage: "en"}
		if diff := cmp.Diff(want, m); diff != "" {
			t.Errorf("ParseMovie(%s) (-want +got):\n%s", raw, diff)
		}
	}
}

func TestParseMovieAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		raw   string
		check func(Movie) bool
	}{
		{"id", `{"id": 9, "title": "T"}`, func(m Movie) bool { return m.ID == 9 }},
		{"movie_id", `{"movie_id": 9, "title": "T"}`, func(m Movie) bool { return m.ID == 9 }},
		{"both agreeing", `{"id": 9, "movie_id": 9, "title": "T"}`, func(m Movie) bool { return m.ID == 9 }},
		{"whole float ids and counts", `{"id": 9.0, "title": "T", "vote_count": 4.6e2, "genre_ids": [18.0]}`,
			func(m Movie) bool { return m.ID == 9 && m.VoteCount == 460 && cmp.Equal(m.GenreIDs, []int64{18}) }},
		{"zeros", `{"id": 1, "title": "T", "vote_count": 0, "popularity": 0, "vote_average": 0, "genre_ids": []}`,
			func(m Movie) bool { return m.VoteCount == 0 && m.Popularity == 0 && len(m.GenreIDs) == 0 }},
		{"vote_average 10", `{"id": 1, "title": "T", "vote_average": 10}`, func(m Movie) bool { return m.VoteAverage == 10 }},
		{"language xx", `{"id": 1, "title": "T", "original_language": "xx"}`, func(m Movie) bool { return m.OriginalLanguage == "xx" }},
		{"empty overview", `{"id": 1, "title": "T", "overview": ""}`, func(m Movie) bool { return m.Overview == "" }},
		{"empty release date", `{"id": 1, "title": "T", "release_date": ""}`,
			func(m Movie) bool { return m.ReleaseDate == "" && m.Release.IsZero() }},
		{"future release", `{"id": 1, "title": "T", "release_date": "2031-12-31"}`,
			func(m Movie) bool { return m.Release.Equal(time.Date(2031, 12, 31, 0, 0, 0, 0, time.UTC)) }},
		{"leap day", `{"id": 1, "title": "T", "release_date": "2024-02-29"}`, func(m Movie) bool { return m.Release.YearDay() == 60 }},
		{"first accepted year", `{"id": 1, "title": "T", "release_date": "1800-01-01"}`, func(m Movie) bool { return m.Release.Year() == 1800 }},
		// TMDB lists films from the 1870s on (Passage de Venus, 1874).
		{"an 1890s film", `{"id": 12, "title": "L'arrivée d'un train", "release_date": "1896-01-01"}`, func(m Movie) bool { return m.Release.Year() == 1896 }},
		{"last accepted year", `{"id": 1, "title": "T", "release_date": "2200-12-31"}`, func(m Movie) bool { return m.Release.Year() == 2200 }},
		{"negative zero", `{"id": 1, "title": "T", "popularity": -0.0}`, func(m Movie) bool { return !strings.HasPrefix(jsonText(m.Popularity), "-") }},
		{"unicode title", `{"id": 1, "title": "씨너스: 죄인들"}`, func(m Movie) bool { return m.Title == "씨너스: 죄인들" }},
		{"title of 1000 characters", `{"id": 1, "title": "` + strings.Repeat("가", 1000) + `"}`, func(m Movie) bool { return len(m.Title) == 3000 }},
		{"100 genres", `{"id": 1, "title": "T", "genre_ids": [` + strings.TrimSuffix(strings.Repeat("1,", 100), ",") + `]}`,
			func(m Movie) bool { return len(m.GenreIDs) == 100 }},
		{"space around values", "{ \"id\" :\t1 ,\n\"title\" : \"T\" , \"adult\" : true\r\n, \"genre_ids\": [ 1 , 2 ] , \"vote_count\" : 3 }",
			func(m Movie) bool { return m.ID == 1 && m.Adult && m.VoteCount == 3 && len(m.GenreIDs) == 2 }},
		{"surrounding space", " \n{\"id\": 1, \"title\": \"T\"}\n", func(m Movie) bool { return m.ID == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, errs := ParseMovie(json.RawMessage(tt.raw))
			if errs != nil {
				t.Fatalf("ParseMovie: %v", errs)
			}
			if !tt.check(m) {
				t.Errorf("ParseMovie = %+v", m)
			}
		})
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestParseMovieRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string
		want []string // the fields at fault, in order
	}{
		{"not an object", `"movie"`, []string{"record"}},
		{"array", `[{"id": 1, "title": "T"}]`, []string{"record"}},
		{"null", `null`, []string{"record"}},
		{"malformed", `{"id": 1,`, []string{"record"}},
		{"empty", ``, []string{"record"}},
		{"no id", `{"title": "T"}`, []string{"id"}},
		{"null id", `{"id": null, "title": "T"}`, []string{"id"}},
		{"ids disagree", `{"id": 1, "movie_id": 2, "title": "T"}`, []string{"movie_id"}},
		{"id zero", `{"id": 0, "title": "T"}`, []string{"id"}},
		{"movie_id negative", `{"movie_id": -3, "title": "T"}`, []string{"movie_id"}},
		{"id fraction", `{"id": 1.5, "title": "T"}`, []string{"id"}},
		{"id string", `{"id": "1", "title": "T"}`, []string{"id"}},
		{"id too big", `{"id": 1e300, "title": "T"}`, []string{"id"}},
		{"id underflowing to zero", `{"id": 1e-400, "title": "T"}`, []string{"id"}},
		{"vote_count underflowing to zero", `{"id": 1, "title": "T", "vote_count": 1e-400}`, []string{"vote_count"}},
		{"release year 0000", `{"id": 1, "title": "T", "release_date": "0000-01-01"}`, []string{"release_date"}},
		{"release year 1799", `{"id": 1, "title": "T", "release_date": "1799-12-31"}`, []string{"release_date"}},
		{"release year 9999", `{"id": 1, "title": "T", "release_date": "9999-12-31"}`, []string{"release_date"}},
		{"bad id with good movie_id", `{"id": "x", "movie_id": 2, "title": "T"}`, []string{"id"}},
		{"no title", `{"id": 1}`, []string{"title"}},
		{"empty title", `{"id": 1, "title": ""}`, []string{"title"}},
		{"blank title", `{"id": 1, "title": " \t"}`, []string{"title"}},
		{"title number", `{"id": 1, "title": 7}`, []string{"title"}},
		{"title too long", `{"id": 1, "title": "` + strings.Repeat("가", 1001) + `"}`, []string{"title"}},
		{"original_title object", `{"id": 1, "title": "T", "original_title": {}}`, []string{"original_title"}},
		{"overview too long", `{"id": 1, "title": "T", "overview": "` + strings.Repeat("a", 20001) + `"}`, []string{"overview"}},
		{"vote_average above 10", `{"id": 1, "title": "T", "vote_average": 10.5}`, []string{"vote_average"}},
		{"vote_average negative", `{"id": 1, "title": "T", "vote_average": -0.1}`, []string{"vote_average"}},
		{"vote_average string", `{"id": 1, "title": "T", "vote_average": "7"}`, []string{"vote_average"}},
		{"popularity negative", `{"id": 1, "title": "T", "popularity": -1}`, []string{"popularity"}},
		{"popularity overflow", `{"id": 1, "title": "T", "popularity": 1e400}`, []string{"popularity"}},
		{"popularity huge", `{"id": 1, "title": "T", "popularity": 1e10}`, []string{"popularity"}},
		{"popularity bool", `{"id": 1, "title": "T", "popularity": true}`, []string{"popularity"}},
		{"vote_count negative", `{"id": 1, "title": "T", "vote_count": -1}`, []string{"vote_count"}},
		{"vote_count fraction", `{"id": 1, "title": "T", "vote_count": 2.5}`, []string{"vote_count"}},
		{"genre_ids not a list", `{"id": 1, "title": "T", "genre_ids": 28}`, []string{"genre_ids"}},
		{"genre_ids object", `{"id": 1, "title": "T", "genre_ids": {"28": true}}`, []string{"genre_ids"}},
		{"genre_ids bad entries", `{"id": 1, "title": "T", "genre_ids": [28, "35", 1.5, null]}`,
			[]string{"genre_ids[1]", "genre_ids[2]", "genre_ids[3]"}},
		{"genre_ids too many", `{"id": 1, "title": "T", "genre_ids": [` + strings.TrimSuffix(strings.Repeat("1,", 101), ",") + `]}`,
			[]string{"genre_ids"}},
		{"adult string", `{"id": 1, "title": "T", "adult": "false"}`, []string{"adult"}},
		{"adult number", `{"id": 1, "title": "T", "adult": 0}`, []string{"adult"}},
		{"language number", `{"id": 1, "title": "T", "original_language": 1}`, []string{"original_language"}},
		{"language too long", `{"id": 1, "title": "T", "original_language": "` + strings.Repeat("x", 17) + `"}`, []string{"original_language"}},
		{"release date day out of range", `{"id": 1, "title": "T", "release_date": "2023-02-29"}`, []string{"release_date"}},
		{"release date month 13", `{"id": 1, "title": "T", "release_date": "2023-13-01"}`, []string{"release_date"}},
		{"release date short", `{"id": 1, "title": "T", "release_date": "2023-1-5"}`, []string{"release_date"}},
		{"release date with time", `{"id": 1, "title": "T", "release_date": "2023-01-05T00:00:00Z"}`, []string{"release_date"}},
		{"release date words", `{"id": 1, "title": "T", "release_date": "soon"}`, []string{"release_date"}},
		{"release date number", `{"id": 1, "title": "T", "release_date": 20230105}`, []string{"release_date"}},
		{"many faults", `{"movie_id": "1", "title": "", "vote_average": 11, "popularity": -2, "vote_count": -1, "genre_ids": "x", "adult": 1, "release_date": "2023-02-30"}`,
			[]string{"movie_id", "title", "release_date", "popularity", "vote_average", "vote_count", "genre_ids", "adult"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, errs := ParseMovie(json.RawMessage(tt.raw))
			if errs == nil {
				t.Fatalf("ParseMovie accepted %+v", m)
			}
			if !cmp.Equal(m, Movie{}) {
				t.Errorf("ParseMovie returned a partial movie %+v with its errors", m)
			}
			got := make([]string, len(errs))
			for i, e := range errs {
				got[i] = e.Field
				if e.Problem == "" {
					t.Errorf("field %s has no problem text", e.Field)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("fields at fault (-want +got):\n%s\nerrors: %v", diff, errs)
			}
		})
	}
}

func TestParseMovieProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want feature.FieldError
	}{
		{`{"id": 1, "title": "T", "vote_average": 10.01}`, feature.FieldError{Field: "vote_average", Problem: "must be between 0 and 10"}},
		{`{"id": 1, "movie_id": 2, "title": "T"}`, feature.FieldError{Field: "movie_id", Problem: "must equal id (1) when both are present"}},
		{`{"title": "T"}`, feature.FieldError{Field: "id", Problem: "is required (as id or movie_id)"}},
		{`{"id": 1, "title": "T", "release_date": "2023-02-30"}`, feature.FieldError{Field: "release_date", Problem: "must be a date YYYY-MM-DD or empty"}},
		{`{"id": 1, "title": "T", "genre_ids": ["x"]}`, feature.FieldError{Field: "genre_ids[0]", Problem: "must be an integer"}},
	}
	for _, tt := range tests {
		_, errs := ParseMovie(json.RawMessage(tt.raw))
		if diff := cmp.Diff([]feature.FieldError{tt.want}, errs); diff != "" {
			t.Errorf("ParseMovie(%s) (-want +got):\n%s", tt.raw, diff)
		}
	}
}
