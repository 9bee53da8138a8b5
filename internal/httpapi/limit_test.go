package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for the rate limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type countingObserver struct{ limited, shed, shedBody, rejected, fds, other atomic.Int64 }

func (o *countingObserver) RateLimited() { o.limited.Add(1) }
func (o *countingObserver) Shed()        { o.shed.Add(1) }
func (o *countingObserver) ShedBody()    { o.shedBody.Add(1) }
func (o *countingObserver) ConnRejected() {
	o.rejected.Add(1)
}
func (o *countingObserver) AcceptFailed(fds bool) {
	if fds {
		o.fds.Add(1)
	} else {
		o.other.Add(1)
	}
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
}

func request(remote string, hdr ...string) *http.Request {
	r := httptest.NewRequest("GET", "/v1/stats", nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

// TestRateLimiter: a client gets its burst, then 429 with Retry-After
// until tokens come back at the rate; other clients are not affected.
func TestRateLimiter(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	obs := &countingObserver{}
	l := NewRateLimiter(RateLimitOptions{Rate: 2, Burst: 3, Now: clk.now, Observer: obs})
	h := l.Middleware(okHandler())
	do := func(remote string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request(remote))
		return w
	}
	for i := range 3 {
		if w := do("192.0.2.1:1000"); w.Code != 200 {
			t.Fatalf("request %d within the burst: %d", i, w.Code)
		}
	}
	w := do("192.0.2.1:1001") // another port, same client
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || !strings.Contains(w.Body.String(), `"code":"rate_limited"`) {
		t.Errorf("over the burst: %d Retry-After %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if w := do("192.0.2.2:1000"); w.Code != 200 {
		t.Errorf("another client is limited too: %d", w.Code)
	}
	clk.advance(500 * time.Millisecond) // one token at 2/s
	if w := do("192.0.2.1:1000"); w.Code != 200 {
		t.Errorf("after a token came back: %d", w.Code)
	}
	if w := do("192.0.2.1:1000"); w.Code != http.StatusTooManyRequests {
		t.Errorf("the token was used: %d", w.Code)
	}
	if obs.limited.Load() != 2 {
		t.Errorf("observer counted %d refusals, want 2", obs.limited.Load())
	}

	// Retry-After rounds up to whole seconds: at 0.1/s a token takes 10s.
	slow := NewRateLimiter(RateLimitOptions{Rate: 0.1, Burst: 1, Now: clk.now}).Middleware(okHandler())
	slow.ServeHTTP(httptest.NewRecorder(), request("192.0.2.3:1"))
	w = httptest.NewRecorder()
	slow.ServeHTTP(w, request("192.0.2.3:1"))
	if w.Header().Get("Retry-After") != "10" {
		t.Errorf("Retry-After %q, want 10", w.Header().Get("Retry-After"))
	}
	if NewRateLimiter(RateLimitOptions{Rate: 0}) != nil {
		t.Error("a zero rate must mean no limiter")
	}
}

// TestRateLimiterMemoryIsBounded: a flood of distinct clients never holds
// more than MaxClients buckets.
func TestRateLimiterMemoryIsBounded(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewRateLimiter(RateLimitOptions{Rate: 1, Burst: 1, MaxClients: 160, Now: clk.now})
	for i := range 5000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(clientKey(a))
	}
	if n := l.Clients(); n > 160 || n < 16 {
		t.Errorf("%d clients tracked, want at most 160", n)
	}
}

func TestClientKey(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	key := ClientKey(trusted)
	for _, c := range []struct {
		name string
		r    *http.Request
		want string
	}{
		{"direct IPv4", request("192.0.2.7:5555"), "192.0.2.7"},
		{"IPv6 grouped by /64", request("[2001:db8:1:2:aaaa::1]:443"), "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6", request("[::ffff:192.0.2.7]:1"), "192.0.2.7"},
		{"untrusted peer's header is ignored", request("192.0.2.7:1", "X-Forwarded-For", "203.0.113.9"), "192.0.2.7"},
		{"trusted proxy: right-most untrusted hop", request("10.1.2.3:1", "X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.9.9.9"), "203.0.113.9"},
		{"trusted proxy: several headers", request("10.1.2.3:1", "X-Forwarded-For", "198.51.100.1", "X-Forwarded-For", "203.0.113.9"), "203.0.113.9"},
		{"trusted proxy: garbage header", request("10.1.2.3:1", "X-Forwarded-For", "not-an-ip"), "10.1.2.3"},
		{"trusted proxy: no header", request("10.1.2.3:1"), "10.1.2.3"},
		{"unparsable remote", request("@"), "unknown"},
	} {
		if got := key(c.r); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestConcurrencyLimiter: with every slot taken a request waits at most
// the queue wait, then is shed with 503 overloaded and Retry-After; a slot
// freed in time serves it.
func TestConcurrencyLimiter(t *testing.T) {
	t.Parallel()
	obs := &countingObserver{}
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	shedNow := NewConcurrencyLimiter(2, 0, obs).Middleware(blocking)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { shedNow.ServeHTTP(httptest.NewRecorder(), request("192.0.2.1:1")) })
	}
	<-entered
	<-entered
	w := httptest.NewRecorder()
	shedNow.ServeHTTP(w, request("192.0.2.1:1"))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), `"code":"overloaded"`) {
		t.Errorf("at the limit: %d Retry-After %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if obs.shed.Load() != 1 {
		t.Errorf("shed counted %d", obs.shed.Load())
	}
	close(release)
	wg.Wait()

	// With a queue wait, a request served as soon as a slot frees.
	gate := make(chan struct{})
	in := make(chan struct{}, 1)
	queued := NewConcurrencyLimiter(1, time.Hour, nil)
	h := queued.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case in <- struct{}{}:
			<-gate
		default:
		}
	}))
	wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), request("192.0.2.1:1")) })
	<-in
	done := make(chan int)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, request("192.0.2.1:1"))
		done <- w.Code
	}()
	close(gate)
	if code := <-done; code != http.StatusOK {
		t.Errorf("queued request: %d, want 200 once the slot freed", code)
	}
	wg.Wait()
	if queued.InUse() != 0 {
		t.Errorf("%d slots still taken", queued.InUse())
	}
}

