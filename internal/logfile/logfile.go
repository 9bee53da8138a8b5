// Package logfile is an append-only log file rotated by size: when a write
// would take the file past its maximum size, the file is renamed to NAME.1
// (NAME.1 to NAME.2, and so on, the oldest beyond the kept count removed) and
// a new NAME is started. Every Write lands whole in one file, so a log line
// written with one call is never split across files.
//
// A File is safe for concurrent use by one process; two processes must not
// write the same path (each would rotate the other's file).
package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// File is a size-rotated log file. It implements io.WriteCloser and
// zapcore.WriteSyncer.
type File struct {
	path     string
	maxSize  int64
	maxFiles int

	mu     sync.Mutex
	f      *os.File // nil after a failed rotation or once closed
	size   int64
	closed bool
}

// Open opens (creating it and its directory if needed) the log file at path
// for appending. The file rotates when a write would take it past maxSize
// bytes; maxFiles rotated files are kept (path.1 the newest, path.N the
// oldest; 0 keeps none).
func Open(path string, maxSize int64, maxFiles int) (*File, error) {
	if maxSize < 1 {
		return nil, fmt.Errorf("log file %s: maximum size must be positive, got %d", path, maxSize)
	}
	if maxFiles < 0 {
		return nil, fmt.Errorf("log file %s: kept files must not be negative, got %d", path, maxFiles)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	l := &File{path: path, maxSize: maxSize, maxFiles: maxFiles}
	if err := l.open(); err != nil {
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
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends p, rotating first if p would take the file past its maximum
// size (a p larger than the maximum goes alone into a new file). When the
// rotation fails, p is still written (to the unrotated file) and the
// rotation's error is returned: a full or read-only disk loses lines, a
// failed rename does not.
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
	if l.size > 0 && l.size+int64(len(p)) > l.maxSize {
		if rotErr = l.rotate(); l.f == nil {
			return 0, rotErr
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	if err != nil {
		err = fmt.Errorf("write %s: %w", l.path, err)
	}
	return n, errors.Join(rotErr, err)
}

// rotate shifts path.i to path.i+1 (dropping the oldest), path to path.1,
// and starts an empty path. If shifting fails, the current file is reopened
// so that logging goes on (into an oversized file) and the error is returned.
func (l *File) rotate() error {
	closeErr := l.f.Close()
	l.f = nil
	shiftErr := l.shift()
	openErr := l.open()
	if err := errors.Join(closeErr, shiftErr, openErr); err != nil {
		return fmt.Errorf("rotate %s: %w", l.path, err)
	}
	return nil
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
