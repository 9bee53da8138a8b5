// Package pool reads the request pools that tools/perfdata writes and the
// load tools send (scripts/perf/pool.lua, tools/ceiling, tools/rateload):
// one request per line, METHOD<tab>/path<tab>body (the body may be empty).
package pool

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Line is one request of a pool.
type Line struct {
	Method, Path, Body string
}

// Read reads a pool file; a malformed line is an error naming the file and
// the line number.
func Read(path string) ([]Line, error) {
	f, err := os.Open(path) // #nosec G304 -- a request file named on the command line
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []Line
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		method, rest, ok1 := strings.Cut(sc.Text(), "\t")
		p, body, ok2 := strings.Cut(rest, "\t")
		if !ok1 || !ok2 || method == "" || !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf(`%s:%d: want "METHOD<tab>/path<tab>body"`, path, n)
		}
		lines = append(lines, Line{Method: method, Path: p, Body: body})
	}
	return lines, sc.Err()
}
