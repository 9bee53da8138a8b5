package tmdb

import (
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/featurestore/featurestore/internal/feature"
)

// Features computes the six built-in groups for m at eventTime (the time of
// the write, from the caller's clock). c is the corpus the statistical
// features are relative to and must already contain m. The result maps each
// group name to values holding every feature of the group: int64, float64,
// bool or string as declared by Groups, or nil (null). The temporal features
// are all null when m.ReleaseDate is empty; a float that would not be finite
// is null.
func Features(m Movie, eventTime time.Time, c *Corpus) map[string]feature.Values {
	return map[string]feature.Values{
		GroupBasic:       basic(m),
		GroupTemporal:    temporal(m, eventTime),
		GroupStatistical: Statistical(m.VoteAverage, m.Popularity, m.VoteCount, c),
		GroupText:        text(m),
		GroupInteraction: interaction(m),
		GroupAudience:    audience(m),
	}
}

// StoredFeatures computes the six built-in groups for m at eventTime as the
// stores keep them: like Features, except that movie_statistical holds only
// its per-movie features. The corpus-relative ones (CorpusRelative) are not
// stored: a read computes them from the corpus the system of record keeps
// (CorpusStats.Relative), so that they never go stale when the corpus
// changes and ingesting a movie never rewrites the others.
func StoredFeatures(m Movie, eventTime time.Time) map[string]feature.Values {
	return map[string]feature.Values{
		GroupBasic:       basic(m),
		GroupTemporal:    temporal(m, eventTime),
		GroupStatistical: statisticalOwn(m.VoteAverage, m.Popularity, m.VoteCount),
		GroupText:        text(m),
		GroupInteraction: interaction(m),
		GroupAudience:    audience(m),
	}
}

// CorpusRelative are the features of movie_statistical that depend on the
// corpus (the others depend on the movie alone).
var CorpusRelative = []string{"rating_zscore", "popularity_zscore", "rating_percentile"}

// Statistical computes the movie_statistical group from a movie's
// vote_average, popularity and vote_count, relative to corpus c. An empty (or
// nil) corpus counts as the movie alone: z-scores 0, percentile 100.
func Statistical(voteAverage, popularity float64, voteCount int64, c *Corpus) feature.Values {
	s := c.stats()
	var rz, pz float64 // zero for an empty corpus, as for a corpus of one
	if len(s.ratings) > 0 {
		rz = (voteAverage - s.ratingMean) / (s.ratingStd + 1e-8)
		pz = (popularity - s.popularityMean) / (s.popStd + 1e-8)
	}
	v := statisticalOwn(voteAverage, popularity, voteCount)
	v["rating_zscore"] = num(rz)
	v["popularity_zscore"] = num(pz)
	v["rating_percentile"] = num(s.percentile(voteAverage))
	return v
}

// statisticalOwn is the per-movie part of movie_statistical.
func statisticalOwn(voteAverage, popularity float64, voteCount int64) feature.Values {
	votes := float64(voteCount)
	return feature.Values{
		"popularity_tier":   popularityTier(popularity),
		"weighted_rating":   num(voteAverage * math.Log1p(votes)),
		"rating_confidence": num(math.Min(votes/100, 1)),
		"controversy_score": num(math.Abs(votes-popularity*10) / (popularity*10 + 1)),
	}
}

func basic(m Movie) feature.Values {
	v := make(feature.Values, 9+len(genres))
	v["popularity"] = num(m.Popularity)
	v["vote_average"] = num(m.VoteAverage)
	v["vote_count"] = m.VoteCount
	v["adult"] = m.Adult
	v["original_language"] = m.OriginalLanguage
	for _, g := range genres {
		v[g.feature] = hasGenre(m.GenreIDs, g.id)
	}
	v["is_english"] = m.OriginalLanguage == "en"
	v["is_korean"] = m.OriginalLanguage == "ko"
	v["rating_tier"] = ratingTier(m.VoteAverage)
	v["log_popularity"] = num(math.Log1p(m.Popularity))
	return v
}