// TestDeclaredOverLimitBodyIsNotRead: "an over-limit body is read whole
// before the 413; a declared 128 MiB Content-Length with no body holds the
// connection". A declared length over the limit is answered 413 without
// reading a byte, and the connection is closed.
func TestDeclaredOverLimitBodyIsNotRead(t *testing.T) {
	t.Parallel()
	router := NewRouter(Deps{MaxBodyBytes: 1 << 20})
	body := &countingReader{}
	r := httptest.NewRequest("POST", "/v1/movies", body)
	r.ContentLength = 128 << 20
	w := httptest.NewRecorder()
	router.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), `"code":"too_large"`) || w.Header().Get("Connection") != "close" {
		t.Errorf("declared 128 MiB: %d Connection %q %s", w.Code, w.Header().Get("Connection"), w.Body)
	}
	if n := body.n.Load(); n != 0 {
		t.Errorf("the server read %d bytes of a body it refused", n)
	}
}

// countingReader is an endless body that counts what is read of it.
type countingReader struct{ n atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// TestUndeclaredBodyStopsAtTheLimit: a body without a length is read up
// to one byte past the limit, no further.
func TestUndeclaredBodyStopsAtTheLimit(t *testing.T) {
	t.Parallel()
	const max = 64 << 10
	router := NewRouter(Deps{MaxBodyBytes: max})
	body := &countingReader{}
	r := httptest.NewRequest("POST", "/v1/movies", io.NopCloser(body))
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = -1
	w := httptest.NewRecorder()
	router.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("%d %s, want 413", w.Code, w.Body)
	}
	if n := body.n.Load(); n > 2*max {
		t.Errorf("read %d bytes of a body over a %d byte limit", n, max)
	}
}

// TestBodyMemoryBudget: bodies past the budget are shed with 503
// overloaded; what a request held is given back when it is answered.
func TestBodyMemoryBudget(t *testing.T) {
	t.Parallel()
	obs := &countingObserver{}
	budget := NewByteBudget(100<<10, obs)
	router := NewRouter(Deps{MaxBodyBytes: 64 << 10, BodyBudget: budget})
	if !budget.take(60 << 10) { // other requests hold 60 KiB
		t.Fatal("take")
	}
	big := strings.Repeat(" ", 50<<10) + "{}"
	w := httptest.NewRecorder()
	router.ServeHTTP(w, httptest.NewRequest("POST", "/get-online-features", strings.NewReader(big)))
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"code":"overloaded"`) || obs.shedBody.Load() != 1 {
		t.Errorf("over the budget: %d %s (shed %d)", w.Code, w.Body, obs.shedBody.Load())
	}
	if budget.InUse() != 60<<10 {
		t.Errorf("in use %d after the refusal, want the other requests' %d", budget.InUse(), 60<<10)
	}
	budget.give(60 << 10)
	w = httptest.NewRecorder()
	router.ServeHTTP(w, httptest.NewRequest("POST", "/v1/feature-groups/nope/rows", strings.NewReader(big)))
	if w.Code == http.StatusServiceUnavailable {
		t.Errorf("within the budget: %d %s", w.Code, w.Body)
	}
	if budget.InUse() != 0 {
		t.Errorf("%d bytes still held after the answer", budget.InUse())
	}
}
