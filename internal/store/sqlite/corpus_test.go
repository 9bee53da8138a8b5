package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"testing"

	"github.com/featurestore/featurestore/internal/store"
)

// TestMovieCorpusBackfill: a database file that held movies before the
// corpus migration gets their aggregate when it is applied.
func TestMovieCorpusBackfill(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := sql.Open("sqlite", dsn(filepath.Join(dir, FileName), nil))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil || ms[0].Version != 1 {
		t.Fatalf("migrations: %v, %v", ms, err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`,
		ms[0].SQL,
		`INSERT INTO schema_migrations VALUES (1, '0001_init', 0)`,
		`INSERT INTO feature_groups VALUES ('movie_basic', 'movie_id', '[]', 0, '', '{}', 1, 0, 0)`,
		`INSERT INTO feature_latest VALUES
		    ('movie_basic', '1', 1, 1, '{"vote_average":7.5,"popularity":10.25}'),
		    ('movie_basic', '2', 1, 1, '{"vote_average":6.0,"popularity":0.5}'),
		    ('movie_basic', '3', 1, 1, '{"vote_average":null,"popularity":3.0}')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir)
	got, err := s.MovieCorpus(ctx, store.MovieCorpusQuery{Ratings: []float64{6, 7.5}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Movies != 2 || got.RatingSum != "13.5" || got.RatingSquares != "92.25" || got.PopularitySum != "10.75" ||
		got.PopularitySquares != "105.3125" || len(got.AtMost) != 2 || got.AtMost[0] != 1 || got.AtMost[1] != 2 {
		t.Errorf("corpus after the migration: %+v", got)
	}
	var rows int
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM feature_latest`).Scan(&rows); err != nil || rows != 3 {
		t.Errorf("feature_latest after the migration: %d rows, %v; want the 3 it had", rows, err)
	}
}

// TestExactAddFixed: the fixed-point path of fs_exact_add gives the same
// text as the big.Rat one, for sums and values of both signs, integers,
// leading and trailing zeros and squares.
func TestExactAddFixed(t *testing.T) {
	t.Parallel()
	values := []string{"0", "-0", "7", "-7", "7.107", "630.3236", "0.001", "-0.5", "10.0", "00.50", "123456789012345678901234.5",
		"-99.99", "1000", "0.0000000001"}
	for _, sum := range values {
		for _, x := range values {
			for _, sign := range []int64{1, -1} {
				for _, power := range []int64{1, 2} {
					args := []driver.Value{sum, x, sign, power}
					got, ok := exactAddFixed(args)
					if !ok {
						t.Fatalf("exactAddFixed(%v) refused plain decimals", args)
					}
					s, _ := decimalArg(sum)
					v, _ := decimalArg(x)
					if power == 2 {
						v.Mul(v, v)
					}
					if sign < 0 {
						v.Neg(v)
					}
					if want := decimalText(s.Add(s, v)); got != want {
						t.Errorf("exactAddFixed(%v) = %q, big.Rat path %q", args, got, want)
					}
				}
			}
		}
	}
	for _, x := range []string{"1e3", "1.", ".5", "+1", " 1", "-", "", "1.2.3", "0x10"} {
		if got, ok := exactAddFixed([]driver.Value{"0", x, int64(1), int64(1)}); ok {
			t.Errorf("exactAddFixed(0, %q) = %q, want it left to the big.Rat path", x, got)
		}
	}
}
