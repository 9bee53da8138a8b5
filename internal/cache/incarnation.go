package cache

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/featurestore/featurestore/internal/feature"
)

// incarnations maps each group name to the key prefix of its current
// incarnation, "<group>:<CreatedAt in unix nanoseconds>:", learned from the
// registry calls that pass through Store.
//
// The map is copied on write and read without a lock. Every PutGroup and
// DeleteGroup bumps a version; what a registry read learned is applied only
// if the version has not moved since the read began, so a read that raced
// with a PutGroup or DeleteGroup cannot bring back what that call replaced.
// A group re-created with the CreatedAt of its deleted incarnation (a clock
// that stood still) makes the old rows' keys reachable again: then reused
// is called, which distrusts the cache.
type incarnations struct {
	getGroup func(ctx context.Context, name string) (feature.Group, error)
	reused   func(reason string)

	mu      sync.Mutex                        // serialises updates of cur and deleted
	cur     atomic.Pointer[map[string]string] // group name -> key prefix
	deleted map[string]string                 // group name -> key prefix of its last deleted incarnation
	version atomic.Uint64                     // bumped by every PutGroup and DeleteGroup
}

func newIncarnations(getGroup func(context.Context, string) (feature.Group, error), reused func(string)) *incarnations {
	in := &incarnations{getGroup: getGroup, reused: reused, deleted: make(map[string]string)}
	in.cur.Store(&map[string]string{})
	return in
}

func keyPrefix(g feature.Group) string {
	return g.Name + ":" + strconv.FormatInt(g.CreatedAt.UnixNano(), 10) + ":"
}

// load returns the current map; it must not be modified.
func (in *incarnations) load() map[string]string { return *in.cur.Load() }

// readVersion is the version to pass to update for what a registry read
// about to begin learns.
func (in *incarnations) readVersion() int64 { return int64(in.version.Load()) } // #nosec G115 -- a version counter far below 2^63

// changed records a PutGroup or DeleteGroup.
func (in *incarnations) changed() { in.version.Add(1) }

// update applies fn to a copy of the map, unless the registry changed since
// version v (see readVersion); v < 0 applies it unconditionally.
func (in *incarnations) update(v int64, fn func(m map[string]string, deleted map[string]string)) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if v >= 0 && uint64(v) != in.version.Load() {
		return
	}
	m := maps.Clone(in.load())
	fn(m, in.deleted)
	for name, p := range m {
		if in.deleted[name] == p {
			delete(in.deleted, name)
			in.reused("group " + name + " re-created with its old incarnation")
		}
	}
	in.cur.Store(&m)
}

// learn reads a group from the store and remembers (or, if it is gone,
// forgets) its incarnation.
func (in *incarnations) learn(ctx context.Context, name string) (string, feature.Group, error) {
	v := in.readVersion()
	g, err := in.getGroup(ctx, name)
	if err != nil {
		if feature.ErrorCode(err) == feature.CodeNotFound {
			in.update(v, func(m, _ map[string]string) { delete(m, name) })
		}
		return "", g, err
	}
	p := keyPrefix(g)
	in.update(v, func(m, _ map[string]string) { m[name] = p })
	return p, g, nil
}

// prefix returns the key prefix of a group, asking the store for a group
// not seen yet; learned remembers, for one call, what it answered ("" for a
// group it could not tell).
func (in *incarnations) prefix(ctx context.Context, group string, learned map[string]string) (string, bool) {
	if p, ok := in.load()[group]; ok {
		return p, true
	}
	if p, ok := learned[group]; ok {
		return p, p != ""
	}
	p, _, _ := in.learn(ctx, group)
	learned[group] = p
	return p, p != ""
}