func temporal(m Movie, eventTime time.Time) feature.Values {
	if m.ReleaseDate == "" {
		return feature.Values{
			"release_year": nil, "release_month": nil, "release_quarter": nil, "release_day_of_year": nil,
			"decade": nil, "is_recent": nil, "is_classic": nil, "days_since_release": nil,
			"years_since_release": nil, "is_summer_release": nil, "is_spring_release": nil,
			"is_holiday_season": nil, "is_future_release": nil,
		}
	}
	r := m.Release
	year, month := int64(r.Year()), r.Month()
	// Unix seconds, not time.Sub, which saturates at ~292 years.
	days := floorDiv(eventTime.Unix()-r.Unix(), 24*60*60)
	return feature.Values{
		"release_year":        year,
		"release_month":       int64(month),
		"release_quarter":     int64((month-1)/3 + 1),
		"release_day_of_year": int64(r.YearDay()),
		"decade":              year / 10 * 10,
		"is_recent":           year >= 2020,
		"is_classic":          year < 2000,
		"days_since_release":  days,
		"years_since_release": float64(days) / 365.25,
		"is_summer_release":   month >= 6 && month <= 8,
		"is_spring_release":   month >= 3 && month <= 5,
		"is_holiday_season":   month >= 11,
		"is_future_release":   r.After(eventTime),
	}
}

func text(m Movie) feature.Values {
	title := strings.ToLower(m.Title)
	overview := strings.ToLower(m.Overview)
	return feature.Values{
		"title_length":               int64(utf8.RuneCountInString(m.Title)),
		"overview_length":            int64(utf8.RuneCountInString(m.Overview)),
		"title_word_count":           wordCount(m.Title),
		"overview_word_count":        wordCount(m.Overview),
		"title_has_colon":            strings.Contains(m.Title, ":"),
		"title_has_number":           strings.IndexFunc(m.Title, unicode.IsDigit) >= 0,
		"title_has_sequel_indicator": countContained(title, "2", "3", "ii", "iii", "part", "sequel") > 0,
		"action_keyword_count":       countContained(overview, "action", "fight", "battle", "war", "combat", "hero"),
		"horror_keyword_count":       countContained(overview, "horror", "scary", "fear", "death", "kill", "evil"),
		"romance_keyword_count":      countContained(overview, "love", "romance", "heart", "relationship", "wedding"),
		"is_title_same_as_original":  m.Title == m.OriginalTitle,
	}
}

func interaction(m Movie) feature.Values {
	va, pop, votes, n := m.VoteAverage, m.Popularity, float64(m.VoteCount), len(m.GenreIDs)
	popular := false
	expected := 6.5
	if n > 0 {
		var sum float64
		for _, g := range m.GenreIDs {
			switch g {
			case 28, 12, 35, 18, 878:
				popular = true
			}
			sum += expectedRating(g)
		}
		expected = sum / float64(n)
	}
	return feature.Values{
		"rating_popularity_product": num(va * pop),
		"rating_popularity_ratio":   num(va / (pop + 1)),
		"rating_vote_product":       num(va * math.Log1p(votes)),
		"vote_per_popularity":       num(votes / (pop + 1)),
		"genre_count":               int64(n),
		"is_single_genre":           n == 1,
		"is_multi_genre":            n > 2,
		"has_popular_genre":         popular,
		"rating_vs_expectation":     num(va - expected),
	}
}

func audience(m Movie) feature.Values {
	size := math.Floor(m.Popularity / 10)
	if !(size >= 1) { // also catches NaN
		size = 1
	}
	size = math.Min(size, 50)
	return feature.Values{
		"audience_size":          int64(size),
		"expected_watch_minutes": num(90 * (0.5 + m.VoteAverage/10)),
		"rating_weight":          num(math.Min(math.Pow(2, m.VoteAverage), 100)),
	}
}

func ratingTier(va float64) string {
	switch {
	case va >= 8:
		return "excellent"
	case va >= 7:
		return "good"
	case va >= 6:
		return "average"
	case va >= 5:
		return "below_average"
	}
	return "poor"
}

func popularityTier(p float64) string {
	switch {
	case p >= 100:
		return "viral"
	case p >= 50:
		return "popular"
	case p >= 20:
		return "moderate"
	case p >= 5:
		return "low"
	}
	return "minimal"
}

func expectedRating(genreID int64) float64 {
	switch genreID {
	case 18:
		return 7.0
	case 28:
		return 6.5
	case 35:
		return 6.3
	case 27:
		return 6.1
	case 10749:
		return 6.8
	}
	return 6.5
}

func hasGenre(ids []int64, id int64) bool {
	for _, g := range ids {
		if g == id {
			return true
		}
	}
	return false
}

// wordCount counts whitespace-separated words as strings.Fields splits them,
// without allocating the words.
func wordCount(s string) int64 {
	var n int64
	inWord := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			inWord = false
		} else if !inWord {
			inWord = true
			n++
		}
	}
	return n
}

// countContained returns how many of subs occur in s.
func countContained(s string, subs ...string) int64 {
	var n int64
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// floorDiv is a / b rounded towards negative infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// num returns x, or nil (null) if x is not finite.
func num(x float64) any {
	if !finite(x) {
		return nil
	}
	return x
}
