package cache

import (
	"fmt"
	"slices"
	"testing"

	"github.com/featurestore/featurestore/internal/feature"
)

func dirtyEntries(ids ...string) []SetEntry {
	es := make([]SetEntry, len(ids))
	for i, id := range ids {
		r := movie("movies", id, at(1), at(1), id)
		es[i] = SetEntry{Key: "movies:1:" + id, Row: &r, Written: true}
	}
	return es
}

func TestDirtySetMarkBypassForget(t *testing.T) {
	t.Parallel()
	d := newDirtySet(10, &barrier{})
	if d.Mark(dirtyEntries("a", "b")) {
		t.Fatal("Mark within bounds distrusted the cache")
	}
	if d.Len() != 2 {
		t.Fatalf("Len = %d, want 2", d.Len())
	}
	ckeys := []string{"movies:1:a", "movies:1:c", "", "movies:1:b"}
	d.Bypass(ckeys)
	if want := []string{"", "movies:1:c", "", ""}; !slices.Equal(ckeys, want) {
		t.Errorf("Bypass = %q, want %q", ckeys, want)
	}

	batch := d.Batch(10)
	if len(batch) != 2 {
		t.Fatalf("Batch = %d items, want 2", len(batch))
	}
	for _, it := range batch {
		if want := (feature.Key{Group: "movies", EntityID: it.ck[len("movies:1:"):]}); it.d.key != want {
			t.Errorf("item %s holds key %+v, want %+v", it.ck, it.d.key, want)
		}
	}
	// a is marked again after the repair read it: the repair of the old
	// mark must not forget the new one.
	d.Mark(dirtyEntries("a"))
	d.Forget(batch)
	if d.Len() != 1 {
		t.Fatalf("Len after Forget = %d, want 1 (a, marked again)", d.Len())
	}
	ckeys = []string{"movies:1:a", "movies:1:b"}
	d.Bypass(ckeys)
	if want := []string{"", "movies:1:b"}; !slices.Equal(ckeys, want) {
		t.Errorf("Bypass after Forget = %q, want %q", ckeys, want)
	}
	d.Forget(d.Batch(10))
	if d.Len() != 0 {
		t.Errorf("Len after forgetting everything = %d", d.Len())
	}
}

func TestDirtySetBatchLimit(t *testing.T) {
	t.Parallel()
	d := newDirtySet(100, &barrier{})
	var ids []string
	for i := range 25 {
		ids = append(ids, fmt.Sprint(i))
	}
	d.Mark(dirtyEntries(ids...))
	seen := map[string]bool{}
	for range 3 {
		batch := d.Batch(10)
		if len(batch) > 10 {
			t.Fatalf("Batch(10) returned %d items", len(batch))
		}
		for _, it := range batch {
			seen[it.ck] = true
		}
		d.Forget(batch)
	}
	if len(seen) != 25 || d.Len() != 0 {
		t.Errorf("3 batches of 10 repaired %d keys, left %d; want 25, 0", len(seen), d.Len())
	}
}

// Past max, the set distrusts the cache and empties itself: every key is
// dirty now. Trust comes back only through Retrust of the current epoch.
func TestDirtySetOverflowAndRetrust(t *testing.T) {
	t.Parallel()
	gate := &barrier{}
	d := newDirtySet(3, gate)
	if d.Mark(dirtyEntries("a", "b", "c")) {
		t.Fatal("3 keys of 3 allowed distrusted the cache")
	}
	if d.Mark(dirtyEntries("a")) {
		t.Fatal("marking a dirty key again distrusted the cache")
	}
	if !d.Mark(dirtyEntries("d")) {
		t.Fatal("a 4th key of 3 allowed did not distrust the cache")
	}
	if gate.IsOpen() || d.Len() != 0 {
		t.Fatalf("after the overflow: trusted %v, %d dirty; want false, 0", gate.IsOpen(), d.Len())
	}

	epoch := gate.Epoch()
	if d.Distrust() {
		t.Error("Distrust of a distrusted cache reported it trusted")
	}
	if d.Mark(dirtyEntries("e")) {
		t.Error("Mark on a distrusted cache reported distrusting it")
	}
	if d.Retrust(epoch) {
		t.Fatal("Retrust succeeded though the cache was distrusted again since")
	}
	if gate.IsOpen() || d.Len() != 1 {
		t.Fatalf("after a failed Retrust: trusted %v, %d dirty; want false, 1", gate.IsOpen(), d.Len())
	}
	if !d.Retrust(gate.Epoch()) {
		t.Fatal("Retrust of the current epoch failed")
	}
	if !gate.IsOpen() || d.Len() != 0 {
		t.Errorf("after Retrust: trusted %v, %d dirty; want true, 0", gate.IsOpen(), d.Len())
	}
	if !d.Distrust() {
		t.Error("Distrust of a trusted cache did not report it trusted")
	}
}
