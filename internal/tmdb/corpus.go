package tmdb

import (
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
)

// Corpus is the stored movie corpus the statistical features are relative
// to: per movie id, its vote_average and popularity. Its summary (means,
// population stds, sorted ratings) is rebuilt lazily on the first use after a
// change, so adding a batch of n movies and then computing n movies' features
// costs O(n log n), not O(n²). A Corpus is safe for concurrent use; the zero
// value is an empty corpus.
type Corpus struct {
	mu      sync.Mutex
	movies  map[int64]point
	summary *summary // nil when stale; never mutated once built
}

type point struct{ rating, popularity float64 }

// summary is an immutable snapshot of a corpus's statistics.
type summary struct {
	ratings                []float64 // sorted ascending
	ratingMean, ratingStd  float64
	popularityMean, popStd float64
}

// NewCorpus returns an empty corpus.
func NewCorpus() *Corpus { return &Corpus{movies: map[int64]point{}} }

// Set records (or replaces) a movie's values: re-setting a movie does not
// count it twice. A non-finite value removes the movie instead, so that the
// statistics stay finite.
func (c *Corpus) Set(id int64, voteAverage, popularity float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !finite(voteAverage) || !finite(popularity) {
		if _, ok := c.movies[id]; ok {
			delete(c.movies, id)
			c.summary = nil
		}
		return
	}
	p := point{voteAverage, popularity}
	if old, ok := c.movies[id]; ok && old == p {
		return
	}
	if c.movies == nil {
		c.movies = map[int64]point{}
	}
	c.movies[id] = p
	c.summary = nil
}

// Len returns the number of movies in the corpus.
func (c *Corpus) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.movies)
}

// Clone returns an independent copy (O(n) map copy; an up-to-date summary is
// shared, since it is immutable).
func (c *Corpus) Clone() *Corpus {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := maps.Clone(c.movies)
	if m == nil {
		m = map[int64]point{}
	}
	return &Corpus{movies: m, summary: c.summary}
}

// stats returns the current summary, rebuilding it if stale. A nil corpus is
// empty.
func (c *Corpus) stats() *summary {
	if c == nil {
		return &summary{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.summary == nil {
		c.summary = summarize(c.movies)
	}
	return c.summary
}

func summarize(movies map[int64]point) *summary {
	n := len(movies)
	ratings := make([]float64, 0, n)
	pops := make([]float64, 0, n)
	for _, p := range movies {
		ratings = append(ratings, p.rating)
		pops = append(pops, p.popularity)
	}
	// Sorted input makes the sums independent of map order (and summing
	// small to large loses less precision).
	slices.Sort(ratings)
	slices.Sort(pops)
	s := &summary{ratings: ratings}
	s.ratingMean, s.ratingStd = meanStd(ratings)
	s.popularityMean, s.popStd = meanStd(pops)
	return s
}

// meanStd returns the mean and population standard deviation of xs (two
// passes, for accuracy); 0, 0 when xs is empty.
func meanStd(xs []float64) (mean, std float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean = sum / float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)))
}

// percentile returns 100 × the share of corpus ratings <= r. An empty corpus
// counts as the movie alone (100).
func (s *summary) percentile(r float64) float64 {
	n := len(s.ratings)
	if n == 0 {
		return 100
	}
	le := sort.Search(n, func(i int) bool { return s.ratings[i] > r })
	return 100 * float64(le) / float64(n)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
