package tmdb

import (
	"fmt"
	"math/big"

	"github.com/featurestore/featurestore/internal/feature"
)

// CorpusStats is the corpus summary the corpus-relative statistical features
// need, computed from the exact sums the system of record keeps: the number
// of movies, the means and the population standard deviations of
// vote_average and popularity. Every replica and both engines read the same
// sums and compute them the same way, so they give the same answer to the
// last bit.
type CorpusStats struct {
	Movies                        int64
	RatingMean, RatingStd         float64
	PopularityMean, PopularityStd float64
}

// NewCorpusStats computes the summary of a corpus of n movies from the
// exact decimal sums of vote_average, of its squares, of popularity and of
// its squares. Mean and variance are computed exactly, then rounded once;
// the standard deviation is the square root of the exact variance, rounded
// once.
func NewCorpusStats(n int64, ratingSum, ratingSquares, popularitySum, popularitySquares string) (CorpusStats, error) {
	c := CorpusStats{Movies: n}
	if n <= 0 {
		return c, nil
	}
	var err error
	if c.RatingMean, c.RatingStd, err = meanStdExact(n, ratingSum, ratingSquares); err != nil {
		return c, fmt.Errorf("vote_average: %w", err)
	}
	if c.PopularityMean, c.PopularityStd, err = meanStdExact(n, popularitySum, popularitySquares); err != nil {
		return c, fmt.Errorf("popularity: %w", err)
	}
	return c, nil
}

func meanStdExact(n int64, sum, squares string) (mean, std float64, err error) {
	s, ok := new(big.Rat).SetString(sum)
	if !ok {
		return 0, 0, fmt.Errorf("sum %q is not a decimal", sum)
	}
	q, ok := new(big.Rat).SetString(squares)
	if !ok {
		return 0, 0, fmt.Errorf("sum of squares %q is not a decimal", squares)
	}
	nr := new(big.Rat).SetInt64(n)
	m := new(big.Rat).Quo(s, nr)
	mean, _ = m.Float64()
	// variance = squares/n − mean², exactly; never negative for real sums.
	v := new(big.Rat).Quo(q, nr)
	v.Sub(v, new(big.Rat).Mul(m, m))
	if v.Sign() < 0 {
		return 0, 0, fmt.Errorf("negative variance (sums %s, %s over %d movies)", sum, squares, n)
	}
	f := new(big.Float).SetPrec(256).SetRat(v)
	std, _ = f.Sqrt(f).Float64()
	return mean, std, nil
}

// Relative computes the corpus-relative features of a movie with the given
// vote_average and popularity, of which atMost movies of the corpus are
// rated at most its vote_average. An empty corpus counts as the movie alone:
// z-scores 0, percentile 100.
func (c CorpusStats) Relative(voteAverage, popularity float64, atMost int64) feature.Values {
	rz, pz, pct := 0.0, 0.0, 100.0
	if c.Movies > 0 {
		rz = (voteAverage - c.RatingMean) / (c.RatingStd + 1e-8)
		pz = (popularity - c.PopularityMean) / (c.PopularityStd + 1e-8)
		pct = 100 * float64(atMost) / float64(c.Movies)
	}
	return feature.Values{
		"rating_zscore":     num(rz),
		"popularity_zscore": num(pz),
		"rating_percentile": num(pct),
	}
}
