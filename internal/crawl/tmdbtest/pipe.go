package tmdbtest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// StartInMemory serves h with an httptest.Server listening on an in-memory
// network (net.Pipe) and returns it with a client that dials it. Unlike a
// loopback socket, a goroutine blocked on a pipe is durably blocked, so the
// server and the client work inside a testing/synctest bubble, where time is
// fake and a test of backoffs and rate limits never really sleeps. Both are
// closed when the test ends.
func StartInMemory(tb testing.TB, h http.Handler) (*httptest.Server, *http.Client) {
	tb.Helper()
	ln := &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}} // #nosec G112 -- an in-memory test server
	srv.Start()
	tr := &http.Transport{DialContext: ln.dial}
	tb.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return srv, &http.Client{Transport: tr}
}

// pipeListener is a net.Listener whose connections are net.Pipe ends handed
// over by dial.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "tmdb.test" }
