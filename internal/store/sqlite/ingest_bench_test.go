package sqlite

import (
	"runtime"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb"
	"github.com/featurestore/featurestore/internal/tmdb/synthetic"
)

// BenchmarkIngestMovies writes what an ingest of 1,000 new movies writes
// (six groups each, movie_basic firing the corpus triggers) per iteration,
// into one store that grows by 1,000 movies an iteration. It reports the
// store's wall and CPU time per movie.
func BenchmarkIngestMovies(b *testing.B) {
	base, err := synthetic.Load(testenv.TMDBFile(b))
	if err != nil {
		b.Fatal(err)
	}
	s := openStore(b, b.TempDir())
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, g := range tmdb.Groups() {
		if _, err := s.PutGroup(b.Context(), g, now); err != nil {
			b.Fatal(err)
		}
	}
	const batch = 1000
	next := 0
	makeBatch := func() []feature.Row {
		rows, err := synthetic.Rows(base, next, next+batch, now)
		if err != nil {
			b.Fatal(err)
		}
		next += batch
		return rows
	}
	var cpu time.Duration // the process's CPU time during the writes
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		rows := makeBatch()
		runtime.GC()
		before := testenv.CPUTime(b)
		b.StartTimer()
		if err := s.WriteRows(b.Context(), rows); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += testenv.CPUTime(b) - before
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(next), "µs/movie")
	b.ReportMetric(float64(cpu.Microseconds())/float64(next), "cpu-µs/movie")
}
