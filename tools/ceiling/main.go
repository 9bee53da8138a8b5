// Command ceiling is the yardstick of scripts/perf.sh: a bare net/http
// server that answers the benchmark's requests with the byte-identical
// bodies, status, Content-Type and Content-Length that featurestore gave
// for them. At start it sends every request of the request files (written
// by tools/perfdata: METHOD, tab, path, tab, body per line) once to a
// running featurestore, keeps the answers in memory, then serves them: the
// throughput of "this hardware serving the same bytes", which the
// featurestore's throughput is compared with.
//
//	ceiling -upstream http://127.0.0.1:8001 -addr 127.0.0.1:8002 one5.requests entity.requests
//
// A request that is not in the files is answered 404. It is a measurement
// tool, not a test: nothing in `go test ./...` runs it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/featurestore/featurestore/tools/internal/pool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8002", "listen address")
	upstream := fs.String("upstream", "", "base URL of the running featurestore to capture the answers from (required)")
	workers := fs.Int("capture-concurrency", 4, "requests in flight while capturing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *upstream == "" || fs.NArg() == 0 {
		return errors.New("usage: ceiling -upstream URL [-addr HOST:PORT] FILE.requests [FILE.requests]")
	}
	var reqs []request
	for _, path := range fs.Args() {
		rs, err := readRequests(path)
		if err != nil {
			return err
		}
		reqs = append(reqs, rs...)
	}
	client := &http.Client{Timeout: time.Minute}
	answers, err := capture(ctx, client, strings.TrimSuffix(*upstream, "/"), reqs, *workers)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           answers,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       time.Minute,
	}
	fmt.Fprintf(stdout, "ceiling: %d answers captured from %s, serving on http://%s\n", len(answers), *upstream, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// request is one line of a request file.
type request struct {
	method, path, body string
}

// key identifies a request by its method, path and exact body bytes.
func (r request) key() string { return r.method + " " + r.path + "\x00" + r.body }

// readRequests reads a pool file (tools/internal/pool).
func readRequests(path string) ([]request, error) {
	lines, err := pool.Read(path)
	reqs := make([]request, len(lines))
	for i, l := range lines {
		reqs[i] = request{method: l.Method, path: l.Path, body: l.Body}
	}
	return reqs, err
}

// answer is a captured response.
type answer struct {
	status      int
	contentType []string // header values, made once
	length      []string
	body        []byte
}

// answers maps a request's key to featurestore's answer to it.
type answers map[string]*answer

// capture sends every distinct request once to upstream, workers at a time,
// and keeps the answers. An answer that is not 2xx is an error: the
// benchmark's requests must all succeed, or the ceiling would serve errors.
func capture(ctx context.Context, client *http.Client, upstream string, reqs []request, workers int) (answers, error) {
	out := make(answers, len(reqs))
	todo := make(chan request)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for r := range todo {
				a, err := fetch(ctx, client, upstream, r)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					out[r.key()] = a
				}
				mu.Unlock()
			}
		})
	}
	seen := make(map[string]bool, len(reqs))
	for _, r := range reqs {
		if k := r.key(); !seen[k] {
			seen[k] = true
			todo <- r
		}
	}
	close(todo)
	wg.Wait()
	return out, firstErr
}

func fetch(ctx context.Context, client *http.Client, upstream string, r request) (*answer, error) {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, upstream+r.path, body)
	if err != nil {
		return nil, err
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s %s: upstream answered %d: %.200s", r.method, r.path, resp.StatusCode, b)
	}
	return &answer{status: resp.StatusCode, contentType: []string{resp.Header.Get("Content-Type")},
		length: []string{strconv.Itoa(len(b))}, body: b}, nil
}

// bufs hold the lookup keys of requests being served.
var bufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP answers a captured request with its captured answer: the
// request's key is built in a pooled buffer and looked up without copying.
func (as answers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf := bufs.Get().(*bytes.Buffer)
	defer bufs.Put(buf)
	buf.Reset()
	buf.WriteString(r.Method)
	buf.WriteByte(' ')
	buf.WriteString(r.URL.RequestURI())
	buf.WriteByte(0)
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, 16<<20)); err != nil {
		http.Error(w, "reading the request: "+err.Error(), http.StatusBadRequest)
		return
	}
	a, ok := as[string(buf.Bytes())]
	if !ok {
		http.Error(w, "not a captured request", http.StatusNotFound)
		return
	}
	h := w.Header()
	h["Content-Type"] = a.contentType
	h["Content-Length"] = a.length
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}
