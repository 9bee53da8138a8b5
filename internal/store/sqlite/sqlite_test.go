package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/storetest"
)

func openStore(tb testing.TB, dir string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openStore(t, t.TempDir()) })
}

func TestMovieCorpusContract(t *testing.T) {
	t.Parallel()
	storetest.RunMovieCorpus(t, func(t *testing.T) storetest.CorpusStore { return openStore(t, t.TempDir()) })
}

func TestRetentionContract(t *testing.T) {
	t.Parallel()
	storetest.RunRetention(t, func(t *testing.T) storetest.RetentionStore { return openStore(t, t.TempDir()) })
}

func TestIdempotencyContract(t *testing.T) {
	t.Parallel()
	storetest.RunIdempotency(t, func(t *testing.T) storetest.IdempotentStore { return openStore(t, t.TempDir()) })
}

func moviesGroup() feature.Group {
	return feature.Group{Name: "movies", EntityKey: "movie_id", Features: []feature.Spec{
		{Name: "n", Type: feature.Int64}, {Name: "title", Type: feature.String},
	}}
}

func batch(k, size int) []feature.Row {
	rows := make([]feature.Row, 0, size+1)
	t := time.Date(2025, 6, 5, 0, 0, 0, 0, time.UTC).Add(time.Duration(k) * time.Second)
	for i := range size {
		rows = append(rows, feature.Row{Group: "movies", EntityID: fmt.Sprintf("b%d-%d", k, i), EventTime: t, WriteTime: t,
			Values: feature.Values{"n": int64(k), "title": "영화"}})
	}
	// Every batch also moves one shared entity forward.
	return append(rows, feature.Row{Group: "movies", EntityID: "counter", EventTime: t, WriteTime: t,
		Values: feature.Values{"n": int64(k), "title": nil}})
}

// batchRows counts how many of batch k's own rows the store has.
func batchRows(t *testing.T, s *Store, k, size int) int {
	t.Helper()
	keys := make([]feature.Key, size)
	for i := range keys {
		keys[i] = feature.Key{Group: "movies", EntityID: fmt.Sprintf("b%d-%d", k, i)}
	}
	rows, err := s.GetLatest(t.Context(), keys)
	if err != nil {
		t.Fatalf("GetLatest: %v", err)
	}
	n := 0
	for _, r := range rows {
		if r != nil && r.Values["n"] == int64(k) {
			n++
		}
	}
	return n
}

func TestReopen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "dir with space")
	s, err := Open(t.Context(), dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := s.PutGroup(t.Context(), moviesGroup(), time.Now()); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	if err := s.WriteRows(t.Context(), batch(1, 10)); err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); err != nil {
		t.Fatalf("database file: %v", err)
	}

	s = openStore(t, dir)
	if n := batchRows(t, s, 1, 10); n != 10 {
		t.Errorf("after reopen: %d of 10 rows", n)
	}
	var migrations int
	if err := s.reader.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&migrations); err != nil {
		t.Fatalf("count migrations: %v", err)
	}
	if ms, err := loadMigrations(); err != nil || migrations != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d (%v)", migrations, len(ms), err)
	}
	var mode string
	if err := s.writer.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var sync int
	if err := s.writer.QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous = %d, %v; want 2 (FULL)", sync, err)
	}
}

// killChildEnv, when set, makes TestKillDurability the child that writes
// into the directory it names until it is killed.
const killChildEnv = "FEATURESTORE_SQLITE_KILL_CHILD_DIR"

const killBatchSize = 20

