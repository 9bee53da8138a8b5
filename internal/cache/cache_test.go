package cache

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/feature"
)

// fakeClock is a settable clock for the memory cache's TTLs.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// eachCache runs fn against a Redis cache (under a random prefix of the
// shared test Redis) and a memory cache.
func eachCache(t *testing.T, fn func(t *testing.T, c Cache)) {
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		fn(t, newRedisCache(t, RedisOptions{}))
	})
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		fn(t, NewMemory(MemoryOptions{}))
	})
}

func row(event, write time.Time, title string) *feature.Row {
	r := movie("", "", event, write, title)
	return &r
}

func get(t *testing.T, c Cache, keys ...string) []Entry {
	t.Helper()
	es, err := c.Get(t.Context(), keys)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(es) != len(keys) {
		t.Fatalf("Get(%d keys) returned %d entries", len(keys), len(es))
	}
	return es
}

func set(t *testing.T, c Cache, es ...SetEntry) {
	t.Helper()
	if err := c.Set(t.Context(), es); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

// state describes an entry for comparisons: "miss", "absent" or the title.
func state(e Entry) string {
	switch {
	case !e.Found:
		return "miss"
	case e.Row == nil:
		return "absent"
	}
	return e.Row.Values["title"].(string)
}

func TestCompareAndSet(t *testing.T) {
	t.Parallel()
	eachCache(t, func(t *testing.T, c Cache) {
		type step struct {
			what string
			set  SetEntry // Key filled in
			want string   // state after the step
		}
		tests := []struct {
			name  string
			steps []step
		}{
			{"fills keep the newest", []step{
				{"first fill", SetEntry{Row: row(at(10), at(10), "v10")}, "v10"},
				{"older event refused", SetEntry{Row: row(at(5), at(50), "v5")}, "v10"},
				{"same version refused (strict)", SetEntry{Row: row(at(10), at(10), "v10-again")}, "v10"},
				{"same event, later write accepted", SetEntry{Row: row(at(10), at(11), "v10b")}, "v10b"},
				{"newer event accepted", SetEntry{Row: row(at(20), at(1), "v20")}, "v20"},
				{"absence refused over a row", SetEntry{}, "v20"},
			}},
			{"absence is replaced by any row", []step{
				{"absence", SetEntry{}, "absent"},
				{"second absence", SetEntry{}, "absent"},
				{"oldest possible row", SetEntry{Row: row(time.Time{}, time.Time{}, "zero")}, "zero"},
			}},
			{"a written row without an entry is a fence", []step{
				{"written onto nothing", SetEntry{Row: row(at(10), at(10), "w10"), Written: true}, "miss"},
				{"older fill refused", SetEntry{Row: row(at(9), at(99), "f9")}, "miss"},
				{"absence refused", SetEntry{}, "miss"},
				{"fill of the written version accepted", SetEntry{Row: row(at(10), at(10), "w10")}, "w10"},
			}},
			{"a fence keeps the newest version", []step{
				{"written onto nothing", SetEntry{Row: row(at(10), at(10), "w10"), Written: true}, "miss"},
				{"newer written row moves the fence", SetEntry{Row: row(at(20), at(20), "w20"), Written: true}, "miss"},
				{"older written row changes nothing", SetEntry{Row: row(at(15), at(15), "w15"), Written: true}, "miss"},
				{"fill between the fences refused", SetEntry{Row: row(at(15), at(15), "w15")}, "miss"},
				{"fill of a later row accepted", SetEntry{Row: row(at(30), at(30), "f30")}, "f30"},
			}},
			{"a written row replaces an older entry", []step{
				{"fill", SetEntry{Row: row(at(10), at(10), "f10")}, "f10"},
				{"newer written row", SetEntry{Row: row(at(20), at(20), "w20"), Written: true}, "w20"},
				{"late older written row", SetEntry{Row: row(at(15), at(30), "w15"), Written: true}, "w20"},
				{"same version written again", SetEntry{Row: row(at(20), at(20), "w20-again"), Written: true}, "w20"},
			}},
			{"a written row replaces an absence", []step{
				{"absence", SetEntry{}, "absent"},
				{"written", SetEntry{Row: row(at(1), at(1), "w1"), Written: true}, "w1"},
			}},
		}
		for i, tc := range tests {
			key := "g:1:cas" + strconv.Itoa(i)
			for _, st := range tc.steps {
				st.set.Key = key
				set(t, c, st.set)
				if got := state(get(t, c, key)[0]); got != st.want {
					t.Errorf("%s: after %s: entry is %s, want %s", tc.name, st.what, got, st.want)
				}
			}
		}
	})
}

func TestValuesRoundTrip(t *testing.T) {
	t.Parallel()
	eachCache(t, func(t *testing.T, c Cache) {
		want := &feature.Row{
			EventTime: time.Date(1895, 12, 28, 20, 0, 0, 1000, time.UTC),
			WriteTime: time.Date(2100, 1, 1, 0, 0, 0, 999_999_000, time.UTC),
			Values: feature.Values{
				"i_max":        int64(math.MaxInt64),
				"i_min":        int64(math.MinInt64),
				"i_2p53_plus1": int64(1<<53 + 1),
				"i_neg":        int64(-(1<<53 + 1)),
				"i_zero":       int64(0),
				"f_tenth":      0.1,
				"f_whole":      3.0,
				"f_neg_zero":   math.Copysign(0, -1),
				"f_max":        math.MaxFloat64,
				"f_tiny":       math.SmallestNonzeroFloat64,
				"b_true":       true,
				"b_false":      false,
				"s_korean":     "기생충 (Parasite) — 봉준호 감독",
				"s_empty":      "",
				"s_binary":     "a\x00b\xff",
				"n_null":       nil,
				"기능":           "한국어 이름",
			},
		}
		empty := &feature.Row{EventTime: at(1), WriteTime: at(2), Values: feature.Values{}}
		set(t, c, SetEntry{Key: "v:1:all", Row: want}, SetEntry{Key: "v:1:empty", Row: empty})
		es := get(t, c, "v:1:all", "v:1:empty")
		if diff := cmp.Diff(want, es[0].Row); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		if got := es[0].Row; got != nil {
			for k, v := range want.Values {
				if fmt.Sprintf("%T", got.Values[k]) != fmt.Sprintf("%T", v) {
					t.Errorf("%s: type %T, want %T", k, got.Values[k], v)
				}
			}
			if math.Signbit(got.Values["f_neg_zero"].(float64)) != true {
				t.Errorf("-0.0 lost its sign")
			}
			// The row is the caller's: changing it changes nothing cached.
			got.Values["title"] = "changed"
			if again := get(t, c, "v:1:all")[0].Row; again.Values["title"] != nil {
				t.Errorf("modifying a returned row changed the cache: %v", again.Values["title"])
			}
		}
		if got := es[1].Row; got == nil || got.Values == nil || len(got.Values) != 0 {
			t.Errorf("empty values came back as %#v, want an empty map", got)
		}
	})
}

func TestGetBatchOrder(t *testing.T) {
	t.Parallel()
	eachCache(t, func(t *testing.T, c Cache) {
		var (
			entries []SetEntry
			keys    []string
			want    []string
		)
		for i := range 150 {
			k := fmt.Sprintf("b:1:e%03d", i)
			switch i % 3 {
			case 0:
				entries = append(entries, SetEntry{Key: k, Row: row(at(i), at(i), "t"+strconv.Itoa(i))})
				want = append(want, "t"+strconv.Itoa(i))
			case 1:
				entries = append(entries, SetEntry{Key: k})
				want = append(want, "absent")
			default:
				want = append(want, "miss")
			}
			keys = append(keys, k)
		}
		set(t, c, entries...)
		// Read in reverse, with a duplicate.
		var rkeys, rwant []string
		for i := len(keys) - 1; i >= 0; i-- {
			rkeys, rwant = append(rkeys, keys[i]), append(rwant, want[i])
		}
		rkeys, rwant = append(rkeys, keys[0]), append(rwant, want[0])
		var got []string
		for _, e := range get(t, c, rkeys...) {
			got = append(got, state(e))
		}
		if diff := cmp.Diff(rwant, got); diff != "" {
			t.Errorf("batch (-want +got):\n%s", diff)
		}
		if es := get(t, c); len(es) != 0 {
			t.Errorf("Get(no keys) = %v", es)
		}
		if err := c.Set(t.Context(), nil); err != nil {
			t.Errorf("Set(nothing): %v", err)
		}
	})
}

func TestClear(t *testing.T) {
	t.Parallel()
	eachCache(t, func(t *testing.T, c Cache) {
		var entries []SetEntry
		var keys []string
		for i := range 2500 { // more than one SCAN batch
			k := fmt.Sprintf("c:1:%d", i)
			entries = append(entries, SetEntry{Key: k, Row: row(at(i), at(i), "x")})
			keys = append(keys, k)
		}
		set(t, c, entries...)
		if err := c.Clear(t.Context()); err != nil {
			t.Fatalf("Clear: %v", err)
		}
		for i, e := range get(t, c, keys...) {
			if e.Found {
				t.Fatalf("key %s survived Clear", keys[i])
			}
		}
	})
}

func TestRedisKeysAndTTL(t *testing.T) {
	t.Parallel()
	r := newRedisCache(t, RedisOptions{TTL: 30 * time.Minute, AbsenceTTL: 20 * time.Second})
	other := NewRedis(r.client, RedisOptions{Prefix: strings.TrimSuffix(r.prefix, ":") + "x"}) // shares the prefix minus the colon
	t.Cleanup(func() { other.Clear(context.Background()) })
	set(t, r,
		SetEntry{Key: "g:1:row", Row: row(at(1), at(1), "r")},
		SetEntry{Key: "g:1:absent"},
		SetEntry{Key: "g:1:fence", Row: row(at(1), at(1), "f"), Written: true},
	)
	set(t, other, SetEntry{Key: "g:1:row", Row: row(at(1), at(1), "other")})
	ctx := t.Context()
	for key, want := range map[string]time.Duration{"g:1:row": 30 * time.Minute, "g:1:absent": 20 * time.Second, "g:1:fence": 20 * time.Second} {
		ttl, err := r.client.PTTL(ctx, r.prefix+key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= want-10*time.Second || ttl > want {
			t.Errorf("TTL of %s = %v, want about %v", key, ttl, want)
		}
	}
	if err := r.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if got := state(get(t, other, "g:1:row")[0]); got != "other" {
		t.Errorf("Clear of one prefix touched another: %s", got)
	}
}

func TestRedisCorruptValue(t *testing.T) {
	t.Parallel()
	r := newRedisCache(t, RedisOptions{})
	if err := r.client.Set(t.Context(), r.prefix+"g:1:bad", "short", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(t.Context(), []string{"g:1:bad"}); err == nil {
		t.Errorf("Get of a corrupt value succeeded")
	}
	// The script treats a foreign value as no entry and replaces it.
	set(t, r, SetEntry{Key: "g:1:bad", Row: row(at(1), at(1), "fixed")})
	if got := state(get(t, r, "g:1:bad")[0]); got != "fixed" {
		t.Errorf("after Set over a foreign value: %s", got)
	}
}

func TestMemoryTTL(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: base}
	m := NewMemory(MemoryOptions{TTL: time.Hour, AbsenceTTL: time.Minute, Now: clock.Now})
	set(t, m,
		SetEntry{Key: "row", Row: row(at(1), at(1), "r")},
		SetEntry{Key: "absent"},
		SetEntry{Key: "fence", Row: row(at(1), at(1), "f"), Written: true},
	)
	states := func() []string {
		var s []string
		for _, e := range get(t, m, "row", "absent", "fence") {
			s = append(s, state(e))
		}
		return s
	}
	if diff := cmp.Diff([]string{"r", "absent", "miss"}, states()); diff != "" {
		t.Errorf("fresh (-want +got):\n%s", diff)
	}
	clock.Add(time.Minute)
	if diff := cmp.Diff([]string{"r", "miss", "miss"}, states()); diff != "" {
		t.Errorf("after the absence TTL (-want +got):\n%s", diff)
	}
	// The fence has expired: an older fill is taken now.
	set(t, m, SetEntry{Key: "fence", Row: row(time.Time{}, time.Time{}, "old")})
	if got := state(get(t, m, "fence")[0]); got != "old" {
		t.Errorf("fill after the fence expired: %s", got)
	}
	clock.Add(time.Hour)
	if got := state(get(t, m, "row")[0]); got != "miss" {
		t.Errorf("row after its TTL: %s", got)
	}
	// An expired row does not refuse an older fill.
	set(t, m, SetEntry{Key: "row", Row: row(time.Time{}, time.Time{}, "older")})
	if got := state(get(t, m, "row")[0]); got != "older" {
		t.Errorf("fill over an expired row: %s", got)
	}
}

func TestMemoryBound(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: base}
	m := NewMemory(MemoryOptions{MaxEntries: 640, Now: clock.Now})
	for i := range 5000 {
		clock.Add(time.Millisecond)
		set(t, m, SetEntry{Key: strconv.Itoa(i), Row: row(at(i), at(i), "x")})
	}
	if n := m.Len(); n > 640 {
		t.Errorf("Len = %d, want at most 640", n)
	}
	// The newest entries survive eviction (it takes the oldest of a sample).
	for i := 4990; i < 5000; i++ {
		if !get(t, m, strconv.Itoa(i))[0].Found {
			t.Errorf("entry %d, among the newest, was evicted", i)
		}
	}
	h := m.Health(t.Context())
	if h.Status != "UP" || h.Details["entries"] != m.Len() {
		t.Errorf("Health = %+v", h)
	}
}

func TestRedisHealth(t *testing.T) {
	t.Parallel()
	r := newRedisCache(t, RedisOptions{})
	h := r.Health(t.Context())
	if h.Status != "UP" {
		t.Fatalf("Health = %+v", h)
	}
	for _, k := range []string{"version", "ping_latency_ms", "read_write_check", "used_memory_bytes", "maxmemory_bytes", "connected_clients", "pool"} {
		if _, ok := h.Details[k]; !ok {
			t.Errorf("Health details lack %s: %v", k, h.Details)
		}
	}
	if v, _ := h.Details["version"].(string); v == "" || h.Details["read_write_check"] != "ok" {
		t.Errorf("Health details = %v", h.Details)
	}
	if n, _ := h.Details["used_memory_bytes"].(int64); n <= 0 {
		t.Errorf("used_memory_bytes = %v", h.Details["used_memory_bytes"])
	}
	// The probe key is gone.
	keys, err := r.client.Keys(t.Context(), r.prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("health check left keys: %v", keys)
	}
	if r.PoolStats() == nil {
		t.Errorf("PoolStats = nil")
	}
}

func TestRedisOptionsFromURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		dial time.Duration
		read time.Duration
		pool time.Duration
		retr int
	}{
		{"redis://localhost:6379/0", DefaultDialTimeout, DefaultReadTimeout, DefaultPoolTimeout, -1},
		{"redis://localhost:6379/0?dial_timeout=1s&read_timeout=2s&pool_timeout=3s&max_retries=2", time.Second, 2 * time.Second, 3 * time.Second, 2},
	}
	for _, tc := range tests {
		o, err := RedisOptionsFromURL(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		got := []any{o.DialTimeout, o.ReadTimeout, o.PoolTimeout, o.MaxRetries}
		want := []any{tc.dial, tc.read, tc.pool, tc.retr}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.url, diff)
		}
		if tc.retr == -1 && o.WriteTimeout != DefaultWriteTimeout {
			t.Errorf("%s: write timeout %v", tc.url, o.WriteTimeout)
		}
		if o.DialerRetries != 1 {
			t.Errorf("%s: %d dial attempts, want 1", tc.url, o.DialerRetries)
		}
	}
	if _, err := RedisOptionsFromURL("http://x"); err == nil {
		t.Errorf("RedisOptionsFromURL(http://x) succeeded")
	}
}

