package httpapi

import (
	"hash/maphash"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// ClientKey returns the function that names the client of a request for
// rate limiting: its IP address, with IPv6 addresses grouped by /64 (one
// host usually holds a whole /64, so single addresses would be free to
// rotate). When the direct peer is one of trusted (a load balancer or an
// ingress), the client is the right-most address of X-Forwarded-For that is
// not trusted. Once authentication names the caller, a key function can
// return the token's name instead.
func ClientKey(trusted []netip.Prefix) func(*http.Request) string {
	return func(r *http.Request) string {
		addr := remoteAddr(r.RemoteAddr)
		if addr.IsValid() && isTrusted(addr, trusted) {
			hops := r.Header.Values("X-Forwarded-For")
			for i := len(hops) - 1; i >= 0; i-- {
				parts := strings.Split(hops[i], ",")
				for j := len(parts) - 1; j >= 0; j-- {
					a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
					if err != nil {
						return clientKey(addr) // a forged or broken header: the peer answers for it
					}
					if !isTrusted(a.Unmap(), trusted) {
						return clientKey(a.Unmap())
					}
				}
			}
		}
		return clientKey(addr)
	}
}

func remoteAddr(s string) netip.Addr {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientKey is the rate-limit key of an address: itself for IPv4, its /64
// for IPv6.
func clientKey(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// LimitObserver counts the requests the limits refuse (*metrics.Limits).
type LimitObserver interface {
	RateLimited()
	Shed()     // no concurrency slot
	ShedBody() // no body memory
}

type nopLimitObserver struct{}

func (nopLimitObserver) RateLimited() {}
func (nopLimitObserver) Shed()        {}
func (nopLimitObserver) ShedBody()    {}

// RateLimiter gives each client (named by its key function) a token
// bucket: Rate requests per second on average, Burst at once. A request
// over it answers 429 rate_limited with Retry-After (whole seconds until a
// token is back). The buckets live in 16 shards of at most MaxClients/16
// each: a full bucket is forgotten (a new one would be the same), and when
// a shard is full of busy clients an arbitrary one is dropped, so memory
// stays bounded whatever the number of clients.
type RateLimiter struct {
	rate, burst float64
	key         func(*http.Request) string
	now         func() time.Time
	obs         LimitObserver
	maxPerShard int
	seed        maphash.Seed
	shards      [16]rateShard
	clients     atomic.Int64
}

type rateShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// RateLimitOptions configure a RateLimiter.
type RateLimitOptions struct {
	// Rate is the sustained requests per second of one client; Burst the
	// requests it may make at once (at least 1).
	Rate  float64
	Burst int
	// Key names the client of a request; ClientKey(nil) when nil.
	Key func(*http.Request) string
	// MaxClients bounds the clients tracked at once; 100,000 when 0.
	MaxClients int
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Observer counts refused requests; none when nil.
	Observer LimitObserver
}

// NewRateLimiter returns a rate limiter; a Rate <= 0 returns nil (no limit).
func NewRateLimiter(o RateLimitOptions) *RateLimiter {
	if o.Rate <= 0 {
		return nil
	}
	if o.Key == nil {
		o.Key = ClientKey(nil)
	}
	if o.MaxClients <= 0 {
		o.MaxClients = 100_000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Observer == nil {
		o.Observer = nopLimitObserver{}
	}
	l := &RateLimiter{rate: o.Rate, burst: float64(max(o.Burst, 1)), key: o.Key, now: o.Now, obs: o.Observer,
		maxPerShard: max(o.MaxClients/16, 1), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// Clients returns the number of clients with a bucket.
func (l *RateLimiter) Clients() int64 { return l.clients.Load() }

// allow takes a token from key's bucket; when there is none it says how
// long until there is one.
func (l *RateLimiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	sh := &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.buckets[key]
	if !ok {
		if len(sh.buckets) >= l.maxPerShard {
			l.sweep(sh, now)
		}
		b = &bucket{tokens: l.burst, last: now}
		sh.buckets[key] = b
		l.clients.Add(1)
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep forgets the buckets that have refilled; if none has, one
// arbitrary bucket, so the shard has room.
func (l *RateLimiter) sweep(sh *rateShard, now time.Time) {
	refill := time.Duration(l.burst / l.rate * float64(time.Second))
	n := len(sh.buckets)
	for k, b := range sh.buckets {
		if now.Sub(b.last) >= refill {
			delete(sh.buckets, k)
		}
	}
	if len(sh.buckets) == n {
		for k := range sh.buckets {
			delete(sh.buckets, k)
			break
		}
	}
	l.clients.Add(int64(len(sh.buckets) - n))
}

// Middleware refuses a client's requests over its rate.
func (l *RateLimiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := l.allow(l.key(r))
		if !ok {
			l.obs.RateLimited()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
			writeError(w, r, &feature.Error{Code: feature.CodeRateLimited,
				Message: "too many requests from this client; retry after the number of seconds in Retry-After",
				Fields:  []feature.FieldError{{Field: "client", Problem: "over the rate limit (--rate-limit, --rate-limit-burst)"}}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ConcurrencyLimiter bounds the requests being served at once. A request
// that finds every slot taken waits at most QueueWait for one, then is shed:
// 503 overloaded with Retry-After, answered at once. Shedding the excess
// keeps the latency of the requests it does serve bounded, where an
// unbounded queue would make every request slow once the load passes what
// the service sustains.
type ConcurrencyLimiter struct {
	slots chan struct{}
	wait  time.Duration
	obs   LimitObserver
}

// NewConcurrencyLimiter returns a limiter of max slots (nil when max <= 0:
// no limit) whose requests wait at most wait for a slot.
func NewConcurrencyLimiter(max int, wait time.Duration, obs LimitObserver) *ConcurrencyLimiter {
	if max <= 0 {
		return nil
	}
	if obs == nil {
		obs = nopLimitObserver{}
	}
	return &ConcurrencyLimiter{slots: make(chan struct{}, max), wait: wait, obs: obs}
}

// InUse returns the slots taken.
func (c *ConcurrencyLimiter) InUse() int { return len(c.slots) }

// acquire takes a slot, waiting at most c.wait or until the request ends.
func (c *ConcurrencyLimiter) acquire(r *http.Request) bool {
	select {
	case c.slots <- struct{}{}:
		return true
	default:
	}
	if c.wait <= 0 {
		return false
	}
	t := time.NewTimer(c.wait)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-r.Context().Done():
		return false
	}
}

// Middleware sheds the requests that find no slot.
func (c *ConcurrencyLimiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.acquire(r) {
			if r.Context().Err() != nil {
				writeError(w, r, r.Context().Err())
				return
			}
			c.obs.Shed()
			writeError(w, r, &feature.Error{Code: feature.CodeOverloaded,
				Message: "the service is at its concurrency limit; retry shortly",
				Fields:  []feature.FieldError{{Field: "request", Problem: "shed (--max-concurrent-requests)"}}})
			return
		}
		defer func() { <-c.slots }()
		next.ServeHTTP(w, r)
	})
}
