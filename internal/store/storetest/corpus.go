package storetest

import (
	"context"
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// CorpusStore is a system of record that keeps the movie corpus aggregate
// (store.MovieCorpus) up to date with every write.
type CorpusStore interface {
	store.Store
	MovieCorpus(ctx context.Context, q store.MovieCorpusQuery) (store.MovieCorpus, error)
}

// RunMovieCorpus runs the contract of the movie corpus aggregate. Every
// expectation is exact (sums compared as rationals), so engines that pass it
// hold the very same corpus.
func RunMovieCorpus(t *testing.T, newStore func(t *testing.T) CorpusStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s CorpusStore)
	}{
		{"FollowsLatestRows", testCorpusFollowsLatest},
		{"AsOf", testCorpusAsOf},
		{"ExactUnderChurn", testCorpusExactUnderChurn},
		{"ConcurrentWriters", testCorpusConcurrentWriters},
		{"RatingsAtBucketEdges", testCorpusBucketEdges},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// corpusGroups registers movie_basic (the group the aggregate follows) and
// another group with the same features, which it must ignore.
func corpusGroups(t *testing.T, s store.Store) {
	for _, name := range []string{"movie_basic", "not_movies"} {
		putGroup(t, s, feature.Group{Name: name, EntityKey: "movie_id", Features: []feature.Spec{
			{Name: "vote_average", Type: feature.Float64}, {Name: "popularity", Type: feature.Float64},
		}}, base)
	}
}

func basicRow(group string, id int, event time.Time, rating, popularity any) feature.Row {
	return feature.Row{Group: group, EntityID: strconv.Itoa(id), EventTime: event, WriteTime: event,
		Values: feature.Values{"vote_average": rating, "popularity": popularity}}
}

// movieStat is one movie of an expected corpus.
type movieStat struct{ rating, popularity float64 }

// wantCorpus is the aggregate of movies computed here, exactly, from the
// decimal text the stores keep.
func wantCorpus(movies map[string]movieStat, ratings []float64) store.MovieCorpus {
	rs, rsq, ps, psq := new(big.Rat), new(big.Rat), new(big.Rat), new(big.Rat)
	c := store.MovieCorpus{AtMost: make([]int64, len(ratings))}
	for _, m := range movies {
		r, _ := new(big.Rat).SetString(store.DecimalText(m.rating))
		p, _ := new(big.Rat).SetString(store.DecimalText(m.popularity))
		rs.Add(rs, r)
		rsq.Add(rsq, new(big.Rat).Mul(r, r))
		ps.Add(ps, p)
		psq.Add(psq, new(big.Rat).Mul(p, p))
		c.Movies++
		for i, q := range ratings {
			if m.rating <= q {
				c.AtMost[i]++
			}
		}
	}
	c.RatingSum, c.RatingSquares = rs.RatString(), rsq.RatString()
	c.PopularitySum, c.PopularitySquares = ps.RatString(), psq.RatString()
	return c
}

// normalized rewrites the sums of c as exact fractions, so that "14.750"
// and "59/4" compare equal.
func normalized(t *testing.T, c store.MovieCorpus) store.MovieCorpus {
	t.Helper()
	for _, p := range []*string{&c.RatingSum, &c.RatingSquares, &c.PopularitySum, &c.PopularitySquares} {
		r, ok := new(big.Rat).SetString(*p)
		if !ok {
			t.Fatalf("sum %q is not a decimal", *p)
		}
		*p = r.RatString()
	}
	return c
}

func checkCorpus(t *testing.T, s CorpusStore, what string, asOf *time.Time, movies map[string]movieStat, ratings []float64) {
	t.Helper()
	got, err := s.MovieCorpus(t.Context(), store.MovieCorpusQuery{Ratings: ratings, AsOf: asOf})
	if err != nil {
		t.Fatalf("%s: MovieCorpus: %v", what, err)
	}
	if diff := cmp.Diff(wantCorpus(movies, ratings), normalized(t, got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func testCorpusFollowsLatest(t *testing.T, s CorpusStore) {
	corpusGroups(t, s)
	ratings := []float64{0, 6.5, 7.123, 10}
	checkCorpus(t, s, "empty store", nil, nil, ratings)
	write(t, s,
		basicRow("movie_basic", 1, at(10), 7.123, 45.5),
		basicRow("movie_basic", 2, at(10), 6.5, 0.001),
		basicRow("movie_basic", 3, at(10), 6.5, 1234.5678),
		basicRow("movie_basic", 4, at(10), nil, 3.0), // no rating: not in the corpus
		basicRow("not_movies", 5, at(10), 9.0, 9.0))
	movies := map[string]movieStat{"1": {7.123, 45.5}, "2": {6.5, 0.001}, "3": {6.5, 1234.5678}}
	checkCorpus(t, s, "after the first write", nil, movies, ratings)

	write(t, s,
		basicRow("movie_basic", 1, at(20), 8.25, 50.0), // newer: replaces movie 1
		basicRow("movie_basic", 2, at(5), 1.0, 1.0),    // older: history only
		basicRow("movie_basic", 3, at(20), 6.5, nil),   // now without popularity: leaves the corpus
		basicRow("movie_basic", 4, at(20), 3.0, 3.0))   // now complete: joins
	movies = map[string]movieStat{"1": {8.25, 50}, "2": {6.5, 0.001}, "4": {3, 3}}
	checkCorpus(t, s, "after replacing rows", nil, movies, ratings)

	g := putGroup(t, s, feature.Group{Name: "other", EntityKey: "k", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}}, base)
	if err := s.DeleteGroup(t.Context(), g.Name); err != nil {
		t.Fatal(err)
	}
	checkCorpus(t, s, "after deleting another group", nil, movies, nil)
}

func testCorpusAsOf(t *testing.T, s CorpusStore) {
	corpusGroups(t, s)
	write(t, s, basicRow("movie_basic", 1, at(10), 5.0, 10.0), basicRow("movie_basic", 2, at(10), 7.5, 20.0))
	write(t, s, basicRow("movie_basic", 1, at(20), 9.0, 11.0), basicRow("movie_basic", 3, at(20), 6.0, 1.5))
	write(t, s, basicRow("movie_basic", 2, at(15), 2.0, 2.0)) // late: the as-of corpus at 15..20 sees it
	ratings := []float64{5, 7.5, 9}
	for _, tc := range []struct {
		at     int
		movies map[string]movieStat
	}{
		{9, map[string]movieStat{}},
		{10, map[string]movieStat{"1": {5, 10}, "2": {7.5, 20}}},
		{15, map[string]movieStat{"1": {5, 10}, "2": {2, 2}}},
		{25, map[string]movieStat{"1": {9, 11}, "2": {2, 2}, "3": {6, 1.5}}},
	} {
		when := at(tc.at)
		checkCorpus(t, s, "as of "+strconv.Itoa(tc.at), &when, tc.movies, ratings)
	}
	checkCorpus(t, s, "latest", nil, map[string]movieStat{"1": {9, 11}, "2": {2, 2}, "3": {6, 1.5}}, ratings)
}

// testCorpusExactUnderChurn: a movie re-written many times with values that
// have no exact binary form leaves exactly its last values in the sums.
func testCorpusExactUnderChurn(t *testing.T, s CorpusStore) {
	corpusGroups(t, s)
	values := []float64{0.1, 0.2, 0.3, 7.7, 1e-6, 123456.789}
	for i := range 60 {
		v := values[i%len(values)]
		write(t, s, basicRow("movie_basic", 1, at(i), v, v*3), basicRow("movie_basic", 2, at(i), 0.7, 0.3))
	}
	last := values[59%len(values)]
	checkCorpus(t, s, "after 60 rewrites", nil, map[string]movieStat{"1": {last, last * 3}, "2": {0.7, 0.3}},
		slices.Clone(values))
}

// testCorpusConcurrentWriters: writers racing on overlapping movies (each
// batch in entity order, as the stores lock them) leave the aggregate of
// exactly the latest rows, and none fails.
func testCorpusConcurrentWriters(t *testing.T, s CorpusStore) {
	corpusGroups(t, s)
	const writers, batches, movies = 4, 15, 25
	var wg sync.WaitGroup
	var clock atomic.Int64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9)) // #nosec G115 G404 -- a test worker index seeds a deterministic test generator
			for range batches {
				var rows []feature.Row
				for _, id := range r.Perm(movies)[:8] {
					when := base.Add(time.Duration(clock.Add(1)) * time.Microsecond)
					rows = append(rows, basicRow("movie_basic", id+1, when, float64(r.IntN(101))/10, float64(r.IntN(1000))/100))
				}
				if err := s.WriteRows(t.Context(), rows); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	latest := map[string]movieStat{}
	err := s.ScanLatest(t.Context(), "movie_basic", func(r feature.Row) error {
		latest[r.EntityID] = movieStat{r.Values["vote_average"].(float64), r.Values["popularity"].(float64)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkCorpus(t, s, "after concurrent writers", nil, latest, []float64{0, 2.5, 5, 9.9, 10})
}

// testCorpusBucketEdges: "rated at most r" counts right for ratings at and
// around the edges of the stores' 0.1-wide buckets, including values whose
// float product by 10 falls just below the edge (2.3 × 10 = 22.999…).
func testCorpusBucketEdges(t *testing.T, s CorpusStore) {
	corpusGroups(t, s)
	stored := []float64{0, 0.1, 0.2, 0.3, 0.7, 1.1, 2.2, 2.2999, 2.3, 2.3001, 4.35, 5.8, 8.2, 9.9, 9.95, 9.999, 10}
	movies := map[string]movieStat{}
	var rows []feature.Row
	for i, r := range stored {
		rows = append(rows, basicRow("movie_basic", i+1, at(1), r, 1.0))
		movies[strconv.Itoa(i+1)] = movieStat{r, 1}
	}
	write(t, s, rows...)
	asked := append(slices.Clone(stored), 0.05, 0.15, 2.25, 2.35, 5.79, 8.19999, 9.9999, 11)
	checkCorpus(t, s, "ratings at bucket edges", nil, movies, asked)
}
