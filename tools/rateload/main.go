// Command rateload is the open-loop load generator of scripts/perf-rate.sh:
// it sends requests at a fixed rate, whatever the server does, and measures
// each latency from the moment the request was due, so that a server which
// stalls is charged for every request that had to wait (the "coordinated
// omission" a closed-loop tool such as wrk hides: it simply sends less while
// the server is slow). That makes the p99 of two builds comparable at the same
// offered load, which wrk at saturation cannot give on a 2-core machine.
//
//	rateload -url http://127.0.0.1:8001 -rate 2000 -duration 10s -warmup 2s one5.requests
//
// The request files are those of tools/perfdata (METHOD, tab, path, tab,
// body per line; a non-empty body is sent as application/json); every
// request is a random line of them. Request i is due at start + i/rate,
// warm-up first and then the measured phase, without a pause between them.
// At most -conns requests are in flight (one keep-alive connection each); a
// request whose time has come while all are busy waits for one and is sent
// late, and its latency from the schedule includes that wait. No request is
// dropped: one not yet sent -grace after the end of the schedule is counted
// as unsent, and the run is not a valid measurement.
//
// Output: a summary for people, then one line for scripts:
//
//	RESULT rate=2000 sent=20000 ok=20000 errors=0 unsent=0 p50_ms=0.61 p90_ms=0.92 p99_ms=2.10 p999_ms=9.80 max_ms=14.02 late=12 send_p50_ms=0.60 send_p99_ms=1.90 achieved_rps=1999.8
//
// p*_ms and max_ms are measured from the scheduled time, send_* from the
// moment the request was actually handed to the connection; late counts the
// requests sent more than 1 ms after their scheduled time; errors are
// non-2xx answers and transport errors (timeouts included). Only the
// measured phase counts. It is a measurement tool: nothing in `go test ./...`
// runs it against featurestore.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/featurestore/featurestore/tools/internal/pool"
)

// lateThreshold is how far behind its schedule a request may start before
// it counts as late.
const lateThreshold = time.Millisecond

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "rateload:", err)
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	url      string
	rate     float64
	duration time.Duration
	warmup   time.Duration
	grace    time.Duration
	timeout  time.Duration
	conns    int
	seed     uint64
	files    []string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("rateload", flag.ContinueOnError)
	fs.StringVar(&c.url, "url", "", "base URL of the server, e.g. http://127.0.0.1:8001 (required)")
	fs.Float64Var(&c.rate, "rate", 0, "requests per second, sent on a fixed schedule (required)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of the measured phase")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "length of the warm-up at the same rate, just before the measured phase (not counted)")
	fs.IntVar(&c.conns, "conns", 32, "most requests in flight, each on its own keep-alive connection")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "a request without an answer by then is an error")
	fs.DurationVar(&c.grace, "grace", 5*time.Second, "how long after the end of the schedule requests not yet sent may still start; the rest are unsent")
	fs.Uint64Var(&c.seed, "seed", 0, "seed of the random choice of requests (0: a random seed)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rateload -url URL -rate N [-duration D] [-warmup D] [-conns N] FILE.requests [FILE.requests]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.files = fs.Args()
	c.url = strings.TrimSuffix(c.url, "/")
	switch {
	case c.url == "" || !(strings.HasPrefix(c.url, "http://") || strings.HasPrefix(c.url, "https://")):
		return c, errors.New("-url must be an http:// or https:// base URL")
	case !(c.rate > 0) || c.rate > 1e6:
		return c, errors.New("-rate must be more than 0 and at most 1000000 requests per second")
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.warmup < 0 || c.grace < 0:
		return c, errors.New("-warmup and -grace must not be negative")
	case c.timeout <= 0:
		return c, errors.New("-timeout must be positive")
	case c.conns < 1:
		return c, errors.New("-conns must be at least 1")
	case len(c.files) == 0:
		return c, errors.New("no request file (METHOD<tab>/path<tab>body per line, as tools/perfdata writes)")
	}
	if n := count(c.rate, c.duration); n < 1 {
		return c, fmt.Errorf("-rate %g for -duration %s schedules no request", c.rate, c.duration)
	}
	return c, nil
}

