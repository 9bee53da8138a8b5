package httpapi_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/featurestore/featurestore/internal/httpapi"
	"github.com/featurestore/featurestore/internal/metrics"
	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/store/sqlite"
	"github.com/featurestore/featurestore/internal/testenv"
)

// Error classes through the real router, over a real store: a client that
// went away (499, not a server error), a request deadline and a Postgres
// statement_timeout (504 timeout), an unreachable Postgres (503
// unavailable). Each request is held up by a real lock the test takes in
// the database, not by a sleep, so the outcome does not depend on timing.

// observed is a service over one store, served by the real router with
// real metrics and an observed log.
type observed struct {
	svc  *service.Service
	reg  *prometheus.Registry
	m    *metrics.Metrics
	logs *observer.ObservedLogs
	log  *zap.Logger
}

func newObserved(t *testing.T, st store.Store) *observed {
	t.Helper()
	o := &observed{reg: prometheus.NewRegistry()}
	o.m = metrics.New(o.reg, metrics.BuildInfo{}, nil)
	core, logs := observer.New(zapcore.DebugLevel)
	o.logs, o.log = logs, zap.New(core)
	svc, err := service.New(context.Background(), st, service.Options{Now: (&clock{t: t0}).Now, Observer: o.m})
	if err != nil {
		t.Fatalf("service.New: %v", err)
	}
	o.svc = svc
	return o
}

// router builds the real router with the given request deadline.
func (o *observed) router(timeout time.Duration) http.Handler {
	return httpapi.NewRouter(httpapi.Deps{Service: o.svc, Metrics: o.m, Logger: o.log, RequestTimeout: timeout})
}

// sample is the value of a counter series (0 when it does not exist).
func (o *observed) sample(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := o.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// serverErrors is how many HTTP requests were answered with a 5xx status.
func (o *observed) serverErrors(t *testing.T) float64 {
	t.Helper()
	var n float64
	for _, st := range []string{"500", "503", "504"} {
		n += o.sample(t, "feature_store_http_requests_total", "code", st)
	}
	return n
}

// wantOutcome checks what the request left behind: one access log line
// at level with the status and code, the HTTP series with that status on
// route, and feature_store_errors_total{operation=op} counted under code
// only.
func (o *observed) wantOutcome(t *testing.T, route, op string, status int, code string, level zapcore.Level) {
	t.Helper()
	lines := o.logs.FilterMessage("request").TakeAll()
	if len(lines) != 1 {
		t.Fatalf("%d access log lines, want 1: %v", len(lines), lines)
	}
	f := lines[0].ContextMap()
	if lines[0].Level != level || f["status"] != int64(status) || f["code"] != code || f["error"] == nil {
		t.Errorf("access log line %s %v, want level %s, status %d, code %s and the cause", lines[0].Level, f, level, status, code)
	}
	if got := o.sample(t, "feature_store_http_requests_total", "route", route, "code", fmt.Sprint(status)); got != 1 {
		t.Errorf("http_requests_total{route=%q,code=%q} = %v, want 1", route, fmt.Sprint(status), got)
	}
	for _, c := range []string{"canceled", "timeout", "unavailable", "internal"} {
		want := 0.0
		if c == code {
			want = 1
		}
		if got := o.sample(t, "feature_store_errors_total", "operation", op, "code", c); got != want {
			t.Errorf("errors_total{operation=%q,code=%q} = %v, want %v", op, c, got, want)
		}
	}
}

// blocker holds the lock that stops a write of the store under test.
type blocker struct {
	// hold takes the lock; release gives it back.
	hold func(t *testing.T) (release func())
	// waitBlocked returns once a statement of the store waits for the
	// lock; nil when the backend cannot tell (the request then cannot end
	// on its own before the lock is released either).
	waitBlocked func(t *testing.T)
}

const probeGroup = `{"entity_key": "id", "features": [{"name": "n", "type": "int64"}]}`

const probeRows = `[{"entity_id": "a", "values": {"n": 1}}]`

// serveAsync serves req in the background and returns a function that
// waits for the answer, checked against the OpenAPI description (the
// request body is not: the handler consumes it).
func serveAsync(t *testing.T, h http.Handler, req *http.Request) func() *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	x := exchange{method: req.Method, target: req.URL.RequestURI(), header: req.Header.Clone(), w: w}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(w, req)
	}()
	return func() *httptest.ResponseRecorder {
		select {
		case <-done:
		case <-time.After(2 * time.Minute): // a hang guard, not a timing assertion
			t.Fatal("the request did not end")
		}
		checkContract(t, x)
		return w
	}
}

