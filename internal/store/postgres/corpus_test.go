package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
)

// TestMovieCorpusBackfill: a database that held movies before the corpus
// migration gets their aggregate when it is applied.
func TestMovieCorpusBackfill(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ms, err := loadMigrations()
	if err != nil || ms[0].Version != 1 {
		t.Fatalf("migrations: %v, %v", ms, err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`,
		ms[0].SQL,
		`INSERT INTO schema_migrations VALUES (1, '0001_init', now())`,
		`INSERT INTO feature_groups VALUES ('movie_basic', 'movie_id', '[]', 0, '', '{}', 1, now(), now())`,
		`INSERT INTO feature_latest VALUES
		    ('movie_basic', '1', now(), now(), '{"vote_average": 7.5, "popularity": 10.25}'),
		    ('movie_basic', '2', now(), now(), '{"vote_average": 6.0, "popularity": 0.5}'),
		    ('movie_basic', '3', now(), now(), '{"vote_average": null, "popularity": 3.0}')`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := openStore(t, url)
	got, err := s.MovieCorpus(ctx, store.MovieCorpusQuery{Ratings: []float64{6, 7.5}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Movies != 2 || got.RatingSum != "13.5" || got.RatingSquares != "92.25" || got.PopularitySum != "10.75" ||
		got.PopularitySquares != "105.3125" || len(got.AtMost) != 2 || got.AtMost[0] != 1 || got.AtMost[1] != 2 {
		t.Errorf("corpus after the migration: %+v", got)
	}
}
