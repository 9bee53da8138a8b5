package reload

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// number loads a file holding a decimal integer.
func number(c [][]byte) (int, error) {
	return strconv.Atoi(strings.TrimSpace(string(c[0])))
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesWhatDoesNotLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open("numbers", []string{filepath.Join(dir, "missing")}, number); err == nil ||
		!strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: err = %v", err)
	}
	p := filepath.Join(dir, "bad")
	write(t, p, "seven")
	_, err := Open("numbers", []string{p}, number)
	if err == nil || !strings.Contains(err.Error(), "numbers file "+p) {
		t.Errorf("bad file: err = %v, want it to name the file", err)
	}
}

// TestReloadKeepsTheLastGoodValue: a bad edit is reported once and leaves
// the previous value in use; a forced reload reports it again; a good edit
// replaces the value.
func TestReloadKeepsTheLastGoodValue(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "n")
	write(t, p, "1")
	f, err := Open("numbers", []string{p}, number)
	if err != nil {
		t.Fatal(err)
	}
	step := func(force bool, want Result, wantValue int) {
		t.Helper()
		res, err := f.Reload(force)
		if res != want {
			t.Errorf("Reload(%v) = %v (%v), want %v", force, res, err, want)
		}
		if (res == Failed) != (err != nil) {
			t.Errorf("Reload(%v) = %v with error %v", force, res, err)
		}
		if got := f.Get(); got != wantValue {
			t.Errorf("Get() = %d, want %d", got, wantValue)
		}
	}
	step(false, Unchanged, 1)
	step(true, Unchanged, 1)
	write(t, p, "two")
	step(false, Failed, 1)
	step(false, Unchanged, 1) // reported once per content
	step(true, Failed, 1)     // but again when asked
	write(t, p, "2")
	step(false, Reloaded, 2)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	step(false, Failed, 2)
	write(t, p, "2")
	step(false, Unchanged, 2)
}

// TestReloadReadsAllFilesTogether: a value from two files (a certificate
// and its key) changes when either does.
func TestReloadReadsAllFilesTogether(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "1")
	write(t, b, "2")
	sum := func(c [][]byte) (int, error) {
		x, err := strconv.Atoi(string(c[0]))
		if err != nil {
			return 0, err
		}
		y, err := strconv.Atoi(string(c[1]))
		return x + y, err
	}
	f, err := Open("pair", []string{a, b}, sum)
	if err != nil {
		t.Fatal(err)
	}
	write(t, b, "5")
	if res, err := f.Reload(false); res != Reloaded || f.Get() != 6 {
		t.Errorf("Reload = %v %v, value %d; want reloaded, 6", res, err, f.Get())
	}
}

// TestWatchPollsForChanges: Watch notices an edit at its next tick, and
// reports nothing while the files do not change.
func TestWatchPollsForChanges(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "n")
	write(t, p, "1")
	synctest.Test(t, func(t *testing.T) {
		f, err := Open("numbers", []string{p}, number)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var reports []string
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			Watch(ctx, 5*time.Second, []Reloader{f}, func(name string, res Result, err error) {
				mu.Lock()
				defer mu.Unlock()
				reports = append(reports, name+" "+res.String())
			})
		}()
		time.Sleep(12 * time.Second)
		synctest.Wait()
		mu.Lock()
		if len(reports) != 0 {
			t.Errorf("reports before any change: %v", reports)
		}
		mu.Unlock()
		write(t, p, "3")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		mu.Lock()
		if got := strings.Join(reports, ","); got != "numbers reloaded" || f.Get() != 3 {
			t.Errorf("after an edit: reports %q, value %d; want one reload to 3", got, f.Get())
		}
		mu.Unlock()
		cancel()
		<-done
	})
}

func TestAllReportsEveryFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	write(t, a, "1")
	write(t, b, "1")
	fa, err := Open("a", []string{a}, number)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := Open("b", []string{b}, number)
	if err != nil {
		t.Fatal(err)
	}
	write(t, b, "bad")
	var got []string
	All([]Reloader{fa, fb}, func(name string, res Result, err error) { got = append(got, name+" "+res.String()) })
	if strings.Join(got, ",") != "a unchanged,b failed" {
		t.Errorf("All reported %v", got)
	}
}
