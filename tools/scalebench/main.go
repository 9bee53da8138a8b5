// Command scalebench measures the feature store at several corpus sizes in
// Postgres+Redis mode and prints one table: the cost of ingesting one movie,
// bulk ingest throughput, time to ready, /v1/stats latency, how fast a
// second replica sees a registry change, and storage per movie after
// repeated ingests and after history pruning.
//
// It generates TMDB-like corpora from the real records of the TMDB
// snapshot (each record is repeated with a new id and deterministically
// varied rating, popularity, vote count and title), runs the featurestore
// binary as separate processes against a fresh Postgres schema and Redis key
// prefix per size, and drives them over HTTP on loopback.
//
//	go build -o /tmp/featurestore ./cmd/featurestore
//	go run ./tools/scalebench -bin /tmp/featurestore -sizes 1000,20000
//
// It is a measurement, not a test: nothing in `go test ./...` runs it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/tmdbcorpus"
)

type config struct {
	bin, records, postgres, redis string
	sizes                         []int
	batch, clients, probes        int
	reingests                     int
	retention                     time.Duration
}

func main() {
	var cfg config
	var sizes string
	flag.StringVar(&cfg.bin, "bin", "", "featurestore binary (go build -o ... ./cmd/featurestore)")
	flag.StringVar(&cfg.records, "records", "testdata/tmdb/bulk_collection_20250605_022412.json", "real TMDB records (crawler file) to derive the corpora from")
	flag.StringVar(&cfg.postgres, "postgres", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "Postgres database (a fresh schema is made per size and dropped after)")
	flag.StringVar(&cfg.redis, "redis", "redis://127.0.0.1:6379/0", "Redis (a fresh key prefix per size)")
	flag.StringVar(&sizes, "sizes", "1000,20000", "corpus sizes")
	flag.IntVar(&cfg.batch, "batch", 1000, "movies per bulk ingest request")
	flag.IntVar(&cfg.clients, "clients", 2, "concurrent bulk ingest clients")
	flag.IntVar(&cfg.probes, "probes", 50, "single-movie ingests (and stats reads) measured per size")
	flag.IntVar(&cfg.reingests, "reingests", 2, "identical re-ingests of the whole corpus before measuring storage")
	flag.DurationVar(&cfg.retention, "retention", time.Minute, "--history-retention of the measured service (short, so pruning shows within the run; longer than the re-ingests take)")
	flag.Parse()
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fail(fmt.Errorf("bad size %q", s))
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if cfg.bin == "" {
		fail(errors.New("-bin is required"))
	}
	base, err := tmdbcorpus.Load(cfg.records)
	if err != nil {
		fail(err)
	}
	var results []result
	for _, n := range cfg.sizes {
		fmt.Fprintf(os.Stderr, "== corpus of %d movies\n", n)
		r, err := measure(context.Background(), cfg, base, n)
		if err != nil {
			fail(fmt.Errorf("size %d: %w", n, err))
		}
		results = append(results, r)
	}
	printTable(os.Stdout, results)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scalebench:", err)
	os.Exit(1)
}

type result struct {
	n                        int
	bulkRate, bulkTailRate   float64 // movies/s overall and over the last 10% of batches
	oneP50, oneP99           time.Duration
	recompute                time.Duration // the recompute one ingest schedules (0: none)
	ready                    time.Duration
	statsP50, statsP99       time.Duration
	registry                 time.Duration
	rowsPerMovie             float64 // history rows per movie after the re-ingests
	bytesPerMovie            float64
	prunedRowsPerMovie       float64 // after pruning
	prunedBytesPerMovie      float64
	secondCycleBytesPerMovie float64 // after a second cycle of re-ingests and pruning
	historyRowsAfterLoad     int64   // of the n movies, before the probes
}

// service is one featurestore process.
type service struct {
	cmd  *exec.Cmd
	base string
	log  *bytes.Buffer
}

func startService(cfg config, pgURL, prefix string) (*service, time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	s := &service{base: fmt.Sprintf("http://127.0.0.1:%d", port), log: &bytes.Buffer{}}
	s.cmd = exec.Command(cfg.bin, // #nosec G204 -- the service binary under test, named on the command line
		"--addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--postgres-url", pgURL, "--redis-url", cfg.redis, "--redis-key-prefix", prefix,
		"--history-retention", cfg.retention.String(), "--history-prune-interval", "1s",
		"--log-level", "warn", "--max-body-bytes", strconv.Itoa(256<<20), "--max-body-memory", strconv.Itoa(512<<20))
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, s.log
	start := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, 0, err
	}
	for {
		resp, err := http.Get(s.base + "/health/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, time.Since(start), nil
			}
		}
		if time.Since(start) > 5*time.Minute {
			s.stop()
			return nil, 0, fmt.Errorf("not ready after 5m: %s", s.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *service) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *service) do(method, path string, body any) ([]byte, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out, d, err
}

