// Command ingestbench measures bulk ingest in one run and prints one table:
//
//   - copy: the rate at which Postgres itself accepts the rows an ingest of
//     the corpus produces (six feature_rows and six feature_latest rows per
//     movie, values already encoded) through COPY (pgx CopyFrom) into
//     scratch tables of the same definition and indexes, one transaction
//     per batch, with the same number of concurrent clients as the HTTP
//     modes: the ceiling POST /v1/movies is compared with;
//   - copy-serial: the same with one client, the ceiling of the CLI (which
//     writes its batches one after the other);
//   - cli: `featurestore ingest --postgres-url ... FILE` on a crawler file of
//     the corpus (wall time of the process, migrations already applied);
//   - post: POST /v1/movies in batches to a server in Postgres+Redis mode;
//   - embedded: POST /v1/movies to a server in embedded (SQLite) mode;
//   - embedded-cli: `featurestore ingest --data-dir ... FILE`.
//
// Each mode writes the same TMDB-like corpus (internal/tmdb/synthetic) into an
// empty store of its own: a fresh Postgres schema (dropped afterwards unless
// -keep), a fresh Redis key prefix, a fresh data directory. Request bodies
// and the file are encoded before the clock starts. For the HTTP modes the
// table also gives the rate over the last 10% of batches, when the corpus
// is largest.
//
//	go build -o /tmp/featurestore ./cmd/featurestore
//	go run ./tools/ingestbench -bin /tmp/featurestore -n 20000
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

	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/tmdb/synthetic"
	"github.com/featurestore/featurestore/tools/internal/corpus"
	"github.com/featurestore/featurestore/tools/internal/svcproc"
)

type config struct {
	corpus.Flags
	bin, redis string
	clients    int
	modes      []string
	keep       bool
}

// result is one line of the table.
type result struct {
	mode     string
	movies   int
	elapsed  time.Duration
	tailRate float64       // movies/s over the last 10% of batches (HTTP modes)
	ceiling  string        // the copy mode it is compared with
	cpu      time.Duration // CPU time of the featurestore process (user + system)
	pgCPU    time.Duration // CPU time of the Postgres backends of the mode's connections
}

func main() {
	var cfg config
	var modes string
	cfg.Register()
	flag.StringVar(&cfg.bin, "bin", "", "featurestore binary (go build -o ... ./cmd/featurestore)")
	flag.StringVar(&cfg.redis, "redis", "redis://127.0.0.1:6379/0", "Redis (a fresh key prefix per mode)")
	flag.IntVar(&cfg.clients, "clients", 2, "concurrent clients of the copy and HTTP modes")
	flag.StringVar(&modes, "modes", "copy,copy-serial,cli,post,embedded,embedded-cli", "modes to run, in this order")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the Postgres schemas and data directories (their names are printed)")
	flag.Parse()
	cfg.modes = strings.Split(modes, ",")
	if cfg.bin == "" && slices.ContainsFunc(cfg.modes, func(m string) bool { return m != "copy" }) {
		fail(errors.New("-bin is required"))
	}
	base, err := cfg.Load()
	if err != nil {
		fail(err)
	}
	b := &bench{cfg: cfg, base: base}
	var results []result
	for _, m := range cfg.modes {
		fmt.Fprintf(os.Stderr, "== %s: %d movies\n", m, cfg.N)
		r, err := b.run(context.Background(), m)
		if err != nil {
			fail(fmt.Errorf("%s: %w", m, err))
		}
		fmt.Fprintf(os.Stderr, "   %v, %.0f movies/s\n", r.elapsed.Round(time.Millisecond), rate(r.movies, r.elapsed))
		results = append(results, r)
	}
	if b.file != "" {
		_ = os.Remove(b.file)
	}
	printTable(os.Stdout, cfg, results)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ingestbench:", err)
	os.Exit(1)
}

func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

type bench struct {
	cfg    config
	base   []map[string]any
	bodies [][]byte // request bodies, one per batch
	file   string   // the corpus as a crawler file
}