// testCanceledAndDeadline runs the two context classes against a store
// whose writes b can hold up; each subtest has a service and metrics of its
// own over st.
func testCanceledAndDeadline(t *testing.T, st store.Store, b blocker) {
	const route, op = "/v1/feature-groups/{group}/rows", "write_rows"
	if w := serve(t, newObserved(t, st).router(time.Minute), "PUT", "/v1/feature-groups/probe", probeGroup); w.Code != http.StatusCreated {
		t.Fatalf("PUT probe: %d %s", w.Code, w.Body)
	}

	t.Run("client went away: 499, canceled, info, no server error", func(t *testing.T) {
		o := newObserved(t, st)
		release := b.hold(t)
		defer release()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", "/v1/feature-groups/probe/rows", strings.NewReader(probeRows))
		req.Header.Set("Content-Type", "application/json")
		wait := serveAsync(t, o.router(time.Minute), req)
		if b.waitBlocked != nil {
			b.waitBlocked(t)
		}
		cancel()
		w := wait()
		wantError(t, w, httpapi.StatusClientClosedRequest, "canceled")
		o.wantOutcome(t, route, op, httpapi.StatusClientClosedRequest, "canceled", zapcore.InfoLevel)
		if n := o.serverErrors(t); n != 0 {
			t.Errorf("%v requests counted with a 5xx status, want 0", n)
		}
	})

	t.Run("request deadline: 504, timeout, warn", func(t *testing.T) {
		o := newObserved(t, st)
		release := b.hold(t)
		defer release()
		w := serve(t, o.router(200*time.Millisecond), "POST", "/v1/feature-groups/probe/rows", probeRows)
		body := wantError(t, w, http.StatusGatewayTimeout, "timeout")
		if !strings.Contains(body.Message, "deadline") {
			t.Errorf("message %q does not name the deadline", body.Message)
		}
		o.wantOutcome(t, route, op, http.StatusGatewayTimeout, "timeout", zapcore.WarnLevel)
	})
}

func TestErrorClassesEmbedded(t *testing.T) {
	t.Parallel()
	lite, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	b := blocker{hold: func(t *testing.T) func() {
		// Another connection takes the database's write lock.
		db, err := sql.Open("sqlite", "file:"+lite.Path())
		if err != nil {
			t.Fatal(err)
		}
		conn, err := db.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatalf("take the write lock: %v", err)
		}
		return func() {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		}
	}}
	testCanceledAndDeadline(t, lite, b)
}

