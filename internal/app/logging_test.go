package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/testenv"
)

// logDirLines reads the JSON lines of one log of --log-dir, oldest rotated
// file first, and checks every line is a JSON object with a level and a
// message and no file is over maxSize.
func logDirLines(t *testing.T, path string, maxSize int64) (raw string, entries []map[string]any) {
	t.Helper()
	files := []string{path}
	for i := 1; ; i++ {
		p := fmt.Sprintf("%s.%d", path, i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append([]string{p}, files...)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) > maxSize {
			t.Errorf("%s is %d bytes, over --log-max-size %d", f, len(data), maxSize)
		}
		b.Write(data)
	}
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil || e["level"] == nil || e["msg"] == nil {
			t.Fatalf("%s: not a JSON log line: %q (%v)", path, line, err)
		}
		entries = append(entries, e)
	}
	return b.String(), entries
}

func TestLogDirWritesApplicationAndErrorLogs(t *testing.T) {
	t.Parallel()
	dataDir, logDir := t.TempDir(), t.TempDir()
	const maxSize = 4096
	base, stdout, stop := startServer(t, []string{"--log-dir", logDir, "--log-max-size", fmt.Sprint(maxSize), "--log-max-files", "100"},
		map[string]string{"FEATURESTORE_DATA_DIR": dataDir})
	for range 30 { // enough request lines to rotate a few times
		if st := doJSON(t, "GET", base+"/v1/feature-groups", nil, nil); st != 200 {
			t.Fatalf("list groups = %d", st)
		}
	}

	// A second server on the same data directory fails at start; the
	// reason is logged at error level, so it reaches its error.log.
	failDir := t.TempDir()
	failOut := &testenv.SyncBuffer{}
	err := Run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--log-dir", failDir},
		envFrom(map[string]string{"FEATURESTORE_DATA_DIR": dataDir}), failOut, failOut)
	if !errors.Is(err, errDataDirLocked) {
		t.Fatalf("second server on a locked data dir: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The healthy run: application.log (with its rotated files) holds
	// exactly the lines of stdout; error.log exists and is empty.
	appPath := filepath.Join(logDir, "app", "application.log")
	raw, entries := logDirLines(t, appPath, maxSize)
	if raw != stdout.String() {
		t.Errorf("application.log and its rotated files differ from stdout:\n--- files\n%s\n--- stdout\n%s", raw, stdout)
	}
	if _, err := os.Stat(appPath + ".1"); err != nil {
		t.Errorf("no rotation at --log-max-size %d: %v", maxSize, err)
	}
	if first, last := entries[0]["msg"], entries[len(entries)-1]["msg"]; first != "starting featurestore" || last != "stopped" {
		t.Errorf("application.log runs from %q to %q", first, last)
	}
	if raw, entries := logDirLines(t, filepath.Join(logDir, "error", "error.log"), maxSize); raw != "" {
		t.Errorf("error.log of a clean run has %d entries:\n%s", len(entries), raw)
	}

	// The failed run: error.log holds the error and nothing else.
	raw, entries = logDirLines(t, filepath.Join(failDir, "app", "application.log"), 100<<20)
	if raw != failOut.String() || len(entries) < 2 || entries[0]["msg"] != "starting featurestore" {
		t.Errorf("application.log of the failed run:\n%s\nstdout:\n%s", raw, failOut)
	}
	_, errEntries := logDirLines(t, filepath.Join(failDir, "error", "error.log"), 100<<20)
	if len(errEntries) != 1 || errEntries[0]["level"] != "error" || errEntries[0]["msg"] != "featurestore failed" ||
		!strings.Contains(fmt.Sprint(errEntries[0]["error"]), "data directory is in use") {
		t.Errorf("error.log of the failed run: %v", errEntries)
	}
	if last := entries[len(entries)-1]; fmt.Sprint(last) != fmt.Sprint(errEntries[0]) {
		t.Errorf("the error in error.log %v is not the last line of application.log %v", errEntries[0], last)
	}
}

func TestLogDirFlagsAreValidated(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-max-size", "10"}, "log-max-size must be at least 1024"},
		{[]string{"--log-max-files", "-1"}, "log-max-files must be between 0 and 1000"},
		{[]string{"--log-max-age", "-1s"}, "log-max-age must not be negative"},
		{[]string{"--log-slow-request", "-1ms"}, "log-slow-request must not be negative"},
		{[]string{"--log-flush-interval", "-1ms"}, "log-flush-interval must not be negative"},
	} {
		err := Run(context.Background(), c.args, envFrom(map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()}), &testenv.SyncBuffer{}, &testenv.SyncBuffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%v) = %v, want %q", c.args, err, c.want)
		}
	}
	// A log directory that cannot be created fails the start, saying so.
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), []string{"--log-dir", file}, envFrom(map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()}), &testenv.SyncBuffer{}, &testenv.SyncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "log dir") {
		t.Errorf("--log-dir on a file: %v", err)
	}
}

