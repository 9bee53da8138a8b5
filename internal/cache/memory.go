package cache

import (
	"bytes"
	"context"
	"hash/maphash"
	"maps"
	"sync"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// Defaults of MemoryOptions and RedisOptions.
const (
	DefaultTTL        = time.Hour
	DefaultAbsenceTTL = time.Minute
	DefaultMaxEntries = 1 << 20
)

// memoryShards is the number of independently locked shards.
const memoryShards = 64

// evictionSample is how many entries an insert into a full shard looks at to
// choose the one to evict.
const evictionSample = 5

// MemoryOptions configure a Memory cache.
type MemoryOptions struct {
	// MaxEntries bounds the number of entries; 0 means DefaultMaxEntries.
	MaxEntries int
	// TTL is how long a row stays cached; 0 means DefaultTTL.
	TTL time.Duration
	// AbsenceTTL is how long an absence or a fence stays cached; 0 means
	// DefaultAbsenceTTL.
	AbsenceTTL time.Duration
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
}

// Memory is an in-process Cache: a sharded map with the same
// compare-and-set semantics as Redis, bounded entries and TTLs. When a shard
// is full, an insert evicts the expired or least recently stored entry of a
// small sample.
type Memory struct {
	shards     [memoryShards]memShard
	seed       maphash.Seed
	perShard   int
	ttl        time.Duration
	absenceTTL time.Duration
	now        func() time.Time
}

type memShard struct {
	mu sync.RWMutex
	m  map[string]memEntry
}

type memEntry struct {
	ver     version
	row     *feature.Row // kindRow only; never modified: copies, or itself to readers that promise not to modify it (store.WithReadHint)
	stored  int64        // unix nanos of the Set
	expires int64        // unix nanos
}

var (
	_ Cache               = (*Memory)(nil)
	_ store.HealthChecker = (*Memory)(nil)
)

// NewMemory returns an empty memory cache.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.AbsenceTTL <= 0 {
		opts.AbsenceTTL = DefaultAbsenceTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Memory{
		seed:       maphash.MakeSeed(),
		perShard:   max(1, (opts.MaxEntries+memoryShards-1)/memoryShards),
		ttl:        opts.TTL,
		absenceTTL: opts.AbsenceTTL,
		now:        opts.Now,
	}
	for i := range m.shards {
		m.shards[i].m = make(map[string]memEntry)
	}
	return m
}

// Name returns "memory".
func (m *Memory) Name() string { return "memory" }

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)%memoryShards]
}

// Get returns copies of the cached rows: callers may modify them.
// With a store.FeatureHint, the copies hold only its features. A caller
// that said it only reads the rows (store.WithReadHint) gets the cached
// rows themselves, which nothing modifies: no copy at all. Those carry
// their Group and EntityID (which its key names: see copyRow) or, if
// they were set without them, are copies of their own sharing the Values.
func (m *Memory) Get(ctx context.Context, keys []string) ([]Entry, error) {
	out := make([]Entry, len(keys))
	rows := newRowCopies(ctx)
	now := m.now().UnixNano()
	for i, k := range keys {
		s := m.shard(k)
		s.mu.RLock()
		e, ok := s.m[k]
		s.mu.RUnlock()
		if !ok || now >= e.expires {
			continue
		}
		switch e.ver[24] {
		case kindAbsent:
			out[i].Found = true
		case kindGone:
			out[i].Gone = true
		case kindRow:
			out[i] = Entry{Found: true, Row: rows.row(e.row, len(keys)-i)}
		}
	}
	return out, nil
}

// Set applies each compare-and-set under its shard's lock.
func (m *Memory) Set(_ context.Context, entries []SetEntry) error {
	now := m.now().UnixNano()
	for i := range entries {
		e := &entries[i]
		s := m.shard(e.Key)
		nv := entryVersion(e)
		s.mu.Lock()
		cur, ok := s.m[e.Key]
		if ok && now >= cur.expires {
			ok = false
		}
		if e.Written && (!ok || cur.ver[24] == kindFence) {
			nv[24] = kindFence
		}
		if ok && bytes.Compare(nv[:], cur.ver[:]) <= 0 {
			s.mu.Unlock()
			continue
		}
		ne := memEntry{ver: nv, stored: now, expires: now + int64(m.absenceTTL)}
		switch nv[24] {
		case kindRow:
			ne.row = copyRow(e.Key, e.Row)
			ne.expires = now + int64(m.ttl)
		case kindGone:
			ne.expires = now + int64(m.ttl)
		}
		if _, exists := s.m[e.Key]; !exists && len(s.m) >= m.perShard {
			s.evict(now)
		}
		s.m[e.Key] = ne
		s.mu.Unlock()
	}
	return nil
}