// pgLockBlocker holds an ACCESS EXCLUSIVE lock on feature_rows (in the
// schema of base) from a connection of its own; waitBlocked waits until a
// connection named app waits for a lock.
func pgLockBlocker(base, app string) blocker {
	return blocker{
		hold: func(t *testing.T) func() {
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, base)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := conn.Begin(ctx)
			if err == nil {
				_, err = tx.Exec(ctx, "LOCK TABLE feature_rows IN ACCESS EXCLUSIVE MODE")
			}
			if err != nil {
				conn.Close(ctx)
				t.Fatalf("lock feature_rows: %v", err)
			}
			return func() {
				_ = tx.Rollback(ctx)
				conn.Close(ctx)
			}
		},
		waitBlocked: func(t *testing.T) {
			conn, err := pgx.Connect(context.Background(), base)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			testenv.Eventually(t, time.Minute, "a statement of the store waits for the lock", func() (bool, string) {
				var waiting bool
				err := conn.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
					WHERE application_name = $1 AND wait_event_type = 'Lock')`, app).Scan(&waiting)
				return err == nil && waiting, fmt.Sprintf("waiting %v, err %v", waiting, err)
			})
		},
	}
}

// withParam adds a connection parameter to a Postgres URL; pgx decodes
// %20, not +, as a space.
func withParam(t *testing.T, raw, name, value string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery += "&" + name + "=" + strings.ReplaceAll(url.QueryEscape(value), "+", "%20")
	return u.String()
}

func openPG(t *testing.T, url string) *postgres.Store {
	t.Helper()
	pg, err := postgres.Open(context.Background(), url, postgres.Options{MaxConns: 4})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { pg.Close() })
	return pg
}

func TestErrorClassesPostgres(t *testing.T) {
	t.Parallel()
	base := testenv.PostgresSchemaURL(t, "fs_cls")

	t.Run("context classes", func(t *testing.T) {
		app := fmt.Sprintf("fs_cls_%016x", rand.Uint64())
		st := openPG(t, withParam(t, base, "application_name", app))
		testCanceledAndDeadline(t, st, pgLockBlocker(base, app))
	})

	t.Run("statement_timeout: 504, timeout, not unavailable", func(t *testing.T) {
		// The schema is migrated first, so opening with the short timeout
		// runs only statements that have nothing to do.
		if err := postgres.Migrate(context.Background(), base); err != nil {
			t.Fatal(err)
		}
		st := openPG(t, withParam(t, base, "options", "-c statement_timeout=1s"))
		o := newObserved(t, st)
		release := pgLockBlocker(base, "").hold(t)
		defer release()
		// Stats waits for the lock on feature_rows until the server cancels
		// it; the request's own deadline is far away.
		w := serve(t, o.router(time.Hour), "GET", "/v1/stats", "")
		body := wantError(t, w, http.StatusGatewayTimeout, "timeout")
		if !strings.Contains(body.Message, "postgres cancelled a statement") {
			t.Errorf("message %q does not say postgres cancelled the statement", body.Message)
		}
		o.wantOutcome(t, "/v1/stats", "stats", http.StatusGatewayTimeout, "timeout", zapcore.WarnLevel)
	})

	t.Run("unreachable postgres: 503, unavailable, Retry-After", func(t *testing.T) {
		p := startProxy(t, "127.0.0.1:5432")
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = p.addr()
		o := newObserved(t, openPG(t, u.String()))
		p.close() // now a closed port: no server, no connection
		w := serve(t, o.router(time.Minute), "GET", "/v1/stats", "")
		wantError(t, w, http.StatusServiceUnavailable, "unavailable")
		if w.Header().Get("Retry-After") == "" {
			t.Error("no Retry-After on a 503")
		}
		o.wantOutcome(t, "/v1/stats", "stats", http.StatusServiceUnavailable, "unavailable", zapcore.WarnLevel)
	})
}

// TestClientGoneWhileSendingTheBody: a body cut short by the client is
// recorded as 499 canceled, not as a 400 the client could have fixed.
func TestClientGoneWhileSendingTheBody(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.BuildInfo{}, nil)
	h := httpapi.NewRouter(httpapi.Deps{Metrics: m})
	req := httptest.NewRequest("POST", "/v1/movies", io.MultiReader(strings.NewReader(`{"id": 1, "ti`), errReader{io.ErrUnexpectedEOF}))
	req.Header.Set("Content-Type", "application/json")
	w := serveChecked(t, h, req, nil)
	wantError(t, w, httpapi.StatusClientClosedRequest, "canceled")
	o := &observed{reg: reg}
	if got := o.sample(t, "feature_store_http_requests_total", "route", "/v1/movies", "code", "499"); got != 1 {
		t.Errorf("http_requests_total{route=/v1/movies,code=499} = %v, want 1", got)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// proxy forwards TCP connections to a target until it is closed; closing
// it also cuts its connections, so the port it listened on is a closed
// port, as when a server stops.
type proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			if !p.track(c, s) {
				return
			}
			p.wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, s); c.Close() })
		}
	})
	t.Cleanup(p.close)
	return p
}

// track records the two ends of a forwarded connection; false (and both
// closed) once the proxy is closed.
func (p *proxy) track(c, s net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		s.Close()
		return false
	}
	p.conns = append(p.conns, c, s)
	return true
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// close stops listening and cuts every connection.
func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
