package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	// nearLease is how long after its last PONG the copy may still be used:
	// a connection cut off without a reset (a partition, a paused Redis)
	// stops serving the copy within it.
	nearLease = 500 * time.Millisecond
	// nearDeadAfter is how long without a PONG before the connection is
	// closed and set up again.
	nearDeadAfter = 2 * time.Second
	// nearRetryMax bounds the pause between attempts to set up the
	// connection.
	nearRetryMax = 2 * time.Second
	// nearDrainTimeout is how long a writer's barrier waits for a tracking
	// connection to take its invalidations before disconnecting it.
	nearDrainTimeout = time.Second
)

// nearClientName names the tracking connections of prefix (CLIENT SETNAME),
// which is how a writer's barrier finds them in CLIENT LIST. A name may not
// contain spaces or newlines, so other bytes of the prefix become '_'.
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
	near   *nearCache
	dial   func(context.Context) (net.Conn, error)
	hello  []string // HELLO 3 with AUTH and SETNAME
	prefix string   // the tracked key prefix, with its colon
	start  time.Time

	live      atomic.Bool                     // the connection is set up: invalidations arrive
	applying  atomic.Int32                    // a read of the socket is being applied
	partial   atomic.Bool                     // a message is half read
	lastPong  atomic.Int64                    // since start, ns
	lastClean atomic.Int64                    // since start, ns: when the latest poll that found the socket empty began
	raw       atomic.Pointer[syscall.RawConn] // the live connection's socket

	mu        sync.Mutex
	connects  uint64
	lastErr   string
	lastErrAt time.Time

	stop chan struct{}
	done chan struct{}
}

func (t *tracker) since() int64 { return int64(time.Since(t.start)) }

// current reports whether the copy may answer a read now: the connection
// is up and answered within the lease, and every byte that reached its
// socket has been applied. The order of the checks matters: bytes that
// were in the socket when the read began are either still there (seen by
// the poll) or were taken by a read of the socket that counted itself in
// applying before it took them and leaves partial set if it could not
// apply them whole.
//
// The poll is a system call; concurrent reads share one: a poll that began
// after a read began and found the socket empty answers for that read too
// (lastClean is when the latest such poll began).
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
	return t.applying.Load() == 0 && !t.partial.Load()
}

// socketPending reports whether the socket has bytes to read or an end of
// stream (or cannot be polled).
func socketPending(rc syscall.RawConn) bool {
	pending := true
	err := rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		pending = err != nil || n != 0
	})
	return pending || err != nil
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
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("near cache: %T has no socket to watch", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("near cache: %w", err)
	}
	rest, err := t.handshake(conn)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Time{})
	t.near.flush()
	t.lastPong.Store(t.since())
	t.lastClean.Store(0)
	t.raw.Store(&rc)
	t.mu.Lock()
	t.connects++
	t.mu.Unlock()
	t.live.Store(true)
	go t.heartbeat(conn, stopped)
	err = t.readLoop(rc, rest)
	t.live.Store(false)
	t.raw.Store(nil)
	_ = conn.Close()
	t.near.flush()
	return fmt.Errorf("near cache: tracking connection lost: %w", err)
}

