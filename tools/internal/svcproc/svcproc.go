// Package svcproc runs a featurestore binary as a child process for the
// measurement tools (tools/scalebench, tools/ingestbench): on a free loopback
// port, until /health/ready answers 200, and stopped with SIGINT (SIGKILL
// after 30 s).
package svcproc

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"
)

// Service is one running featurestore process.
type Service struct {
	// Base is its URL, http://127.0.0.1:PORT.
	Base   string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan struct{} // closed when the process has exited
}

// Start runs bin with --addr on a free port followed by args, waits until it
// is ready (at most within timeout) and returns it with the time from exec
// to ready. A process that exits first, or is not ready in time, is an
// error carrying its stderr.
func Start(bin string, args []string, timeout time.Duration) (*Service, time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := &Service{Base: "http://" + addr, log: &bytes.Buffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"--addr", addr}, args...)...) // #nosec G204 -- the binary under test, named on the command line
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, s.log
	start := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, 0, err
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	for {
		select {
		case <-s.exited:
			return nil, 0, fmt.Errorf("featurestore exited before it was ready: %s", s.log)
		default:
		}
		resp, err := http.Get(s.Base + "/health/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, time.Since(start), nil
			}
		}
		if time.Since(start) > timeout {
			s.Stop()
			return nil, 0, fmt.Errorf("featurestore not ready after %s: %s", timeout, s.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop interrupts the process and waits for it to exit (killing it after
// 30 s).
func (s *Service) Stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// CPU is the user and system CPU time the process used; valid after Stop.
func (s *Service) CPU() time.Duration {
	return s.cmd.ProcessState.UserTime() + s.cmd.ProcessState.SystemTime()
}