// count is how many requests a phase of d at rate schedules.
func count(rate float64, d time.Duration) int {
	return int(rate*d.Seconds() + 0.5)
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	var pool []request
	for _, path := range c.files {
		rs, err := readRequests(path)
		if err != nil {
			return err
		}
		pool = append(pool, rs...)
	}
	if len(pool) == 0 {
		return errors.New("the request files hold no request")
	}
	res, err := load(ctx, c, pool)
	if err != nil {
		return err
	}
	res.print(stdout, c)
	return nil
}

// request is one line of a request file.
type request struct {
	method, path string
	body         []byte
}

// readRequests reads a pool file (tools/internal/pool).
func readRequests(path string) ([]request, error) {
	lines, err := pool.Read(path)
	reqs := make([]request, len(lines))
	for i, l := range lines {
		reqs[i] = request{method: l.Method, path: l.Path, body: []byte(l.Body)}
	}
	return reqs, err
}

// sample is the outcome of one request of the measured phase.
type sample struct {
	fromDue  time.Duration // answer read, since the scheduled time
	fromSend time.Duration // answer read, since the request was sent
	late     bool
	ok       bool
}

// worker is one connection's loop state; each keeps its own samples.
type worker struct {
	client  *http.Client
	base    string
	pool    []request
	rng     *rand.Rand
	samples []sample
	lastAt  time.Time // send time of its last measured request
}

// schedule hands out request numbers in order and knows when each is due.
type schedule struct {
	start    time.Time
	interval float64 // nanoseconds between two requests
	warm     int     // requests 0..warm-1 are the warm-up
	total    int     // warm-up and measured
	deadline time.Time
	next     atomic.Int64
}

func (s *schedule) due(i int) time.Time {
	return s.start.Add(time.Duration(float64(i) * s.interval))
}

// claim is the next request number, or false once all are claimed or the
// grace period is over.
func (s *schedule) claim() (int, bool) {
	if time.Now().After(s.deadline) {
		return 0, false
	}
	i := int(s.next.Add(1) - 1)
	return i, i < s.total
}

// load runs the schedule with c.conns workers and gathers their samples.
func load(ctx context.Context, c config, pool []request) (*result, error) {
	transport := &http.Transport{
		MaxIdleConns:        c.conns,
		MaxIdleConnsPerHost: c.conns,
		MaxConnsPerHost:     c.conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: c.timeout}
	warm, measured := count(c.rate, c.warmup), count(c.rate, c.duration)
	s := &schedule{
		start:    time.Now().Add(10 * time.Millisecond), // time for the workers to start
		interval: float64(time.Second) / c.rate,
		warm:     warm,
		total:    warm + measured,
	}
	s.deadline = s.due(s.total).Add(c.grace)
	seed := c.seed
	if seed == 0 {
		seed = rand.Uint64() // #nosec G404 -- picks benchmark requests, not a secret
	}
	workers := make([]*worker, c.conns)
	var wg sync.WaitGroup
	for n := range workers {
		w := &worker{client: client, base: c.url, pool: pool, rng: rand.New(rand.NewPCG(seed, uint64(n))), // #nosec G404 -- as above
			samples: make([]sample, 0, measured/c.conns+16)}
		workers[n] = w
		wg.Go(func() { w.loop(ctx, s) })
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &result{rate: c.rate, scheduled: measured, measuredStart: s.due(s.warm)}
	for _, w := range workers {
		r.samples = append(r.samples, w.samples...)
		if w.lastAt.After(r.lastSend) {
			r.lastSend = w.lastAt
		}
	}
	return r, nil
}

// loop sends the requests it claims, each at its scheduled time or as soon
// after it as this worker is free.
func (w *worker) loop(ctx context.Context, s *schedule) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		i, ok := s.claim()
		if !ok || ctx.Err() != nil {
			return
		}
		due := s.due(i)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		sent := time.Now()
		ok = w.send(ctx)
		if i < s.warm {
			continue
		}
		done := time.Now()
		w.samples = append(w.samples, sample{fromDue: done.Sub(due), fromSend: done.Sub(sent), late: sent.Sub(due) > lateThreshold, ok: ok})
		w.lastAt = sent
	}
}

