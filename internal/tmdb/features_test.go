package tmdb

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/featurestore/featurestore/internal/feature"
)

// eventTime is the write time of the hand-computed cases.
var eventTime = time.Date(2025, 6, 5, 12, 0, 0, 0, time.UTC)

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// The hand-computed movies. starWars: every flag set the way a typical
// record sets it; blank: every edge value (zero counts and popularity, no
// genres, empty overview, language "xx", no release date); parasite: a
// Korean title, a future release, an adult film.
var (
	starWars = Movie{
		ID: 1, Title: "Star Wars: Part II", OriginalTitle: "Star Wars: Part II",
		Overview:    "A hero must fight evil and find love.",
		ReleaseDate: "1999-07-16", Release: date(1999, 7, 16),
		Popularity: 45, VoteAverage: 8, VoteCount: 300, GenreIDs: []int64{28, 12, 878}, OriginalLanguage: "en",
	}
	blank    = Movie{ID: 2, Title: "Untitled", OriginalTitle: "Sans titre", OriginalLanguage: "xx", GenreIDs: []int64{}}
	parasite = Movie{
		ID: 3, Title: "기생충 2", OriginalTitle: "Parasite 2", Overview: "  사랑과  전쟁\n이야기 ",
		ReleaseDate: "2026-01-01", Release: date(2026, 1, 1),
		Popularity: 3.5, VoteAverage: 6.2, VoteCount: 12, GenreIDs: []int64{35, 99, 27}, Adult: true,
		OriginalLanguage: "ko",
	}
)

// genreFlags returns every genre flag false except the named ones.
func genreFlags(on ...string) feature.Values {
	v := feature.Values{}
	for _, g := range genres {
		v[g.feature] = slices.Contains(on, g.feature)
	}
	return v
}

