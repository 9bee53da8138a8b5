package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
)

// nearPair returns two caches with near caches, as two processes would
// have them (each its own client), on the Redis at url under one random
// prefix, and waits until both near caches can be used.
func nearPair(t *testing.T, url string) (a, b *Redis) {
	t.Helper()
	prefix := fmt.Sprintf("fs_near_%016x", rand.Uint64())
	open := func() *Redis {
		opts, err := RedisOptionsFromURL(url)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(opts)
		r := NewRedis(c, RedisOptions{Prefix: prefix, NearCache: 1000})
		t.Cleanup(func() {
			_ = r.Close()
			_ = c.Close()
		})
		waitNear(t, r)
		return r
	}
	a, b = open(), open()
	t.Cleanup(func() { _ = a.Clear(context.Background()) })
	return a, b
}

// waitNear waits until r's near cache may answer reads.
func waitNear(t *testing.T, r *Redis) {
	t.Helper()
	testenv.Eventually(t, time.Minute, "near cache usable", func() (bool, string) {
		d := map[string]any{}
		r.nearDetails(d)
		return r.near.track.current(), fmt.Sprint(d["near_cache"])
	})
}

// budgetOf returns the budget of the row Get returns for key, or -1 for a
// miss or an absence.
func budgetOf(t *testing.T, r *Redis, key string) int64 {
	t.Helper()
	got, err := r.Get(context.Background(), []string{key})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if !got[0].Found || got[0].Row == nil {
		return -1
	}
	return got[0].Row.Values["budget"].(int64)
}

// fillRow fills the row of version i for key, then runs the writers'
// barrier, which a fill does not (a fill never changes what a read
// answers: at worst another process's copy still says "miss"), so that the
// test can expect every process to read it at once.
func fillRow(t testing.TB, r *Redis, key string, i int) int64 {
	t.Helper()
	v := setRow(t, r, key, i, true)
	if err := r.afterWrite(context.Background()); err != nil {
		t.Fatal(err)
	}
	return v
}

// setRow writes the row of version i (event and write time at(i)) for key,
// as a write, or as a fill if fill is set.
func setRow(t testing.TB, r *Redis, key string, i int, fill bool) int64 {
	t.Helper()
	m := movie("g", "1", at(i), at(i), "t")
	if err := r.Set(context.Background(), []SetEntry{{Key: key, Row: &m, Written: !fill}}); err != nil {
		t.Fatalf("set %s: %v", key, err)
	}
	return at(i).UnixMicro()
}

// A write acknowledged by one process is what every other process's near
// cache answers next, at once, while repeated reads are answered from it.
func TestNearCacheReadsTheLatestWrite(t *testing.T) {
	a, b := nearPair(t, testenv.RedisURL(t))
	const key = "g:inc:1"
	fillRow(t, a, key, 0)
	for i := 1; i <= 200; i++ {
		want := setRow(t, a, key, i, false)
		for range 3 {
			if got := budgetOf(t, b, key); got != want {
				t.Fatalf("write %d acknowledged by a; b read budget %d, want %d", i, got, want)
			}
		}
	}
	// Whether a read may use the copy depends on the heartbeat's timing
	// on a loaded machine; that some did is what this checks.
	if h := b.near.hits.Load(); h == 0 {
		t.Fatal("b's near cache answered none of the 600 reads")
	} else {
		t.Logf("b's near cache answered %d of the 600 reads", h)
	}
}

