package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/testenv"
)

// dumpTables returns every row of the tables a write changes (history,
// latest, summed counts, the movie corpus aggregates), as text in a fixed
// order.
func dumpTables(t *testing.T, s *Store) string {
	t.Helper()
	var out strings.Builder
	for _, q := range []string{
		`SELECT group_name, entity_id, event_time, write_time, feature_values::text FROM feature_rows
		 ORDER BY group_name, entity_id, event_time, write_time, feature_values::text`,
		`SELECT group_name, entity_id, event_time, write_time, feature_values::text FROM feature_latest
		 ORDER BY group_name, entity_id`,
		`SELECT group_name, sum(entities), sum(history_rows), max(newest_event_time) FROM feature_group_counts
		 GROUP BY group_name ORDER BY group_name`,
		`SELECT movies, rating_sum, rating_squares, popularity_sum, popularity_squares FROM movie_corpus`,
		`SELECT rating, bucket, movies FROM movie_rating_counts WHERE movies <> 0 ORDER BY rating`,
		`SELECT bucket, movies FROM movie_rating_buckets WHERE movies <> 0 ORDER BY bucket`,
	} {
		rows, err := s.pool.Query(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&out, vals...)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		out.WriteString("--\n")
	}
	return out.String()
}

// TestInsertRowsMatchesUpsert writes the same batches through the
// distinct-key statement (insertRowsSQL) and through the upsert
// (writeRowsSQL) into two schemas and compares every table a write touches:
// new entities, repeats of the latest row, newer and older rows of existing
// entities, a batch mixing them, a batch that repeats a key.
func TestInsertRowsMatchesUpsert(t *testing.T) {
	t.Parallel()
	fast := openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	upsert := openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	upsert.upsertOnly = true
	ctx := t.Context()
	groups := []feature.Group{
		{Name: "movie_basic", EntityKey: "movie_id", Features: []feature.Spec{
			{Name: "vote_average", Type: feature.Float64}, {Name: "popularity", Type: feature.Float64}}},
		{Name: "other", EntityKey: "id", Features: []feature.Spec{{Name: "s", Type: feature.String}}},
	}
	for _, s := range []*Store{fast, upsert} {
		for _, g := range groups {
			if _, err := s.PutGroup(ctx, g, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	movie := func(id string, ev, wr int, rating, pop float64) feature.Row {
		return feature.Row{Group: "movie_basic", EntityID: id, EventTime: at(ev), WriteTime: at(wr),
			Values: feature.Values{"vote_average": rating, "popularity": pop}}
	}
	other := func(id string, ev, wr int, v any) feature.Row {
		return feature.Row{Group: "other", EntityID: id, EventTime: at(ev), WriteTime: at(wr), Values: feature.Values{"s": v}}
	}
	batches := [][]feature.Row{
		{movie("2", 1, 1, 7.5, 10.25), movie("1", 1, 1, 6, 0.5), other("b", 1, 1, "x"), other("a", 1, 1, nil)},
		{movie("1", 1, 1, 6, 0.5), other("a", 1, 1, nil)},                               // repeats of the latest: nothing written
		{movie("1", 1, 2, 6.5, 0.5), movie("2", 0, 3, 9, 1), movie("3", 2, 2, 5.25, 3)}, // newer, older, new
		{other("a", 1, 1, "changed"), other("c", 5, 5, "new"), movie("1", 3, 3, 1, 1)},  // same event time, other values
		{movie("4", 1, 1, 8, 2), movie("4", 2, 2, 8.5, 2), other("d", 1, 1, "y")},       // a repeated key: the upsert
		{movie("4", 2, 2, 8.5, 2), movie("5", 1, 1, 7, 7)},                              // a repeat and a new one
	}
	for i, b := range batches {
		for _, s := range []*Store{fast, upsert} {
			if err := s.WriteRows(ctx, b); err != nil {
				t.Fatalf("batch %d: WriteRows: %v", i, err)
			}
		}
		if got, want := dumpTables(t, fast), dumpTables(t, upsert); got != want {
			t.Fatalf("after batch %d the tables differ:\ndistinct-key statement:\n%s\nupsert:\n%s", i, got, want)
		}
	}
}

// TestInsertRowsFirstWriteRace: an entity's first latest row committed by
// another transaction after the distinct-key statement took its snapshot
// makes the statement's insert fail on the primary key; WriteRows writes the
// batch again with the upsert, and the newer row wins.
func TestInsertRowsFirstWriteRace(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	s := openStore(t, url)
	ctx := t.Context()
	g := feature.Group{Name: "g", EntityKey: "id", Features: []feature.Spec{{Name: "n", Type: feature.Int64}}}
	if _, err := s.PutGroup(ctx, g, time.Now()); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := tx.Exec(ctx, `INSERT INTO feature_latest VALUES ('g', 'race', $1, $1, '{"n": 1}')`, old); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	newer := old.Add(time.Hour)
	go func() {
		done <- s.WriteRows(ctx, []feature.Row{
			{Group: "g", EntityID: "race", EventTime: newer, WriteTime: newer, Values: feature.Values{"n": int64(2)}},
			{Group: "g", EntityID: "solo", EventTime: newer, WriteTime: newer, Values: feature.Values{"n": int64(3)}},
		})
	}()
	// Wait until the write waits for the other transaction's row, then commit it.
	for {
		var waiting bool
		if err := other.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%feature_groups_lock%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("WriteRows returned %v before the other transaction committed", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
	var n, hist int64
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT (feature_values->>'n')::bigint FROM feature_latest WHERE entity_id = 'race'),
		(SELECT count(*) FROM feature_rows)`).Scan(&n, &hist); err != nil {
		t.Fatal(err)
	}
	if n != 2 || hist != 2 {
		t.Errorf("latest n = %d, history rows = %d; want the newer row (2) and both rows of the batch in the history", n, hist)
	}
}
