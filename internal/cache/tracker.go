package cache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Timing of the tracking connection (see nearCache).
const (
	// nearHeartbeat is how often the tracker PINGs Redis on its connection.
	nearHeartbeat = 100 * time.Millisecond
	// nearLease is how long after the sending of the last PING Redis
	// answered the copy may still be used: a connection cut off without a
	// reset (a partition, a paused Redis) or that does not keep up stops
	// serving the copy within it, before a writer's barrier gives up on it
	// (nearDrainTimeout, which must be longer).
	nearLease = 500 * time.Millisecond
	// nearDeadAfter is how long without a PONG before the connection is
	// closed and set up again.
	nearDeadAfter = 2 * time.Second
	// nearRetryMax bounds the pause between attempts to set up the
	// connection.
	nearRetryMax = 2 * time.Second
	// nearDrainTimeout is how long a writer's barrier waits for the
	// acknowledgements of the tracking connections before disconnecting
	// those that did not acknowledge.
	nearDrainTimeout = time.Second
)

// nearClientName names the tracking connections of prefix (CLIENT SETNAME)
// and their barrier channel. A name may not contain spaces or newlines, so
// other bytes of the prefix become '_'.
func nearClientName(prefix string) string {
	b := []byte("featurestore-near:" + prefix)
	for i, c := range b {
		if c <= ' ' || c > '~' {
			b[i] = '_'
		}
	}
	return string(b)
}

// tracker keeps the near cache's tracking connection (see nearCache).
type tracker struct {
	near    *nearCache
	dial    func(context.Context) (net.Conn, error)
	hello   []string // HELLO 3 with AUTH and SETNAME
	prefix  string   // the tracked key prefix, with its colon
	channel string   // the writers' barrier channel (nearClientName)
	start   time.Time

	live      atomic.Bool  // the connection is set up: invalidations and barriers arrive
	lastPong  atomic.Int64 // since start, ns: when the PING last answered was sent
	lastClean atomic.Int64 // since start, ns: when the latest poll that found the socket empty began
	raw       atomic.Pointer[syscall.RawConn]
	id        string // the connection's CLIENT ID, which its acknowledgements carry

	pingMu sync.Mutex
	pings  []int64 // since start, ns: when each PING not yet answered was sent

	mu        sync.Mutex
	connects  uint64
	lastErr   string
	lastErrAt time.Time

	stop chan struct{}
	done chan struct{}
}

func (t *tracker) since() int64 { return int64(time.Since(t.start)) }

// current reports whether the copy may answer a read now: the connection
// is up and Redis answered a PING sent within the lease. Every write
// acknowledged before the read began has been applied: its writer waited
// for this connection's acknowledgement of a barrier that Redis queued
// behind the write's invalidations (see Redis.afterWrite), or, after
// nearDrainTimeout, disconnected it. A connection that does not take its
// messages answers no PING sent since either, so its lease, counted from
// the sending of the PING, ends before the writer's wait does.
//
// And nothing is waiting in the socket: a connection killed or reset (an
// administrator's CLIENT KILL, a restarted Redis) is seen at once, before
// the reader has taken its end, as are invalidations of writes that need
// no barrier (fills). The poll is a system call; concurrent reads share
// one: a poll that began after a read began and found the socket empty
// answers for that read too (lastClean is when the latest such poll began).
func (t *tracker) current() bool {
	if t == nil || !t.live.Load() {
		return false
	}
	now := t.since()
	if now-t.lastPong.Load() > int64(nearLease) {
		return false
	}
	if t.lastClean.Load() < now {
		rc := t.raw.Load()
		if rc == nil || socketPending(*rc) {
			return false
		}
		t.lastClean.Store(now)
	}
	return true
}

// socketPending reports whether the socket has bytes to read or an end of
// stream (or cannot be polled).
func socketPending(rc syscall.RawConn) bool {
	pending := true
	err := rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}} // #nosec G115 -- a file descriptor, an int32 in the kernel
		n, err := unix.Poll(fds, 0)
		pending = err != nil || n != 0
	})
	return pending || err != nil
}

// rawConn returns the socket under conn (under TLS, the TCP connection's).
func rawConn(conn net.Conn) (syscall.RawConn, error) {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("near cache: %T has no socket to watch", conn)
	}
	return sc.SyscallConn()
}

// run sets the connection up, again and again, until close.
func (t *tracker) run() {
	defer close(t.done)
	retry := nearHeartbeat
	for {
		up := t.since()
		err := t.session()
		t.setErr(err)
		if t.since()-up > int64(nearDeadAfter) {
			retry = nearHeartbeat // it was up a while: retry soon
		}
		select {
		case <-t.stop:
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, nearRetryMax)
	}
}

