// Package logfile is an append-only log file rotated by size and by day:
// when a write would take the file past its maximum size, or (with a maximum
// age) is the first of a new UTC day, the file is renamed to NAME.1 (NAME.1
// to NAME.2, and so on) and a new NAME is started. Rotated files are removed
// beyond the kept count and, with a maximum age, once their last line is
// older than it: "keep 30 days" holds whatever the traffic, within the
// size bound of maximum size × (kept count + 1). A line never splits across
// files: a Write lands whole in one file, or, holding several lines, is cut
// only at line ends.
//
// A File is safe for concurrent use by one process; two processes must not
// write the same path (each would rotate the other's file).
package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// File is a size-rotated log file. It implements io.WriteCloser and
// zapcore.WriteSyncer.
type File struct {
	path     string
	maxSize  int64
	maxFiles int
	maxAge   time.Duration // 0: no age limit, no daily rotation
	now      func() time.Time

	mu     sync.Mutex
	f      *os.File // nil after a failed rotation or once closed
	size   int64
	day    string // the UTC date of the current file's lines ("" while empty)
	closed bool
}

// Option configures Open.
type Option func(*File)

// WithMaxAge removes rotated files whose last line is older than d, and
// rotates the file on the first write of each UTC day, so that files are
// removed a day at a time. 0 (the default) keeps files by count only.
func WithMaxAge(d time.Duration) Option { return func(l *File) { l.maxAge = d } }

// WithClock sets the clock that dates lines for the daily rotation and the
// age limit; time.Now by default. File ages are their modification times.
func WithClock(now func() time.Time) Option { return func(l *File) { l.now = now } }

// Open opens (creating it and its directory if needed) the log file at path
// for appending. The file rotates when a write would take it past maxSize
// bytes; maxFiles rotated files are kept (path.1 the newest, path.N the
// oldest; 0 keeps none). With WithMaxAge, it also rotates daily and removes
// rotated files older than the maximum age, at Open and at every rotation.
func Open(path string, maxSize int64, maxFiles int, opts ...Option) (*File, error) {
	if maxSize < 1 {
		return nil, fmt.Errorf("log file %s: maximum size must be positive, got %d", path, maxSize)
	}
	if maxFiles < 0 {
		return nil, fmt.Errorf("log file %s: kept files must not be negative, got %d", path, maxFiles)
	}
	l := &File{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	if l.maxAge < 0 {
		return nil, fmt.Errorf("log file %s: maximum age must not be negative, got %s", path, l.maxAge)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	if err := l.prune(); err != nil {
		_ = l.f.Close()
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640) // #nosec G302 -- group-readable so that a log shipper in the operator's group can read it; no secrets are logged
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat log file: %w", err)
	}
	l.f, l.size, l.day = f, st.Size(), ""
	if st.Size() > 0 {
		l.day = utcDay(st.ModTime()) // the day of its last line
	}
	return nil
}

func utcDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// next says how many bytes of p go next into a file, and whether the file
// must rotate before them. A p that fits goes whole. One that does not is
// cut at line ends: the lines that still fit go into the current file, the
// rest into new ones, as many whole lines as fit in each (a line longer than
// the maximum goes alone). The first line of a new day, when files age out,
// starts a new file.
func (l *File) next(p []byte, now time.Time) (n int, rotate bool) {
	newDay := l.maxAge > 0 && l.size > 0 && l.day != utcDay(now)
	if !newDay {
		if l.size+int64(len(p)) <= l.maxSize {
			return len(p), false
		}
		if n := wholeLines(p, l.maxSize-l.size); n > 0 {
			return n, false
		}
		if l.size == 0 {
			return lineEnd(p), false
		}
	}
	if n := wholeLines(p, l.maxSize); n > 0 {
		return n, true
	}
	return lineEnd(p), true
}

// wholeLines is the length of the longest run of whole lines at the start of
// p that takes at most room bytes (0 if not even the first line does).
func wholeLines(p []byte, room int64) int {
	if room <= 0 {
		return 0
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	return bytes.LastIndexByte(p, '\n') + 1
}

// lineEnd is the length of p's first line, its newline included (all of p
// if it has none).
func lineEnd(p []byte) int {
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return i + 1
	}
	return len(p)
}

// Write appends p. A p of several lines (a buffer's flush) is cut at line
// ends where the file must rotate (next), so every line lands whole in one
// file and no file passes its maximum size except by a single line longer
// than it. When a rotation fails, the lines are still written (to the
// unrotated file) and the rotation's error is returned: a full or read-only
// disk loses lines, a failed rename does not.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("write %s: %w", l.path, os.ErrClosed)
	}
	if l.f == nil { // an earlier rotation could not reopen the file
		if err := l.open(); err != nil {
			return 0, err
		}
	}
	var rotErr error
	now := l.now()
	written := 0
	for written < len(p) {
		n, rotate := l.next(p[written:], now)
		if rotate {
			if err := l.rotate(); err != nil {
				rotErr = errors.Join(rotErr, err)
				if l.f == nil {
					return written, rotErr
				}
			}
		}
		m, err := l.f.Write(p[written : written+n])
		written += m
		l.size += int64(m)
		if m > 0 && l.day == "" {
			l.day = utcDay(now)
		}
		if err != nil {
			return written, errors.Join(rotErr, fmt.Errorf("write %s: %w", l.path, err))
		}
	}
	return written, rotErr
}

// rotate shifts path.i to path.i+1 (dropping the oldest), path to path.1,
// and starts an empty path. If shifting fails, the current file is reopened
// so that logging goes on (into an oversized file) and the error is returned.
func (l *File) rotate() error {
	closeErr := l.f.Close()
	l.f = nil
	shiftErr := l.shift()
	openErr := l.open()
	var pruneErr error
	if shiftErr == nil {
		pruneErr = l.prune()
	}
	if err := errors.Join(closeErr, shiftErr, openErr, pruneErr); err != nil {
		return fmt.Errorf("rotate %s: %w", l.path, err)
	}
	return nil
}

// prune removes the rotated files whose last line is older than the
// maximum age: path.i is older than path.i-1, so from the first one too old
// on. Without a maximum age it does nothing (shift keeps the count).
func (l *File) prune() error {
	if l.maxAge == 0 {
		return nil
	}
	cutoff := l.now().Add(-l.maxAge)
	var errs []error
	old := false
	for i := 1; i <= l.maxFiles; i++ {
		name := l.path + "." + strconv.Itoa(i)
		st, err := os.Stat(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if old = old || st.ModTime().Before(cutoff); old {
			if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (l *File) shift() error {
	if l.maxFiles == 0 {
		return os.Remove(l.path)
	}
	name := func(i int) string { return l.path + "." + strconv.Itoa(i) }
	if err := os.Remove(name(l.maxFiles)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for i := l.maxFiles - 1; i >= 1; i-- {
		if err := os.Rename(name(i), name(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return os.Rename(l.path, name(1))
}

// Sync commits the file's contents to stable storage.
func (l *File) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("sync %s: %w", l.path, os.ErrClosed)
	}
	if l.f == nil {
		return nil
	}
	return l.f.Sync()
}

// Close syncs and closes the file; later writes fail with os.ErrClosed.
// Closing twice is not an error.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.f == nil {
		l.closed = true
		return nil
	}
	err := errors.Join(l.f.Sync(), l.f.Close())
	l.f, l.closed = nil, true
	if err != nil {
		return fmt.Errorf("close %s: %w", l.path, err)
	}
	return nil
}
