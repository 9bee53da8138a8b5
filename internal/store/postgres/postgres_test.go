package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/storetest"
)

// testBaseURL is the shared Postgres the tests make throwaway schemas in.
func testBaseURL() string {
	if u := os.Getenv("FEATURESTORE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// newSchemaURL creates an empty schema fs_t_<random>, dropped at cleanup, and
// returns a URL whose search_path selects it.
func newSchemaURL(tb testing.TB) string {
	tb.Helper()
	base := testBaseURL()
	schema := fmt.Sprintf("fs_t_%016x", rand.Uint64())
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to test postgres %s: %v", base, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parse %s: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

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
	storetest.Run(t, func(t *testing.T) store.Store { return openStore(t, newSchemaURL(t)) })
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
	url := newSchemaURL(t)
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
	url := newSchemaURL(t)
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
	s := openStore(t, newSchemaURL(t))
	c := s.Health(t.Context())
	if c.Status != "UP" || c.Error != "" {
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

// privateServer is a Postgres of the test's own, in a temp dir on a free
// port, that the test may stop and start.
type privateServer struct {
	t    *testing.T
	dir  string
	port int
}

const pgBin = "/usr/lib/postgresql/15/bin"

// startPrivateServer runs initdb and starts the server. initdb and postgres
// refuse to run as root, so as root they run as the postgres OS user.
func startPrivateServer(t *testing.T) *privateServer {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		t.Skipf("no postgres binaries: %v", err)
	}
	dir, err := os.MkdirTemp("", "fs-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &privateServer{t: t, dir: dir, port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	p.run("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	p.start()
	t.Cleanup(func() { p.pgctl("stop", "-m", "immediate") })
	return p
}

func (p *privateServer) data() string { return filepath.Join(p.dir, "data") }

func (p *privateServer) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", p.port)
}

func (p *privateServer) command(name string, args ...string) *exec.Cmd {
	name = filepath.Join(pgBin, name)
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (p *privateServer) run(name string, args ...string) {
	p.t.Helper()
	if out, err := p.command(name, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func (p *privateServer) pgctl(args ...string) error {
	out, err := p.command("pg_ctl", append([]string{"-D", p.data(), "-w", "-t", "60"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}

func (p *privateServer) start() {
	p.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", p.port, p.dir)
	if err := p.pgctl("start", "-l", filepath.Join(p.dir, "server.log"), "-o", opts); err != nil {
		p.t.Fatal(err)
	}
}

// stop kills the server the hard way: immediate mode is a crash, recovered
// from the WAL at the next start.
func (p *privateServer) stop() {
	p.t.Helper()
	if err := p.pgctl("stop", "-m", "immediate"); err != nil {
		p.t.Fatal(err)
	}
}

// TestPostgresDown stops the database under a running writer: writes and
// reads fail fast with Unavailable errors, Health says DOWN, and after a
// restart every acknowledged batch is there and no batch is half there.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	srv := startPrivateServer(t)
	s := openStore(t, srv.url())
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
	srv.stop()
	wg.Wait()
	nAcked := 2 + len(acked)
	if feature.ErrorCode(writerErr) != feature.CodeUnavailable {
		t.Errorf("write while the server stops = %v, want an unavailable error", writerErr)
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
	if c := s.Health(guard); c.Status != "DOWN" || c.Error == "" || guard.Err() != nil {
		t.Errorf("Health while down = %+v, want DOWN with an error", c)
	}
	if _, err := Open(guard, srv.url(), Options{}); feature.ErrorCode(err) != feature.CodeUnavailable || guard.Err() != nil {
		t.Errorf("Open while down = %v, want a prompt unavailable error", err)
	}

	srv.start()
	// The pool replaces its dead connections; poll until it has.
	for deadline := time.Now().Add(time.Minute); s.Health(ctx).Status != "UP"; {
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover after restart: %+v", s.Health(ctx))
		}
		time.Sleep(50 * time.Millisecond)
	}
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
	storetest.BenchGetLatest(b, openStore(b, newSchemaURL(b)))
}

// BenchmarkWriteRows writes batches of 1,000 rows over existing entities.
func BenchmarkWriteRows(b *testing.B) {
	storetest.BenchWriteRows(b, openStore(b, newSchemaURL(b)))
}