func merge(a, b feature.Values) feature.Values {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// approx compares floats to 1e-12 relative; an int64 never equals a float64.
var approx = cmpopts.EquateApprox(1e-12, 0)

func TestFeaturesHandComputed(t *testing.T) {
	t.Parallel()
	corpus := NewCorpus()
	corpus.Set(starWars.ID, 8, 45)
	corpus.Set(blank.ID, 6, 15) // deliberately not blank's own values: a corpus of ratings 8, 6, 7
	corpus.Set(parasite.ID, 7, 30)
	// Corpus ratings {6, 7, 8}: mean 7, population std sqrt(2/3) = 0.816496580927726.
	// Corpus popularity {15, 30, 45}: mean 30, population std sqrt(150) = 12.24744871391589.

	tests := []struct {
		name  string
		movie Movie
		want  map[string]feature.Values
	}{
		{"star wars", starWars, map[string]feature.Values{
			GroupBasic: merge(genreFlags("genre_action", "genre_adventure", "genre_science_fiction"), feature.Values{
				"popularity": 45.0, "vote_average": 8.0, "vote_count": int64(300), "adult": false,
				"original_language": "en", "is_english": true, "is_korean": false, "rating_tier": "excellent",
				"log_popularity": 3.828641396489095, // ln 46
			}),
			GroupTemporal: {
				"release_year": int64(1999), "release_month": int64(7), "release_quarter": int64(3),
				"release_day_of_year": int64(197), // 31+28+31+30+31+30+16
				"decade":              int64(1990), "is_recent": false, "is_classic": true,
				// 1999-07-16 → 2025-07-16 is 26×365 + 7 leap days = 9497 days; 2025-06-05 is 41 days earlier.
				"days_since_release": int64(9456), "years_since_release": 25.88911704312115,
				"is_summer_release": true, "is_spring_release": false, "is_holiday_season": false,
				"is_future_release": false,
			},
			GroupStatistical: {
				"rating_zscore":     1.2247448563915893, // (8-7) / (0.816496580927726 + 1e-8)
				"popularity_zscore": 1.224744870391589,  // (45-30) / (12.24744871391589 + 1e-8)
				"rating_percentile": 100.0,
				"popularity_tier":   "moderate",
				"weighted_rating":   45.656882117991, // 8 × ln 301
				"rating_confidence": 1.0,
				"controversy_score": 0.3325942350332594, // |300-450| / 451
			},
			GroupText: {
				"title_length": int64(18), "overview_length": int64(37),
				"title_word_count": int64(4), "overview_word_count": int64(8),
				"title_has_colon": true, "title_has_number": false, "title_has_sequel_indicator": true,
				"action_keyword_count": int64(2), "horror_keyword_count": int64(1), "romance_keyword_count": int64(1),
				"is_title_same_as_original": true,
			},
			GroupInteraction: {
				"rating_popularity_product": 360.0, "rating_popularity_ratio": 0.17391304347826086,
				"rating_vote_product": 45.656882117991, "vote_per_popularity": 6.521739130434782,
				"genre_count": int64(3), "is_single_genre": false, "is_multi_genre": true, "has_popular_genre": true,
				"rating_vs_expectation": 1.5, // 8 - mean(6.5, 6.5, 6.5)
			},
			GroupAudience: {"audience_size": int64(4), "expected_watch_minutes": 117.0, "rating_weight": 100.0},
		}},
		{"blank", blank, map[string]feature.Values{
			GroupBasic: merge(genreFlags(), feature.Values{
				"popularity": 0.0, "vote_average": 0.0, "vote_count": int64(0), "adult": false,
				"original_language": "xx", "is_english": false, "is_korean": false, "rating_tier": "poor",
				"log_popularity": 0.0,
			}),
			GroupTemporal: {
				"release_year": nil, "release_month": nil, "release_quarter": nil, "release_day_of_year": nil,
				"decade": nil, "is_recent": nil, "is_classic": nil, "days_since_release": nil,
				"years_since_release": nil, "is_summer_release": nil, "is_spring_release": nil,
				"is_holiday_season": nil, "is_future_release": nil,
			},
			GroupStatistical: {
				"rating_zscore":     -8.573213994741124, // (0-7) / (0.816496580927726 + 1e-8)
				"popularity_zscore": -2.449489740783178, // (0-30) / (12.24744871391589 + 1e-8)
				"rating_percentile": 0.0,                // no corpus rating is <= 0
				"popularity_tier":   "minimal", "weighted_rating": 0.0, "rating_confidence": 0.0,
				"controversy_score": 0.0, // |0-0| / 1
			},
			GroupText: {
				"title_length": int64(8), "overview_length": int64(0),
				"title_word_count": int64(1), "overview_word_count": int64(0),
				"title_has_colon": false, "title_has_number": false, "title_has_sequel_indicator": false,
				"action_keyword_count": int64(0), "horror_keyword_count": int64(0), "romance_keyword_count": int64(0),
				"is_title_same_as_original": false,
			},
			GroupInteraction: {
				"rating_popularity_product": 0.0, "rating_popularity_ratio": 0.0, "rating_vote_product": 0.0,
				"vote_per_popularity": 0.0, "genre_count": int64(0), "is_single_genre": false, "is_multi_genre": false,
				"has_popular_genre": false, "rating_vs_expectation": -6.5,
			},
			GroupAudience: {"audience_size": int64(1), "expected_watch_minutes": 45.0, "rating_weight": 1.0},
		}},
		{"parasite", parasite, map[string]feature.Values{
			GroupBasic: merge(genreFlags("genre_comedy", "genre_documentary", "genre_horror"), feature.Values{
				"popularity": 3.5, "vote_average": 6.2, "vote_count": int64(12), "adult": true,
				"original_language": "ko", "is_english": false, "is_korean": true, "rating_tier": "average",
				"log_popularity": 1.5040773967762742, // ln 4.5
			}),
			GroupTemporal: {
				"release_year": int64(2026), "release_month": int64(1), "release_quarter": int64(1),
				"release_day_of_year": int64(1), "decade": int64(2020), "is_recent": true, "is_classic": false,
				// 2025-06-05 12:00 → 2026-01-01 00:00 is 209.5 days ahead: rounded down, -210.
				"days_since_release": int64(-210), "years_since_release": -0.5749486652977412,
				"is_summer_release": false, "is_spring_release": false, "is_holiday_season": false,
				"is_future_release": true,
			},
			GroupStatistical: {
				"rating_zscore":     -0.9797958851132711, // (6.2-7) / (0.816496580927726 + 1e-8)
				"popularity_zscore": -2.163715937691807,  // (3.5-30) / (12.24744871391589 + 1e-8)
				"rating_percentile": 100.0 / 3,           // only 6 <= 6.2
				"popularity_tier":   "minimal",
				"weighted_rating":   15.902686016261528, // 6.2 × ln 13
				"rating_confidence": 0.12,
				"controversy_score": 0.6388888888888888, // |12-35| / 36
			},
			GroupText: {
				"title_length": int64(5), "overview_length": int64(14), // code points, not bytes
				"title_word_count": int64(2), "overview_word_count": int64(3),
				"title_has_colon": false, "title_has_number": true, "title_has_sequel_indicator": true,
				"action_keyword_count": int64(0), "horror_keyword_count": int64(0), "romance_keyword_count": int64(0),
				"is_title_same_as_original": false,
			},
			GroupInteraction: {
				"rating_popularity_product": 21.7, "rating_popularity_ratio": 1.3777777777777778,
				"rating_vote_product": 15.902686016261528, "vote_per_popularity": 2.6666666666666665,
				"genre_count": int64(3), "is_single_genre": false, "is_multi_genre": true, "has_popular_genre": true,
				"rating_vs_expectation": -0.1, // 6.2 - mean(6.3, 6.5, 6.1)
			},
			GroupAudience: {"audience_size": int64(1), "expected_watch_minutes": 100.8, "rating_weight": 73.51669471981025},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Features(tt.movie, eventTime, corpus)
			if diff := cmp.Diff(tt.want, got, approx); diff != "" {
				t.Errorf("Features (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTiersAndClamps(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		va   float64
		tier string
	}{{10, "excellent"}, {8, "excellent"}, {7.999, "good"}, {7, "good"}, {6, "average"}, {5.99, "below_average"}, {5, "below_average"}, {4.99, "poor"}, {0, "poor"}} {
		if got := ratingTier(tt.va); got != tt.tier {
			t.Errorf("ratingTier(%v) = %q, want %q", tt.va, got, tt.tier)
		}
	}
	for _, tt := range []struct {
		pop  float64
		tier string
		size int64
	}{
		{1000, "viral", 50}, {500, "viral", 50}, {499.9, "viral", 49}, {100, "viral", 10}, {99.9, "popular", 9},
		{50, "popular", 5}, {49.9, "moderate", 4}, {20, "moderate", 2}, {19.99, "low", 1}, {5, "low", 1},
		{4.99, "minimal", 1}, {0, "minimal", 1},
	} {
		if got := popularityTier(tt.pop); got != tt.tier {
			t.Errorf("popularityTier(%v) = %q, want %q", tt.pop, got, tt.tier)
		}
		if got := audience(Movie{Popularity: tt.pop})["audience_size"]; got != tt.size {
			t.Errorf("audience_size(%v) = %v, want %d", tt.pop, got, tt.size)
		}
	}
}

func TestRatingVsExpectation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		genres []int64
		va     float64
		want   float64
	}{
		{nil, 7, 0.5},
		{[]int64{18}, 7, 0},
		{[]int64{28}, 7, 0.5},
		{[]int64{35}, 7, 0.7},
		{[]int64{27}, 7, 0.9},
		{[]int64{10749}, 7, 0.2},
		{[]int64{99}, 7, 0.5},
		{[]int64{18, 27}, 7, 0.45}, // 7 - (7.0+6.1)/2
		{[]int64{10749, 12, 16}, 6, -0.6},
	} {
		got := interaction(Movie{VoteAverage: tt.va, GenreIDs: tt.genres})
		if diff := cmp.Diff(tt.want, got["rating_vs_expectation"], cmpopts.EquateApprox(0, 1e-12)); diff != "" {
			t.Errorf("rating_vs_expectation(%v, %v) (-want +got):\n%s", tt.genres, tt.va, diff)
		}
	}
	for _, tt := range []struct {
		genres          []int64
		single, multi   bool
		popular, action bool
	}{
		{nil, false, false, false, false},
		{[]int64{28}, true, false, true, true},
		{[]int64{27, 53}, false, false, false, false},
		{[]int64{99, 878, 53}, false, true, true, false},
	} {
		got := interaction(Movie{GenreIDs: tt.genres})
		if got["is_single_genre"] != tt.single || got["is_multi_genre"] != tt.multi || got["has_popular_genre"] != tt.popular {
			t.Errorf("genre mix of %v = %v", tt.genres, got)
		}
		if b := basic(Movie{GenreIDs: tt.genres}); b["genre_action"] != tt.action {
			t.Errorf("genre_action of %v = %v", tt.genres, b["genre_action"])
		}
	}
}

func TestTextFeatures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		title, overview string
		want            feature.Values
	}{
		{"씨너스: 죄인들", "", feature.Values{"title_length": int64(8), "title_word_count": int64(2), "title_has_colon": true, "title_has_number": false}},
		{"A MINECRAFT MOVIE 마인크래프트 무비", "", feature.Values{"title_length": int64(27), "title_word_count": int64(5)}},
		{"ＦＦ７", "", feature.Values{"title_length": int64(3), "title_has_number": true, "title_has_sequel_indicator": false}},
		{"Hawaii", "", feature.Values{"title_has_sequel_indicator": true}}, // the original's substring rule
		{"The SEQUEL", "", feature.Values{"title_has_sequel_indicator": true}},
		{"Apart", "", feature.Values{"title_has_sequel_indicator": true}},
		{"Dune", "", feature.Values{"title_has_sequel_indicator": false, "title_has_number": false}},
		{"T", "WARRIORS in Combat: a FEARless HEARTbreaker's Wedding", feature.Values{
			"action_keyword_count": int64(2), "horror_keyword_count": int64(1), "romance_keyword_count": int64(2),
			"overview_word_count": int64(7),
		}},
		{"T", "kill kill kill evil", feature.Values{"horror_keyword_count": int64(2)}}, // each keyword once
		{"T", "\u00a0 tabs\tand\nnewlines\u3000ideographic ", feature.Values{"overview_word_count": int64(4), "overview_length": int64(32)}},
	} {
		got := text(Movie{Title: tt.title, Overview: tt.overview})
		for k, want := range tt.want {
			if got[k] != want {
				t.Errorf("%s of (%q, %q) = %v, want %v", k, tt.title, tt.overview, got[k], want)
			}
		}
	}
}

func TestWordCountMatchesFields(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", " ", "a", " a b  c ", "\u0085x\u00a0y\u2028z", "가 나\t다", "\xff \xfe"} {
		if got, want := wordCount(s), int64(len(strings.Fields(s))); got != want {
			t.Errorf("wordCount(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestTemporalEdges(t *testing.T) {
	t.Parallel()
	release := date(2025, 6, 5)
	m := Movie{ReleaseDate: "2025-06-05", Release: release}
	for _, tt := range []struct {
		event  time.Time
		days   int64
		future bool
	}{
		{release, 0, false},
		{release.Add(time.Nanosecond), 0, false},
		{release.Add(-time.Nanosecond), -1, true},
		{release.Add(-24 * time.Hour), -1, true},
		{release.Add(-24*time.Hour - time.Second), -2, true},
		{release.Add(24*time.Hour - time.Second), 0, false},
		{release.Add(24 * time.Hour), 1, false},
		{time.Date(2025, 6, 5, 8, 0, 0, 0, time.FixedZone("KST", 9*3600)), -1, true}, // 2025-06-04 23:00 UTC
	} {
		got := temporal(m, tt.event)
		if got["days_since_release"] != tt.days || got["is_future_release"] != tt.future {
			t.Errorf("at %v: days %v, future %v; want %d, %v", tt.event, got["days_since_release"], got["is_future_release"], tt.days, tt.future)
		}
	}
	// Far apart dates do not saturate as time.Sub would (±292 years).
	old := Movie{ReleaseDate: "1500-01-01", Release: date(1500, 1, 1)}
	got := temporal(old, date(2000, 1, 1))
	if want := int64(182621); got["days_since_release"] != want { // 500×365 + 121 leap days (not 1500, 1700, 1800, 1900)
		t.Errorf("days from 1500 to 2000 = %v, want %d", got["days_since_release"], want)
	}
	if got["decade"] != int64(1500) || got["is_classic"] != true {
		t.Errorf("1500: %v", got)
	}
	for _, tt := range []struct {
		month                   time.Month
		quarter                 int64
		spring, summer, holiday bool
	}{
		{1, 1, false, false, false}, {2, 1, false, false, false}, {3, 1, true, false, false},
		{4, 2, true, false, false}, {5, 2, true, false, false}, {6, 2, false, true, false},
		{7, 3, false, true, false}, {8, 3, false, true, false}, {9, 3, false, false, false},
		{10, 4, false, false, false}, {11, 4, false, false, true}, {12, 4, false, false, true},
	} {
		r := date(2019, tt.month, 28)
		got := temporal(Movie{ReleaseDate: r.Format(time.DateOnly), Release: r}, eventTime)
		want := feature.Values{"release_quarter": tt.quarter, "is_spring_release": tt.spring, "is_summer_release": tt.summer, "is_holiday_season": tt.holiday}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("month %d: %s = %v, want %v", tt.month, k, got[k], w)
			}
		}
	}
	// is_recent / is_classic boundaries and decades.
	for _, tt := range []struct {
		year            int
		decade          int64
		recent, classic bool
	}{{1999, 1990, false, true}, {2000, 2000, false, false}, {2019, 2010, false, false}, {2020, 2020, true, false}} {
		r := date(tt.year, 5, 1)
		got := temporal(Movie{ReleaseDate: r.Format(time.DateOnly), Release: r}, eventTime)
		if got["decade"] != tt.decade || got["is_recent"] != tt.recent || got["is_classic"] != tt.classic {
			t.Errorf("year %d: %v", tt.year, got)
		}
	}
}

func TestStatisticalAlone(t *testing.T) {
	t.Parallel()
	// A corpus of one movie (and an empty or nil corpus, which counts as the
	// movie alone): z-scores 0, percentile 100.
	one := NewCorpus()
	one.Set(1, 6.9, 123.4)
	for name, c := range map[string]*Corpus{"one": one, "empty": NewCorpus(), "nil": nil, "zero value": new(Corpus)} {
		got := Statistical(6.9, 123.4, 10, c)
		if got["rating_zscore"] != 0.0 || got["popularity_zscore"] != 0.0 || got["rating_percentile"] != 100.0 {
			t.Errorf("%s corpus: %v", name, got)
		}
	}
}

func TestStatisticalNonFinite(t *testing.T) {
	t.Parallel()
	// Stored rows read back by recompute are not validated by ParseMovie:
	// a float that would not be finite becomes null, never NaN or Inf.
	got := Statistical(5, -0.1, math.MaxInt64, nil)
	if got["controversy_score"] != nil {
		t.Errorf("controversy_score with popularity×10+1 = 0 is %v, want nil", got["controversy_score"])
	}
	got = Statistical(math.NaN(), 1, 1, nil)
	for _, k := range []string{"rating_zscore", "weighted_rating"} {
		if got[k] != nil && got[k] != 0.0 {
			t.Errorf("%s with a NaN rating = %v", k, got[k])
		}
	}
	checkFinite(t, got)
}

// checkFinite fails if any float in v is NaN or infinite.
func checkFinite(t *testing.T, v feature.Values) {
	t.Helper()
	for k, x := range v {
		if f, ok := x.(float64); ok && !finite(f) {
			t.Errorf("%s = %v, not finite", k, f)
		}
	}
}

// checkTypes fails unless got has exactly the features of the built-in
// groups, each value nil or of the declared Go type.
func checkTypes(t *testing.T, got map[string]feature.Values) {
	t.Helper()
	groups := Groups()
	if len(got) != len(groups) {
		t.Errorf("Features returned %d groups, want %d", len(got), len(groups))
	}
	for _, g := range groups {
		vals, ok := got[g.Name]
		if !ok {
			t.Errorf("group %s missing", g.Name)
			continue
		}
		want := g.FeatureNames()
		slices.Sort(want)
		if diff := cmp.Diff(want, slices.Sorted(maps.Keys(vals))); diff != "" {
			t.Errorf("group %s keys (-declared +computed):\n%s", g.Name, diff)
		}
		for _, f := range g.Features {
			v, ok := vals[f.Name]
			if !ok || v == nil {
				continue
			}
			if typ := goType(v); typ != f.Type {
				t.Errorf("%s.%s is %T (%v), declared %s", g.Name, f.Name, v, v, f.Type)
			}
		}
		checkFinite(t, vals)
	}
}

func goType(v any) feature.ValueType {
	switch v.(type) {
	case int64:
		return feature.Int64
	case float64:
		return feature.Float64
	case bool:
		return feature.Bool
	case string:
		return feature.String
	}
	return feature.ValueType(fmt.Sprintf("%T", v))
}

func TestFeaturesMatchGroups(t *testing.T) {
	t.Parallel()
	c := NewCorpus()
	for _, m := range []Movie{starWars, blank, parasite} {
		c.Set(m.ID, m.VoteAverage, m.Popularity)
	}
	for _, m := range []Movie{starWars, blank, parasite, {ID: 9, Title: "x"}} {
		got := Features(m, eventTime, c)
		checkTypes(t, got)
		// Every feature that is not temporal-without-a-date is non-null.
		for name, vals := range got {
			for k, v := range vals {
				if v == nil && (name != GroupTemporal || m.ReleaseDate != "") {
					t.Errorf("%s.%s is null for movie %d", name, k, m.ID)
				}
			}
		}
	}
}

func TestGroupsDefinition(t *testing.T) {
	t.Parallel()
	groups := Groups()
	var names []string
	seen := map[string]string{}
	for _, g := range groups {
		names = append(names, g.Name)
		if err := g.Validate(); err != nil {
			t.Errorf("group %s: %v", g.Name, err)
		}
		if g.EntityKey != EntityKey || g.Description == "" || g.Tags["source"] != "tmdb" || g.TTL != feature.Duration(7*24*time.Hour) {
			t.Errorf("group %s: %+v", g.Name, g)
		}
		if g.SchemaVersion != 0 || !g.CreatedAt.IsZero() || !g.UpdatedAt.IsZero() {
			t.Errorf("group %s sets registry fields", g.Name)
		}
		for _, f := range g.Features {
			if f.Description == "" || strings.Contains(f.Description, "|") {
				t.Errorf("%s.%s: description %q must be non-empty and have no '|'", g.Name, f.Name, f.Description)
			}
			if other, dup := seen[f.Name]; dup {
				t.Errorf("feature %s in both %s and %s", f.Name, other, g.Name)
			}
			seen[f.Name] = g.Name
		}
	}
	want := []string{GroupBasic, GroupTemporal, GroupStatistical, GroupText, GroupInteraction, GroupAudience}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if n := len(groups[0].Features); n != 28 { // 5 copied + 19 genres + 4 derived
		t.Errorf("movie_basic has %d features, want 28", n)
	}
	// Callers may modify what Groups returns without affecting later calls.
	groups[0].Features[0].Name = "changed"
	groups[0].Tags["source"] = "changed"
	if g := Groups()[0]; g.Features[0].Name != "popularity" || g.Tags["source"] != "tmdb" {
		t.Error("Groups returned shared state")
	}
}

func BenchmarkFeatures(b *testing.B) {
	c := NewCorpus()
	for i := range 10000 {
		c.Set(int64(i+1), float64(i%100)/10, float64(i%1000))
	}
	c.Set(parasite.ID, parasite.VoteAverage, parasite.Popularity)
	m := parasite
	m.Overview = strings.Repeat("사랑과 전쟁의 이야기 love and war ", 20)
	Features(m, eventTime, c) // build the summary outside the loop
	b.ReportAllocs()
	for b.Loop() {
		Features(m, eventTime, c)
	}
}

func BenchmarkParseMovie(b *testing.B) {
	raw := []byte(`{"movie_id": 552524, "title": "릴로 & 스티치", "original_title": "Lilo & Stitch",
		"overview": "보송보송한 파란 솜털, 호기심 가득한 큰 눈, 장난기 가득한 웃음을 가졌지만 가장 위험한 실험체 취급을 받던 스티치는",
		"release_date": "2025-05-21", "popularity": 630.3236, "vote_average": 7.107, "vote_count": 460,
		"genre_ids": [10751, 35, 878], "adult": false, "original_language": "en", "poster_path": "/x.jpg"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := ParseMovie(raw); errs != nil {
			b.Fatal(errs)
		}
	}
}