func (t *tracker) close() {
	close(t.stop)
	<-t.done
}

func (t *tracker) setErr(err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	t.lastErr, t.lastErrAt = err.Error(), time.Now()
	t.mu.Unlock()
}

// session sets up one connection and applies what arrives on it until it
// breaks; the copy is emptied when it is set up and when it breaks.
func (t *tracker) session() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	conn, err := t.dial(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("near cache: dial: %w", err)
	}
	stopped := make(chan struct{})
	go func() { // close the connection on close
		select {
		case <-t.stop:
		case <-stopped:
		}
		_ = conn.Close()
	}()
	defer close(stopped)
	rc, err := rawConn(conn)
	if err != nil {
		return err
	}
	rest, err := t.handshake(conn)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Time{})
	t.near.flush()
	t.pingMu.Lock()
	t.pings = t.pings[:0]
	t.pingMu.Unlock()
	t.lastPong.Store(t.since())
	t.lastClean.Store(0)
	t.raw.Store(&rc)
	t.mu.Lock()
	t.connects++
	t.mu.Unlock()
	t.live.Store(true)
	go t.heartbeat(conn, stopped)
	err = t.readLoop(conn, rest)
	t.live.Store(false)
	t.raw.Store(nil)
	_ = conn.Close()
	t.near.flush()
	return fmt.Errorf("near cache: tracking connection lost: %w", err)
}

// handshake switches the connection to RESP3 with the credentials and the
// name, learns its id, turns broadcast tracking on for the prefix, checks
// that the commands of a writer's barrier are allowed (PUBLISH, LRANGE and
// CLIENT LIST, which finds a connection that does not acknowledge; see
// Redis.afterWrite) and subscribes to the barrier channel. It returns once the subscription is
// confirmed, with the bytes read past the replies.
func (t *tracker) handshake(conn net.Conn) ([]byte, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var cmd []byte
	cmd = appendRespCommand(cmd, t.hello...)
	cmd = appendRespCommand(cmd, "CLIENT", "ID")
	cmd = appendRespCommand(cmd, "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", t.prefix)
	cmd = appendRespCommand(cmd, "CLIENT", "LIST", "ID", "0")
	// What a writer's barrier runs, on a channel and a key nobody uses: a
	// user refused them keeps no near cache, and writers (which share the
	// servers' Redis user) skip the barrier when refused (Redis.afterWrite).
	cmd = appendRespCommand(cmd, "PUBLISH", t.channel+":check", "")
	cmd = appendRespCommand(cmd, "LRANGE", nearAckKey(t.prefix, "check"), "0", "0")
	cmd = appendRespCommand(cmd, "SUBSCRIBE", t.channel)
	if _, err := conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("near cache: handshake: %w", err)
	}
	steps := []string{"HELLO", "CLIENT ID", "CLIENT TRACKING", "CLIENT LIST", "PUBLISH", "LRANGE", "SUBSCRIBE"}
	buf := make([]byte, 0, 16<<10)
	for len(steps) > 0 {
		v, n, err := parseResp(buf)
		if errors.Is(err, errIncomplete) {
			if buf, err = readMore(conn, buf); err != nil {
				return nil, fmt.Errorf("near cache: handshake: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("near cache: handshake: %w", err)
		}
		buf = buf[:copy(buf, buf[n:])]
		switch {
		case v.kind == '-':
			return nil, fmt.Errorf("near cache: %s: %s", steps[0], v.str)
		case steps[0] == "SUBSCRIBE" && v.kind == '>' && len(v.elems) > 0 && v.elems[0].str == "subscribe":
			steps = steps[1:]
		case v.kind == '>':
			if err := t.apply(conn, v); err != nil {
				return nil, err
			}
		default:
			if steps[0] == "CLIENT ID" {
				t.id = v.str
			}
			steps = steps[1:]
		}
	}
	return buf, nil
}

// readMore reads into the free space of buf, growing it when full.
func readMore(conn net.Conn, buf []byte) ([]byte, error) {
	if len(buf) == cap(buf) {
		buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
	}
	n, err := conn.Read(buf[len(buf):cap(buf)])
	return buf[:len(buf)+n], err
}

// heartbeat PINGs Redis every nearHeartbeat, noting when each PING was
// sent, and closes the connection when none was answered for
// nearDeadAfter.
func (t *tracker) heartbeat(conn net.Conn, stopped <-chan struct{}) {
	ping := appendRespCommand(nil, "PING")
	tick := time.NewTicker(nearHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-stopped:
			return
		case <-tick.C:
		}
		if t.since()-t.lastPong.Load() > int64(nearDeadAfter) {
			_ = conn.Close()
			return
		}
		_ = conn.SetWriteDeadline(time.Now().Add(nearDeadAfter))
		t.pingMu.Lock() // the order of the queue is the order on the wire
		t.pings = append(t.pings, t.since())
		_, err := conn.Write(ping)
		t.pingMu.Unlock()
		if err != nil {
			_ = conn.Close()
			return
		}
	}
}