// handshake switches the connection to RESP3 with the credentials and the
// name, turns broadcast tracking on for the prefix, checks that CLIENT
// LIST is allowed (a writer's barrier needs it; see Redis.afterWrite) and
// subscribes. It returns the bytes read past the replies.
func (t *tracker) handshake(conn net.Conn) ([]byte, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var cmd []byte
	cmd = appendRespCommand(cmd, t.hello...)
	cmd = appendRespCommand(cmd, "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", t.prefix)
	cmd = appendRespCommand(cmd, "CLIENT", "LIST", "ID", "0")
	// Subscribed, the connection is of type pubsub, so a writer's barrier
	// lists only such connections (CLIENT LIST TYPE pubsub), not every
	// client of every process. The channel carries nothing; its
	// confirmation is a push, which apply ignores.
	cmd = appendRespCommand(cmd, "SUBSCRIBE", nearClientName(t.prefix))
	if _, err := conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("near cache: handshake: %w", err)
	}
	steps := []string{"HELLO", "CLIENT TRACKING", "CLIENT LIST"}
	buf := make([]byte, 0, 16<<10)
	for len(steps) > 0 {
		v, n, err := parseResp(buf)
		if errors.Is(err, errIncomplete) {
			if len(buf) == cap(buf) {
				buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
			}
			m, err := conn.Read(buf[len(buf):cap(buf)])
			if err != nil {
				return nil, fmt.Errorf("near cache: handshake: %w", err)
			}
			buf = buf[:len(buf)+m]
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("near cache: handshake: %w", err)
		}
		buf = buf[:copy(buf, buf[n:])]
		if v.kind == '>' {
			if err := t.apply(v); err != nil {
				return nil, err
			}
			continue
		}
		if v.kind == '-' {
			return nil, fmt.Errorf("near cache: %s: %s", steps[0], v.str)
		}
		steps = steps[1:]
	}
	return buf, nil
}

// heartbeat PINGs Redis every nearHeartbeat and closes the connection when
// it has not answered for nearDeadAfter.
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
		if _, err := conn.Write(ping); err != nil {
			_ = conn.Close()
			return
		}
	}
}

// readLoop reads the socket whenever it is readable and applies every
// whole message, until the connection breaks. Each read of the socket
// counts itself in applying while it runs and sets partial when it leaves
// half a message in buf.
func (t *tracker) readLoop(rc syscall.RawConn, buf []byte) error {
	if cap(buf) < 16<<10 {
		buf = append(make([]byte, 0, 16<<10), buf...)
	}
	var readErr error
	drain := func(fd uintptr) bool {
		t.applying.Add(1)
		defer t.applying.Add(-1)
		for {
			if len(buf) > 0 {
				rest, err := t.process(buf)
				if err != nil {
					readErr = err
					return true
				}
				buf = buf[:copy(buf, rest)]
			}
			t.partial.Store(len(buf) > 0)
			if len(buf) == cap(buf) {
				buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
			}
			n, err := syscall.Read(int(fd), buf[len(buf):cap(buf)])
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case errors.Is(err, syscall.EAGAIN):
				return false // wait until the socket is readable
			case err != nil:
				readErr = err
				return true
			case n == 0:
				readErr = io.EOF
				return true
			}
			buf = buf[:len(buf)+n]
		}
	}
	if err := rc.Read(drain); err != nil {
		return err
	}
	return readErr
}

// process applies every whole message at the start of buf and returns
// what is left (the start of a message).
func (t *tracker) process(buf []byte) ([]byte, error) {
	for len(buf) > 0 {
		v, n, err := parseResp(buf)
		if errors.Is(err, errIncomplete) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		buf = buf[n:]
		if err := t.apply(v); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// apply acts on one message: an invalidation push drops the keys it names
// (or everything, for a flush), a PONG renews the lease, an error ends the
// connection.
func (t *tracker) apply(v respValue) error {
	switch v.kind {
	case '>':
		if len(v.elems) < 2 || v.elems[0].str != "invalidate" {
			return nil
		}
		keys := v.elems[1]
		if keys.null {
			t.near.flush()
			return nil
		}
		names := make([]string, len(keys.elems))
		for i, k := range keys.elems {
			names[i] = k.str
		}
		t.near.invalidate(names)
	case '+':
		if v.str == "PONG" {
			t.lastPong.Store(t.since())
		}
	case '-':
		return fmt.Errorf("redis: %s", v.str)
	}
	return nil
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

// nearBehind returns the ids of the tracking connections named name that
// still have output in Redis, from a CLIENT LIST reply.
func nearBehind(list, name string) []string {
	var ids []string
	for line := range strings.Lines(list) {
		var id, cname string
		behind := false
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "id":
				id = v
			case "name":
				cname = v
			case "obl", "oll":
				behind = behind || v != "0"
			}
		}
		if cname == name && behind {
			ids = append(ids, id)
		}
	}
	return ids
}
