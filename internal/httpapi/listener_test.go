package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// listen serves the real router on loopback behind NewListener.
func listen(t *testing.T, o ListenerOptions, srv *http.Server) (string, *Listener) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(raw, o)
	if srv.Handler == nil {
		srv.Handler = NewRouter(Deps{})
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return raw.Addr().String(), ln
}

// rawExchange sends raw bytes on a new connection and reads the answer
// until the server closes the connection (the guard deadline turns a hang
// into a failure; it times nothing).
func rawExchange(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", truncateForLog(req), err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func truncateForLog(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// TestNetHTTPErrorsAreJSON: "26 kinds of bad request (a 64 KiB request
// line, %ZZ or a space in the path) get Go's plain-text errors, not the JSON
// error shape". The answers net/http writes before any handler runs keep
// their status and get the JSON error shape.
func TestNetHTTPErrorsAreJSON(t *testing.T) {
	t.Parallel()
	addr, _ := listen(t, ListenerOptions{}, &http.Server{MaxHeaderBytes: 4096, ReadHeaderTimeout: 30 * time.Second})
	for _, c := range []struct {
		name, req string
		status    int
		code      string
	}{
		{"bad escape in the path", "GET /%ZZ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid"},
		{"space in the path", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid"},
		{"64 KiB request line", "GET /" + strings.Repeat("a", 64<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431, "too_large"},
		{"huge header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n", 431, "too_large"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "invalid"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "invalid"},
		{"bad header line", "GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400, "invalid"},
		{"bad method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid"},
		{"HTTP version 2 without TLS (505 from net/http)", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400, "invalid"},
		{"unknown transfer encoding (501 from net/http)", "POST /v1/movies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "invalid"},
		{"bad content length", "POST /v1/movies HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "invalid"},
		{"unsupported Expect", "POST /v1/movies HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}", 417, "invalid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, c.req)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q: %s", ct, body)
			}
			var e struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Fields  []struct{ Field, Problem string }
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Code != c.code || e.Message == "" || len(e.Fields) != 1 {
				t.Errorf("body %q (%v), want code %s with a message and a field", body, err, c.code)
			}
		})
	}
}

// TestPerClientConnectionCap: "one client holding 20,000 idle keep-alive
// connections exhausts the fds". A client's connections past the cap get a
// 429 in the JSON shape and are closed; once it closes one, it may open one.
func TestPerClientConnectionCap(t *testing.T) {
	t.Parallel()
	obs := &countingObserver{}
	addr, ln := listen(t, ListenerOptions{MaxConnsPerClient: 3, Observer: obs}, &http.Server{ReadHeaderTimeout: 30 * time.Second})
	var held []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		t.Cleanup(func() { c.Close() })
	}
	waitFor(t, func() bool { return ln.Open() == 3 }, "3 connections open")
	resp, body := rawExchange(t, addr, "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"code":"rate_limited"`) {
		t.Errorf("connection over the cap: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if obs.rejected.Load() != 1 {
		t.Errorf("rejected %d, want 1", obs.rejected.Load())
	}
	held[0].Close()
	waitFor(t, func() bool { return ln.Open() == 2 }, "the closed connection counted out")
	resp, _ = rawExchange(t, addr, "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after closing one: %d", resp.StatusCode)
	}
	// Trusted proxies are exempt.
	addr2, _ := listen(t, ListenerOptions{MaxConnsPerClient: 1, Trusted: mustPrefixes("127.0.0.0/8")}, &http.Server{ReadHeaderTimeout: 30 * time.Second})
	c, err := net.Dial("tcp", addr2)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, _ := rawExchange(t, addr2, "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Errorf("a trusted proxy's second connection: %d", resp.StatusCode)
	}
}

// TestSlowHeadersAreCut: a client that sends its headers slowly
// (slowloris) is disconnected after the read-header timeout, without an
// answer and without a handler running.
func TestSlowHeadersAreCut(t *testing.T) {
	t.Parallel()
	addr, ln := listen(t, ListenerOptions{}, &http.Server{ReadHeaderTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a guard, not a measurement
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(make([]byte, 1))
	if err == nil || n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v; want the server to close the connection", n, err)
	}
	waitFor(t, func() bool { return ln.Open() == 0 }, "the slow connection closed")
}

// TestFDExhaustionIsAnError: "every new request then times out, and too
// many open files is logged at info level". Running out of descriptors on
// accept is logged at error level (once per 10s) and counted.
func TestFDExhaustionIsAnError(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	obs := &countingObserver{}
	l := NewListener(nil, ListenerOptions{Logger: zap.New(core), Observer: obs})
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	for range 5 {
		l.acceptFailed(emfile)
	}
	l.acceptFailed(net.ErrClosed) // shutting down: not a failure
	entries := logs.All()
	if len(entries) != 1 || entries[0].Level != zap.ErrorLevel || !strings.Contains(entries[0].Message, "out of file descriptors") {
		t.Fatalf("log entries %v, want one error about file descriptors", entries)
	}
	if obs.fds.Load() != 5 || obs.other.Load() != 0 {
		t.Errorf("counted %d fd failures and %d others, want 5 and 0", obs.fds.Load(), obs.other.Load())
	}
}

func mustPrefixes(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not waiting out a race
	}
}