func measure(ctx context.Context, cfg config, base []map[string]any, n int) (result, error) {
	r := result{n: n}
	schema := fmt.Sprintf("scalebench_%d_%d", n, time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, cfg.postgres)
	if err != nil {
		return r, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return r, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck // best effort
	u, err := url.Parse(cfg.postgres)
	if err != nil {
		return r, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pgURL := u.String()
	prefix := schema

	a, _, err := startService(cfg, pgURL, prefix)
	if err != nil {
		return r, err
	}
	defer func() { a.stop() }()

	if r.bulkRate, r.bulkTailRate, err = bulkIngest(cfg, a, base, n); err != nil {
		return r, err
	}
	if err := waitRecomputeIdle(a); err != nil {
		return r, err
	}
	r.historyRowsAfterLoad, _, _, err = historyRows(a)
	if err != nil {
		return r, err
	}
	if r.oneP50, r.oneP99, err = singleIngests(cfg, a, base, n); err != nil {
		return r, err
	}
	if r.recompute, err = recomputeAfterOne(a, base, n); err != nil {
		return r, err
	}
	if r.statsP50, r.statsP99, err = statsLatency(cfg, a); err != nil {
		return r, err
	}

	// A second replica on the same database: ready time with the corpus
	// stored, and how long a registry change made through the first takes
	// to be served by it.
	b, ready, err := startService(cfg, pgURL, prefix)
	if err != nil {
		return r, err
	}
	defer func() { b.stop() }()
	r.ready = ready
	if r.registry, err = registryPropagation(a, b); err != nil {
		return r, err
	}

	if err := storage(cfg, a, base, n, &r); err != nil {
		return r, err
	}
	return r, nil
}

func bulkIngest(cfg config, s *service, base []map[string]any, n int) (rate, tail float64, err error) {
	batches := (n + cfg.batch - 1) / cfg.batch
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		ends     = make([]time.Time, 0, batches)
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1) - 1)
				if b >= batches {
					return
				}
				var movies []map[string]any
				for i := b * cfg.batch; i < min(n, (b+1)*cfg.batch); i++ {
					movies = append(movies, tmdbcorpus.Movie(base, i))
				}
				_, _, err := s.do("POST", "/v1/movies", movies)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				ends = append(ends, time.Now())
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	total := time.Since(start)
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	k := max(1, len(ends)/10)
	tailStart := start
	if len(ends) > k {
		tailStart = ends[len(ends)-k-1]
	}
	tailMovies := min(n, k*cfg.batch)
	tailDur := ends[len(ends)-1].Sub(tailStart)
	fmt.Fprintf(os.Stderr, "   bulk: %d movies in %v\n", n, total.Round(time.Millisecond))
	return float64(n) / total.Seconds(), float64(tailMovies) / tailDur.Seconds(), nil
}

type recomputeStatus struct {
	State      string     `json:"state"`
	FinishedAt *time.Time `json:"finished_at"`
}

