package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/storetest"
	"github.com/featurestore/featurestore/internal/testenv"
)

func openStore(tb testing.TB, url string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), url, Options{MaxConns: 8})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openStore(t, testenv.PostgresSchemaURL(t, "fs_t")) })
}

func TestMovieCorpusContract(t *testing.T) {
	t.Parallel()
	storetest.RunMovieCorpus(t, func(t *testing.T) storetest.CorpusStore { return openStore(t, testenv.PostgresSchemaURL(t, "fs_t")) })
}

func TestRetentionContract(t *testing.T) {
	t.Parallel()
	storetest.RunRetention(t, func(t *testing.T) storetest.RetentionStore {
		return openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	})
}

func countMigrations(t *testing.T, url string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatalf("count migrations: %v", err)
	}
	return n
}

func TestMigrateIdempotent(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		t.Fatalf("loadMigrations = %d, %v", len(ms), err)
	}
	for i := range 2 {
		if err := Migrate(t.Context(), url); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	if n := countMigrations(t, url); n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	// Open migrates again (nothing to do) and the schema works.
	s := openStore(t, url)
	if _, err := s.PutGroup(t.Context(), feature.Group{Name: "g", EntityKey: "id",
		Features: []feature.Spec{{Name: "x", Type: feature.Int64}}}, time.Now()); err != nil {
		t.Fatalf("PutGroup after migrations: %v", err)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = Migrate(t.Context(), url)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate #%d: %v", i, err)
		}
	}
	ms, _ := loadMigrations()
	if got := countMigrations(t, url); got != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", got, len(ms))
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	c := s.Health(t.Context())
	if c.Status != store.HealthUp || c.Error != "" {
		t.Fatalf("Health = %+v, want UP", c)
	}
	if v, _ := c.Details["version"].(string); v == "" {
		t.Errorf("version = %v, want the server version", c.Details["version"])
	}
	if v, ok := c.Details["query_latency_ms"].(float64); !ok || v < 0 {
		t.Errorf("query_latency_ms = %v", c.Details["query_latency_ms"])
	}
	if v, _ := c.Details["database_size_bytes"].(int64); v <= 0 {
		t.Errorf("database_size_bytes = %v, want > 0", c.Details["database_size_bytes"])
	}
	if v, ok := c.Details["active_connections"].(int64); !ok || v < 1 { // at least the health query itself
		t.Errorf("active_connections = %v, want >= 1", c.Details["active_connections"])
	}
	pool, _ := c.Details["pool"].(map[string]any)
	if pool["max"] != int32(8) {
		t.Errorf("pool.max = %v, want 8 (Options.MaxConns)", pool["max"])
	}
	for _, k := range []string{"total", "idle", "in_use", "acquire_count"} {
		if _, ok := pool[k]; !ok {
			t.Errorf("pool details lack %q: %v", k, pool)
		}
	}
	if s.Pool().Stat().MaxConns() != 8 {
		t.Errorf("Pool().Stat().MaxConns() = %d", s.Pool().Stat().MaxConns())
	}
}

func TestOpenBadURL(t *testing.T) {
	t.Parallel()
	_, err := Open(t.Context(), "postgres://postgres@127.0.0.1:5432/test?sslmode=bogus", Options{})
	if feature.ErrorCode(err) != feature.CodeInvalid {
		t.Errorf("Open(bad url) = %v, want an invalid error", err)
	}
}