// copyRow copies r with its own values map (never nil) and UTC times. The
// copy keeps r's Group and EntityID (as parts of key, which the map holds
// anyway) if key is <group>:<incarnation>:<entity> of them, so that Get can
// hand the row itself to a reader that only reads it; else they are empty.
func copyRow(key string, r *feature.Row) *feature.Row {
	c := *r
	c.Group, c.EntityID = "", ""
	g, id := r.Group, r.EntityID
	if g != "" && id != "" && len(key) > len(g)+len(id)+1 && key[len(g)] == ':' && key[:len(g)] == g &&
		key[len(key)-len(id)-1] == ':' && key[len(key)-len(id):] == id {
		c.Group, c.EntityID = key[:len(g)], key[len(key)-len(id):]
	}
	c.EventTime, c.WriteTime = r.EventTime.UTC(), r.WriteTime.UTC()
	c.Values = make(feature.Values, len(r.Values))
	maps.Copy(c.Values, r.Values)
	return &c
}

// evict removes one entry: the first expired one of a sample drawn by map
// iteration (which starts at a random position), or else the one stored
// longest ago. Recently stored entries, such as fresh fences, survive.
func (s *memShard) evict(now int64) {
	var (
		victim string
		oldest int64
		n      int
	)
	for k, e := range s.m {
		if now >= e.expires {
			victim = k
			break
		}
		if n == 0 || e.stored < oldest {
			victim, oldest = k, e.stored
		}
		if n++; n == evictionSample {
			break
		}
	}
	delete(s.m, victim)
}

// Clear deletes every entry.
func (m *Memory) Clear(context.Context) error {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.mu.Unlock()
	}
	return nil
}

// Len returns the number of entries, expired ones not yet evicted included.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Health reports the entry count and bound; a memory cache is always UP.
func (m *Memory) Health(context.Context) store.Component {
	return store.Component{Status: store.HealthUp, Details: map[string]any{
		"entries":     m.Len(),
		"max_entries": m.perShard * memoryShards,
	}}
}

// rowCopies hands out the cached rows of one Get's hits, which nothing
// may modify (the memory cache's and the near cache's). A reader that
// said it only reads them (store.WithReadHint) gets a row itself if it
// carries its key's group and entity (see copyRow and keyRow): no copy at
// all. Any other row is copied, with its Group and EntityID empty (the
// caller sets them), into one allocation for the batch's copies; for a
// reader that only reads, the copy shares the Values, else it has its own,
// holding only the hinted features (store.FeatureHint).
type rowCopies struct {
	rows   []feature.Row // the copies not yet handed out
	only   []string
	shared bool
}

func newRowCopies(ctx context.Context) rowCopies {
	only, shared := store.ReadHint(ctx)
	return rowCopies{only: only, shared: shared}
}

// row returns r or its copy; left bounds the rows still to hand out, for
// the size of the batch's allocation.
func (c *rowCopies) row(r *feature.Row, left int) *feature.Row {
	if c.shared && r.Group != "" {
		return r
	}
	if len(c.rows) == 0 {
		c.rows = make([]feature.Row, max(1, left))
	}
	cp := &c.rows[0]
	c.rows = c.rows[1:]
	*cp = *r
	cp.Group, cp.EntityID = "", ""
	if !c.shared {
		cp.Values = cloneValues(r.Values, c.only)
	}
	return cp
}

// cloneValues copies vals: only the features named in only when it is
// not nil and names fewer than vals has.
func cloneValues(vals feature.Values, only []string) feature.Values {
	if only == nil || len(only) >= len(vals) {
		return maps.Clone(vals)
	}
	out := make(feature.Values, min(len(only), len(vals)))
	for _, name := range only {
		if v, ok := vals[name]; ok {
			out[name] = v
		}
	}
	return out
}
