package migrations

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func files(names ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, n := range names {
		fsys["migrations/"+n] = &fstest.MapFile{Data: []byte("-- " + n)}
	}
	return fsys
}

func TestLoad(t *testing.T) {
	t.Parallel()
	// Versions sort by number, not by name: 10 comes after 9.
	names := []string{"0001_init.sql", "2_more.sql", "0003.sql", "4_a_b.sql", "5_e.sql", "6_f.sql", "7_g.sql", "8_h.sql", "9_i.sql", "10_j.sql"}
	fsys := files(names...)
	fsys["migrations/README.md"] = &fstest.MapFile{Data: []byte("not a migration")}
	got, err := Load(fsys, "migrations")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var want []Migration
	for i, n := range names {
		want = append(want, Migration{Version: i + 1, Name: strings.TrimSuffix(n, ".sql"), SQL: "-- " + n})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func TestLoadRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		files []string
		want  string
	}{
		{"none", nil, "no migrations"},
		{"duplicate version", []string{"0001_init.sql", "0002_a.sql", "0002_b.sql"}, "migrations 0002_a and 0002_b: duplicate version 2"},
		{"duplicate spelled differently", []string{"0001_init.sql", "1_again.sql"}, "duplicate version 1"},
		{"gap", []string{"0001_init.sql", "0003_c.sql"}, "migration 0003_c: version 2 is missing"},
		{"not starting at 1", []string{"0002_b.sql"}, "migration 0002_b: version 1 is missing"},
		{"no number", []string{"0001_init.sql", "init.sql"}, "migration init: name must start with a positive version number"},
		{"zero", []string{"0000_init.sql"}, "migration 0000_init: name must start with a positive version number"},
		{"signed", []string{"+1_init.sql"}, "name must start with a positive version number"},
		{"empty prefix", []string{"_init.sql"}, "name must start with a positive version number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ms, err := Load(files(tc.files...), "migrations")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load(%v) = %v, %v; want an error containing %q", tc.files, ms, err, tc.want)
			}
		})
	}
}

func TestPending(t *testing.T) {
	t.Parallel()
	all := []Migration{{Version: 1, Name: "1"}, {Version: 2, Name: "2"}, {Version: 3, Name: "3"}}
	for _, tc := range []struct {
		applied []int
		want    []int
	}{
		{nil, []int{1, 2, 3}},
		{[]int{1}, []int{2, 3}},
		{[]int{3, 1}, []int{2}},
		{[]int{1, 2, 3, 4}, nil},
	} {
		var got []int
		for _, m := range Pending(all, tc.applied) {
			got = append(got, m.Version)
		}
		if !cmp.Equal(tc.want, got) {
			t.Errorf("Pending(applied %v) = %v, want %v", tc.applied, got, tc.want)
		}
	}
}
