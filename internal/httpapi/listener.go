package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
)

// ConnObserver counts what the listener does (*metrics.Limits).
type ConnObserver interface {
	ConnRejected()
	AcceptFailed(fdExhausted bool)
}

type nopConnObserver struct{}

func (nopConnObserver) ConnRejected()     {}
func (nopConnObserver) AcceptFailed(bool) {}

// ListenerOptions configure NewListener.
type ListenerOptions struct {
	// MaxConnsPerClient bounds the open connections of one client address
	// (IPv6: one /64); 0: no bound. Trusted peers (load balancers) are
	// exempt: all their clients share their address.
	MaxConnsPerClient int
	Trusted           []netip.Prefix
	// Logger receives accept failures: running out of file descriptors is
	// logged at error level, at most once per 10 seconds.
	Logger   *zap.Logger
	Observer ConnObserver
}

// Listener guards the HTTP server's connections:
//
//   - it caps the open connections of each client, so one client holding
//     thousands of idle keep-alive connections cannot take every file
//     descriptor: a connection over the cap gets a 429 rate_limited answer
//     and is closed at once;
//   - it logs failed accepts, running out of file descriptors (EMFILE,
//     ENFILE) at error level, before net/http retries them;
//   - it turns the plain-text answers net/http writes itself, before any
//     handler runs (a malformed request line, a bad escape or a space in the
//     path, an oversized header, an unsupported transfer encoding, HTTP
//     version or Expect), into the API's JSON error shape, keeping their
//     status except for the client errors net/http answers with a 5xx
//     (501 transfer encoding, 505 HTTP version), which become 400.
type Listener struct {
	net.Listener
	o       ListenerOptions
	open    atomic.Int64
	mu      sync.Mutex
	clients map[string]int

	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int
}

// NewListener wraps inner.
func NewListener(inner net.Listener, o ListenerOptions) *Listener {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Observer == nil {
		o.Observer = nopConnObserver{}
	}
	return &Listener{Listener: inner, o: o, clients: map[string]int{}}
}

// Open returns the number of open connections.
func (l *Listener) Open() int64 { return l.open.Load() }

// Accept returns the next admitted connection.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.acceptFailed(err)
			return nil, err
		}
		addr := remoteAddr(c.RemoteAddr().String())
		key := ""
		if l.o.MaxConnsPerClient > 0 && !isTrusted(addr, l.o.Trusted) {
			key = clientKey(addr)
			if !l.admit(key) {
				l.o.Observer.ConnRejected()
				go refuse(c)
				continue
			}
		}
		l.open.Add(1)
		return &conn{Conn: c, l: l, key: key}, nil
	}
}

func (l *Listener) admit(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients[key] >= l.o.MaxConnsPerClient {
		return false
	}
	l.clients[key]++
	return true
}

func (l *Listener) closed(key string) {
	l.open.Add(-1)
	if key == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clients[key] <= 1 {
		delete(l.clients, key)
	} else {
		l.clients[key]--
	}
}

// acceptFailed logs a failed accept: out of file descriptors at error
// level (new connections wait until some close: it takes an operator),
// anything else but a closed listener at warn. The log is rate limited:
// net/http retries a failed accept within milliseconds.
func (l *Listener) acceptFailed(err error) {
	if errors.Is(err, net.ErrClosed) {
		return
	}
	fds := errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
	l.o.Observer.AcceptFailed(fds)
	l.logMu.Lock()
	defer l.logMu.Unlock()
	now := time.Now()
	if now.Sub(l.lastLog) < 10*time.Second {
		l.suppressed++
		return
	}
	l.lastLog = now
	fields := []zap.Field{zap.Error(err), zap.Int("suppressed_since_last", l.suppressed), zap.Int64("open_connections", l.open.Load())}
	l.suppressed = 0
	if fds {
		l.o.Logger.Error("cannot accept connections: out of file descriptors (raise the limit, or lower --max-conns-per-client or --idle-timeout)", fields...)
		return
	}
	l.o.Logger.Warn("accepting a connection failed", fields...)
}

// refusal is the whole answer to a connection over its client's cap.
var refusal = rawError(http.StatusTooManyRequests, feature.CodeRateLimited,
	"too many open connections from this client", "client", "over the connection limit (--max-conns-per-client)", "Retry-After: 1\r\n")

// refuse answers c with refusal and closes it, without waiting for its
// request: the point is to give its descriptor back at once.
func refuse(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(refusal)
	_ = c.Close()
}

// rawError is a complete HTTP/1.1 error response in the JSON error shape,
// closing the connection.
func rawError(status int, code feature.Code, msg, field, problem, extraHeaders string) []byte {
	body, _ := json.Marshal(errorBody{Code: code, Message: msg, Fields: []feature.FieldError{{Field: field, Problem: problem}}})
	body = append(body, '\n')
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%sConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), extraHeaders, len(body), body)
}

// conn is an admitted connection.
type conn struct {
	net.Conn
	l    *Listener
	key  string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.closed(c.key) })
	return err
}

// CloseWrite lets net/http half-close the connection after its 431.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Write passes the server's writes through, except net/http's own
// plain-text error answers, which it rewrites (plainError).
func (c *conn) Write(b []byte) (int, error) {
	if out, ok := plainError(b); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// net/http's own error answers: a status line, then exactly these headers
// (no Date: a handler's answer always has one), then a plain-text body.
var (
	plainHeaders    = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
	expectationFail = []byte("HTTP/1.1 417 Expectation Failed\r\n")
)

// plainError recognises an error answer net/http wrote itself and returns
// it in the JSON error shape with the same status.
func plainError(b []byte) ([]byte, bool) {
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) || len(b) < 12 {
		return nil, false
	}
	if bytes.HasPrefix(b, expectationFail) && !bytes.Contains(b, []byte("Content-Type:")) {
		return rawError(http.StatusExpectationFailed, feature.CodeInvalid, "the Expect header is not supported",
			"Expect", "only 100-continue is supported", ""), true
	}
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < 0 || !bytes.HasPrefix(b[eol:], plainHeaders) {
		return nil, false
	}
	status, err := strconv.Atoi(string(b[9:12]))
	if err != nil || (status < 400 || status > 499) && status != http.StatusNotImplemented && status != http.StatusHTTPVersionNotSupported {
		return nil, false // not one net/http writes on its own
	}
	reason := string(bytes.TrimSpace(b[12:eol])) // "Bad Request: invalid URI", say
	msg := "the request could not be parsed"
	if _, detail, ok := bytes.Cut([]byte(reason), []byte(": ")); ok {
		msg += ": " + string(detail)
	}
	code, field, problem := feature.CodeInvalid, "request", "malformed HTTP request (request line, path or headers)"
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		code, field, problem = feature.CodeTooLarge, "headers", "the request line and headers are over --max-header-bytes"
		msg = "the request line and headers are too large"
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		// The client's doing, not a server failure: a 5xx would count
		// against the availability SLO and fire its alerts. 400, as
		// invalid is everywhere else.
		status = http.StatusBadRequest
		if strings.Contains(reason, "ersion") {
			problem, msg = "unsupported HTTP version (HTTP/1.0 and HTTP/1.1 are served)", "unsupported HTTP version"
		} else {
			field, problem, msg = "Transfer-Encoding", "unsupported transfer encoding (only chunked is supported)", "unsupported transfer encoding"
		}
	}
	return rawError(status, code, msg, field, problem, ""), true
}
