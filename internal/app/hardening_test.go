package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

// keywordDSN turns a postgres:// URL into the key=value form, with a
// password (the shared test Postgres trusts its clients and ignores it).
func keywordDSN(t *testing.T, rawURL, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	parts := []string{"host=" + host, "port=" + port, "user=" + u.User.Username(), "dbname=" + strings.TrimPrefix(u.Path, "/"),
		"password='" + password + "'"}
	for k, vs := range u.Query() {
		parts = append(parts, k+"="+vs[0])
	}
	return strings.Join(parts, " ")
}

// TestKeywordDSNIsMasked is the finding "a keyword-style Postgres DSN
// (host=… password=…) is printed verbatim in the start-up log and in
// --help": every DSN form is masked in both.
func TestKeywordDSNIsMasked(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"host=db user=fs password=s3cret dbname=fs",
		"host=db password = 's3 cret\\'x' dbname=fs",
		"postgres://fs:s3cret@db:5432/fs",
		"postgres://fs@db:5432/fs?password=s3cret",
	} {
		var out bytes.Buffer
		if err := Run(context.Background(), []string{"--help"}, envFrom(map[string]string{"FEATURESTORE_POSTGRES_URL": dsn}), &out, &out); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "s3cret") || strings.Contains(out.String(), "s3 cret") || !strings.Contains(out.String(), "****") {
			t.Errorf("--help with %q shows the password or no mask:\n%s", dsn, grepLine(out.String(), "postgres-url"))
		}
	}
	// The start-up log of a real server started with a keyword DSN.
	const secret = "kw-s3cret pass"
	dsn := keywordDSN(t, testenv.PostgresSchemaURL(t, "fs_app"), secret)
	_, logs, stop := startServer(t, nil, map[string]string{"FEATURESTORE_POSTGRES_URL": dsn})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "kw-s3cret") || !strings.Contains(logs.String(), "password=****") {
		t.Errorf("the start-up log shows the keyword DSN's password or does not mask it:\n%s", grepLine(logs.String(), "postgres_url"))
	}
}

func grepLine(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return "(no line with " + sub + ")"
}

// limitFlags are the flags of the limits, each documented in --help and
// the README and exported as a feature_store_limit series.
var limitFlags = []string{"max-header-bytes", "read-header-timeout", "idle-timeout", "max-conns-per-client", "trusted-proxies",
	"rate-limit", "rate-limit-burst", "max-concurrent-requests", "queue-wait", "max-body-memory", "max-groups",
	"max-features-per-group", "max-tags", "max-tag-bytes", "max-description-bytes", "idempotency-ttl", "health-max-age"}

// TestLimitsAreFlagsDocumentedAndMetrics: every limit is a flag with its
// environment variable, is in the README's configuration table, and its
// value is a feature_store_limit series.
func TestLimitsAreFlagsDocumentedAndMetrics(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"--help"}, envFrom(nil), &out, &out); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(testenv.RepoRoot(t) + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range limitFlags {
		env := "FEATURESTORE_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
		if !strings.Contains(out.String(), "-"+f+" ") || !strings.Contains(out.String(), env) {
			t.Errorf("--help does not list --%s (%s)", f, env)
		}
		if !strings.Contains(string(readme), "| `--"+f+"` | `"+env+"` |") {
			t.Errorf("README's configuration table has no row for --%s", f)
		}
	}
	base, _, _ := startServer(t, []string{"--max-conns-per-client", "77", "--rate-limit", "5", "--queue-wait", "250ms"},
		map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()})
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`feature_store_limit{limit="max_conns_per_client"} 77`, `feature_store_limit{limit="rate_limit_per_second"} 5`,
		`feature_store_limit{limit="queue_wait_seconds"} 0.25`, `feature_store_limit{limit="max_body_bytes"} 3.3554432e+07`,
		`feature_store_http_requests_shed_total{reason="concurrency"} 0`, `feature_store_http_open_connections `} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestLimitConfigErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-header-bytes", "10"}, "max-header-bytes"},
		{[]string{"--max-features-per-group", "513"}, "max-features-per-group"},
		{[]string{"--max-body-memory", "1024"}, "max-body-memory"},
		{[]string{"--max-groups", "2"}, "max-groups"},
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, "trusted-proxies"},
		{[]string{"--idempotency-ttl", "1s"}, "idempotency-ttl"},
	} {
		err := Run(context.Background(), c.args, envFrom(map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%v) = %v, want an error about %s", c.args, err, c.want)
		}
	}
}

