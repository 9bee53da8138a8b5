package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisOptions configure a private redis-server.
type RedisOptions struct {
	// AppendOnly persists every write (fsynced) to an append-only file in a
	// temporary directory, so a restarted server comes back with the data
	// it held when killed. Otherwise nothing is ever saved.
	AppendOnly bool
	// TLS, when set, also serves TLS on a second port (TLSURL) with
	// these files; a client must present a certificate the CA signed
	// (tls-auth-clients yes, Redis's default).
	TLS *RedisTLS

	extraArgs []string // more redis-server options (cluster nodes)
}

// RedisTLS are the PEM files of a private redis-server's TLS port.
type RedisTLS struct {
	CertFile, KeyFile, CAFile string
}

// Redis is a redis-server of the test's own on a free port, which the test
// may kill, pause and restart without touching the shared one. Cleanup
// kills it.
type Redis struct {
	tb      testing.TB
	port    int
	tlsPort int
	dir     string // the server's working directory: dump.rdb, the AOF
	args    []string
	logs    SyncBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis starts a private redis-server and waits until it answers PING.
// redis-server is required: the test fails without it. Skipped under -short.
func StartRedis(tb testing.TB, opts RedisOptions) *Redis {
	tb.Helper()
	SkipIfShort(tb, "redis-server")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server not installed: %v", err)
	}
	r := &Redis{tb: tb}
	// A free port is only free when it was asked for: another process (or,
	// in cluster mode, a connection on the bus port, the port + 10000) can
	// take it before redis-server binds it. Such a start is tried again on
	// other ports; any other failure fails the test.
	for attempt := 1; ; attempt++ {
		r.port, r.dir = FreePort(tb), tb.TempDir() // a fresh dir: a failed cluster node may have left nodes.conf

		r.args = []string{bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--daemonize", "no",
			"--save", "", "--dir", r.dir, "--dbfilename", "dump.rdb"}
		if opts.TLS != nil {
			r.tlsPort = FreePort(tb)
			r.args = append(r.args, "--tls-port", strconv.Itoa(r.tlsPort), "--tls-cert-file", opts.TLS.CertFile,
				"--tls-key-file", opts.TLS.KeyFile, "--tls-ca-cert-file", opts.TLS.CAFile, "--tls-auth-clients", "yes")
		}
		if opts.AppendOnly {
			r.args = append(r.args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			r.args = append(r.args, "--appendonly", "no")
		}
		r.args = append(r.args, opts.extraArgs...)
		if r.start(attempt < 5) {
			break
		}
		tb.Logf("redis-server could not bind its ports (attempt %d), trying others:\n%s", attempt, r.logs.String())
		r.logs.Reset()
	}
	tb.Cleanup(r.Kill)
	return r
}

// Port is the server's port on 127.0.0.1.
func (r *Redis) Port() int { return r.port }

// URL is the server's redis:// URL (database 0), leaving the client its
// default timeouts: for tests that pause the server and want a hang noticed
// as promptly as in production.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// PatientURL is URL with the generous timeouts of RedisURL: for tests that
// never pause the server, so that a slow answer on a loaded machine is not
// taken for a failing cache.
func (r *Redis) PatientURL() string { return r.URL() + "?" + patientRedisTimeouts }

// TLSURL is the rediss:// URL of the server's TLS port (database 0); it
// has one only when started with RedisOptions.TLS.
func (r *Redis) TLSURL() string {
	if r.tlsPort == 0 {
		r.tb.Fatal("TLSURL: the redis-server was started without TLS")
	}
	return fmt.Sprintf("rediss://127.0.0.1:%d/0", r.tlsPort)
}

// Kill stops the server with SIGKILL (resuming it first if paused) and
// waits for it to go. Killing a stopped server does nothing.
func (r *Redis) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Kill() // an error only says it has already exited
	<-r.exited
	r.cmd = nil
}

// Restart kills the server if it runs, then starts it again on the same
// port with the same options and waits until it answers PING.
func (r *Redis) Restart() {
	r.tb.Helper()
	r.Kill()
	r.start(false)
}

// Snapshot saves the server's data (SAVE) and returns a copy of the RDB
// file, which RestoreSnapshot brings back: a backup taken now.
func (r *Redis) Snapshot() []byte {
	r.tb.Helper()
	if reply := r.Command("SAVE"); reply != "+OK\r\n" {
		r.tb.Fatalf("redis SAVE: %q", reply)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "dump.rdb"))
	if err != nil {
		r.tb.Fatalf("read redis snapshot: %v", err)
	}
	return b
}

// RestoreSnapshot kills the server and starts it again from snapshot (an
// RDB file from Snapshot), as an operator restoring a backup would: the
// server comes back with the data it held when the snapshot was taken.
// It requires a server without an append-only file.
func (r *Redis) RestoreSnapshot(snapshot []byte) {
	r.tb.Helper()
	r.Kill()
	if err := os.WriteFile(filepath.Join(r.dir, "dump.rdb"), snapshot, 0o600); err != nil {
		r.tb.Fatalf("restore redis snapshot: %v", err)
	}
	r.start(false)
}

// Command sends one inline command and returns the first line of the
// reply.
func (r *Redis) Command(cmd string) string {
	r.tb.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)), 5*time.Second)
	if err != nil {
		r.tb.Fatalf("connect to redis-server: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
		r.tb.Fatalf("redis %s: %v", cmd, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		r.tb.Fatalf("redis %s: %v", cmd, err)
	}
	return line
}

// Pause freezes the server (SIGSTOP): connections stay open, nothing
// answers, as with a hung server.
func (r *Redis) Pause() { r.signal(syscall.SIGSTOP) }

// Resume thaws a paused server (SIGCONT).
func (r *Redis) Resume() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		r.tb.Fatalf("signal %v: redis-server is not running", sig)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.tb.Fatalf("signal redis-server: %v", err)
	}
}

// start runs redis-server and waits until it answers PING (after loading
// its append-only file, if it has one).
// start runs redis-server with r.args and waits until it answers PING. With
// retryBind, a server that exits because a port was taken reports false
// instead of failing the test.
func (r *Redis) start(retryBind bool) bool {
	r.tb.Helper()
	cmd := exec.Command(r.args[0], r.args[1:]...) // #nosec G204 -- test helper: redis-server with arguments it builds itself
	cmd.Stdout, cmd.Stderr = &r.logs, &r.logs
	if err := cmd.Start(); err != nil {
		r.tb.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.mu.Lock()
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	bindFailed := false
	Eventually(r.tb, time.Minute, "redis-server answers PING", func() (bool, string) {
		select {
		case <-exited:
			if retryBind && strings.Contains(r.logs.String(), "Address already in use") {
				bindFailed = true
				return true, ""
			}
			r.tb.Fatalf("redis-server exited:\n%s", r.logs.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
			return false, err.Error()
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		return line == "+PONG\r\n", fmt.Sprintf("%q %v", line, err)
	})
	return !bindFailed
}

// SyncBuffer is a goroutine-safe output sink, e.g. for a child process's
// output or a server's log.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Reset empties the buffer.
func (s *SyncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
