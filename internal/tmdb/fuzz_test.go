package tmdb

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// FuzzParseMovie: ParseMovie never panics; an accepted movie satisfies every
// validation rule and yields finite features of the declared types; a
// rejected record names at least one field and returns no partial movie.
// Seeds are in testdata/fuzz/FuzzParseMovie.
func FuzzParseMovie(f *testing.F) {
	at := time.Date(2025, 6, 5, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, errs := ParseMovie(raw)
		if errs != nil {
			if m.ID != 0 || m.Title != "" || m.GenreIDs != nil {
				t.Fatalf("rejected record returned a partial movie %+v", m)
			}
			for _, e := range errs {
				if e.Field == "" || e.Problem == "" {
					t.Fatalf("empty field error %+v", e)
				}
			}
			return
		}
		checkMovieRules(t, m)
		c := NewCorpus()
		c.Set(m.ID, m.VoteAverage, m.Popularity)
		got := Features(m, at, c)
		checkTypes(t, got)
		if st := got[GroupStatistical]; st["rating_zscore"] != 0.0 || st["rating_percentile"] != 100.0 {
			t.Fatalf("movie alone in its corpus: %v", st)
		}
	})
}

// FuzzDecode: Decode never panics; it either returns an invalid error on
// field "body" or records that are valid JSON, each of which ParseMovie
// handles without panicking. Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := Decode(body)
		if err != nil {
			var fe *feature.Error
			if !errors.As(err, &fe) || fe.Code != feature.CodeInvalid || len(fe.Fields) != 1 || fe.Fields[0].Field != "body" {
				t.Fatalf("error %v is not invalid on body", err)
			}
			return
		}
		for _, r := range recs {
			if !json.Valid(r) {
				t.Fatalf("record %q is not valid JSON", r)
			}
			if m, errs := ParseMovie(r); errs == nil {
				checkMovieRules(t, m)
			}
		}
	})
}
