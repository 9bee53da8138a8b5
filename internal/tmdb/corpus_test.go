package tmdb

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestCorpusSetReplaces(t *testing.T) {
	t.Parallel()
	c := NewCorpus()
	c.Set(1, 5, 10)
	c.Set(2, 7, 30)
	before := Statistical(7, 30, 0, c)["rating_percentile"]
	if before != 100.0 {
		t.Fatalf("percentile of the top movie = %v", before)
	}
	c.Set(2, 7, 30) // re-ingesting the same movie does not count it twice
	c.Set(1, 9, 10) // a new value replaces the old one
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}
	got := Statistical(7, 30, 0, c)
	if got["rating_percentile"] != 50.0 {
		t.Errorf("percentile after movie 1 became 9 = %v, want 50", got["rating_percentile"])
	}
	// Ratings {7, 9}: mean 8, std 1.
	if diff := cmp.Diff(-1.0, got["rating_zscore"], cmpopts.EquateApprox(1e-7, 0)); diff != "" {
		t.Errorf("rating_zscore (-want +got):\n%s", diff)
	}
}

func TestCorpusPercentileTies(t *testing.T) {
	t.Parallel()
	c := NewCorpus()
	for i, r := range []float64{7, 7, 5, 8} {
		c.Set(int64(i+1), r, 1)
	}
	for _, tt := range []struct{ rating, want float64 }{{7, 75}, {5, 25}, {8, 100}, {4.9, 0}, {10, 100}, {7.5, 75}} {
		if got := Statistical(tt.rating, 1, 0, c)["rating_percentile"]; got != tt.want {
			t.Errorf("percentile of %v = %v, want %v", tt.rating, got, tt.want)
		}
	}
}

func TestCorpusClone(t *testing.T) {
	t.Parallel()
	c := NewCorpus()
	c.Set(1, 5, 10)
	Statistical(5, 10, 0, c) // build the summary, which the clone shares
	cl := c.Clone()
	cl.Set(2, 9, 90)
	if c.Len() != 1 || cl.Len() != 2 {
		t.Fatalf("Len: original %d, clone %d; want 1, 2", c.Len(), cl.Len())
	}
	if got := Statistical(5, 10, 0, c)["rating_percentile"]; got != 100.0 {
		t.Errorf("original changed by the clone: percentile %v", got)
	}
	if got := Statistical(5, 10, 0, cl)["rating_percentile"]; got != 50.0 {
		t.Errorf("clone percentile %v, want 50", got)
	}
	c.Set(3, 1, 1)
	if cl.Len() != 2 {
		t.Errorf("clone changed by the original: Len %d", cl.Len())
	}
	if new(Corpus).Clone().Len() != 0 {
		t.Error("clone of the zero corpus is not empty")
	}
	z := new(Corpus).Clone()
	z.Set(1, 1, 1) // must not panic on a nil map
}

func TestCorpusNonFinite(t *testing.T) {
	t.Parallel()
	c := NewCorpus()
	c.Set(1, 5, 10)
	c.Set(2, 6, 20)
	c.Set(2, math.NaN(), 20)
	c.Set(3, 7, math.Inf(1))
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1: non-finite values remove the movie", c.Len())
	}
	checkFinite(t, Statistical(5, 10, 0, c))
}

// TestCorpusMatchesNaive compares the summary against the definitions over a
// random corpus with many ties.
func TestCorpusMatchesNaive(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	c := NewCorpus()
	ratings := map[int64]float64{}
	pops := map[int64]float64{}
	for range 5000 {
		id := rng.Int64N(3000) + 1 // ids repeat: Set replaces
		r := float64(rng.IntN(101)) / 10
		p := rng.Float64() * 500
		c.Set(id, r, p)
		ratings[id], pops[id] = r, p
	}
	if c.Len() != len(ratings) {
		t.Fatalf("Len = %d, want %d", c.Len(), len(ratings))
	}
	mean := func(xs map[int64]float64) float64 {
		var s float64
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	std := func(xs map[int64]float64, m float64) float64 {
		var s float64
		for _, x := range xs {
			s += (x - m) * (x - m)
		}
		return math.Sqrt(s / float64(len(xs)))
	}
	rm, pm := mean(ratings), mean(pops)
	rs, ps := std(ratings, rm), std(pops, pm)
	for _, probe := range []struct{ r, p float64 }{{0, 0}, {5, 250}, {7.3, 1}, {10, 499}, {4.4, 100}} {
		le := 0
		for _, r := range ratings {
			if r <= probe.r {
				le++
			}
		}
		got := Statistical(probe.r, probe.p, 0, c)
		want := map[string]any{
			"rating_percentile": 100 * float64(le) / float64(len(ratings)),
			"rating_zscore":     (probe.r - rm) / (rs + 1e-8),
			"popularity_zscore": (probe.p - pm) / (ps + 1e-8),
		}
		for k, w := range want {
			if diff := cmp.Diff(w, got[k], cmpopts.EquateApprox(1e-9, 1e-12)); diff != "" {
				t.Errorf("%s at %v (-naive +got):\n%s", k, probe, diff)
			}
		}
	}
}

func TestCorpusConcurrent(t *testing.T) {
	t.Parallel()
	c := NewCorpus()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				c.Set(int64(w*1000+i), float64(i%11), float64(i))
				checkFinite(t, Statistical(5, 5, 5, c))
				_ = c.Clone().Len()
			}
		})
	}
	wg.Wait()
	if c.Len() != 800 {
		t.Errorf("Len = %d, want 800", c.Len())
	}
}

// BenchmarkIngestBatch is what ingest does per batch: clone the corpus, add
// 10k movies, compute every movie's features.
func BenchmarkIngestBatch(b *testing.B) {
	base := NewCorpus()
	for i := range 10000 {
		base.Set(int64(i+1), float64(i%100)/10, float64(i%1000))
	}
	batch := make([]Movie, 10000)
	for i := range batch {
		m := starWars
		m.ID = int64(20000 + i)
		m.VoteAverage = float64(i%97) / 10
		m.Popularity = float64(i % 700)
		batch[i] = m
	}
	b.ReportAllocs()
	for b.Loop() {
		c := base.Clone()
		for _, m := range batch {
			c.Set(m.ID, m.VoteAverage, m.Popularity)
		}
		for _, m := range batch {
			Features(m, eventTime, c)
		}
	}
}
