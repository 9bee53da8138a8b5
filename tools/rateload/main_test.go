package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run rateload against real loopback HTTP servers. They assert
// counts and lower bounds only (a request cannot arrive before it is due; a
// request held back by the server for at least D waited at least D), which
// a slow or busy machine cannot break.

func writeRequests(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "load.requests")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runOK runs rateload and returns the fields of its RESULT line.
func runOK(t *testing.T, args ...string) map[string]float64 {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	t.Log(out.String())
	for line := range strings.Lines(out.String()) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "RESULT ")
		if !ok {
			continue
		}
		fields := map[string]float64{}
		for kv := range strings.FieldsSeq(rest) {
			k, v, _ := strings.Cut(kv, "=")
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("RESULT field %q: %v", kv, err)
			}
			fields[k] = f
		}
		return fields
	}
	t.Fatalf("no RESULT line in %q", out.String())
	return nil
}

func wantField(t *testing.T, r map[string]float64, key string, want float64) {
	t.Helper()
	if got, ok := r[key]; !ok || got != want {
		t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
	}
}

func TestRequestsFollowTheSchedule(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		mu.Lock()
		arrivals = append(arrivals, now)
		bodies = append(bodies, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+b.String())
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	pool := writeRequests(t, "GET\t/a\t", "POST\t/b\t{\"x\":1}")

	const rate = 400.0 // 2.5 ms apart
	t0 := time.Now()
	r := runOK(t, "-url", srv.URL, "-rate", "400", "-duration", "500ms", "-warmup", "250ms", "-conns", "4", pool)

	// 100 warm-up requests, then 200 measured ones; none dropped, none extra.
	wantField(t, r, "sent", 200)
	wantField(t, r, "ok", 200)
	wantField(t, r, "errors", 0)
	wantField(t, r, "unsent", 0)
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 300 {
		t.Fatalf("the server got %d requests, want 300 (100 warm-up + 200)", len(arrivals))
	}
	// Open loop: at time t at most rate*t requests can have been sent, so the
	// k-th arrival is no earlier than k/rate after the start. A tool that sends
	// as fast as the server answers (closed loop) fails this.
	slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
	for k, at := range arrivals {
		due := t0.Add(time.Duration(float64(k) * float64(time.Second) / rate))
		if at.Before(due) {
			t.Fatalf("request %d arrived %s before its scheduled time: not sent at %g/s", k, due.Sub(at), rate)
		}
	}
	// The pool's requests, with their bodies and a JSON Content-Type on a body.
	kinds := map[string]bool{}
	for _, b := range bodies {
		kinds[b] = true
	}
	if !kinds["GET /a  "] || !kinds[`POST /b application/json {"x":1}`] || len(kinds) != 2 {
		t.Errorf("requests sent: %v", kinds)
	}
}

// A server that holds one request back for at least stall, with one
// connection: every request due meanwhile waits, and its latency from the
// schedule shows it (the coordinated omission a closed-loop tool hides:
// measured from the send, only the held request is slow).
func TestLatencyIsMeasuredFromTheSchedule(t *testing.T) {
	const stall = 100 * time.Millisecond
	blocked, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		hold := n == 50
		mu.Unlock()
		if hold {
			close(blocked)
			<-release
		}
	}))
	t.Cleanup(srv.Close)
	go func() {
		<-blocked
		<-time.After(stall) // the stimulus: the server stalls for at least this long
		close(release)
	}()
	pool := writeRequests(t, "GET\t/x\t")
	// 500 requests 1 ms apart on one connection. Request 49 is held for at
	// least 100 ms, so requests 49+j (j < 100) wait at least 100-j ms: the
	// five largest of 500 (p99) are at least 96 ms and at least 50 requests
	// start more than 1 ms late.
	r := runOK(t, "-url", srv.URL, "-rate", "1000", "-duration", "500ms", "-warmup", "0s", "-conns", "1", pool)
	wantField(t, r, "sent", 500)
	wantField(t, r, "errors", 0)
	if r["max_ms"] < 100 {
		t.Errorf("max_ms = %v, want at least %v", r["max_ms"], stall)
	}
	if r["p99_ms"] < 96 {
		t.Errorf("p99_ms = %v, want at least 96: the requests queued behind the stall are not charged for their wait", r["p99_ms"])
	}
	if r["late"] < 50 {
		t.Errorf("late = %v, want at least 50", r["late"])
	}
	if r["send_p99_ms"] > r["p99_ms"] {
		t.Errorf("send_p99_ms %v > p99_ms %v: a latency from the send cannot exceed the one from the schedule", r["send_p99_ms"], r["p99_ms"])
	}
}

