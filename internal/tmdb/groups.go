package tmdb

import (
	"strconv"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// Names of the built-in groups and their entity key.
const (
	GroupBasic       = "movie_basic"
	GroupTemporal    = "movie_temporal"
	GroupStatistical = "movie_statistical"
	GroupText        = "movie_text"
	GroupInteraction = "movie_interaction"
	GroupAudience    = "movie_audience"
	EntityKey        = "movie_id"
)

// ttl is the maximum age of every built-in group's values.
const ttl = 7 * 24 * time.Hour

// genre is one TMDB genre with its movie_basic flag.
type genre struct {
	id      int64
	feature string
	name    string
}

// genres are the TMDB movie genres, in the order of the movie_basic flags.
// Read-only.
var genres = [...]genre{
	{28, "genre_action", "Action"},
	{12, "genre_adventure", "Adventure"},
	{16, "genre_animation", "Animation"},
	{35, "genre_comedy", "Comedy"},
	{80, "genre_crime", "Crime"},
	{99, "genre_documentary", "Documentary"},
	{18, "genre_drama", "Drama"},
	{10751, "genre_family", "Family"},
	{14, "genre_fantasy", "Fantasy"},
	{36, "genre_history", "History"},
	{27, "genre_horror", "Horror"},
	{10402, "genre_music", "Music"},
	{9648, "genre_mystery", "Mystery"},
	{10749, "genre_romance", "Romance"},
	{878, "genre_science_fiction", "Science Fiction"},
	{10770, "genre_tv_movie", "TV Movie"},
	{53, "genre_thriller", "Thriller"},
	{10752, "genre_war", "War"},
	{37, "genre_western", "Western"},
}

// Groups returns the definitions of the six built-in groups, each keyed by
// movie_id, tagged source=tmdb, with a 7-day TTL. Every feature's description
// states its formula.
func Groups() []feature.Group {
	basic := []feature.Spec{
		{Name: "popularity", Type: feature.Float64, Description: "TMDB popularity as given (0 when absent)"},
		{Name: "vote_average", Type: feature.Float64, Description: "TMDB vote_average as given, 0 to 10 (0 when absent)"},
		{Name: "vote_count", Type: feature.Int64, Description: "TMDB vote_count as given (0 when absent)"},
		{Name: "adult", Type: feature.Bool, Description: "TMDB adult flag as given (false when absent)"},
		{Name: "original_language", Type: feature.String, Description: `TMDB original_language as given ("en" when absent)`},
	}
	for _, g := range genres {
		basic = append(basic, feature.Spec{Name: g.feature, Type: feature.Bool,
			Description: "genre_ids contains " + strconv.FormatInt(g.id, 10) + " (" + g.name + ")"})
	}
	basic = append(basic,
		feature.Spec{Name: "is_english", Type: feature.Bool, Description: `original_language == "en"`},
		feature.Spec{Name: "is_korean", Type: feature.Bool, Description: `original_language == "ko"`},
		feature.Spec{Name: "rating_tier", Type: feature.String, Description: "vote_average >= 8 excellent, >= 7 good, >= 6 average, >= 5 below_average, else poor"},
		feature.Spec{Name: "log_popularity", Type: feature.Float64, Description: "ln(1 + popularity)"},
	)
	return []feature.Group{
		group(GroupBasic, "TMDB movie attributes as given, genre flags, language flags and rating tier.", basic),
		group(GroupTemporal, "Release-date features relative to the event time of the write; all null when release_date is empty.", []feature.Spec{
			{Name: "release_year", Type: feature.Int64, Description: "year of release_date"},
			{Name: "release_month", Type: feature.Int64, Description: "month of release_date (1-12)"},
			{Name: "release_quarter", Type: feature.Int64, Description: "(release_month - 1) / 3 + 1 (1-4)"},
			{Name: "release_day_of_year", Type: feature.Int64, Description: "day of the year of release_date (1-366)"},
			{Name: "decade", Type: feature.Int64, Description: "release_year / 10 × 10 (integer division)"},
			{Name: "is_recent", Type: feature.Bool, Description: "release_year >= 2020"},
			{Name: "is_classic", Type: feature.Bool, Description: "release_year < 2000"},
			{Name: "days_since_release", Type: feature.Int64, Description: "whole days from release_date (00:00 UTC) to the event time, rounded down; negative for a future release"},
			{Name: "years_since_release", Type: feature.Float64, Description: "days_since_release / 365.25; negative for a future release"},
			{Name: "is_summer_release", Type: feature.Bool, Description: "release_month in 6-8"},
			{Name: "is_spring_release", Type: feature.Bool, Description: "release_month in 3-5"},
			{Name: "is_holiday_season", Type: feature.Bool, Description: "release_month in 11-12"},
			{Name: "is_future_release", Type: feature.Bool, Description: "release_date (00:00 UTC) is after the event time"},
		}),
		group(GroupStatistical, "Rating and popularity relative to the stored movie corpus, and vote-count based scores.", []feature.Spec{
			{Name: "rating_zscore", Type: feature.Float64, Description: "(vote_average - corpus mean) / (corpus population std + 1e-8)"},
			{Name: "popularity_zscore", Type: feature.Float64, Description: "(popularity - corpus mean) / (corpus population std + 1e-8)"},
			{Name: "rating_percentile", Type: feature.Float64, Description: "100 × share of corpus movies with vote_average <= this one's (0-100)"},
			{Name: "popularity_tier", Type: feature.String, Description: "popularity >= 100 viral, >= 50 popular, >= 20 moderate, >= 5 low, else minimal"},
			{Name: "weighted_rating", Type: feature.Float64, Description: "vote_average × ln(1 + vote_count)"},
			{Name: "rating_confidence", Type: feature.Float64, Description: "min(vote_count / 100, 1)"},
			{Name: "controversy_score", Type: feature.Float64, Description: "abs(vote_count - popularity × 10) / (popularity × 10 + 1)"},
		}),
		group(GroupText, "Title and overview lengths, word counts and keyword flags.", []feature.Spec{
			{Name: "title_length", Type: feature.Int64, Description: "characters (Unicode code points) in title"},
			{Name: "overview_length", Type: feature.Int64, Description: "characters (Unicode code points) in overview"},
			{Name: "title_word_count", Type: feature.Int64, Description: "whitespace-separated words in title"},
			{Name: "overview_word_count", Type: feature.Int64, Description: "whitespace-separated words in overview"},
			{Name: "title_has_colon", Type: feature.Bool, Description: `title contains ":"`},
			{Name: "title_has_number", Type: feature.Bool, Description: "title contains a decimal digit (any script)"},
			{Name: "title_has_sequel_indicator", Type: feature.Bool, Description: `lower-cased title contains any of "2", "3", "ii", "iii", "part", "sequel" (substrings)`},
			{Name: "action_keyword_count", Type: feature.Int64, Description: "how many of action, fight, battle, war, combat, hero occur in the lower-cased overview (substrings)"},
			{Name: "horror_keyword_count", Type: feature.Int64, Description: "how many of horror, scary, fear, death, kill, evil occur in the lower-cased overview (substrings)"},
			{Name: "romance_keyword_count", Type: feature.Int64, Description: "how many of love, romance, heart, relationship, wedding occur in the lower-cased overview (substrings)"},
			{Name: "is_title_same_as_original", Type: feature.Bool, Description: "title == original_title"},
		}),
		group(GroupInteraction, "Products and ratios of rating, popularity and votes, and genre-mix features.", []feature.Spec{
			{Name: "rating_popularity_product", Type: feature.Float64, Description: "vote_average × popularity"},
			{Name: "rating_popularity_ratio", Type: feature.Float64, Description: "vote_average / (popularity + 1)"},
			{Name: "rating_vote_product", Type: feature.Float64, Description: "vote_average × ln(1 + vote_count)"},
			{Name: "vote_per_popularity", Type: feature.Float64, Description: "vote_count / (popularity + 1)"},
			{Name: "genre_count", Type: feature.Int64, Description: "entries in genre_ids"},
			{Name: "is_single_genre", Type: feature.Bool, Description: "genre_count == 1"},
			{Name: "is_multi_genre", Type: feature.Bool, Description: "genre_count > 2"},
			{Name: "has_popular_genre", Type: feature.Bool, Description: "genre_ids contains any of 28, 12, 35, 18, 878"},
			{Name: "rating_vs_expectation", Type: feature.Float64, Description: "vote_average - mean over genre_ids of the expected rating (18: 7.0, 28: 6.5, 35: 6.3, 27: 6.1, 10749: 6.8, other: 6.5); 6.5 when genre_ids is empty"},
		}),
		group(GroupAudience, "Deterministic audience estimates (the original's simulated-audience parameters).", []feature.Spec{
			{Name: "audience_size", Type: feature.Int64, Description: "clamp(floor(popularity / 10), 1, 50)"},
			{Name: "expected_watch_minutes", Type: feature.Float64, Description: "90 × (0.5 + vote_average / 10)"},
			{Name: "rating_weight", Type: feature.Float64, Description: "min(2^vote_average, 100)"},
		}),
	}
}

func group(name, desc string, specs []feature.Spec) feature.Group {
	return feature.Group{
		Name:        name,
		EntityKey:   EntityKey,
		Features:    specs,
		TTL:         feature.Duration(ttl),
		Description: desc,
		Tags:        map[string]string{"source": "tmdb"},
	}
}