// TestPostgresDown stops the database under a running writer: writes and
// reads fail fast with Unavailable errors, Health says DOWN, and after a
// restart every acknowledged batch is there and no batch is half there.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	srv := testenv.StartPostgres(t)
	s := openStore(t, srv.URL())
	ctx := t.Context()
	if _, err := s.PutGroup(ctx, feature.Group{Name: "movies", EntityKey: "movie_id",
		Features: []feature.Spec{{Name: "n", Type: feature.Int64}}}, time.Now()); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}

	const batchSize = 2000
	batch := func(k int) []feature.Row {
		rows := make([]feature.Row, batchSize)
		for i := range rows {
			now := time.Now()
			rows[i] = feature.Row{Group: "movies", EntityID: fmt.Sprintf("b%d-%d", k, i), EventTime: now, WriteTime: now,
				Values: feature.Values{"n": int64(k)}}
		}
		return rows
	}
	// The writer writes batches until one fails; the server is stopped
	// after two are acknowledged, so the failing one is likely in flight.
	var (
		acked     = make(chan int, 1000)
		writerErr error
		failed    int
		wg        sync.WaitGroup
	)
	wg.Go(func() {
		defer close(acked)
		for k := 0; ; k++ {
			if err := s.WriteRows(ctx, batch(k)); err != nil {
				writerErr, failed = err, k
				return
			}
			acked <- k
		}
	})
	<-acked
	<-acked
	srv.Stop()
	wg.Wait()
	nAcked := 2 + len(acked)
	// In flight when the server stopped: either refused before it was sent
	// (unavailable: nothing written) or sent and its answer lost
	// (outcome_unknown: it may have committed). Checked against the rows
	// after the restart below.
	writerCode := feature.ErrorCode(writerErr)
	if writerCode != feature.CodeUnavailable && writerCode != feature.CodeOutcomeUnknown {
		t.Errorf("write while the server stops = %v, want unavailable or outcome_unknown", writerErr)
	}

	// Every call fails fast: the guard deadline is there to turn a hang into
	// a failure, not to time anything.
	guard, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := s.WriteRows(guard, batch(1000))
	if feature.ErrorCode(err) != feature.CodeUnavailable || guard.Err() != nil {
		t.Errorf("WriteRows while down = %v (guard %v), want a prompt unavailable error", err, guard.Err())
	}
	_, err = s.GetLatest(guard, []feature.Key{{Group: "movies", EntityID: "b0-0"}})
	if feature.ErrorCode(err) != feature.CodeUnavailable || guard.Err() != nil {
		t.Errorf("GetLatest while down = %v (guard %v), want a prompt unavailable error", err, guard.Err())
	}
	if c := s.Health(guard); c.Status != store.HealthDown || c.Error == "" || guard.Err() != nil {
		t.Errorf("Health while down = %+v, want DOWN with an error", c)
	}
	if _, err := Open(guard, srv.URL(), Options{}); feature.ErrorCode(err) != feature.CodeUnavailable || guard.Err() != nil {
		t.Errorf("Open while down = %v, want a prompt unavailable error", err)
	}

	srv.Start()
	// The pool replaces its dead connections; poll until it has.
	testenv.Eventually(t, time.Minute, "the store recovers after the restart", func() (bool, string) {
		h := s.Health(ctx)
		return h.Status == store.HealthUp, fmt.Sprintf("%+v", h)
	})
	count := func(k int) int {
		keys := make([]feature.Key, batchSize)
		for i := range keys {
			keys[i] = feature.Key{Group: "movies", EntityID: fmt.Sprintf("b%d-%d", k, i)}
		}
		rows, err := s.GetLatest(ctx, keys)
		if err != nil {
			t.Fatalf("GetLatest after restart: %v", err)
		}
		n := 0
		for _, r := range rows {
			if r != nil {
				n++
			}
		}
		return n
	}
	for k := range nAcked {
		if n := count(k); n != batchSize {
			t.Errorf("acknowledged batch %d: %d of %d rows after restart", k, n, batchSize)
		}
	}
	// The batch that failed may have committed before the connection went:
	// all or nothing, never part.
	failedRows := count(failed)
	if failedRows != 0 && failedRows != batchSize {
		t.Errorf("failed batch %d is half written: %d of %d rows", failed, failedRows, batchSize)
	}
	if failedRows != 0 && writerCode != feature.CodeOutcomeUnknown {
		t.Errorf("failed batch %d was committed but answered %v: only outcome_unknown may hide a commit", failed, writerErr)
	}
	if n := count(1000); n != 0 {
		t.Errorf("batch written while down has %d rows", n)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if want := int64(nAcked*batchSize + failedRows); len(st.Groups) != 1 || st.Groups[0].Rows != want || st.Groups[0].Entities != want {
		t.Errorf("Stats after restart = %+v, want %d rows and entities", st.Groups, want)
	}
	if err := s.WriteRows(ctx, batch(2000)); err != nil {
		t.Errorf("WriteRows after restart: %v", err)
	}
}

