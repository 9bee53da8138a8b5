package tmdb

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"
)

// exactSums are the sums the system of record keeps, computed here from the
// decimal text of each value.
func exactSums(xs []float64) (sum, squares string) {
	s, q := new(big.Rat), new(big.Rat)
	for _, x := range xs {
		r, _ := new(big.Rat).SetString(strconv.FormatFloat(x, 'f', -1, 64))
		s.Add(s, r)
		q.Add(q, new(big.Rat).Mul(r, r))
	}
	return s.RatString(), q.RatString()
}

// TestCorpusStatsMatchesCorpus: the summary computed from exact sums gives
// the features the in-memory corpus gives (two-pass float64), to 1e-9.
func TestCorpusStatsMatchesCorpus(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 1))
	c := NewCorpus()
	var ratings, pops []float64
	for id := range 2000 {
		va, pop := float64(r.IntN(10001))/1000, float64(r.IntN(5_000_000))/1000
		c.Set(int64(id), va, pop)
		ratings, pops = append(ratings, va), append(pops, pop)
	}
	rs, rq := exactSums(ratings)
	ps, pq := exactSums(pops)
	stats, err := NewCorpusStats(int64(len(ratings)), rs, rq, ps, pq)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		va, pop := ratings[i], pops[i]
		var atMost int64
		for _, x := range ratings {
			if x <= va {
				atMost++
			}
		}
		want := Statistical(va, pop, 10, c)
		got := stats.Relative(va, pop, atMost)
		for _, name := range CorpusRelative {
			w, g := want[name].(float64), got[name].(float64)
			if math.Abs(w-g) > 1e-9*math.Max(1, math.Abs(w)) {
				t.Errorf("movie %d: %s = %v, in-memory corpus %v", i, name, g, w)
			}
		}
	}
}

// TestCorpusStatsEdges: an empty corpus counts as the movie alone; a corpus
// of identical movies has std 0 exactly, so the movie's z-scores are 0; sums
// that are not decimals, or imply a negative variance, are errors.
func TestCorpusStatsEdges(t *testing.T) {
	t.Parallel()
	empty, err := NewCorpusStats(0, "0", "0", "0", "0")
	if err != nil {
		t.Fatal(err)
	}
	if got := empty.Relative(6.9, 12, 0); got["rating_zscore"] != 0.0 || got["popularity_zscore"] != 0.0 || got["rating_percentile"] != 100.0 {
		t.Errorf("empty corpus: %v", got)
	}
	same, err := NewCorpusStats(3, "20.7", "142.83", "0.3", "0.03") // three movies of 6.9 and 0.1
	if err != nil {
		t.Fatal(err)
	}
	if same.RatingStd != 0 || same.PopularityStd != 0 {
		t.Errorf("identical movies: std %v, %v; want 0", same.RatingStd, same.PopularityStd)
	}
	if got := same.Relative(6.9, 0.1, 3); got["rating_zscore"] != 0.0 || got["popularity_zscore"] != 0.0 || got["rating_percentile"] != 100.0 {
		t.Errorf("identical movies: %v", got)
	}
	for _, bad := range [][4]string{{"x", "0", "0", "0"}, {"0", "0", "0", "1e"}, {"10", "1", "0", "0"}} {
		if _, err := NewCorpusStats(2, bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("NewCorpusStats(2, %q) succeeded", bad)
		}
	}
}