func (b *bench) run(ctx context.Context, mode string) (result, error) {
	r := result{mode: mode, movies: b.cfg.N}
	var err error
	switch mode {
	case "copy":
		r.elapsed, r.pgCPU, err = b.copyRows(ctx, b.cfg.clients)
	case "copy-serial":
		r.elapsed, r.pgCPU, err = b.copyRows(ctx, 1)
	case "cli":
		r.ceiling = "copy-serial"
		r.pgCPU, err = b.withSchema(ctx, mode, func(pgURL, _ string) error {
			r.elapsed, r.cpu, err = b.cli("--postgres-url", pgURL)
			return err
		})
	case "post":
		r.ceiling = "copy"
		r.pgCPU, err = b.withSchema(ctx, mode, func(pgURL, prefix string) error {
			r.elapsed, r.tailRate, r.cpu, err = b.serve("--postgres-url", pgURL, "--redis-url", b.cfg.redis, "--redis-key-prefix", prefix)
			return err
		})
	case "embedded", "embedded-cli":
		err = b.withDataDir(mode, func(dir string) error {
			if mode == "embedded" {
				r.elapsed, r.tailRate, r.cpu, err = b.serve("--data-dir", dir)
			} else {
				r.elapsed, r.cpu, err = b.cli("--data-dir", dir)
			}
			return err
		})
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	return r, err
}

// withSchema runs fn on a fresh schema with the migrations applied, with
// a URL whose connections carry the schema as their application_name, and
// returns the CPU time their Postgres backends used (sampled every 100 ms
// from /proc, so a backend's last 100 ms may be missed).
func (b *bench) withSchema(ctx context.Context, mode string, fn func(pgURL, prefix string) error) (time.Duration, error) {
	schema := fmt.Sprintf("ingestbench_%s_%d", strings.ReplaceAll(mode, "-", "_"), time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, b.cfg.Postgres)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return 0, err
	}
	if b.cfg.keep {
		fmt.Fprintf(os.Stderr, "   schema %s\n", schema)
	} else {
		defer conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck // best effort
	}
	u, err := url.Parse(b.cfg.Postgres)
	if err != nil {
		return 0, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String(), postgres.Options{}) // applies the migrations
	if err != nil {
		return 0, err
	}
	_ = st.Close()
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	stop := make(chan struct{})
	cpu := make(chan time.Duration, 1)
	go func() { cpu <- backendCPU(ctx, conn, schema, stop) }()
	err = fn(u.String(), schema)
	close(stop)
	return <-cpu, err
}

// backendCPU samples the CPU time of the backends whose application_name
// is name until stop is closed, and returns their sum.
func backendCPU(ctx context.Context, conn *pgx.Conn, name string, stop <-chan struct{}) time.Duration {
	seen := map[int32]time.Duration{}
	sample := func() {
		rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, name)
		if err != nil {
			return
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return
		}
		for _, pid := range pids {
			if t, ok := procCPU(pid); ok {
				seen[pid] = max(seen[pid], t)
			}
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		sample()
		select {
		case <-stop:
			sample()
			var total time.Duration
			for _, t := range seen {
				total += t
			}
			return total
		case <-tick.C:
		}
	}
}

// procCPU reads a process's user + system CPU time from /proc (Linux,
// 100 ticks a second).
func procCPU(pid int32) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:])) // state is field 3, utime 14, stime 15
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}

func (b *bench) withDataDir(mode string, fn func(dir string) error) error {
	dir, err := os.MkdirTemp("", "ingestbench-"+mode+"-")
	if err != nil {
		return err
	}
	if b.cfg.keep {
		fmt.Fprintf(os.Stderr, "   data dir %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	return fn(dir)
}

// batches returns the request bodies, encoded once.
func (b *bench) batches() ([][]byte, error) {
	if b.bodies != nil {
		return b.bodies, nil
	}
	for lo := 0; lo < b.cfg.N; lo += b.cfg.Batch {
		body, err := json.Marshal(synthetic.Movies(b.base, lo, min(b.cfg.N, lo+b.cfg.Batch)))
		if err != nil {
			return nil, err
		}
		b.bodies = append(b.bodies, body)
	}
	return b.bodies, nil
}

// corpusFile writes the corpus as a crawler file, once.
func (b *bench) corpusFile() (string, error) {
	if b.file != "" {
		return b.file, nil
	}
	body, err := json.Marshal(map[string]any{"movies": synthetic.Movies(b.base, 0, b.cfg.N)})
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "ingestbench-*.json")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(body); err != nil {
		return "", err
	}
	b.file = f.Name()
	return b.file, nil
}

// cli runs `featurestore ingest` on the corpus file.
func (b *bench) cli(storeFlags ...string) (time.Duration, time.Duration, error) {
	file, err := b.corpusFile()
	if err != nil {
		return 0, 0, err
	}
	args := append([]string{"ingest", "--batch-size", strconv.Itoa(b.cfg.Batch)}, storeFlags...)
	cmd := exec.Command(b.cfg.bin, append(args, file)...) // #nosec G204 -- the binary under test, named on the command line
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, stderr.Bytes())
	}
	return time.Since(start), processCPU(cmd), nil
}