// send sends a random request of the pool and reads its whole answer; it
// reports whether the answer was 2xx.
func (w *worker) send(ctx context.Context) bool {
	r := w.pool[w.rng.IntN(len(w.pool))]
	var body io.Reader
	if len(r.body) > 0 {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, w.base+r.path, body)
	if err != nil {
		return false
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.client.Do(req) // #nosec G704 -- the server under test, named on the command line
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300
}

// result is the measured phase.
type result struct {
	rate          float64
	scheduled     int
	samples       []sample
	measuredStart time.Time
	lastSend      time.Time
}

// summary is what result.print reports.
type summary struct {
	sent, ok, late    int
	fromDue, fromSend []time.Duration // sorted
	achieved          float64
	unsent, errors    int
}

func (r *result) summarize() summary {
	var s summary
	s.sent = len(r.samples)
	s.unsent = r.scheduled - s.sent
	s.fromDue = make([]time.Duration, 0, s.sent)
	s.fromSend = make([]time.Duration, 0, s.sent)
	for _, x := range r.samples {
		s.fromDue = append(s.fromDue, x.fromDue)
		s.fromSend = append(s.fromSend, x.fromSend)
		if x.ok {
			s.ok++
		}
		if x.late {
			s.late++
		}
	}
	s.errors = s.sent - s.ok
	slices.Sort(s.fromDue)
	slices.Sort(s.fromSend)
	// The rate actually achieved: requests sent over the span from the first
	// scheduled time to the last send, plus one interval.
	if span := r.lastSend.Sub(r.measuredStart).Seconds() + 1/r.rate; s.sent > 0 && span > 0 {
		s.achieved = float64(s.sent) / span
	}
	return s
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p*float64(len(sorted))/100 - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *result) print(out io.Writer, c config) {
	s := r.summarize()
	d, snd := s.fromDue, s.fromSend
	maxDue := time.Duration(0)
	if len(d) > 0 {
		maxDue = d[len(d)-1]
	}
	fmt.Fprintf(out, "rateload: %s, %g requests/s for %s after a %s warm-up, at most %d in flight\n", c.url, c.rate, c.duration, c.warmup, c.conns)
	fmt.Fprintf(out, "  sent %d of %d scheduled (%d unsent), %d ok, %d errors, %d started more than %s late; achieved %.1f requests/s\n",
		s.sent, r.scheduled, s.unsent, s.ok, s.errors, s.late, lateThreshold, s.achieved)
	fmt.Fprintf(out, "  latency from the schedule: p50 %.2f ms, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
		ms(percentile(d, 50)), ms(percentile(d, 90)), ms(percentile(d, 99)), ms(percentile(d, 99.9)), ms(maxDue))
	fmt.Fprintf(out, "  latency from the send:     p50 %.2f ms, p90 %.2f, p99 %.2f, p99.9 %.2f\n",
		ms(percentile(snd, 50)), ms(percentile(snd, 90)), ms(percentile(snd, 99)), ms(percentile(snd, 99.9)))
	if s.unsent > 0 || s.errors > 0 {
		fmt.Fprintln(out, "  not a valid measurement: requests failed or were never sent (the server cannot sustain this rate, or fails)")
	}
	fmt.Fprintf(out, "RESULT rate=%g sent=%d ok=%d errors=%d unsent=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f late=%d send_p50_ms=%.2f send_p99_ms=%.2f achieved_rps=%.1f\n",
		c.rate, s.sent, s.ok, s.errors, s.unsent, ms(percentile(d, 50)), ms(percentile(d, 90)), ms(percentile(d, 99)),
		ms(percentile(d, 99.9)), ms(maxDue), s.late, ms(percentile(snd, 50)), ms(percentile(snd, 99)), s.achieved)
}