// TestKillDurability re-runs the test binary as a child that writes batches
// and prints "acked N" after each WriteRows returns, SIGKILLs it mid-stream,
// then reopens the database: every acknowledged batch is there in full, and
// every other batch is either all there or absent.
func TestKillDurability(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(t, dir)
		return
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 25
	lastAcked, killed := -1, false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "acked ")
		if !ok {
			continue
		}
		if lastAcked, err = strconv.Atoi(n); err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
		if lastAcked == killAfter && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed (%v):\n%s", err, stderr.String())
	}

	s := openStore(t, dir)
	present := 0
	for k := 0; ; k++ {
		n := batchRows(t, s, k, killBatchSize)
		if k <= lastAcked && n != killBatchSize {
			t.Errorf("acknowledged batch %d: %d of %d rows after kill -9", k, n, killBatchSize)
		}
		if n != 0 && n != killBatchSize {
			t.Errorf("batch %d half written: %d of %d rows", k, n, killBatchSize)
		}
		if n == 0 && k > lastAcked {
			break
		}
		present++
	}
	counter, err := s.GetLatest(t.Context(), []feature.Key{{Group: "movies", EntityID: "counter"}})
	if err != nil || counter[0] == nil || counter[0].Values["n"] != int64(present-1) {
		t.Errorf("counter after kill = %+v, %v; want n=%d", counter, err, present-1)
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if want := int64(present * (killBatchSize + 1)); len(st.Groups) != 1 || st.Groups[0].Rows != want {
		t.Errorf("history after kill = %+v, want %d rows", st.Groups, want)
	}
	t.Logf("killed after %d acknowledged batches; %d batches present", lastAcked+1, present)
}

// killChild writes batches forever, acknowledging each on stdout.
func killChild(t *testing.T, dir string) {
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		t.Fatalf("child: Open: %v", err)
	}
	if _, err := s.PutGroup(context.Background(), moviesGroup(), time.Now()); err != nil {
		t.Fatalf("child: PutGroup: %v", err)
	}
	for k := 0; k < 1_000_000; k++ {
		if err := s.WriteRows(context.Background(), batch(k, killBatchSize)); err != nil {
			t.Fatalf("child: WriteRows: %v", err)
		}
		if _, err := fmt.Fprintf(os.Stdout, "acked %d\n", k); err != nil {
			return // the parent is gone
		}
	}
}

