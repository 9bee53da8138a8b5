package tmdb

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

// TestRealCollection runs the crawler's file of 100 real TMDB records
// (Korean titles and overviews) through Decode, ParseMovie and Features.
func TestRealCollection(t *testing.T) {
	t.Parallel()
	body, err := os.ReadFile(testenv.TMDBFile(t))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Decode(body)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(recs) != 100 {
		t.Fatalf("Decode returned %d records, want 100", len(recs))
	}
	// Independently of ParseMovie, the release dates as strings.
	var raw struct {
		Movies []struct {
			ReleaseDate string `json:"release_date"`
		} `json:"movies"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}

	collected := time.Date(2025, 6, 5, 2, 24, 12, 0, time.UTC)
	movies := make([]Movie, len(recs))
	c := NewCorpus()
	emptyOverview, wantFuture := 0, 0
	for i, r := range recs {
		m, errs := ParseMovie(r)
		if errs != nil {
			t.Fatalf("record %d rejected: %v", i, errs)
		}
		checkMovieRules(t, m)
		if m.Overview == "" {
			emptyOverview++
		}
		if raw.Movies[i].ReleaseDate > "2025-06-05" {
			wantFuture++
		}
		movies[i] = m
		c.Set(m.ID, m.VoteAverage, m.Popularity)
	}
	if emptyOverview != 22 {
		t.Errorf("%d records with an empty overview, want 22", emptyOverview)
	}
	if c.Len() != 100 {
		t.Errorf("corpus has %d movies, want 100 (ids must be distinct)", c.Len())
	}

	var rz, pz []float64
	future, maxPct := 0, 0.0
	for _, m := range movies {
		got := Features(m, collected, c)
		checkTypes(t, got)
		st := got[GroupStatistical]
		pct := st["rating_percentile"].(float64)
		if pct <= 0 || pct > 100 { // the corpus contains the movie itself
			t.Errorf("movie %d: rating_percentile %v outside (0, 100]", m.ID, pct)
		}
		maxPct = math.Max(maxPct, pct)
		rz = append(rz, st["rating_zscore"].(float64))
		pz = append(pz, st["popularity_zscore"].(float64))
		if got[GroupTemporal]["is_future_release"] == true {
			future++
			if d := got[GroupTemporal]["days_since_release"].(int64); d >= 0 {
				t.Errorf("movie %d is a future release with days_since_release %d", m.ID, d)
			}
		}
		if l := got[GroupText]["overview_length"].(int64); (l == 0) != (m.Overview == "") {
			t.Errorf("movie %d: overview_length %d for %q", m.ID, l, m.Overview)
		}
	}
	if maxPct != 100 {
		t.Errorf("the best rated movie has percentile %v, want 100", maxPct)
	}
	if future != wantFuture || future == 0 {
		t.Errorf("%d future releases, want %d (> 0)", future, wantFuture)
	}
	for name, zs := range map[string][]float64{"rating": rz, "popularity": pz} {
		var sum, sq float64
		for _, z := range zs {
			sum += z
			sq += z * z
		}
		mean := sum / float64(len(zs))
		if math.Abs(mean) > 1e-9 {
			t.Errorf("%s z-scores have mean %v, want ~0", name, mean)
		}
		if std := math.Sqrt(sq/float64(len(zs)) - mean*mean); math.Abs(std-1) > 1e-6 {
			t.Errorf("%s z-scores have std %v, want ~1", name, std)
		}
	}

	// A Korean title counts in characters: "씨너스: 죄인들" is 8 code points, 20 bytes.
	i := slices.IndexFunc(movies, func(m Movie) bool { return m.ID == 1233413 })
	if i < 0 || movies[i].Title != "씨너스: 죄인들" {
		t.Fatal("movie 1233413 (씨너스: 죄인들) not in the file")
	}
	if got := Features(movies[i], collected, c)[GroupText]; got["title_length"] != int64(8) || got["title_word_count"] != int64(2) || got["title_has_colon"] != true {
		t.Errorf("씨너스: 죄인들: %v", got)
	}
}

// checkMovieRules fails unless m satisfies every validation rule.
func checkMovieRules(t *testing.T, m Movie) {
	t.Helper()
	ok := m.ID >= 1 && m.Title != "" &&
		m.VoteAverage >= 0 && m.VoteAverage <= 10 &&
		m.Popularity >= 0 && m.Popularity <= maxPopularity && m.VoteCount >= 0 &&
		len(m.GenreIDs) <= maxGenres &&
		len([]rune(m.Title)) <= maxTitleLength && len([]rune(m.OriginalTitle)) <= maxTitleLength &&
		len([]rune(m.Overview)) <= maxOverviewLength && len([]rune(m.OriginalLanguage)) <= maxLanguageLength
	if !ok {
		t.Errorf("accepted movie breaks a rule: %+v", m)
	}
	if m.ReleaseDate == "" {
		if !m.Release.IsZero() {
			t.Errorf("no release date but Release %v", m.Release)
		}
	} else if r, err := time.Parse(time.DateOnly, m.ReleaseDate); err != nil || !r.Equal(m.Release) || r.Format(time.DateOnly) != m.ReleaseDate {
		t.Errorf("release_date %q, Release %v", m.ReleaseDate, m.Release)
	}
}
