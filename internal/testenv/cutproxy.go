package testenv

import (
	"bytes"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// CutProxy is a TCP proxy on loopback in front of a real server that can
// lose an answer on purpose: once armed with a marker, the first
// connection whose client sends bytes containing it (case-insensitively)
// has the server's next answer dropped and both ends closed. The request
// reached the server, which acted on it; the client never hears back. It is
// how a test makes "the connection broke while the write was committing"
// happen at exactly that moment, against the real database.
type CutProxy struct {
	ln     net.Listener
	target string
	marker atomic.Pointer[[]byte]
	cut    chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// StartCutProxy listens on a free loopback port and forwards every
// connection to target (host:port). Cleanup stops it.
func StartCutProxy(tb testing.TB, target string) *CutProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &CutProxy{ln: ln, target: target, cut: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(func() {
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *CutProxy) Addr() string { return p.ln.Addr().String() }

// URL returns rawURL (a URL whose host is the proxy's target) pointed at
// the proxy instead.
func (p *CutProxy) URL(tb testing.TB, rawURL string) string {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}

// Arm makes the next connection that sends marker lose the answer to it;
// the returned channel is closed once that has happened.
func (p *CutProxy) Arm(marker string) <-chan struct{} {
	m := bytes.ToLower([]byte(marker))
	p.marker.Store(&m)
	return p.cut
}

func (p *CutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c)
		}()
	}
}

// relay forwards one connection until either end closes or it is cut.
func (p *CutProxy) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	var doomed atomic.Bool // this connection's next answer is to be lost
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if m := p.marker.Load(); m != nil && bytes.Contains(bytes.ToLower(buf[:n]), *m) && p.marker.CompareAndSwap(m, nil) {
					doomed.Store(true) // before the server can answer
				}
				if _, werr := server.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && doomed.Load() {
			p.once.Do(func() { close(p.cut) })
			_ = client.Close()
			_ = server.Close()
			break
		}
		if n > 0 {
			if _, werr := client.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = client.Close()
	_ = server.Close()
	<-done
}
