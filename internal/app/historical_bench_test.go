package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// benchFeatures are the benchmark's 10 features of 3 groups.
const benchFeatures = "movie_basic:popularity,movie_basic:vote_average,movie_basic:vote_count,movie_basic:original_language," +
	"movie_temporal:release_year,movie_temporal:days_since_release,movie_temporal:is_recent," +
	"movie_text:title_length,movie_text:overview_word_count,movie_text:title_has_number"

// BenchmarkHistoricalCommand measures the training-set target of issue 11
// end to end in Postgres mode: `featurestore historical` opening the store,
// reading a CSV of entity rows, querying and writing the training set to a
// file. The corpus is $FEATURESTORE_BENCH_MOVIES movies (100,000) written
// in two versions three days apart, built from the real TMDB records; the
// request is $FEATURESTORE_BENCH_ROWS entity rows (100,000; 5% unknown
// movies, times from a day before the first version to ten days after)
// × 10 features of 3 groups. heap-peak-MB is the largest live heap seen
// during the runs, to compare across row counts (memory flat in the rows).
//
//	go test -run '^$' -bench HistoricalCommand -benchtime 3x ./internal/app/
//	FEATURESTORE_BENCH_MOVIES=20000 FEATURESTORE_BENCH_ROWS=20000 go test ...
func BenchmarkHistoricalCommand(b *testing.B) {
	movies := benchEnv(b, "FEATURESTORE_BENCH_MOVIES", 100000)
	rows := benchEnv(b, "FEATURESTORE_BENCH_ROWS", 100000)
	url := testenv.PostgresSchemaURL(b, "fs_bench")
	first := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	seedMovies(b, url, movies, first, first.Add(72*time.Hour))
	b.Logf("seeded %d movies × 3 groups × 2 versions in %v", movies, time.Since(start).Round(time.Millisecond))
	vacuum(b, url)
	dir := b.TempDir()
	entities := writeBenchEntities(b, filepath.Join(dir, "entities.csv"), rows, movies, first)
	env := envFrom(map[string]string{"FEATURESTORE_POSTGRES_URL": url})

	for _, format := range []string{"csv", "parquet"} {
		b.Run(format, func(b *testing.B) {
			out := filepath.Join(dir, "train."+format)
			peak := watchHeap(b)
			for b.Loop() {
				if err := Run(context.Background(), []string{"historical", "--features", benchFeatures, "--out", out, entities},
					env, io.Discard, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(peak())/(1<<20), "heap-peak-MB")
			if st, err := os.Stat(out); err == nil {
				b.ReportMetric(float64(st.Size())/(1<<20), "file-MB")
			}
		})
	}
}

func benchEnv(b *testing.B, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}

// seedMovies registers the built-in groups and writes movie_basic,
// movie_temporal and movie_text rows of n movies at each version time,
// cycling through the real TMDB records with ids 1..n.
func seedMovies(b testing.TB, url string, n int, versions ...time.Time) {
	ctx := context.Background()
	pg, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Close()
	for _, g := range tmdb.Groups() {
		if _, err := pg.PutGroup(ctx, g, versions[0]); err != nil {
			b.Fatal(err)
		}
	}
	raw, err := os.ReadFile(testenv.TMDBFile(b))
	if err != nil {
		b.Fatal(err)
	}
	var file struct{ Movies []json.RawMessage }
	if err := json.Unmarshal(raw, &file); err != nil {
		b.Fatal(err)
	}
	var real []tmdb.Movie
	for _, r := range file.Movies {
		m, problems := tmdb.ParseMovie(r)
		if problems != nil {
			b.Fatal(problems)
		}
		real = append(real, m)
	}
	corpus := tmdb.NewCorpus()
	for v, at := range versions {
		batch := make([]feature.Row, 0, 3000)
		for i := 1; i <= n; i++ {
			m := real[i%len(real)]
			m.ID, m.Popularity = int64(i), m.Popularity+float64(v)
			id := strconv.Itoa(i)
			for group, values := range tmdb.Features(m, at, corpus) {
				if group == tmdb.GroupBasic || group == tmdb.GroupTemporal || group == tmdb.GroupText {
					batch = append(batch, feature.Row{Group: group, EntityID: id, EventTime: at, WriteTime: at, Values: values})
				}
			}
			if len(batch) >= 3000 || i == n {
				if err := pg.WriteRows(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
	}
}

// vacuum does what autovacuum does to a store in service, so that the
// runs measure a steady state, not the first reads after a bulk load
// (which set hint bits and write pages back).
func vacuum(b *testing.B, url string) {
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `VACUUM (ANALYZE) feature_rows`); err != nil {
		b.Fatal(err)
	}
}

// writeBenchEntities writes the entity rows CSV.
func writeBenchEntities(b *testing.B, path string, rows, movies int, first time.Time) string {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "movie_id,event_timestamp")
	rng := rand.New(rand.NewPCG(1, 2))
	span := int64(11 * 24 * time.Hour / time.Second)
	for range rows {
		id := 1 + rng.IntN(movies+movies/20) // 5% unknown
		at := first.Add(-24*time.Hour + time.Duration(rng.Int64N(span))*time.Second)
		fmt.Fprintf(w, "%d,%s\n", id, at.Format(time.RFC3339))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// watchHeap samples the live heap until the benchmark ends and returns a
// function reading the peak.
func watchHeap(b *testing.B) func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	b.Cleanup(func() { close(done); <-stopped })
	return func() uint64 { return peak.Load() }
}