// TestSlowHeadersFlag: the server started with --read-header-timeout cuts
// a client that never finishes its headers (slowloris), and stays up for
// the others.
func TestSlowHeadersFlag(t *testing.T) {
	t.Parallel()
	base, _, _ := startServer(t, []string{"--read-header-timeout", "300ms"}, map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()})
	addr := strings.TrimPrefix(base, "http://")
	var slow []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a")
		slow = append(slow, c)
	}
	for _, c := range slow {
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second)) // a guard
		if n, err := c.Read(make([]byte, 1)); err == nil || n != 0 || os.IsTimeout(err) {
			t.Fatalf("a slow client was not cut: read %d, %v", n, err)
		}
	}
	resp, err := http.Get(base + "/health/live")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the server after the slow clients: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestOversizedBodiesKeepMemoryFlat is the finding "12 parallel 32 MiB
// POSTs took RSS from 127 to 651 MB". Bodies declared over the limit are
// refused before a byte is read: twelve of them at once allocate next to
// nothing. (Not parallel: it measures the process's allocations.)
func TestOversizedBodiesKeepMemoryFlat(t *testing.T) {
	base, _, _ := startServer(t, nil, map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()})
	const n, size = 12, 33 << 20 // over the default --max-body-bytes (32 MiB)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequest("POST", base+"/v1/movies", io.LimitReader(zeros{}, size))
			if err != nil {
				t.Error(err)
				return
			}
			req.ContentLength = size
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	for i, c := range codes {
		if c != http.StatusRequestEntityTooLarge {
			t.Errorf("request %d: %d, want 413", i, c)
		}
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Errorf("%d oversized requests allocated %d MiB; want next to nothing", n, grew>>20)
	}
	// A declared 128 MiB length with no body at all is answered, not held.
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second)) // a guard
	fmt.Fprintf(c, "POST /v1/movies HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", 128<<20)
	buf := make([]byte, 12)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/1.1 413" {
		t.Errorf("declared 128 MiB, sent nothing: %q %v", buf, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestFDExhaustionLoggedAtError is the finding "every new request then
// times out, and too many open files is logged at info level": a server
// whose process runs out of file descriptors logs it at error level. It
// runs in a child process (this test binary again) whose descriptor limit
// is lowered, so the test's own process keeps its descriptors.
func TestFDExhaustionLoggedAtError(t *testing.T) {
	t.Parallel()
	if os.Getenv("FS_TEST_FD_CHILD") != "" {
		t.Skip("in the child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFDExhaustionChild$", "-test.v")
	cmd.Env = append(os.Environ(), "FS_TEST_FD_CHILD=1", "FS_TEST_FD_DIR="+dir)
	var out testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var addr string
	testenv.Eventually(t, 2*time.Minute, "the child server listens", func() (bool, string) {
		b, err := os.ReadFile(dir + "/addr")
		addr = string(b)
		return err == nil && addr != "", out.String()
	})
	// Hold connections until the child has no descriptor left.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	testenv.Eventually(t, 2*time.Minute, "an error-level log line about file descriptors", func() (bool, string) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			held = append(held, c)
		}
		for line := range strings.Lines(out.String()) {
			if strings.Contains(line, `"level":"error"`) && strings.Contains(line, "out of file descriptors") {
				return true, line
			}
		}
		return false, fmt.Sprintf("%d connections held\n%s", len(held), out.String())
	})
}

// TestFDExhaustionChild is the child of TestFDExhaustionLoggedAtError: a
// server with a descriptor limit of 64 and no per-client cap.
func TestFDExhaustionChild(t *testing.T) {
	if os.Getenv("FS_TEST_FD_CHILD") == "" {
		t.Skip("only as the child of TestFDExhaustionLoggedAtError")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 64, Max: 64}); err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("FS_TEST_FD_DIR")
	err := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--max-conns-per-client", "0"},
		envFrom(map[string]string{"FEATURESTORE_DATA_DIR": dir + "/data"}), os.Stdout, os.Stderr,
		func(a string) { _ = os.WriteFile(dir+"/addr", []byte(a), 0o600) })
	t.Fatalf("the child server stopped: %v", err)
}