func getRecompute(s *service) (recomputeStatus, error) {
	var st recomputeStatus
	b, _, err := s.do("GET", "/v1/recompute", nil)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// waitRecomputeIdle waits until no recompute is running or scheduled: the
// state is not running and stays so for longer than the default debounce.
func waitRecomputeIdle(s *service) error {
	quietSince := time.Now()
	for time.Since(quietSince) < 7*time.Second {
		st, err := getRecompute(s)
		if err != nil {
			return err
		}
		if st.State == "running" {
			quietSince = time.Now()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func singleIngests(cfg config, s *service, base []map[string]any, n int) (p50, p99 time.Duration, err error) {
	var ds []time.Duration
	for i := range cfg.probes {
		m := tmdbcorpus.Movie(base, n+i) // a new movie each time
		_, d, err := s.do("POST", "/v1/movies", m)
		if err != nil {
			return 0, 0, err
		}
		ds = append(ds, d)
	}
	return quantile(ds, 0.5), quantile(ds, 0.99), nil
}

// recomputeAfterOne ingests one more movie and measures until the
// statistical features that ingest scheduled are recomputed (the recompute
// finishes after the ingest), counting the debounce delay out: it is the
// work the ingest costs, not the wait.
func recomputeAfterOne(s *service, base []map[string]any, n int) (time.Duration, error) {
	if err := waitRecomputeIdle(s); err != nil {
		return 0, err
	}
	if _, _, err := s.do("POST", "/v1/movies", tmdbcorpus.Movie(base, n+100_000)); err != nil {
		return 0, err
	}
	ingested := time.Now()
	var started time.Time
	for time.Since(ingested) < 30*time.Minute {
		st, err := getRecompute(s)
		if err != nil {
			return 0, err
		}
		if st.State == "running" && started.IsZero() {
			started = time.Now()
		}
		if st.FinishedAt != nil && st.FinishedAt.After(ingested) && st.State != "running" {
			if started.IsZero() {
				started = ingested
			}
			return time.Since(started), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, errors.New("no recompute finished within 30m of an ingest")
}

func statsLatency(cfg config, s *service) (p50, p99 time.Duration, err error) {
	var ds []time.Duration
	for range cfg.probes {
		_, d, err := s.do("GET", "/v1/stats", nil)
		if err != nil {
			return 0, 0, err
		}
		ds = append(ds, d)
	}
	return quantile(ds, 0.5), quantile(ds, 0.99), nil
}

func registryPropagation(a, b *service) (time.Duration, error) {
	group := map[string]any{"entity_key": "user_id", "features": []map[string]any{{"name": "x", "type": "int64"}}}
	if _, _, err := a.do("PUT", "/v1/feature-groups/scalebench_probe", group); err != nil {
		return 0, err
	}
	start := time.Now()
	for time.Since(start) < time.Minute {
		if _, _, err := b.do("GET", "/v1/feature-groups/scalebench_probe", nil); err == nil {
			return time.Since(start), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, errors.New("the second replica did not see the new group within 1m")
}

type statsBody struct {
	StorageBytes int64 `json:"storage_bytes"`
	Groups       []struct {
		Group    string `json:"group"`
		Entities int64  `json:"entities"`
		Rows     int64  `json:"rows"`
	} `json:"groups"`
}

// historyRows sums the history rows and the entities (latest rows) of the
// six movie groups.
func historyRows(s *service) (rows, entities, bytes int64, err error) {
	b, _, err := s.do("GET", "/v1/stats", nil)
	if err != nil {
		return 0, 0, 0, err
	}
	var st statsBody
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, 0, 0, err
	}
	for _, g := range st.Groups {
		if strings.HasPrefix(g.Group, "movie_") {
			rows += g.Rows
			entities += g.Entities
		}
	}
	return rows, entities, st.StorageBytes, nil
}

// storage measures history rows and bytes per movie through two cycles of
// cfg.reingests identical re-ingests of the whole corpus, each followed by
// the wait for the pruner: right after the re-ingests the history holds
// every ingest of the retention window; once the retention has passed it is
// back to one row per movie and group, and the second cycle reuses the
// space the first one freed (the bytes stay flat instead of growing with
// the number of ingests).
func storage(cfg config, s *service, base []map[string]any, n int, r *result) error {
	for cycle := range 2 {
		for range cfg.reingests {
			if _, _, err := bulkIngest(cfg, s, base, n); err != nil {
				return err
			}
		}
		rows, entities, bytes, err := historyRows(s)
		if err != nil {
			return err
		}
		movies := float64(entities) / 6 // the corpus plus the probes
		if cycle == 0 {
			r.rowsPerMovie, r.bytesPerMovie = float64(rows)/movies, float64(bytes)/movies
		}
		// Once the retention has passed, every movie keeps one row per
		// group (its latest, also the newest row before the horizon).
		deadline := time.Now().Add(cfg.retention + 5*time.Minute)
		for time.Now().Before(deadline) && rows > entities {
			time.Sleep(500 * time.Millisecond)
			if rows, entities, bytes, err = historyRows(s); err != nil {
				return err
			}
		}
		if cycle == 0 {
			r.prunedRowsPerMovie, r.prunedBytesPerMovie = float64(rows)/movies, float64(bytes)/movies
		} else {
			r.secondCycleBytesPerMovie = float64(bytes) / movies
		}
	}
	return nil
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)]
}

func printTable(w io.Writer, rs []result) {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) }
	fmt.Fprintln(w, "| corpus | bulk ingest movies/s (all / last 10%) | 1-movie ingest p50 / p99 ms | recompute it schedules ms | ready (2nd replica) ms | /v1/stats p50 / p99 ms | registry change seen by 2nd replica ms | history rows per movie: load / after re-ingests / after pruning | storage bytes per movie: after re-ingests / after pruning / after a 2nd cycle |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %d | %.0f / %.0f | %s / %s | %s | %s | %s / %s | %s | %.1f / %.1f / %.1f | %.0f / %.0f / %.0f |\n",
			r.n, r.bulkRate, r.bulkTailRate, ms(r.oneP50), ms(r.oneP99), ms(r.recompute), ms(r.ready),
			ms(r.statsP50), ms(r.statsP99), ms(r.registry),
			float64(r.historyRowsAfterLoad)/float64(r.n), r.rowsPerMovie, r.prunedRowsPerMovie,
			r.bytesPerMovie, r.prunedBytesPerMovie, r.secondCycleBytesPerMovie)
	}
}
