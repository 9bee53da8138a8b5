package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
)

// countingStore is a test double around a real store that counts the calls
// the service makes and the rows it writes.
type countingStore struct {
	store.Store
	corpus CorpusReader

	mu    sync.Mutex
	calls map[string]int
}

func (c *countingStore) count(name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[name] += n
}

func (c *countingStore) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

func (c *countingStore) WriteRows(ctx context.Context, rows []feature.Row) error {
	c.count("WriteRows", 1)
	c.count("rows written", len(rows))
	return c.Store.WriteRows(ctx, rows)
}

func (c *countingStore) GetLatest(ctx context.Context, keys []feature.Key) ([]*feature.Row, error) {
	c.count("GetLatest", 1)
	return c.Store.GetLatest(ctx, keys)
}

func (c *countingStore) ScanLatest(ctx context.Context, group string, fn func(feature.Row) error) error {
	c.count("ScanLatest", 1)
	return c.Store.ScanLatest(ctx, group, fn)
}

func (c *countingStore) MovieCorpus(ctx context.Context, q store.MovieCorpusQuery) (store.MovieCorpus, error) {
	c.count("MovieCorpus", 1)
	return c.corpus.MovieCorpus(ctx, q)
}

// tuplesWritten counts, per table of the schema, the row versions written
// by transactions that began after xid (inserted rows and the new versions
// of updated ones).
func tuplesWritten(t *testing.T, conn *pgx.Conn, xid int64) map[string]int {
	t.Helper()
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, tbl := range tables {
		var n int
		if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE xmin::text::bigint > $1`, pgx.Identifier{tbl}.Sanitize()), xid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			out[tbl] = n
		}
	}
	return out
}

// TestIngestCostIndependentOfCorpus proves structurally that ingesting one
// movie costs the same in a corpus of 1,000 movies as in one of 20,000: the
// same store calls with the same number of rows, no read of the corpus, and
// the same number of row versions written to each table of the system of
// record (counted by transaction id), for a new movie and for a re-ingest
// with new values.
func TestIngestCostIndependentOfCorpus(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	inner := openPostgresURL(t, url, fmt.Sprintf("fs_t_%016x", rand.Uint64()))
	sor, _ := systems.Load(inner)
	counting := &countingStore{Store: inner, corpus: sor.(CorpusReader), calls: map[string]int{}}
	c := newClock()
	s := newService(t, counting, c, Options{Corpus: counting})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())

	// The corpus grows by movie_basic rows written straight to the system
	// of record (the corpus is made of them; the other groups only slow the
	// test down).
	r := rand.New(rand.NewPCG(5, 6))
	next := int64(1)
	grow := func(to int64) {
		for next <= to {
			var rows []feature.Row
			for ; next <= to && len(rows) < 5000; next++ {
				_, m := synthetic(r, next)
				rows = append(rows, feature.Row{Group: "movie_basic", EntityID: fmt.Sprint(next), EventTime: t0, WriteTime: t0,
					Values: feature.Values{"vote_average": m.rating, "popularity": m.popularity, "vote_count": int64(10)}})
			}
			if err := sor.(store.Store).WriteRows(ctx, rows); err != nil {
				t.Fatal(err)
			}
		}
	}
	type cost struct {
		Calls  map[string]int
		Tuples map[string]int
	}
	measure := func(raw json.RawMessage) cost {
		var xid int64
		if err := conn.QueryRow(ctx, `SELECT txid_current() % 4294967296`).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		counting.reset()
		if _, err := s.Ingest(ctx, []json.RawMessage{raw}); err != nil {
			t.Fatal(err)
		}
		return cost{Calls: counting.reset(), Tuples: tuplesWritten(t, conn, xid)}
	}

	grow(1000)
	if n := s.CorpusSize(); n != 1000 {
		t.Fatalf("corpus of %d movies, want 1000", n)
	}
	newSmall := measure(movie(5_000_001, 6.25, 10))
	againSmall := measure(movie(5_000_001, 7.5, 20))
	grow(20000)
	if n := s.CorpusSize(); n != 20001 {
		t.Fatalf("corpus of %d movies, want 20001", n)
	}
	newLarge := measure(movie(5_000_002, 6.25, 10))
	againLarge := measure(movie(5_000_002, 7.5, 20))

	t.Logf("one new movie: %+v; re-ingested: %+v", newSmall, againSmall)
	if newSmall.Calls["WriteRows"] != 1 || newSmall.Calls["rows written"] != 6 || len(newSmall.Calls) != 2 {
		t.Errorf("ingest of one movie made store calls %v, want one WriteRows of 6 rows and nothing else", newSmall.Calls)
	}
	if diff := cmp.Diff(newSmall, newLarge); diff != "" {
		t.Errorf("ingesting a new movie costs more at 20k movies than at 1k (-1k +20k):\n%s", diff)
	}
	if diff := cmp.Diff(againSmall, againLarge); diff != "" {
		t.Errorf("re-ingesting a movie costs more at 20k movies than at 1k (-1k +20k):\n%s", diff)
	}
}