func TestErrorsAreCounted(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "no", http.StatusInternalServerError)
		case "/notfound":
			http.NotFound(w, r)
		case "/broken": // a transport error: the connection closes without an answer
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}
	}))
	t.Cleanup(srv.Close)
	// POST, so that the client does not retry the broken request.
	pool := writeRequests(t, "GET\t/ok\t", "GET\t/fail\t", "GET\t/notfound\t", "POST\t/broken\t{}")
	r := runOK(t, "-url", srv.URL+"/", "-rate", "500", "-duration", "400ms", "-warmup", "0s", "-conns", "2", "-seed", "7", pool)
	mu.Lock()
	defer mu.Unlock()
	wantField(t, r, "sent", 200)
	wantField(t, r, "ok", float64(seen["/ok"]))
	wantField(t, r, "errors", float64(seen["/fail"]+seen["/notfound"]+seen["/broken"]))
	if seen["/fail"] == 0 || seen["/notfound"] == 0 || seen["/broken"] == 0 || seen["/ok"] == 0 {
		t.Errorf("requests per path: %v; want every kind", seen)
	}
}

// Requests the server leaves no room for are reported as unsent, not dropped.
func TestUnsentRequestsAreReported(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // never answers
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	pool := writeRequests(t, "GET\t/x\t")
	// 10 requests within 100 ms and no grace; the only connection is busy
	// until the first request times out after 300 ms, past the deadline.
	r := runOK(t, "-url", srv.URL, "-rate", "100", "-duration", "100ms", "-warmup", "0s", "-conns", "1",
		"-grace", "0s", "-timeout", "300ms", pool)
	wantField(t, r, "sent", 1)
	wantField(t, r, "errors", 1)
	wantField(t, r, "unsent", 9)
}

func TestBadArguments(t *testing.T) {
	pool := writeRequests(t, "GET\t/x\t")
	bad := writeRequests(t, "GET /x")
	empty := filepath.Join(t.TempDir(), "empty.requests")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	u := "http://127.0.0.1:1"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-rate", "10", pool}, "-url"},
		{[]string{"-url", "127.0.0.1:80", "-rate", "10", pool}, "-url"},
		{[]string{"-url", u, pool}, "-rate"},
		{[]string{"-url", u, "-rate", "-5", pool}, "-rate"},
		{[]string{"-url", u, "-rate", "NaN", pool}, "-rate"},
		{[]string{"-url", u, "-rate", "10", "-duration", "0s", pool}, "-duration"},
		{[]string{"-url", u, "-rate", "10", "-warmup", "-1s", pool}, "-warmup"},
		{[]string{"-url", u, "-rate", "10", "-conns", "0", pool}, "-conns"},
		{[]string{"-url", u, "-rate", "10", "-timeout", "0s", pool}, "-timeout"},
		{[]string{"-url", u, "-rate", "1", "-duration", "100ms", pool}, "schedules no request"},
		{[]string{"-url", u, "-rate", "10"}, "no request file"},
		{[]string{"-url", u, "-rate", "10", "-rate-typo", "1", pool}, "rate-typo"},
		{[]string{"-url", u, "-rate", "10", filepath.Join(t.TempDir(), "missing")}, "no such file"},
		{[]string{"-url", u, "-rate", "10", bad}, ":1: want"},
		{[]string{"-url", u, "-rate", "10", empty}, "no request"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), tc.args, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	sorted := make([]time.Duration, 200)
	for i := range sorted {
		sorted[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 100}, {99, 198}, {99.9, 200}, {100, 200}, {0.1, 1}} {
		if got := percentile(sorted, tc.p); got != tc.want {
			t.Errorf("p%v = %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 99); got != 0 {
		t.Errorf("p99 of nothing = %d", got)
	}
}
