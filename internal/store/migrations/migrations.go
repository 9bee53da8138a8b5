// Package migrations loads the schema migrations a SQL storage engine embeds
// and decides which of them a database still needs. Both engines
// (internal/store/postgres and internal/store/sqlite) load theirs here, so
// they accept and reject the same sets of files; the SQL that records and
// applies migrations stays in each engine's package.
//
// A migration is a file NNNN_description.sql: its version is the decimal
// number before the first underscore (leading zeros allowed), its name is
// the file name without ".sql". The versions of an engine's files are
// exactly 1, 2, ..., n: a duplicate or a missing version is an error, so two
// changes numbered alike on separate branches cannot both be applied in
// whatever order the file names sort, and a database is never migrated
// past a hole.
package migrations

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema change.
type Migration struct {
	Version int
	// Name is the file name without ".sql", as schema_migrations records it.
	Name string
	SQL  string
}

// Load reads the *.sql files in dir of fsys and returns them in version
// order. It fails when there are none, when a name does not start with a
// positive version number, and when the versions are not 1 to n without
// duplicates or gaps.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	out := make([]Migration, 0, len(files))
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".sql")
		v, err := version(name)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", name, err)
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortStableFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		switch {
		case i > 0 && m.Version == out[i-1].Version:
			return nil, fmt.Errorf("migrations %s and %s: duplicate version %d", out[i-1].Name, m.Name, m.Version)
		case m.Version != i+1:
			return nil, fmt.Errorf("migration %s: version %d is missing", m.Name, i+1)
		}
	}
	return out, nil
}

var errVersion = errors.New("name must start with a positive version number, as in 0001_init.sql")

// version parses the number before the first underscore of a name.
func version(name string) (int, error) {
	prefix, _, _ := strings.Cut(name, "_")
	if prefix == "" || strings.Trim(prefix, "0123456789") != "" {
		return 0, errVersion
	}
	v, err := strconv.Atoi(prefix)
	if err != nil || v <= 0 {
		return 0, errVersion
	}
	return v, nil
}

// Pending returns the migrations of all whose version is not in applied,
// in version order.
func Pending(all []Migration, applied []int) []Migration {
	var out []Migration
	for _, m := range all {
		if !slices.Contains(applied, m.Version) {
			out = append(out, m)
		}
	}
	return out
}