// TestTwoStoresOneFile has two stores (as two processes would) write the same
// file at once: BEGIN IMMEDIATE and the busy timeout queue them, so neither
// sees SQLITE_BUSY.
func TestTwoStoresOneFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stores := []*Store{openStore(t, dir), openStore(t, dir)}
	if _, err := stores[0].PutGroup(t.Context(), moviesGroup(), time.Now()); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	const batches = 40
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			for k := i; k < batches; k += len(stores) {
				if err := s.WriteRows(t.Context(), batch(k, 5)); err != nil {
					t.Errorf("store %d batch %d: %v", i, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for k := range batches {
		if n := batchRows(t, stores[1], k, 5); n != 5 {
			t.Errorf("batch %d: %d of 5 rows", k, n)
		}
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := openStore(t, t.TempDir())
	c := s.Health(t.Context())
	if c.Status != store.HealthUp || c.Error != "" {
		t.Fatalf("Health = %+v, want UP", c)
	}
	if v, _ := c.Details["version"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("version = %v, want 3.x", c.Details["version"])
	}
	if c.Details["path"] != s.Path() || !strings.HasSuffix(s.Path(), FileName) {
		t.Errorf("path = %v, want %s", c.Details["path"], s.Path())
	}
	if v, _ := c.Details["database_size_bytes"].(int64); v <= 0 {
		t.Errorf("database_size_bytes = %v, want > 0", c.Details["database_size_bytes"])
	}
	if _, ok := c.Details["query_latency_ms"].(float64); !ok {
		t.Errorf("query_latency_ms = %v", c.Details["query_latency_ms"])
	}

	s.Close()
	if c := s.Health(t.Context()); c.Status != store.HealthDown || c.Error == "" {
		t.Errorf("Health after Close = %+v, want DOWN", c)
	}
	_, err := s.GetLatest(t.Context(), []feature.Key{{Group: "movies", EntityID: "x"}})
	if feature.ErrorCode(err) != feature.CodeUnavailable {
		t.Errorf("GetLatest after Close = %v, want an unavailable error", err)
	}
}

func TestOpenUnwritableDir(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), filepath.Join(file, "sub"), Options{}); feature.ErrorCode(err) != feature.CodeUnavailable {
		t.Errorf("Open under a file = %v, want an unavailable error", err)
	}
}

// BenchmarkGetLatest reads random batches of 100 keys out of 10,000 entities.
func BenchmarkGetLatest(b *testing.B) {
	storetest.BenchGetLatest(b, openStore(b, b.TempDir()))
}

// BenchmarkWriteRows writes batches of 1,000 rows over existing entities.
func BenchmarkWriteRows(b *testing.B) {
	storetest.BenchWriteRows(b, openStore(b, b.TempDir()))
}

func TestHistoryContract(t *testing.T) {
	t.Parallel()
	storetest.RunHistory(t, func(t *testing.T) storetest.HistoryStore { return openStore(t, t.TempDir()) })
}

func TestFeatureServiceContract(t *testing.T) {
	t.Parallel()
	storetest.RunFeatureServices(t, func(t *testing.T) storetest.ServiceStore { return openStore(t, t.TempDir()) })
}

// TestWriteRowsChunks: a batch of distinct keys larger than a chunk, mixing
// new entities, newer rows of existing ones, repeats of the latest row and
// older rows, leaves the latest rows, history and counts that writing the
// rows one by one leaves (the batch that repeats a key).
func TestWriteRowsChunks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	g := feature.Group{Name: "g", EntityKey: "k", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	row := func(e int, at time.Time, x int64) feature.Row {
		return feature.Row{Group: "g", EntityID: strconv.Itoa(e), EventTime: at, WriteTime: at, Values: feature.Values{"x": x}}
	}
	first := make([]feature.Row, 0, 150)
	for e := range 150 {
		first = append(first, row(e, t0, int64(e)))
	}
	// entities 0-49 repeat their latest row, 50-99 are older, 100-149 newer,
	// 150-299 new.
	second := make([]feature.Row, 0, 300)
	for e := range 300 {
		switch {
		case e < 50:
			second = append(second, row(e, t0, int64(e)))
		case e < 100:
			second = append(second, row(e, t0.Add(-time.Hour), -1))
		default:
			second = append(second, row(e, t0.Add(time.Hour), int64(e)*10))
		}
	}
	stores := make([]*Store, 2)
	for i := range stores {
		s := openStore(t, t.TempDir())
		if _, err := s.PutGroup(ctx, g, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteRows(ctx, first); err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	if err := stores[0].WriteRows(ctx, second); err != nil {
		t.Fatal(err)
	}
	// The same rows one by one: a duplicate key sends the batch down the
	// row-by-row path.
	if err := stores[1].WriteRows(ctx, append(slices.Clone(second), second[0])); err != nil {
		t.Fatal(err)
	}
	keys := make([]feature.Key, 300)
	for e := range keys {
		keys[e] = feature.Key{Group: "g", EntityID: strconv.Itoa(e)}
	}
	var answers [2]string
	for i, s := range stores {
		latest, err := s.GetLatest(ctx, keys)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var history int
		if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM feature_rows`).Scan(&history); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, r := range latest {
			fmt.Fprintf(&b, "%s %s %v\n", r.EntityID, r.EventTime, r.Values)
		}
		answers[i] = fmt.Sprintf("%s%+v %d", b.String(), st.Groups, history)
		if gs := st.Groups[0]; gs.Entities != 300 || gs.Rows != 400 || history != 400 {
			t.Errorf("store %d: counts %+v, %d history rows; want 300 entities and 400 rows", i, gs, history)
		}
		if v := latest[120].Values["x"]; v != int64(1200) {
			t.Errorf("store %d: entity 120 = %v, want the newer row", i, v)
		}
		if v := latest[70].Values["x"]; v != int64(70) {
			t.Errorf("store %d: entity 70 = %v, want the row an older one does not replace", i, v)
		}
	}
	if answers[0] != answers[1] {
		t.Errorf("chunked write:\n%s\nrow by row:\n%s", answers[0], answers[1])
	}
}