func processCPU(cmd *exec.Cmd) time.Duration {
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// serve starts a server with storeFlags and posts the corpus to it.
func (b *bench) serve(storeFlags ...string) (elapsed time.Duration, tail float64, cpu time.Duration, err error) {
	bodies, err := b.batches()
	if err != nil {
		return 0, 0, 0, err
	}
	s, err := startService(b.cfg.bin, storeFlags)
	if err != nil {
		return 0, 0, 0, err
	}
	elapsed, tail, err = b.post(s, bodies)
	s.Stop()
	return elapsed, tail, s.CPU(), err
}

// post sends the bodies with cfg.clients concurrent clients and returns
// the elapsed time and the rate over the last 10% of batches.
func (b *bench) post(s *service, bodies [][]byte) (time.Duration, float64, error) {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		ends     = make([]time.Time, 0, len(bodies))
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range b.cfg.clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) || s.failed.Load() {
					return
				}
				err := s.post("/v1/movies", bodies[i])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					s.failed.Store(true)
				}
				ends = append(ends, time.Now())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	total := time.Since(start)
	return total, tailRate(start, ends, b.cfg.Batch, b.cfg.N), nil
}

// tailRate is the rate over the last 10% of batches (at least one).
func tailRate(start time.Time, ends []time.Time, batch, n int) float64 {
	slices.SortFunc(ends, func(a, b time.Time) int { return a.Compare(b) })
	k := max(1, len(ends)/10)
	from := start
	if len(ends) > k {
		from = ends[len(ends)-k-1]
	}
	movies := min(n, k*batch)
	return rate(movies, ends[len(ends)-1].Sub(from))
}

// copyRows computes the rows an ingest of the corpus writes, exactly as
// the service does (parse, features, value encoding), then times COPY of
// them into scratch copies of feature_rows and feature_latest.
func (b *bench) copyRows(ctx context.Context, clients int) (time.Duration, time.Duration, error) {
	var elapsed time.Duration
	pgCPU, err := b.withSchema(ctx, "copy", func(pgURL, _ string) error {
		batches, err := b.encodedRows()
		if err != nil {
			return err
		}
		conns := make([]*pgx.Conn, clients)
		for i := range conns {
			if conns[i], err = pgx.Connect(ctx, pgURL); err != nil {
				return err
			}
			defer conns[i].Close(context.WithoutCancel(ctx))
		}
		if err := corpus.CreateCopyTables(ctx, conns[0]); err != nil {
			return err
		}
		var next atomic.Int64
		errs := make([]error, len(conns))
		var wg sync.WaitGroup
		start := time.Now()
		for c, conn := range conns {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(batches) {
						return
					}
					if errs[c] = corpus.CopyBatch(ctx, conn, batches[i]); errs[c] != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		elapsed = time.Since(start)
		return errors.Join(errs...)
	})
	return elapsed, pgCPU, err
}

// encodedRows returns, per batch, the rows the service would write, as
// COPY sends them.
func (b *bench) encodedRows() ([][][]any, error) {
	batches, err := b.cfg.Batches(b.base, time.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return nil, err
	}
	out := make([][][]any, len(batches))
	for i, rows := range batches {
		if out[i], err = corpus.CopySource(rows); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// service is one featurestore server process.
type service struct {
	*svcproc.Service
	failed atomic.Bool
}

func startService(bin string, storeFlags []string) (*service, error) {
	p, _, err := svcproc.Start(bin, append([]string{"--log-level", "warn"}, storeFlags...), 2*time.Minute)
	if err != nil {
		return nil, err
	}
	return &service{Service: p}, nil
}

func (s *service) post(path string, body []byte) error {
	resp, err := http.Post(s.Base+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, out)
	}
	return err
}

func printTable(w io.Writer, cfg config, rs []result) {
	ceilings := map[string]float64{}
	for _, r := range rs {
		ceilings[r.mode] = rate(r.movies, r.elapsed)
	}
	fmt.Fprintf(w, "%d movies, batches of %d, %d clients (copy, HTTP)\n\n", cfg.N, cfg.Batch, cfg.clients)
	fmt.Fprintln(w, "| mode | seconds | movies/s | last 10% movies/s | ratio | featurestore CPU µs/movie | Postgres CPU µs/movie |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rs {
		tail, ratio := "", ""
		if r.tailRate > 0 {
			tail = fmt.Sprintf("%.0f", r.tailRate)
		}
		if c := ceilings[r.ceiling]; c > 0 {
			ratio = fmt.Sprintf("%.2f of %s", rate(r.movies, r.elapsed)/c, r.ceiling)
		}
		cpu, pgCPU := "", ""
		if r.pgCPU > 0 {
			pgCPU = fmt.Sprintf("%.0f", float64(r.pgCPU.Microseconds())/float64(r.movies))
		}
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.0f", float64(r.cpu.Microseconds())/float64(r.movies))
		}
		fmt.Fprintf(w, "| %s | %.2f | %.0f | %s | %s | %s | %s |\n", r.mode, r.elapsed.Seconds(), rate(r.movies, r.elapsed), tail, ratio, cpu, pgCPU)
	}
}
