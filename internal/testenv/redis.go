package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
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
}

// Redis is a redis-server of the test's own on a free port, which the test
// may kill, pause and restart without touching the shared one. Cleanup
// kills it.
type Redis struct {
	tb   testing.TB
	port int
	args []string
	logs SyncBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedis starts a private redis-server and waits until it answers PING.
// redis-server is required: the test fails without it.
func StartRedis(tb testing.TB, opts RedisOptions) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server not installed: %v", err)
	}
	r := &Redis{tb: tb, port: FreePort(tb)}
	r.args = []string{bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--daemonize", "no",
		"--save", "", "--dir", tb.TempDir()}
	if opts.AppendOnly {
		r.args = append(r.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		r.args = append(r.args, "--appendonly", "no")
	}
	r.start()
	tb.Cleanup(r.Kill)
	return r
}

// Port is the server's port on 127.0.0.1.
func (r *Redis) Port() int { return r.port }

// URL is the server's redis:// URL (database 0).
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

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
	r.start()
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
func (r *Redis) start() {
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
	Eventually(r.tb, time.Minute, "redis-server answers PING", func() (bool, string) {
		select {
		case <-exited:
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

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
