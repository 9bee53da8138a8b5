package synthetic

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/tmdb"
)

const records = "../../../testdata/tmdb/bulk_collection_20250605_022412.json"

func TestMovieIsReproducibleAndVaried(t *testing.T) {
	base, err := Load(records)
	if err != nil {
		t.Fatal(err)
	}
	n := len(base)
	origTitle, origID := base[3]["title"], base[3]["movie_id"]
	if !reflect.DeepEqual(Movie(base, 7), Movie(base, 7)) {
		t.Error("the same index gave two different movies")
	}
	a, b := Movie(base, 3), Movie(base, 3+n) // the same real record, another round
	if a["id"] != FirstID+3 || b["id"] != FirstID+3+n {
		t.Errorf("ids %v and %v, want %d and %d", a["id"], b["id"], FirstID+3, FirstID+3+n)
	}
	if a["title"] == b["title"] || a["popularity"] == b["popularity"] {
		t.Errorf("two rounds of one record are alike: %v %v / %v %v", a["title"], a["popularity"], b["title"], b["popularity"])
	}
	if _, ok := a["movie_id"]; ok {
		t.Error("the real movie_id is kept next to the new id")
	}
	for i := range 3 * n {
		if va := Movie(base, i)["vote_average"].(float64); va < 0 || va > 10 {
			t.Fatalf("movie %d: vote_average %v outside 0..10", i, va)
		}
	}
	if base[3]["title"] != origTitle || base[3]["movie_id"] != origID {
		t.Error("Movie changed the real record it was made from")
	}
}

func TestLoadRefusesAFileWithoutMovies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.json")
	if err := os.WriteFile(path, []byte(`{"movies":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil {
		t.Error("Load accepted a file with no movies")
	}
}

// TestRows: six rows per movie, one of each stored group, keyed by the
// movie's id, at the given time.
func TestRows(t *testing.T) {
	base, err := Load(records)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	rows, err := Rows(base, 5, 8, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 18 {
		t.Fatalf("%d rows for 3 movies, want 18", len(rows))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		id, err := strconv.Atoi(r.EntityID)
		if err != nil || id < FirstID+5 || id > FirstID+7 || !r.EventTime.Equal(at) || !r.WriteTime.Equal(at) || len(r.Values) == 0 {
			t.Errorf("row %s/%s at %v, %v: %d values", r.Group, r.EntityID, r.EventTime, r.WriteTime, len(r.Values))
		}
		seen[r.Group+"/"+r.EntityID] = true
	}
	if groups := len(tmdb.Groups()); len(seen) != 3*groups {
		t.Errorf("%d distinct group/movie keys, want %d", len(seen), 3*groups)
	}
}
