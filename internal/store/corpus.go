package store

import (
	"strconv"
	"time"
)

// MovieCorpus is the aggregate of the TMDB movie corpus that the system of
// record keeps (the postgres and sqlite stores, by triggers on their latest
// rows): the movies whose latest movie_basic row holds a number for both
// vote_average and popularity. The sums are exact decimals, as text.
type MovieCorpus struct {
	Movies            int64
	RatingSum         string
	RatingSquares     string
	PopularitySum     string
	PopularitySquares string
	// AtMost holds, for each rating asked for, how many movies of the corpus
	// have a vote_average at most that rating.
	AtMost []int64
}

// MovieCorpusQuery asks for the corpus and, for each of Ratings, how many of
// its movies are rated at most that. With AsOf set, the corpus is the one
// made of each movie's movie_basic row that was latest at AsOf (the rows an
// as-of read would return).
type MovieCorpusQuery struct {
	Ratings []float64
	AsOf    *time.Time
}

// DecimalText spells a float64 as the plain decimal the stores keep in a
// row's JSON (shortest text that reads back as the same float64), which is
// also how a rating is passed to the stores' SQL so that it compares equal to
// the stored one.
func DecimalText(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
