// Package progress draws a progress bar for long command-line operations: a
// redrawn bar on a terminal, one line per tenth of the work otherwise (so
// logs and CI output stay readable).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Bar reports progress of total units of work to w.
type Bar struct {
	w       io.Writer
	label   string
	total   int
	done    int
	tty     bool
	start   time.Time
	lastPct int
	now     func() time.Time
}

// New starts a bar. tty selects the redrawn form; use IsTerminal(w).
func New(w io.Writer, label string, total int, tty bool) *Bar {
	b := &Bar{w: w, label: label, total: total, tty: tty, now: time.Now, lastPct: -1}
	b.start = b.now()
	b.draw()
	return b
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Set records that done units are finished.
func (b *Bar) Set(done int) {
	b.done = min(done, b.total)
	b.draw()
}

// Finish completes the bar.
func (b *Bar) Finish() {
	b.done = b.total
	b.draw()
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

func (b *Bar) draw() {
	pct := 100
	if b.total > 0 {
		pct = b.done * 100 / b.total
	}
	elapsed := b.now().Sub(b.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(b.done) / elapsed
	}
	if b.tty {
		const width = 30
		filled := width * pct / 100
		fmt.Fprintf(b.w, "\r%s [%s%s] %3d%% %d/%d %.0f/s", b.label,
			strings.Repeat("=", filled), strings.Repeat(" ", width-filled), pct, b.done, b.total, rate)
		return
	}
	if pct/10 != b.lastPct/10 || (pct == 100 && b.lastPct != 100) {
		b.lastPct = pct
		fmt.Fprintf(b.w, "%s: %d%% (%d/%d, %.0f/s)\n", b.label, pct, b.done, b.total, rate)
	}
}
