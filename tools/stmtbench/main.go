// Command stmtbench measures the Postgres backend CPU time of an ingest
// batch's write statement, variant against variant: each variant writes the
// same batches (the rows an ingest of the synthetic TMDB corpus writes) into a fresh schema of
// its own, the variants interleaved batch by batch, and the CPU time of the
// variant's backend (/proc/PID/schedstat, nanoseconds) is read around each
// transaction. Variants: copy (COPY of the same rows, in the order the
// ingest computes them, into scratch copies of feature_rows and
// feature_latest, as tools/ingestbench's copy mode), upsert_unsorted
// (writeRowsSQL with the rows in that order, as WriteRows sent them before
// it sorted), upsert (writeRowsSQL), insert (insertRowsSQL), and any given
// with -variants.
//
//	go run ./tools/stmtbench -n 20000
//
// It is a measurement, not a test: nothing in `go test ./...` runs it.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/store/rowjson"
	"github.com/featurestore/featurestore/internal/tmdb"
	"github.com/featurestore/featurestore/tools/internal/corpus"
)

func main() {
	var cfg corpus.Flags
	cfg.Register()
	extra := flag.String("variants", "", "comma-separated files: setup SQL, a line '-- STATEMENT', the statement ($1..$6 as the current one)")
	explain := flag.Bool("explain", false, "print EXPLAIN ANALYZE of the insert statement on the last batch instead")
	flag.Parse()
	ctx := context.Background()
	base, err := cfg.Load()
	check(err)
	batches, err := cfg.Batches(base, time.Now().UTC().Truncate(time.Microsecond))
	check(err)
	variants := []variant{
		{name: "copy", run: copyRows, copyTables: true},
		{name: "upsert_unsorted", run: sqlVariantOrder(postgres.WriteRowsSQL, false)},
		{name: "upsert", run: sqlVariant(postgres.WriteRowsSQL)},
		{name: "insert", run: sqlVariant(postgres.InsertRowsSQL)},
	}
	for _, e := range strings.Split(*extra, ",") {
		if e == "" {
			continue
		}
		sqlText, err := os.ReadFile(e) // #nosec G304 -- a SQL file the operator of this manual benchmark names on its command line
		check(err)
		parts := strings.SplitN(string(sqlText), "\n-- STATEMENT\n", 2)
		v := variant{name: strings.TrimSuffix(strings.TrimPrefix(e[strings.LastIndexByte(e, '/')+1:], "v_"), ".sql"), run: sqlVariant(parts[len(parts)-1])}
		if len(parts) == 2 {
			v.setup = parts[0]
		}
		variants = append(variants, v)
	}
	type acc struct{ cpu, wall time.Duration }
	accs := make([]acc, len(variants))
	conns := make([]*pgx.Conn, len(variants))
	for i, v := range variants {
		conns[i] = schemaConn(ctx, cfg.Postgres, "stmtbench_"+v.name, v.copyTables)
		if v.setup != "" {
			_, err := conns[i].Exec(ctx, v.setup)
			check(err)
		}
	}
	for k, b := range batches {
		if *explain && k == len(batches)-1 {
			groups, ids, events, writes, values := encode(b, true)
			rs, err := conns[3].Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+postgres.InsertRowsSQL, groups, ids, events, writes, values, distinct(groups))
			check(err)
			lines, err := pgx.CollectRows(rs, pgx.RowTo[string])
			check(err)
			fmt.Println(strings.Join(lines, "\n"))
			break
		}
		for i, v := range variants {
			pid := conns[i].PgConn().PID()
			c0 := procCPU(pid)
			t0 := time.Now()
			check(v.run(ctx, conns[i], b))
			accs[i].wall += time.Since(t0)
			accs[i].cpu += procCPU(pid) - c0
		}
	}
	fmt.Printf("%d movies, batches of %d\n| variant | backend CPU µs/movie | wall µs/movie |\n|---|---|---|\n", cfg.N, cfg.Batch)
	for i, v := range variants {
		fmt.Printf("| %s | %.0f | %.0f |\n", v.name, float64(accs[i].cpu.Microseconds())/float64(cfg.N), float64(accs[i].wall.Microseconds())/float64(cfg.N))
		_, _ = conns[i].Exec(ctx, "DROP SCHEMA stmtbench_"+v.name+" CASCADE")
	}
}

type variant struct {
	name       string
	run        func(context.Context, *pgx.Conn, []feature.Row) error
	copyTables bool
	setup      string
}

func sqlVariant(sql string) func(context.Context, *pgx.Conn, []feature.Row) error {
	return sqlVariantOrder(sql, true)
}

// sqlVariantOrder is sqlVariant with the rows sorted as WriteRows sends
// them, or in the order the ingest computed them (as WriteRows sent them
// before it sorted).
func sqlVariantOrder(sql string, sorted bool) func(context.Context, *pgx.Conn, []feature.Row) error {
	return func(ctx context.Context, c *pgx.Conn, b []feature.Row) error {
		groups, ids, events, writes, values := encode(b, sorted)
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql, groups, ids, events, writes, values, distinct(groups))
			return err
		})
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// schemaConn connects in pgx's exec mode (an unnamed statement per
// execution, planned for its parameters, as WriteRows runs its statement).
func schemaConn(ctx context.Context, pgURL, schema string, copyTables bool) *pgx.Conn {
	cfg, err := pgx.ParseConfig(pgURL)
	check(err)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	c, err := pgx.ConnectConfig(ctx, cfg)
	check(err)
	_, _ = c.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
	_, err = c.Exec(ctx, "CREATE SCHEMA "+schema)
	check(err)
	u, err := url.Parse(pgURL)
	check(err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String(), postgres.Options{})
	check(err)
	for _, g := range tmdb.Groups() {
		_, err := st.PutGroup(ctx, g, time.Now())
		check(err)
	}
	_ = st.Close()
	_, err = c.Exec(ctx, "SET search_path = "+schema)
	check(err)
	if copyTables {
		check(corpus.CreateCopyTables(ctx, c))
	}
	return c
}

func encode(b []feature.Row, sorted bool) (groups, ids []string, events, writes []time.Time, values []string) {
	if sorted {
		b = slices.Clone(b)
		slices.SortFunc(b, func(x, y feature.Row) int {
			return cmp.Or(strings.Compare(x.Group, y.Group), strings.Compare(x.EntityID, y.EntityID))
		})
	}
	for i, r := range b {
		v, err := rowjson.EncodeRow(nil, i, r)
		check(err)
		groups = append(groups, r.Group)
		ids = append(ids, r.EntityID)
		events = append(events, r.EventTime)
		writes = append(writes, r.WriteTime)
		values = append(values, string(v))
	}
	return
}

func copyRows(ctx context.Context, c *pgx.Conn, b []feature.Row) error {
	src, err := corpus.CopySource(b)
	if err != nil {
		return err
	}
	return corpus.CopyBatch(ctx, c, src)
}

func distinct(groups []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, g := range groups {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out
}

// procCPU reads the time a process has spent on a CPU from
// /proc/PID/schedstat (nanoseconds).
func procCPU(pid uint32) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	check(err)
	ns, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
	check(err)
	return time.Duration(ns)
}