// TestLogLinesStartWithTheirTime checks the line format the operators' log
// checks parse: a JSON object per line whose first key is "ts", the UTC time
// in RFC 3339 with nanoseconds, so a digit comes within the first 20
// characters, then the level and the message.
func TestLogLinesStartWithTheirTime(t *testing.T) {
	t.Parallel()
	var out testenv.SyncBuffer
	log, err := newLogger(&out, "info", nil)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", zap.String("k", "v"))
	log.Error("oops")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
	for i, line := range lines {
		if !strings.HasPrefix(line, `{"ts":"`) || !strings.ContainsAny(line[:min(20, len(line))], "0123456789") {
			t.Errorf("line %d %q does not start with its time", i, line)
		}
		var e struct {
			TS    string `json:"ts"`
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		ts, err := time.Parse(time.RFC3339Nano, e.TS)
		if err != nil || ts.Location() != time.UTC || time.Since(ts) > time.Minute || e.Level == "" || e.Msg == "" {
			t.Errorf("line %d: ts %q (%v), level %q, msg %q", i, e.TS, err, e.Level, e.Msg)
		}
	}
	if !strings.Contains(lines[1], `"level":"error"`) {
		t.Errorf("the error line %q does not carry its level", lines[1])
	}
}

// TestPerformanceLogHoldsSlowRequests runs the service with --log-dir: the
// access log lines of requests at least --log-slow-request long go to
// performance/performance.log as "slow request" with their route, status,
// duration and the threshold, and nothing else does; with a threshold no
// request reaches, the file stays empty.
func TestPerformanceLogHoldsSlowRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		threshold string
		want      int // performance lines from the requests below
	}{{"1ns", 3}, {"1h", 0}} {
		logDir := t.TempDir()
		base, _, stop := startServer(t, []string{"--log-dir", logDir, "--log-slow-request", c.threshold},
			map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()})
		for range 3 {
			if st := doJSON(t, "GET", base+"/v1/feature-groups", nil, nil); st != 200 {
				t.Fatalf("list groups = %d", st)
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		raw, entries := logDirLines(t, filepath.Join(logDir, "performance", "performance.log"), 100<<20)
		if raw == "" {
			entries = nil
		}
		groups := 0 // the start-up's readiness polls are requests too
		for _, e := range entries {
			if e["msg"] != "slow request" || e["status"] != float64(200) || e["duration_ms"] == nil || e["threshold_ms"] == nil {
				t.Errorf("threshold %s: performance line %v, want a slow request with status, duration_ms and threshold_ms", c.threshold, e)
			}
			if e["route"] == "/v1/feature-groups" {
				groups++
			}
		}
		if groups != c.want {
			t.Errorf("threshold %s: %d performance lines for /v1/feature-groups, want %d:\n%s", c.threshold, groups, c.want, raw)
		}
	}
}

