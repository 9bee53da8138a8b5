package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
)

// waitReplayed waits until the replica has replayed everything the primary
// has written so far (its replay LSN reaches the primary's current LSN):
// s writes to the primary and reads from the replica.
func waitReplayed(t *testing.T, s *Store) {
	t.Helper()
	var lsn string
	if err := s.Pool().QueryRow(t.Context(), `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatalf("primary LSN: %v", err)
	}
	testenv.Eventually(t, time.Minute, "the replica replays "+lsn, func() (bool, string) {
		var done bool
		err := s.ReadPool().QueryRow(t.Context(), `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn).Scan(&done)
		return err == nil && done, fmt.Sprintf("caught up %v, err %v", done, err)
	})
}

// TestReadReplica runs the store against a real streaming replica made by
// pg_basebackup -R: writes and latest reads go to the primary, as-of reads,
// scans and stats to the replica; with the replica down only those fail
// (unavailable), and once it is back it catches up and serves them again.
func TestReadReplica(t *testing.T) {
	t.Parallel()
	primary := testenv.StartPostgres(t)
	replica := primary.StartReplica()
	s := openStoreOpts(t, primary.URL(), Options{MaxConns: 4, ReadURL: replica.URL()})
	ctx := t.Context()

	if h := s.ReadHealth().Health(ctx); h.Status != store.HealthUp || h.Details["in_recovery"] != true {
		t.Fatalf("replica health = %+v, want up and in recovery", h)
	}
	g := feature.Group{Name: "g", EntityKey: "id", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}}
	if _, err := s.PutGroup(ctx, g, time.Now()); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	row := func(h int) feature.Row {
		at := t0.Add(time.Duration(h) * time.Hour)
		return feature.Row{Group: "g", EntityID: "e", EventTime: at, WriteTime: at, Values: feature.Values{"x": int64(h)}}
	}
	if err := s.WriteRows(ctx, []feature.Row{row(0), row(1)}); err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
	waitReplayed(t, s)
	key := feature.Key{Group: "g", EntityID: "e"}
	if r, err := s.GetAsOf(ctx, key, t0.Add(30*time.Minute)); err != nil || r == nil || r.Values["x"] != int64(0) {
		t.Fatalf("GetAsOf through the replica = %+v, %v; want x=0", r, err)
	}
	// The replica refuses writes, so a read that went to it can be told
	// apart: its connection is in recovery.
	var inRecovery bool
	if err := s.ReadPool().QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("read pool is not on the replica: in recovery %v, %v", inRecovery, err)
	}

	if got, err := readHistoryX(ctx, s, t0.Add(90*time.Minute)); err != nil || got != int64(1) {
		t.Fatalf("ReadHistory through the replica = %v, %v; want x=1", got, err)
	}

	replica.Stop()
	_, err := s.GetAsOf(ctx, key, t0)
	wantCodeOf(t, "GetAsOf with the replica down", err, feature.CodeUnavailable)
	_, err = readHistoryX(ctx, s, t0)
	wantCodeOf(t, "ReadHistory (a training set) with the replica down", err, feature.CodeUnavailable)
	asOf := t0
	_, err = s.MovieCorpus(ctx, store.MovieCorpusQuery{Ratings: []float64{5}, AsOf: &asOf})
	wantCodeOf(t, "MovieCorpus as of a time with the replica down", err, feature.CodeUnavailable)
	if _, err := s.MovieCorpus(ctx, store.MovieCorpusQuery{Ratings: []float64{5}}); err != nil {
		t.Errorf("MovieCorpus (current, from the primary) with the replica down: %v", err)
	}
	_, err = s.Stats(ctx)
	wantCodeOf(t, "Stats with the replica down", err, feature.CodeUnavailable)
	err = s.ScanLatest(ctx, "g", func(feature.Row) error { return nil })
	wantCodeOf(t, "ScanLatest with the replica down", err, feature.CodeUnavailable)
	if h := s.ReadHealth().Health(ctx); h.Status != store.HealthDown {
		t.Errorf("replica health with the replica down = %+v", h)
	}
	if h := s.Health(ctx); h.Status != store.HealthUp {
		t.Errorf("primary health with the replica down = %+v", h)
	}
	if err := s.WriteRows(ctx, []feature.Row{row(2)}); err != nil {
		t.Fatalf("WriteRows with the replica down: %v", err)
	}
	if rows, err := s.GetLatest(ctx, []feature.Key{key}); err != nil || rows[0] == nil || rows[0].Values["x"] != int64(2) {
		t.Fatalf("GetLatest with the replica down = %v, %v; want x=2", rows, err)
	}

	replica.Start()
	waitReplayed(t, s)
	if r, err := s.GetAsOf(ctx, key, t0.Add(3*time.Hour)); err != nil || r == nil || r.Values["x"] != int64(2) {
		t.Fatalf("GetAsOf after the replica came back = %+v, %v; want x=2 (written while it was down)", r, err)
	}
	if got, err := readHistoryX(ctx, s, t0.Add(3*time.Hour)); err != nil || got != int64(2) {
		t.Fatalf("ReadHistory after the replica came back = %v, %v; want x=2", got, err)
	}
}