// BenchmarkGetLatest reads random batches of 100 keys out of 10,000 entities.
func BenchmarkGetLatest(b *testing.B) {
	storetest.BenchGetLatest(b, openStore(b, testenv.PostgresSchemaURL(b, "fs_t")))
}

// BenchmarkWriteRows writes batches of 1,000 rows over existing entities.
func BenchmarkWriteRows(b *testing.B) {
	storetest.BenchWriteRows(b, openStore(b, testenv.PostgresSchemaURL(b, "fs_t")))
}

func TestHistoryContract(t *testing.T) {
	t.Parallel()
	storetest.RunHistory(t, func(t *testing.T) storetest.HistoryStore {
		return openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	})
}

func TestIdempotencyContract(t *testing.T) {
	t.Parallel()
	storetest.RunIdempotency(t, func(t *testing.T) storetest.IdempotentStore {
		return openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	})
}

func TestFeatureServiceContract(t *testing.T) {
	t.Parallel()
	storetest.RunFeatureServices(t, func(t *testing.T) storetest.ServiceStore {
		return openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	})
}

// TestPruneOncePerCluster: while one process holds the maintenance lock,
// another's PruneHistory skips, deletes nothing and moves no watermark.
func TestPruneOncePerCluster(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	a, b := openStore(t, url), openStore(t, url)
	g := feature.Group{Name: "g", EntityKey: "id", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}}
	if _, err := a.PutGroup(t.Context(), g, time.Now()); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := []feature.Row{
		{Group: "g", EntityID: "e", EventTime: t0, WriteTime: t0, Values: feature.Values{"x": int64(1)}},
		{Group: "g", EntityID: "e", EventTime: t0.Add(time.Hour), WriteTime: t0.Add(time.Hour), Values: feature.Values{"x": int64(2)}},
	}
	if err := a.WriteRows(t.Context(), rows); err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
	conn, err := a.Pool().Acquire(t.Context())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), `SELECT pg_advisory_lock(`+maintenanceLockKey+`)`); err != nil {
		t.Fatalf("lock: %v", err)
	}
	horizon := []store.Horizon{{Group: "g", Before: t0.Add(2 * time.Hour)}}
	res, err := b.PruneHistory(t.Context(), horizon, 10)
	if err != nil || !res.Skipped || res.Rows != 0 {
		t.Fatalf("PruneHistory while another process holds the lock = %+v, %v; want skipped", res, err)
	}
	if r, err := b.GetAsOf(t.Context(), feature.Key{Group: "g", EntityID: "e"}, t0); err != nil || r == nil {
		t.Errorf("GetAsOf after a skipped prune = %v, %v; want the first row", r, err)
	}
	if _, err := conn.Exec(t.Context(), `SELECT pg_advisory_unlock(`+maintenanceLockKey+`)`); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if res, err = b.PruneHistory(t.Context(), horizon, 10); err != nil || res.Skipped || res.Rows != 1 {
		t.Fatalf("PruneHistory once the lock is free = %+v, %v; want 1 row", res, err)
	}
}