// readLoop applies every message that arrives, in order, until the
// connection breaks.
func (t *tracker) readLoop(conn net.Conn, buf []byte) error {
	if cap(buf) < 16<<10 {
		buf = append(make([]byte, 0, 16<<10), buf...)
	}
	for {
		for len(buf) > 0 {
			v, n, err := parseResp(buf)
			if errors.Is(err, errIncomplete) {
				break
			}
			if err != nil {
				return err
			}
			buf = buf[:copy(buf, buf[n:])]
			if err := t.apply(conn, v); err != nil {
				return err
			}
		}
		var err error
		if buf, err = readMore(conn, buf); err != nil {
			return err
		}
	}
}

// apply acts on one message: an invalidation drops the keys it names (or
// everything, for a flush); a barrier of the channel is acknowledged, now
// that everything before it is applied; a PONG renews the lease from when
// its PING was sent; an error ends the connection.
func (t *tracker) apply(conn net.Conn, v respValue) error {
	switch v.kind {
	case '>':
		if len(v.elems) == 0 {
			return nil
		}
		switch v.elems[0].str {
		case "invalidate":
			t.invalidate(v)
		case "message":
			if len(v.elems) == 3 && v.elems[1].str == t.channel {
				return t.acknowledge(conn, v.elems[2].str)
			}
		}
	case '+':
		if v.str == "PONG" {
			t.pingMu.Lock()
			if len(t.pings) > 0 {
				t.lastPong.Store(t.pings[0])
				t.pings = t.pings[1:]
			}
			t.pingMu.Unlock()
		}
	case '-':
		return fmt.Errorf("redis: %s", v.str)
	}
	return nil
}

func (t *tracker) invalidate(v respValue) {
	if len(v.elems) < 2 {
		return
	}
	keys := v.elems[1]
	if keys.null {
		t.near.flush()
		return
	}
	names := make([]string, len(keys.elems))
	for i, k := range keys.elems {
		names[i] = k.str
	}
	t.near.invalidate(names)
}

// acknowledge answers a writer's barrier: the connection's id pushed on
// the barrier's list, which expires.
func (t *tracker) acknowledge(conn net.Conn, token string) error {
	key := nearAckKey(t.prefix, token)
	var cmd []byte
	cmd = appendRespCommand(cmd, "RPUSH", key, t.id)
	cmd = appendRespCommand(cmd, "PEXPIRE", key, nearAckTTL)
	_ = conn.SetWriteDeadline(time.Now().Add(nearDeadAfter))
	if _, err := conn.Write(cmd); err != nil {
		return fmt.Errorf("near cache: acknowledge a barrier: %w", err)
	}
	return nil
}

// nearAckTTL is how long, in milliseconds, a barrier's list of
// acknowledgements lives.
const nearAckTTL = "10000"

// nearAckKey is the list where the near caches of prefix acknowledge the
// barrier token. It is outside the prefix, so it is neither tracked nor
// cleared with the cache.
func nearAckKey(prefix, token string) string {
	return "featurestore-near-ack:" + prefix + token
}

// details adds the tracking connection's state to the near cache's.
func (t *tracker) details(d map[string]any) {
	d["tracking"] = t.live.Load()
	d["usable"] = t.current()
	t.mu.Lock()
	defer t.mu.Unlock()
	d["connects"] = t.connects
	if t.lastErr != "" {
		d["last_error"] = t.lastErr
		d["last_error_at"] = t.lastErrAt.UTC().Format(time.RFC3339Nano)
	}
}

// nearLaggards returns the ids of the tracking connections named name,
// from a CLIENT LIST reply, that are not in acked.
func nearLaggards(list, name string, acked map[string]bool) []string {
	var ids []string
	for line := range strings.Lines(list) {
		var id, cname string
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "id":
				id = v
			case "name":
				cname = v
			}
		}
		if cname == name && !acked[id] {
			ids = append(ids, id)
		}
	}
	return ids
}
