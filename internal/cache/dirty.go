package cache

import (
	"sync"
	"sync/atomic"

	"github.com/featurestore/featurestore/internal/feature"
)

// dirtySet records which cache entries may be older than the store's rows:
// a bounded set of keys while the cache is trusted, or all of them once it
// is not (the barrier closed).
//
// A key is marked when a write committed to the store could not be written
// through (the cache failed, the breaker was open, or a batch held a tie the
// cache cannot resolve); reads bypass marked keys, and the repair loop
// forgets a key once it has set the store's row in the cache. Each mark
// gets a new sequence number, so a repair that read the store before the
// key was marked again does not forget the newer mark.
//
// Past max keys the set gives up: it closes the barrier (the cache is
// distrusted) and empties itself, because while the cache is distrusted
// every key is dirty. Distrust and Retrust change the set and the barrier
// under one lock, so no mark falls between the emptying and the change of
// trust.
type dirtySet struct {
	max  int
	gate *barrier

	mu   sync.Mutex
	keys map[string]dirtyKey // cache key -> entity
	seq  uint64
	n    atomic.Int64 // len(keys), readable without mu
}

type dirtyKey struct {
	key feature.Key
	seq uint64 // changes each time the key is marked again
}

// dirtyItem is a dirty key as the repair loop saw it.
type dirtyItem struct {
	ck string
	d  dirtyKey
}

func newDirtySet(max int, gate *barrier) *dirtySet {
	return &dirtySet{max: max, gate: gate, keys: make(map[string]dirtyKey)}
}

// Len returns the number of dirty keys.
func (d *dirtySet) Len() int { return int(d.n.Load()) }

// Mark records the keys of entries (written rows) as dirty. If that would
// pass max, it distrusts the cache instead, and reports whether the cache
// was trusted until then.
func (d *dirtySet) Mark(entries []SetEntry) (distrusted bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, e := range entries {
		if _, ok := d.keys[e.Key]; !ok && len(d.keys) >= d.max {
			return d.distrustLocked()
		}
		d.seq++
		d.keys[e.Key] = dirtyKey{key: feature.Key{Group: e.Row.Group, EntityID: e.Row.EntityID}, seq: d.seq}
	}
	d.n.Store(int64(len(d.keys)))
	return false
}

// Distrust closes the barrier and forgets the dirty keys (all keys are
// dirty now), reporting whether the cache was trusted until then.
func (d *dirtySet) Distrust() (wasTrusted bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.distrustLocked()
}

func (d *dirtySet) distrustLocked() bool {
	was := d.gate.Close()
	clear(d.keys)
	d.n.Store(0)
	return was
}

// Retrust, after the cache has been cleared, trusts it again with no dirty
// key, unless it was distrusted again since epoch (then the clear may have
// come too early, and it reports false).
func (d *dirtySet) Retrust(epoch uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.gate.Open(epoch) {
		return false
	}
	clear(d.keys)
	d.n.Store(0)
	return true
}

// Bypass blanks the dirty keys of ckeys.
func (d *dirtySet) Bypass(ckeys []string) {
	if d.n.Load() == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, ck := range ckeys {
		if _, bad := d.keys[ck]; bad {
			ckeys[i] = ""
		}
	}
}

// Batch returns up to limit dirty keys, in no particular order.
func (d *dirtySet) Batch(limit int) []dirtyItem {
	d.mu.Lock()
	defer d.mu.Unlock()
	batch := make([]dirtyItem, 0, min(len(d.keys), limit))
	for ck, dk := range d.keys {
		if batch = append(batch, dirtyItem{ck, dk}); len(batch) == limit {
			break
		}
	}
	return batch
}

// Forget removes the keys of items that have not been marked again since
// Batch returned them.
func (d *dirtySet) Forget(items []dirtyItem) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range items {
		if dk, ok := d.keys[it.ck]; ok && dk.seq == it.d.seq {
			delete(d.keys, it.ck)
		}
	}
	d.n.Store(int64(len(d.keys)))
}