// readHistoryX reads feature x of entity e of group g as of at, as a
// training set of one row does.
func readHistoryX(ctx context.Context, s *Store, at time.Time) (any, error) {
	var got any
	q := store.HistoryQuery{
		Groups:   []store.HistoryGroup{{Name: "g", Features: []string{"x"}}},
		Entities: store.EntitySlice([]store.PointInTime{{EntityID: "e", Time: at}}),
	}
	err := s.ReadHistory(ctx, q, func(_ int, rows []store.HistoryRow) error {
		if rows[0].Found {
			got = rows[0].Values[0]
		}
		return nil
	})
	return got, err
}

// TestStatementTimeout: the flag's timeout is the server's
// statement_timeout on both pools, and a statement it cancels is a timeout.
func TestStatementTimeout(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	s := openStoreOpts(t, url, Options{MaxConns: 2, StatementTimeout: 200 * time.Millisecond})
	var setting string
	if err := s.Pool().QueryRow(t.Context(), `SHOW statement_timeout`).Scan(&setting); err != nil || setting != "200ms" {
		t.Fatalf("statement_timeout = %q, %v; want 200ms", setting, err)
	}
	_, err := s.Pool().Exec(t.Context(), `SELECT pg_sleep(30)`)
	wantCodeOf(t, "a statement past the timeout", dbError("sleep", err), feature.CodeTimeout)
}

func openStoreOpts(tb testing.TB, url string, opts Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), url, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func wantCodeOf(t *testing.T, what string, err error, code feature.Code) {
	t.Helper()
	if got := feature.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want %q", what, err, got, code)
	}
}

// TestMigrationsIgnoreStatementTimeout: the statement timeout bounds the
// service's queries, not its migrations. A replica whose migration waits
// for another's (the advisory lock, held here by the test) longer than the
// statement timeout still applies every migration once the lock is free.
func TestMigrationsIgnoreStatementTimeout(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_mt")
	holder, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	lock, err := holder.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(context.Background()) //nolint:errcheck // released below
	if _, err := lock.Exec(t.Context(),
		`SELECT pg_advisory_xact_lock(hashtextextended('featurestore.migrate.' || coalesce(current_schema(), ''), 0))`); err != nil {
		t.Fatal(err)
	}

	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["statement_timeout"] = "200"
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var pid uint32 = conn.PgConn().PID()
	done := make(chan error, 1)
	go func() { done <- migrate(t.Context(), conn, time.Now, zap.NewNop()) }()

	// Release the lock once the migration has waited for it past the timeout.
	// The watcher has no transaction open: pg_stat_activity is a snapshot
	// taken once per transaction, so the holder (in one) would see it frozen.
	watcher, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(context.Background())
	testenv.Eventually(t, time.Minute, "the migration waits past the statement timeout", func() (bool, string) {
		var waited float64
		err := watcher.QueryRow(t.Context(), `
			SELECT extract(epoch FROM clock_timestamp() - query_start)::float8 FROM pg_stat_activity
			WHERE pid = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query_start IS NOT NULL`, pid).Scan(&waited)
		select {
		case err := <-done:
			t.Fatalf("migrate ended while the lock was held: %v", err)
		default:
		}
		return err == nil && waited > 0.4, fmt.Sprintf("waited %.3fs (%v)", waited, err)
	})
	if err := lock.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("migrate after waiting past a 200 ms statement_timeout: %v", err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := holder.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Errorf("%d migrations applied (%v), want %d", n, err, len(ms))
	}
}
