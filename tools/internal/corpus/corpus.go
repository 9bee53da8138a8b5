// Package corpus is what the ingest measurements (tools/ingestbench,
// tools/stmtbench) share: their corpus flags, the rows an ingest of the
// synthetic TMDB corpus writes, batch by batch, and COPY of such rows into
// scratch copies of feature_rows and feature_latest, the ceiling an ingest
// is compared with.
package corpus

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store/rowjson"
	"github.com/featurestore/featurestore/internal/tmdb/synthetic"
)

// Flags are the flags every ingest measurement takes.
type Flags struct {
	Postgres string // the database (each tool works in fresh schemas of it)
	Records  string // the crawler file of real records the corpus is derived from
	N        int    // movies in the corpus
	Batch    int    // movies per batch
}

// Register defines the flags on the command line's flag set.
func (f *Flags) Register() {
	flag.StringVar(&f.Postgres, "postgres", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "Postgres database (a fresh schema per mode or variant)")
	flag.StringVar(&f.Records, "records", synthetic.RecordsFile, "real TMDB records (crawler file) to derive the corpus from")
	flag.IntVar(&f.N, "n", 20000, "movies in the corpus")
	flag.IntVar(&f.Batch, "batch", 1000, "movies per batch: per request, per CLI transaction (--batch-size), per COPY transaction, per statement")
}

// Load reads the real records the corpus is derived from.
func (f *Flags) Load() ([]map[string]any, error) { return synthetic.Load(f.Records) }

// Batches returns the rows an ingest of the corpus generated from base
// writes at eventTime, one slice per batch of f.Batch movies.
func (f *Flags) Batches(base []map[string]any, eventTime time.Time) ([][]feature.Row, error) {
	var out [][]feature.Row
	for lo := 0; lo < f.N; lo += f.Batch {
		rows, err := synthetic.Rows(base, lo, min(f.N, lo+f.Batch), eventTime)
		if err != nil {
			return nil, err
		}
		out = append(out, rows)
	}
	return out, nil
}

// CreateCopyTables creates the scratch tables COPY writes into, copy_
// and the name of each table an ingest writes rows into, with the same
// columns, indexes and fillfactor (no triggers, no foreign key), in the
// connection's schema.
func CreateCopyTables(ctx context.Context, conn *pgx.Conn) error {
	for _, t := range []string{"feature_rows", "feature_latest"} {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE copy_%s (LIKE %s INCLUDING ALL)", t, t)); err != nil {
			return err
		}
	}
	return nil
}

// CopySource returns rows as COPY sends them, their values encoded as the
// service encodes them.
func CopySource(rows []feature.Row) ([][]any, error) {
	src := make([][]any, len(rows))
	var enc rowjson.RowEncoder
	for i, r := range rows {
		v, err := enc.Encode(nil, i, r)
		if err != nil {
			return nil, err
		}
		src[i] = []any{r.Group, r.EntityID, r.EventTime, r.WriteTime, string(v)}
	}
	return src, nil
}

// CopyBatch sends a batch with COPY into both scratch tables, in one
// transaction.
func CopyBatch(ctx context.Context, conn *pgx.Conn, src [][]any) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		cols := []string{"group_name", "entity_id", "event_time", "write_time", "feature_values"}
		for _, t := range []string{"copy_feature_rows", "copy_feature_latest"} {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{t}, cols, pgx.CopyFromRows(src)); err != nil {
				return err
			}
		}
		return nil
	})
}