// TestPruneVacuums: a pass that prunes many rows vacuums the history, so
// the next writes reuse the space instead of growing the table.
func TestPruneVacuums(t *testing.T) {
	t.Parallel()
	s := openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	g := feature.Group{Name: "g", EntityKey: "id", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}}
	if _, err := s.PutGroup(t.Context(), g, time.Now()); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var rows []feature.Row
	for e := range vacuumAfter / 4 {
		for v := range 5 {
			at := t0.Add(time.Duration(v) * time.Hour)
			rows = append(rows, feature.Row{Group: "g", EntityID: fmt.Sprint(e), EventTime: at, WriteTime: at, Values: feature.Values{"x": int64(v)}})
		}
	}
	if err := s.WriteRows(t.Context(), rows); err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
	res, err := s.PruneHistory(t.Context(), []store.Horizon{{Group: "g", Before: t0.Add(10 * time.Hour)}}, 1000)
	if err != nil || res.Rows != vacuumAfter {
		t.Fatalf("PruneHistory = %+v, %v; want %d rows", res, err, vacuumAfter)
	}
	testenv.Eventually(t, time.Minute, "feature_rows vacuumed", func() (bool, string) {
		var vacuumed bool
		err := s.Pool().QueryRow(t.Context(), `
			SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables
			WHERE relid = 'feature_rows'::regclass`).Scan(&vacuumed)
		return err == nil && vacuumed, fmt.Sprintf("vacuumed %v, err %v", vacuumed, err)
	})
}

// TestUnstorableTextIsInvalid: the finding "/entities/%FF answers 500
// (SQLSTATE 22021)", at the last line of defence. Text Postgres cannot
// store that reaches it anyway (the service refuses it first) is an
// invalid-input error, never an internal one.
func TestUnstorableTextIsInvalid(t *testing.T) {
	t.Parallel()
	s := openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	if _, err := s.GetLatest(t.Context(), []feature.Key{{Group: "g", EntityID: "\xff"}}); feature.ErrorCode(err) != feature.CodeInvalid {
		t.Errorf("GetLatest with an invalid UTF-8 id = %v, want invalid", err)
	}
	if _, err := s.GetGroup(t.Context(), "a\x00b"); feature.ErrorCode(err) != feature.CodeInvalid {
		t.Errorf("GetGroup with a NUL in the name = %v, want invalid", err)
	}
}

// TestDeleteGroupDuringWrites deletes a group while writers keep writing to
// it: whatever the interleaving, every write either fails as NotFound or
// committed before the delete, and once the delete is acknowledged no
// history or latest row of the group is left (the group lock and the delete
// trigger stand in for the foreign key's per-row check and cascade).
func TestDeleteGroupDuringWrites(t *testing.T) {
	t.Parallel()
	s := openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	ctx := t.Context()
	g := feature.Group{Name: "doomed", EntityKey: "id", Features: []feature.Spec{{Name: "n", Type: feature.Int64}}}
	for round := range 5 {
		if _, err := s.PutGroup(ctx, g, time.Now()); err != nil {
			t.Fatalf("PutGroup: %v", err)
		}
		var wg sync.WaitGroup
		deleted := make(chan struct{})
		started := make(chan struct{}, 2)
		for w := range 2 {
			wg.Go(func() {
				var once sync.Once
				signal := func() { once.Do(func() { started <- struct{}{} }) }
				defer signal() // also when a write fails early
				for i := 0; ; i++ {
					var after bool // the delete was acknowledged before this write began
					select {
					case <-deleted:
						after = true
					default:
					}
					now := time.Now()
					rows := make([]feature.Row, 200)
					for j := range rows {
						rows[j] = feature.Row{Group: "doomed", EntityID: fmt.Sprintf("%d-%d-%d", w, i, j), EventTime: now, WriteTime: now,
							Values: feature.Values{"n": int64(j)}}
					}
					err := s.WriteRows(ctx, rows)
					if feature.ErrorCode(err) == feature.CodeNotFound {
						return
					}
					if err != nil {
						t.Errorf("round %d: WriteRows: %v", round, err)
						return
					}
					if after {
						t.Errorf("round %d: a write that began after the delete was acknowledged succeeded", round)
						return
					}
					if i == round {
						signal()
					}
				}
			})
		}
		<-started // delete while the writers are writing (after a few batches, more each round)
		<-started
		if err := s.DeleteGroup(ctx, "doomed"); err != nil {
			t.Fatalf("DeleteGroup: %v", err)
		}
		close(deleted)
		wg.Wait()
		var left int
		if err := s.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM feature_rows WHERE group_name = 'doomed')
			+ (SELECT count(*) FROM feature_latest WHERE group_name = 'doomed')`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("round %d: %d rows of the deleted group are left", round, left)
		}
	}
}