// FuzzDecodeValue checks that no cached value, however corrupt, panics the
// decoder, that what the encoder writes decodes to the same row, and that a
// decode of some features only (a store.FeatureHint) refuses exactly what
// the whole decode refuses and gives the same values of those features.
func FuzzDecodeValue(f *testing.F) {
	r := movie("", "", at(1), at(2), "기생충")
	r.Values["n"] = nil
	r.Values["t"] = true
	v, err := appendValue(nil, rowVersion(&r, kindRow), &r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v)
	f.Add(v[:versionLen])
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got, part feature.Row
		kind, err := decodeValue(string(b), &got, nil)
		only := []string{"title", "n", "rating", "absent"}
		pkind, perr := decodeValue(string(b), &part, only)
		if (err == nil) != (perr == nil) || kind != pkind {
			t.Fatalf("whole decode: kind %d, error %v; decode of %v: kind %d, error %v", kind, err, only, pkind, perr)
		}
		if err != nil || kind != kindRow {
			return
		}
		// The partial decode has every feature of only the row has (and
		// may have more), each with the whole decode's value.
		want := feature.Values{}
		for name := range part.Values {
			want[name] = got.Values[name]
		}
		for _, name := range only {
			if v, ok := got.Values[name]; ok {
				want[name] = v
			}
		}
		if diff := cmp.Diff(want, part.Values, cmpopts.EquateNaNs()); diff != "" {
			t.Errorf("decode of %v differs from the whole decode's values (-whole +part):\n%s", only, diff)
		}
		again, err := appendValue(nil, rowVersion(&got, kindRow), &got)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var back feature.Row
		if _, err := decodeValue(string(again), &back, nil); err != nil {
			t.Fatalf("decode of re-encoded value: %v", err)
		}
		if diff := cmp.Diff(got, back, cmpopts.EquateNaNs()); diff != "" {
			t.Errorf("re-encoded row differs (-first +second):\n%s", diff)
		}
	})
}

