package logfile

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// callWriter records every Write call it receives and signals each one.
type callWriter struct {
	mu    sync.Mutex
	calls []string
	wrote chan struct{}
}

func newCallWriter() *callWriter { return &callWriter{wrote: make(chan struct{}, 100)} }

func (w *callWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.calls = append(w.calls, string(p))
	w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *callWriter) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

// TestBufferedHandsOnWholeLinesInBatches: lines wait in the buffer until
// Flush; a line that would overflow it flushes what is there first; a line
// larger than the buffer goes alone; after Close, lines go straight through.
func TestBufferedHandsOnWholeLinesInBatches(t *testing.T) {
	t.Parallel()
	w := newCallWriter()
	b := NewBuffered(w, 100, 0) // no timer: only explicit flushes
	for i := 1; i <= 3; i++ {
		if n, err := b.Write([]byte(line(i) + "\n")); n != 30 || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
	}
	if got := w.got(); len(got) != 0 {
		t.Fatalf("before the buffer fills, the writer got %q", got)
	}
	_, _ = b.Write([]byte(line(4) + "\n")) // 120 > 100: lines 1-3 go first
	big := strings.Repeat("b", 150) + "\n"
	_, _ = b.Write([]byte(big)) // flushes line 4, then goes alone
	_, _ = b.Write([]byte(line(5) + "\n"))
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	_, _ = b.Write([]byte(line(6) + "\n"))
	want := []string{
		line(1) + "\n" + line(2) + "\n" + line(3) + "\n",
		line(4) + "\n",
		big,
		line(5) + "\n",
		line(6) + "\n",
	}
	if got := w.got(); !cmp.Equal(got, want) {
		t.Fatalf("writes (-got +want):\n%s", cmp.Diff(got, want))
	}
}

// TestBufferedFlushesOnItsTimer: a buffered line reaches the writer without
// any further call, within the flush interval (plus scheduling).
func TestBufferedFlushesOnItsTimer(t *testing.T) {
	t.Parallel()
	w := newCallWriter()
	b := NewBuffered(w, 1<<10, 10*time.Millisecond)
	defer func() { _ = b.Close() }()
	_, _ = b.Write([]byte(line(1) + "\n"))
	select {
	case <-w.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the buffered line was not flushed by the timer")
	}
	if got := w.got(); !cmp.Equal(got, []string{line(1) + "\n"}) {
		t.Fatalf("writes: %q", got)
	}
}

// TestFileCutsABatchAtLineEnds: a File given many lines in one Write (a
// Buffered's flush) rotates between lines as if they had come one by one.
func TestFileCutsABatchAtLineEnds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := Open(filepath.Join(dir, "app.log"), 100, 10) // three 30-byte lines per file
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 1, 1)
	var batch strings.Builder
	for i := 2; i <= 8; i++ {
		batch.WriteString(line(i) + "\n")
	}
	big := strings.Repeat("b", 120)
	batch.WriteString(big + "\n")
	batch.WriteString(line(9) + "\n")
	if n, err := f.Write([]byte(batch.String())); err != nil || n != batch.Len() {
		t.Fatalf("batch write: %d of %d, %v", n, batch.Len(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"app.log.4": {line(1), line(2), line(3)},
		"app.log.3": {line(4), line(5), line(6)},
		"app.log.2": {line(7), line(8)},
		"app.log.1": {big},
		"app.log":   {line(9)},
	}
	if got := contents(t, dir); !cmp.Equal(got, want) {
		t.Fatalf("(-got +want):\n%s", cmp.Diff(got, want))
	}
}

// TestFileBatchOnANewDayRotates: with a maximum age, a batch written on a
// new day starts a new file, and still splits by size in it.
func TestFileBatchOnANewDayRotates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := &fakeClock{t: day(1, 10)}
	f, err := Open(filepath.Join(dir, "app.log"), 100, 10, WithMaxAge(30*24*time.Hour), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 1, 1)
	clock.set(day(2, 10))
	var batch strings.Builder
	for i := 2; i <= 5; i++ {
		batch.WriteString(line(i) + "\n")
	}
	if _, err := f.Write([]byte(batch.String())); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"app.log.2": {line(1)}, "app.log.1": {line(2), line(3), line(4)}, "app.log": {line(5)}}
	if got := contents(t, dir); !cmp.Equal(got, want) {
		t.Fatalf("(-got +want):\n%s", cmp.Diff(got, want))
	}
}
