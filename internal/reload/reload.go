// Package reload keeps a value built from files current while the process
// runs: a token file, a JWT verification key, a TLS certificate and its key.
// The files are re-read when their content changes (Watch polls them) or on
// demand (Reload, e.g. on SIGHUP). A new value replaces the old one only when
// it loads; a file caught half-written, or a bad edit, leaves the last good
// value in use and is reported.
//
// Content, not modification time, decides what changed: a Kubernetes Secret
// volume swaps a symlink, an editor may keep the mtime, and two writes within
// the clock's resolution look alike. The files are small; reading them every
// few seconds costs nothing.
package reload

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// File is a value of type T loaded from one or more files.
type File[T any] struct {
	name  string
	paths []string
	load  func(contents [][]byte) (T, error)

	cur atomic.Pointer[T]

	mu      sync.Mutex // serialises Reload
	lastSum [sha256.Size]byte
}

// Result says what a Reload did.
type Result int

// Results of Reload.
const (
	// Unchanged: the files hold what was last read (or last failed to load).
	Unchanged Result = iota
	// Reloaded: the files changed and the new value is in use.
	Reloaded
	// Failed: the files changed (or a forced reload was asked) and did not
	// load; the previous value stays in use.
	Failed
)

func (r Result) String() string {
	switch r {
	case Reloaded:
		return "reloaded"
	case Failed:
		return "failed"
	}
	return "unchanged"
}

// Open reads paths and builds the first value with load; an error here is
// a configuration error to report at start-up. name says what the files are
// ("tokens", "tls certificate") in errors and reports.
func Open[T any](name string, paths []string, load func(contents [][]byte) (T, error)) (*File[T], error) {
	f := &File[T]{name: name, paths: paths, load: load}
	contents, sum, err := f.read()
	if err != nil {
		return nil, err
	}
	v, err := load(contents)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.describe(), err)
	}
	f.cur.Store(&v)
	f.lastSum = sum
	return f, nil
}

// Name is what the files are, as given to Open.
func (f *File[T]) Name() string { return f.name }

// Get returns the value in use. It is safe for concurrent use and does not
// block on a reload.
func (f *File[T]) Get() T { return *f.cur.Load() }

// Reload re-reads the files. If their content is what was last read it does
// nothing and returns Unchanged, unless force is set (SIGHUP: the operator
// asked, so a bad file is reported again). A new content that loads replaces
// the value (Reloaded); one that does not is reported once (Failed, with
// the error) and then counts as read, so a poll does not repeat the report
// until the file changes again.
func (f *File[T]) Reload(force bool) (Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	contents, sum, err := f.read()
	if err != nil {
		// Reading failed (a file removed during a rotation, permissions):
		// there is no content to remember; report it on every try.
		return Failed, err
	}
	if sum == f.lastSum && !force {
		return Unchanged, nil
	}
	changed := sum != f.lastSum
	f.lastSum = sum
	v, err := f.load(contents)
	if err != nil {
		return Failed, fmt.Errorf("%s: %w (the previous %s stay in use)", f.describe(), err, f.name)
	}
	if !changed {
		return Unchanged, nil
	}
	f.cur.Store(&v)
	return Reloaded, nil
}

// Reloader is a reloadable file set: a *File of any type.
type Reloader interface {
	Name() string
	Reload(force bool) (Result, error)
}

// Watch calls Reload(false) on each of files every interval until ctx
// ends, and report with each result other than Unchanged.
func Watch(ctx context.Context, interval time.Duration, files []Reloader, report func(name string, res Result, err error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, f := range files {
				if res, err := f.Reload(false); res != Unchanged {
					report(f.Name(), res, err)
				}
			}
		}
	}
}

// All reloads every file now (force: SIGHUP) and reports every result,
// Unchanged included, so the operator sees that the signal was handled.
func All(files []Reloader, report func(name string, res Result, err error)) {
	for _, f := range files {
		res, err := f.Reload(true)
		report(f.Name(), res, err)
	}
}

// read returns the files' contents and a digest of them all.
func (f *File[T]) read() ([][]byte, [sha256.Size]byte, error) {
	h := sha256.New()
	contents := make([][]byte, len(f.paths))
	for i, p := range f.paths {
		b, err := os.ReadFile(p) // #nosec G304 -- the operator's configured file (tokens, key, certificate), never request input
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("%s: %w", f.name, err)
		}
		contents[i] = b
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return contents, sum, nil
}

func (f *File[T]) describe() string {
	if len(f.paths) == 1 {
		return fmt.Sprintf("%s file %s", f.name, f.paths[0])
	}
	return fmt.Sprintf("%s files %v", f.name, f.paths)
}
