package logfile

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// contents maps each file of dir to its lines.
func contents(t *testing.T, dir string) map[string][]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	return out
}

func line(i int) string { return fmt.Sprintf("line %02d %s", i, strings.Repeat("x", 21)) } // 30 bytes with \n

func writeLines(t *testing.T, f *File, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if n, err := f.Write([]byte(line(i) + "\n")); err != nil || n != 30 {
			t.Fatalf("write line %d: %d, %v", i, n, err)
		}
	}
}

func TestRotatesAtSizeAndCapsOldFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// 100 bytes hold three 30-byte lines; the fourth would make 120.
	f, err := Open(filepath.Join(dir, "nested", "app.log"), 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 1, 3)
	if got, want := contents(t, filepath.Join(dir, "nested")), map[string][]string{"app.log": {line(1), line(2), line(3)}}; !cmp.Equal(got, want) {
		t.Fatalf("before the size is reached (-got +want):\n%s", cmp.Diff(got, want))
	}
	writeLines(t, f, 4, 4)
	want := map[string][]string{"app.log": {line(4)}, "app.log.1": {line(1), line(2), line(3)}}
	if got := contents(t, filepath.Join(dir, "nested")); !cmp.Equal(got, want) {
		t.Fatalf("after the first rotation (-got +want):\n%s", cmp.Diff(got, want))
	}
	// Three more rotations: files shift to .2, and lines 1-3 drop out of
	// the two kept files.
	writeLines(t, f, 5, 10)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{
		"app.log":   {line(10)},
		"app.log.1": {line(7), line(8), line(9)},
		"app.log.2": {line(4), line(5), line(6)},
	}
	if got := contents(t, filepath.Join(dir, "nested")); !cmp.Equal(got, want) {
		t.Fatalf("after four rotations with two kept (-got +want):\n%s", cmp.Diff(got, want))
	}
}

func TestReopenAppendsAndCountsExistingSize(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.log")
	f, err := Open(path, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 1, 2)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = Open(path, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 3, 4) // line 3 fits (90 bytes), line 4 rotates
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"app.log": {line(4)}, "app.log.1": {line(1), line(2), line(3)}}
	if got := contents(t, filepath.Dir(path)); !cmp.Equal(got, want) {
		t.Fatalf("(-got +want):\n%s", cmp.Diff(got, want))
	}
}

func TestNoKeptFilesTruncates(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.log")
	f, err := Open(path, 60, 0)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 1, 5)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"app.log": {line(5)}}
	if got := contents(t, filepath.Dir(path)); !cmp.Equal(got, want) {
		t.Fatalf("(-got +want):\n%s", cmp.Diff(got, want))
	}
}

func TestOversizedWriteIsNotSplit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "app.log")
	f, err := Open(path, 50, 3)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("b", 120) + "\n"
	writeLines(t, f, 1, 1)
	if _, err := f.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 2, 2)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"app.log": {line(2)}, "app.log.1": {strings.TrimSuffix(big, "\n")}, "app.log.2": {line(1)}}
	if got := contents(t, filepath.Dir(path)); !cmp.Equal(got, want) {
		t.Fatalf("(-got +want):\n%s", cmp.Diff(got, want))
	}
}

func TestConcurrentWritesLoseNoLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const writers, perWriter, maxSize = 8, 500, 4096
	// Keep every rotated file so that every line can be counted.
	f, err := Open(filepath.Join(dir, "app.log"), maxSize, writers*perWriter)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if _, err := fmt.Fprintf(f, "writer %d line %d %s\n", w, i, strings.Repeat("z", i%50)); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 10 {
		t.Fatalf("only %d files: the test did not rotate enough", len(entries))
	}
	seen := map[string]bool{}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s is %d bytes, over the %d maximum", e.Name(), st.Size(), maxSize)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			var w, i int
			var pad string
			n, _ := fmt.Sscanf(sc.Text(), "writer %d line %d %s", &w, &i, &pad)
			if n < 2 || len(pad) != i%50 {
				t.Errorf("%s: torn line %q", e.Name(), sc.Text())
				continue
			}
			key := fmt.Sprintf("%d/%d", w, i)
			if seen[key] {
				t.Errorf("line %s written twice", key)
			}
			seen[key] = true
		}
		file.Close()
	}
	if len(seen) != writers*perWriter {
		t.Fatalf("%d distinct lines in the files, want %d", len(seen), writers*perWriter)
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	t.Parallel()
	f, err := Open(filepath.Join(t.TempDir(), "app.log"), 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("late\n")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after close: %v, want os.ErrClosed", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestOpenRejectsBadLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "a.log"), 0, 1); err == nil {
		t.Error("maximum size 0 accepted")
	}
	if _, err := Open(filepath.Join(dir, "b.log"), 10, -1); err == nil {
		t.Error("negative kept files accepted")
	}
}

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func day(d int, hour int) time.Time  { return time.Date(2026, 1, d, hour, 0, 0, 0, time.UTC) }
func setModTime(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// TestRotatesDailyAndRemovesFilesPastTheMaximumAge keeps "30 days" of logs
// at a low rate that never reaches the size: a new file each UTC day, and
// the files whose last line is older than the maximum age removed (the
// count limit is far away).
func TestRotatesDailyAndRemovesFilesPastTheMaximumAge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	clock := &fakeClock{t: day(1, 10)}
	f, err := Open(path, 1<<20, 100, WithMaxAge(3*24*time.Hour), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	// One line a day for five days: each day's first line rotates, and the
	// rotated file's age is that of its last line (set here: the test's
	// clock is not the file system's).
	for d := 1; d <= 5; d++ {
		clock.set(day(d, 10))
		writeLines(t, f, d, d)
		setModTime(t, path, day(d, 10))
		if d > 1 {
			for i := 1; i < d; i++ {
				if name := fmt.Sprintf("%s.%d", path, i); fileExists(name) {
					setModTime(t, name, day(d-i, 10))
				}
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// On day 5 (10:00) the cutoff is day 2 10:00: the file of day 1 is gone,
	// day 2's is exactly at the cutoff and stays.
	want := map[string][]string{
		"app.log":   {line(5)},
		"app.log.1": {line(4)},
		"app.log.2": {line(3)},
		"app.log.3": {line(2)},
	}
	if got := contents(t, dir); !cmp.Equal(got, want) {
		t.Fatalf("after five days with a 3-day maximum age (-got +want):\n%s", cmp.Diff(got, want))
	}

	// Reopened two days later: the files past the age go at once, and the
	// current file (last written on day 5) rotates on the first line.
	clock.set(day(7, 12))
	f, err = Open(path, 1<<20, 100, WithMaxAge(3*24*time.Hour), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, f, 7, 7)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{"app.log": {line(7)}, "app.log.1": {line(5)}}
	if got := contents(t, dir); !cmp.Equal(got, want) {
		t.Fatalf("reopened on day 7 (-got +want):\n%s", cmp.Diff(got, want))
	}
}

// TestWithoutMaximumAgeNoDailyRotation keeps the size-only behaviour: lines
// of several days stay in one file.
func TestWithoutMaximumAgeNoDailyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := &fakeClock{t: day(1, 10)}
	f, err := Open(filepath.Join(dir, "app.log"), 1<<20, 5, WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	for d := 1; d <= 3; d++ {
		clock.set(day(d, 10))
		writeLines(t, f, d, d)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := contents(t, dir), map[string][]string{"app.log": {line(1), line(2), line(3)}}; !cmp.Equal(got, want) {
		t.Fatalf("(-got +want):\n%s", cmp.Diff(got, want))
	}
	if _, err := Open(filepath.Join(dir, "x.log"), 100, 1, WithMaxAge(-time.Hour)); err == nil {
		t.Error("Open accepted a negative maximum age")
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