// TestSlowRequestsCoreFilters pins the filter on its own: only the access
// log's entries at or past the threshold pass, renamed, with the threshold.
func TestSlowRequestsCoreFilters(t *testing.T) {
	t.Parallel()
	var out testenv.SyncBuffer
	log, err := buildLogger("debug", nil, logSink{w: &out, slowerThan: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	log = log.With(zap.String("request_id", "r1"))
	log.Info("request", zap.String("route", "/a"), zap.Float64("duration_ms", 99.9))
	log.Info("request", zap.String("route", "/b"), zap.Float64("duration_ms", 100))
	log.Error("request", zap.String("route", "/c"), zap.Float64("duration_ms", 2500), zap.String("slowest_step", "postgres read"))
	log.Info("something else", zap.Float64("duration_ms", 5000))
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, fmt.Sprintf("%v %v %v %v %v %v", e["msg"], e["route"], e["level"], e["threshold_ms"], e["request_id"], e["slowest_step"]))
	}
	want := []string{"slow request /b info 100 r1 <nil>", "slow request /c error 100 r1 postgres read"}
	if !slices.Equal(got, want) {
		t.Errorf("performance lines:\n got %q\nwant %q", got, want)
	}
}

// TestBufferedLogHoldsInfoAndFlushesWarnings pins --log-flush-interval on
// the service's logger: an info line waits in the buffer (the interval here
// is an hour, so no timer flush can interfere); a warning goes out at once,
// after the info line before it, to stdout and to application.log alike;
// closing writes what is left, so the files still equal stdout.
func TestBufferedLogHoldsInfoAndFlushesWarnings(t *testing.T) {
	t.Parallel()
	var out testenv.SyncBuffer
	logDir := t.TempDir()
	cfg := Config{LogLevel: "info", LogDir: logDir, LogMaxSize: 1 << 20, LogMaxFiles: 5, LogFlushInterval: time.Hour}
	log, closeLog, err := newServiceLogger(&out, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	appLog := func() string {
		b, err := os.ReadFile(filepath.Join(logDir, "app", "application.log"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	log.Info("first")
	if out.String() != "" || appLog() != "" {
		t.Fatalf("an info line was written before any flush: stdout %q, application.log %q", out.String(), appLog())
	}
	log.Warn("second")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"msg":"first"`) || !strings.Contains(lines[1], `"msg":"second"`) {
		t.Fatalf("after a warning, stdout holds:\n%s", out.String())
	}
	if appLog() != out.String() {
		t.Fatalf("after a warning, application.log %q differs from stdout %q", appLog(), out.String())
	}
	log.Info("third")
	if err := closeLog(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "\"msg\":\"third\",\"service\":\"featurestore\"}\n") || appLog() != out.String() {
		t.Fatalf("after close: stdout\n%s\napplication.log\n%s", out.String(), appLog())
	}
}

// TestServeRaisesTheGCTargetUnlessGOGCIsSet: with no GOGC in the
// environment a server runs at defaultGCPercent and restores the previous
// target when it stops; with GOGC set it leaves the runtime's target alone.
// The start-up line says which. Not parallel: the GC target is the
// process's.
func TestServeRaisesTheGCTargetUnlessGOGCIsSet(t *testing.T) {
	current := func() int { p := debug.SetGCPercent(100); debug.SetGCPercent(p); return p }
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)
	for _, c := range []struct {
		gogc    string // "" unset
		running int
		fromEnv bool
	}{{"", defaultGCPercent, false}, {"300", 150, true}} {
		t.Setenv("GOGC", c.gogc) // restored after the test
		if c.gogc == "" {
			if err := os.Unsetenv("GOGC"); err != nil {
				t.Fatal(err)
			}
		}
		_, logs, stop := startServer(t, nil, map[string]string{"FEATURESTORE_DATA_DIR": t.TempDir()})
		running := current()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if running != c.running || current() != 150 {
			t.Errorf("GOGC %q: target %d while serving (want %d), %d after (want 150)", c.gogc, running, c.running, current())
		}
		want := fmt.Sprintf(`"gc_percent":%d,"gc_percent_from_env":%t`, c.running, c.fromEnv)
		if !strings.Contains(logs.String(), want) {
			t.Errorf("GOGC %q: no %s in the start-up line:\n%s", c.gogc, want, grepLine(logs.String(), "starting featurestore"))
		}
	}
}
