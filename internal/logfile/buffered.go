package logfile

import (
	"io"
	"sync"
	"time"
)

// Buffered gathers log lines in memory and hands them to its writer several
// at a time: when the next line would overflow the buffer, every flush
// interval, and on Flush, Sync and Close. One write per batch instead of one
// per line is what it saves; the price is that a process killed outright
// loses the lines of its last interval. Lines stay whole: the buffer is
// flushed before a line that does not fit, and a line larger than the whole
// buffer is written on its own, so the writer only ever receives whole lines
// (a File then rotates between them).
//
// A Buffered is safe for concurrent use.
type Buffered struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	shut bool // after Close: lines go straight to w
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewBuffered buffers up to size bytes for w and flushes them every
// interval (never on a timer if interval is 0). Close stops the timer.
func NewBuffered(w io.Writer, size int, interval time.Duration) *Buffered {
	b := &Buffered{w: w, buf: make([]byte, 0, size), stop: make(chan struct{}), done: make(chan struct{})}
	if interval <= 0 {
		close(b.done)
		return b
	}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				_ = b.Flush() // a failed flush reports on the next Write, Sync or Close too
			}
		}
	}()
	return b
}

// Write buffers p, one or more whole lines.
func (b *Buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shut {
		return b.w.Write(p)
	}
	if len(b.buf)+len(p) > cap(b.buf) {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(b.buf) {
			return b.w.Write(p)
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes the buffered lines now.
func (b *Buffered) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

// flushLocked writes the buffer; on an error the buffered lines are dropped,
// as an unbuffered write's line would be, so one failure is reported once.
func (b *Buffered) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Sync flushes, then syncs the writer if it can be synced (zapcore.WriteSyncer).
func (b *Buffered) Sync() error {
	if err := b.Flush(); err != nil {
		return err
	}
	if s, ok := b.w.(interface{ Sync() error }); ok {
		return s.Sync()
	}
	return nil
}

// Close stops the flush timer and flushes; it does not close the writer.
// Lines written after Close go straight to the writer, unbuffered.
func (b *Buffered) Close() error {
	b.once.Do(func() { close(b.stop) })
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	b.shut = true
	return b.flushLocked()
}