// TestTombstone: a tombstone reads as Gone (not a hit), and no row, fence
// or absence replaces it.
func TestTombstone(t *testing.T) {
	t.Parallel()
	eachCache(t, func(t *testing.T, c Cache) {
		set(t, c, SetEntry{Key: "g:1", Row: row(at(1), at(1), "row")})
		set(t, c, SetEntry{Key: "g:1", Gone: true})
		set(t, c, SetEntry{Key: "g:1", Row: row(at(9), at(9), "newer")},
			SetEntry{Key: "g:1", Row: row(at(10), at(10), "written"), Written: true},
			SetEntry{Key: "g:1"})
		e := get(t, c, "g:1", "g:2")
		if !e[0].Gone || e[0].Found || e[0].Row != nil {
			t.Errorf("tombstone read as %+v", e[0])
		}
		if e[1].Gone {
			t.Errorf("a missing key read as a tombstone")
		}
	})
}

// TestCasArgs: each entry's key and arguments are what it encodes to alone,
// call after call (each sizing its buffer from the one before, with rows
// larger and smaller than before); a row that cannot be encoded is left
// out, or set as a fence if it was written.
func TestCasArgs(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = client.Close() })
	rc := NewRedis(client, RedisOptions{Prefix: "p", TTL: time.Hour, AbsenceTTL: time.Minute})
	bad := &feature.Row{Group: "g", EntityID: "x", EventTime: at(3), WriteTime: at(3), Values: feature.Values{"d": time.Second}}
	for _, title := range []string{"short", strings.Repeat("long ", 400), "s"} {
		entries := []SetEntry{
			{Key: "g:1:a", Row: row(at(1), at(2), title)},
			{Key: "g:1:bad", Row: bad},
			{Key: "g:1:b", Row: row(at(2), at(2), title), Written: true},
			{Key: "g:1:absent"},
			{Key: "g:1:fence", Row: bad, Written: true},
			{Key: "g:1:gone", Gone: true},
		}
		keys, args := rc.casArgs(entries)
		want := []string{"p:g:1:a", "p:g:1:b", "p:g:1:absent", "p:g:1:fence", "p:g:1:gone"}
		if !slices.Equal(keys, want) || len(args) != len(want) {
			t.Fatalf("keys %q (%d argument lists), want %q", keys, len(args), want)
		}
		for i, e := range []SetEntry{entries[0], entries[2], entries[3], entries[4], entries[5]} {
			v := entryVersion(&e)
			value, err := appendValue(nil, v, e.Row)
			if err != nil {
				v[24] = kindFence
				value = v[:]
			}
			ttl, written := "60000", "0"
			if v[24] == kindRow || v[24] == kindGone {
				ttl = "3600000"
			}
			if e.Written {
				written = "1"
			}
			got := args[i]
			if len(got) != 4 || !sameValue(t, got[0].([]byte), value) || got[1] != ttl || got[2] != written || got[3] != "60000" {
				t.Errorf("%s: arguments %q, want [%q %s %s 60000]", keys[i], got, value, ttl, written)
			}
		}
	}
}

// sameValue reports whether two cache encodings hold the same version and
// row (the features' order follows the map's).
func sameValue(t *testing.T, a, b []byte) bool {
	t.Helper()
	var ra, rb feature.Row
	ka, errA := decodeValue(string(a), &ra, nil)
	kb, errB := decodeValue(string(b), &rb, nil)
	if errA != nil || errB != nil {
		t.Fatalf("decode: %v, %v", errA, errB)
	}
	return string(a[:versionLen]) == string(b[:versionLen]) && ka == kb && len(a) == len(b) && cmp.Equal(ra, rb)
}