// Under concurrent writes and reads in both processes, no read returns a
// version older than one acknowledged before it began.
func TestNearCacheNeverGoesBehindAnAck(t *testing.T) {
	a, b := nearPair(t, testenv.RedisURL(t))
	const key = "g:inc:2"
	fillRow(t, a, key, 0)
	var acked atomic.Int64
	acked.Store(at(0).UnixMicro())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, r := range []*Redis{a, b, b} {
		wg.Go(func() {
			for ctx.Err() == nil {
				floor := acked.Load()
				got, err := r.Get(ctx, []string{key})
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				if got[0].Row == nil {
					continue // a fence: a miss
				}
				if v := got[0].Row.Values["budget"].(int64); v < floor {
					errs <- fmt.Errorf("read budget %d after %d was acknowledged", v, floor)
					return
				}
			}
		})
	}
	for i := 1; i <= 300 && len(errs) == 0; i++ {
		acked.Store(setRow(t, a, key, i, false))
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if b.near.hits.Load() == 0 {
		t.Fatal("b's near cache answered no read")
	}
}

// Writes by any client, deletes and flushes reach the near cache; after a
// writer's barrier, every process reads them.
func TestNearCacheSeesEveryChange(t *testing.T) {
	a, b := nearPair(t, testenv.RedisURL(t))
	raw := newRedisClient(t)
	ctx := context.Background()
	key := "g:inc:3"
	full := b.prefix + key
	want := fillRow(t, a, key, 1)
	if got := budgetOf(t, b, key); got != want {
		t.Fatalf("read %d, want %d", got, want)
	}
	readHit(t, b, key, want)
	if err := raw.Del(ctx, full).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.afterWrite(ctx); err != nil {
		t.Fatal(err)
	}
	if got := budgetOf(t, b, key); got != -1 {
		t.Fatalf("after DEL another client read %d, want a miss", got)
	}
	want = fillRow(t, a, key, 2)
	if got := budgetOf(t, b, key); got != want {
		t.Fatalf("after a new fill read %d, want %d", got, want)
	}
	if err := raw.PExpire(ctx, full, time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "expired key read as a miss", func() (bool, string) {
		got := budgetOf(t, b, key)
		return got == -1, fmt.Sprint("read ", got)
	})
	readHit(t, b, key, fillRow(t, a, key, 3))
	if err := raw.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.afterWrite(ctx); err != nil {
		t.Fatal(err)
	}
	if got := budgetOf(t, b, key); got != -1 {
		t.Fatalf("after FLUSHDB read %d, want a miss", got)
	}
}

// A fill of a value that a write replaced while the read was on its way
// is not kept: the next read returns the write.
func TestNearCacheFillRacingAWrite(t *testing.T) {
	a, b := nearPair(t, testenv.RedisURL(t))
	const key = "g:inc:4"
	old := fillRow(t, a, key, 1)
	var want int64
	b.afterFetch = func() {
		b.afterFetch = nil
		want = setRow(t, a, key, 2, false)
	}
	if got := budgetOf(t, b, key); got != old {
		t.Fatalf("racing read: %d, want the value it fetched, %d", got, old)
	}
	for range 3 {
		if got := budgetOf(t, b, key); got != want {
			t.Fatalf("read after the racing write: %d, want %d", got, want)
		}
	}
}

// A tracking connection that breaks turns the near cache off at once;
// reads go to Redis (and see what changed meanwhile) until it is set up
// again, empty.
func TestNearCacheConnectionKilled(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	a, b := nearPair(t, srv.URL())
	ctx := context.Background()
	const key = "g:inc:5"
	fillRow(t, a, key, 1)
	budgetOf(t, b, key)
	killTracking(t, a, b)
	if b.near.track.current() {
		t.Fatal("near cache usable right after its connection was killed")
	}
	if err := a.client.Set(ctx, b.prefix+key, "garbage-that-is-not-an-entry-000000000", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, []string{key}); err == nil {
		t.Fatal("read after the connection was killed answered from the near cache, not Redis's new value")
	}
	if err := a.client.Del(ctx, b.prefix+key).Err(); err != nil {
		t.Fatal(err)
	}
	want := fillRow(t, a, key, 3)
	waitNear(t, b)
	if got := budgetOf(t, b, key); got != want {
		t.Fatalf("after reconnection read %d, want %d", got, want)
	}
}

// killTracking disconnects b's tracking connection and waits until Redis
// has dropped it.
func killTracking(t *testing.T, a, b *Redis) {
	t.Helper()
	ctx := context.Background()
	c := a.client.(*redis.Client)
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for line := range strings.Lines(list) {
		if strings.Contains(line, " name="+b.nearName+" ") {
			id, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
			ids = append(ids, id)
		}
	}
	if len(ids) != 2 {
		t.Fatalf("want the 2 tracking connections (a's and b's) in CLIENT LIST, found %d:\n%s", len(ids), list)
	}
	// Which of the two is b's does not matter to b's checks: kill both.
	for _, id := range ids {
		if err := c.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// readHit reads key from r until a read is answered by the near cache
// (reads may not use it while a heartbeat is late on a loaded machine),
// and checks every read returns want.
func readHit(t *testing.T, r *Redis, key string, want int64) {
	t.Helper()
	testenv.Eventually(t, time.Minute, "a read answered by the near cache", func() (bool, string) {
		hits := r.near.hits.Load()
		if got := budgetOf(t, r, key); got != want {
			t.Fatalf("read %d, want %d", got, want)
		}
		return r.near.hits.Load() > hits, "no hit"
	})
}

// A killed Redis is never answered for by the near cache; a paused one
// stops being answered for within the lease.
func TestNearCacheRedisDownOrHung(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	a, b := nearPair(t, srv.URL())
	const key = "g:inc:6"
	want := fillRow(t, a, key, 1)
	readHit(t, b, key, want)
	srv.Pause()
	paused := time.Now()
	// Off for good once the last PING Redis answered before it stopped was
	// sent more than a lease ago (a PONG read late may renew the lease
	// until then: it is still within it).
	testenv.Eventually(t, time.Minute, "near cache's lease over while Redis is paused", func() (bool, string) {
		tr := b.near.track
		return tr.since()-tr.lastPong.Load() > int64(nearLease) && !tr.current(), "still usable"
	})
	// SIGSTOP may land after Redis answered one more command, so what is
	// checked is that the read did not come from the copy.
	hits := b.near.hits.Load()
	_, _ = b.Get(context.Background(), []string{key})
	if b.near.hits.Load() != hits {
		t.Fatal("read of a paused Redis answered from the near cache")
	}
	t.Logf("near cache off %v after the pause (lease %v)", time.Since(paused), nearLease)
	srv.Resume()
	waitNear(t, b)
	readHit(t, b, key, want)
	hits = b.near.hits.Load()
	srv.Kill()
	if _, err := b.Get(context.Background(), []string{key}); err == nil {
		t.Fatal("read of a killed Redis answered")
	}
	if b.near.hits.Load() != hits {
		t.Fatal("read of a killed Redis answered from the near cache")
	}
	srv.Restart()
	waitNear(t, b)
	if got := budgetOf(t, b, key); got != -1 {
		t.Fatalf("restarted Redis (empty) read as %d", got)
	}
}

// A writer's barrier finds the tracking connections that did not
// acknowledge in CLIENT LIST as Redis writes it.
func TestNearLaggards(t *testing.T) {
	a, b := nearPair(t, testenv.RedisURL(t))
	list, err := a.client.(*redis.Client).Do(context.Background(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	ids := nearLaggards(list, b.nearName, nil)
	if len(ids) != 2 {
		t.Fatalf("want a's and b's tracking connections among the pubsub clients, found %v in:\n%s", ids, list)
	}
	if got := nearLaggards(list, b.nearName, map[string]bool{ids[0]: true}); len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("with %s acknowledged: %v, want [%s]", ids[0], got, ids[1])
	}
	if got := nearLaggards(list, b.nearName+"x", nil); len(got) != 0 {
		t.Fatalf("another prefix's connections reported: %v", got)
	}
}

// A subscriber of the barrier channel that never acknowledges holds a
// write back for nearDrainTimeout, then is disconnected; the others are not.
func TestNearBarrierDisconnectsALaggard(t *testing.T) {
	a, b := nearPair(t, testenv.RedisURL(t))
	opts, err := RedisOptionsFromURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", opts.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var cmd []byte
	cmd = appendRespCommand(cmd, "HELLO", "3", "SETNAME", b.nearName)
	cmd = appendRespCommand(cmd, "SUBSCRIBE", b.nearName)
	if _, err := conn.Write(cmd); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "the laggard subscribed", func() (bool, string) {
		n, err := a.client.(*redis.Client).PubSubNumSub(context.Background(), b.nearName).Result()
		return err == nil && n[b.nearName] == 3, fmt.Sprint(n, err)
	})
	connects := func(r *Redis) uint64 {
		r.near.track.mu.Lock()
		defer r.near.track.mu.Unlock()
		return r.near.track.connects
	}
	before := connects(b)
	start := time.Now()
	setRow(t, a, "g:inc:7", 1, false)
	if waited := time.Since(start); waited < nearDrainTimeout {
		t.Fatalf("write acknowledged after %v, before the laggard's %v were up", waited, nearDrainTimeout)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := conn.Read(buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the laggard was not disconnected")
			}
			break // disconnected
		}
	}
	start = time.Now()
	setRow(t, a, "g:inc:7", 2, false)
	if waited := time.Since(start); waited >= nearDrainTimeout {
		t.Fatalf("write without a laggard waited %v", waited)
	}
	if after := connects(b); after != before {
		t.Fatalf("b's tracking connection, which acknowledged, was set up again (%d -> %d)", before, after)
	}
}

// A reader that does not promise to only read gets its own copy of a row
// the near cache answers; one that does shares the copy's values.
func TestNearCacheCopiesUnlessShared(t *testing.T) {
	a, b := nearPair(t, testenv.RedisURL(t))
	const key = "g:inc:8"
	want := fillRow(t, a, key, 1)
	readHit(t, b, key, want)
	ctx := context.Background()
	for range 3 {
		hits := b.near.hits.Load()
		got, err := b.Get(ctx, []string{key})
		if err != nil {
			t.Fatal(err)
		}
		got[0].Row.Values["budget"] = int64(-5) // a reader of its own copy may change it
		if b.near.hits.Load() == hits {
			continue // not answered by the copy (a late heartbeat): try again
		}
		if v := budgetOf(t, b, key); v != want {
			t.Fatalf("after a reader changed its row, the near cache answers %d, want %d", v, want)
		}
	}
	only := store.WithReadHint(ctx, []string{"title"}, false)
	testenv.Eventually(t, time.Minute, "a hinted read answered by the near cache", func() (bool, string) {
		hits := b.near.hits.Load()
		got, err := b.Get(only, []string{key})
		if err != nil {
			t.Fatal(err)
		}
		if b.near.hits.Load() == hits {
			return false, "not answered by the copy"
		}
		if vals := got[0].Row.Values; len(vals) != 1 || vals["title"] != "t" {
			t.Fatalf("hinted read of title: %v", vals)
		}
		return true, ""
	})
	shared := store.WithReadHint(ctx, nil, true)
	testenv.Eventually(t, time.Minute, "two shared reads answered by the near cache", func() (bool, string) {
		hits := b.near.hits.Load()
		x, err := b.Get(shared, []string{key})
		if err != nil {
			t.Fatal(err)
		}
		y, err := b.Get(shared, []string{key})
		if err != nil {
			t.Fatal(err)
		}
		if b.near.hits.Load() != hits+2 {
			return false, "not both answered by the copy"
		}
		if reflect.ValueOf(x[0].Row.Values).UnsafePointer() != reflect.ValueOf(y[0].Row.Values).UnsafePointer() {
			t.Fatal("shared reads got different Values maps: the near cache copied them")
		}
		// The row itself, no copy: it carries its key's group and entity,
		// so Store writes nothing into it.
		if x[0].Row != y[0].Row {
			t.Fatal("shared reads got different Rows: the near cache copied them")
		}
		if g, id := x[0].Row.Group, x[0].Row.EntityID; g != "g" || id != "8" {
			t.Fatalf("shared row of %s names group %q, entity %q", key, g, id)
		}
		return true, ""
	})
	// A key that does not name a group and an entity: shared reads get
	// copies of their own, into which the caller may write them.
	const odd = "g8"
	fillRow(t, a, odd, 1)
	testenv.Eventually(t, time.Minute, "two shared reads of "+odd+" answered by the near cache", func() (bool, string) {
		hits := b.near.hits.Load()
		x, err := b.Get(shared, []string{odd})
		if err != nil {
			t.Fatal(err)
		}
		y, err := b.Get(shared, []string{odd})
		if err != nil {
			t.Fatal(err)
		}
		if b.near.hits.Load() != hits+2 {
			return false, "not both answered by the copy"
		}
		if x[0].Row == nil || x[0].Row == y[0].Row || x[0].Row.Group != "" || x[0].Row.EntityID != "" {
			t.Fatalf("shared reads of %s got rows %p and %p (group %q, entity %q), want copies without them",
				odd, x[0].Row, y[0].Row, x[0].Row.Group, x[0].Row.EntityID)
		}
		return true, ""
	})
}

// keyRow finds a key's group and entity only in keys as Store builds them.
func TestNearKeyRow(t *testing.T) {
	for key, want := range map[string][2]string{
		"movies:1749090252000000000:42": {"movies", "42"},
		"g:inc:a:b":                     {"g", "a:b"}, // an entity id may have colons
		"movies:1749090252000000000":    {"", ""},     // a tombstone
		"movies:1:":                     {"", ""},
		":1:42":                         {"", ""},
		"movies::42":                    {"", ""},
		"g8":                            {"", ""},
	} {
		if g, id := keyRow(key); g != want[0] || id != want[1] {
			t.Errorf("keyRow(%q) = %q, %q; want %q, %q", key, g, id, want[0], want[1])
		}
	}
}

// A fill of a value the copy holds byte for byte answers with the copy,
// decoding nothing; any other value is decoded and replaces it.
func TestNearFillReusesTheSameValue(t *testing.T) {
	n := newNearCache("fs:", 100)
	n.track = &tracker{}
	n.track.live.Store(true)
	m := movie("g", "1", at(1), at(1), "t")
	encode := func(r *feature.Row) string {
		b, err := appendValue(nil, rowVersion(r, kindRow), r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	const key = "g:1:1"
	fill := func(s string) *feature.Row {
		dec, err := n.fill([]string{key}, []any{s}, n.begin([]string{key}))
		if err != nil {
			t.Fatal(err)
		}
		return dec[0].row
	}
	same := encode(&m) // map order: encoding twice may not give the same bytes
	first := fill(same)
	if again := fill(strings.Clone(same)); again != first {
		t.Fatal("a fill of the value the copy holds decoded it again")
	}
	m.Values["title"] = "u" // same version, other bytes
	if other := fill(encode(&m)); other == first || other.Values["title"] != "u" {
		t.Fatalf("a fill of another value answered the copy's: title %v", other.Values["title"])
	}
	if v, _ := n.peek(key); v.row.Values["title"] != "u" {
		t.Fatalf("the copy holds title %v after a fill of another value", v.row.Values["title"])
	}
}
