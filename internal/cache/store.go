package cache

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// Observer receives the cache's measurements; it is called once per group
// per batch, not per key.
type Observer interface {
	// CacheHit counts n keys of group answered by the cache.
	CacheHit(cacheType, group string, n int)
	// CacheMiss counts n keys of group read from the store instead.
	CacheMiss(cacheType, group string, n int)
	// CacheError counts a failed cache operation: get, set or clear.
	CacheError(cacheType, operation string)
}

// Defaults of WrapOptions.
const (
	DefaultRetryInterval = time.Second
	DefaultMaxDirty      = 100_000
)

// repairBatch is how many dirty keys the repair loop re-reads per store call.
const repairBatch = 1000

// WrapOptions configure a Store.
type WrapOptions struct {
	// Observer receives hit, miss and error counts; nil means none.
	Observer Observer
	// Now is the clock of the circuit breaker; nil means time.Now.
	Now func() time.Time
	// RetryInterval is how long the cache is skipped after it fails (then
	// one call tries it again), and how often the repair loop runs; 0 means
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// MaxDirty bounds the keys remembered as possibly stale in the cache;
	// past it, the cache is not trusted until it has been cleared. 0 means
	// DefaultMaxDirty.
	MaxDirty int
	// Logger receives cache failures and recoveries; nil discards them.
	Logger *zap.Logger
}

// Store is a store.Store that serves GetLatest from a cache in front of the
// inner store, which stays the system of record: writes go to it first, and
// everything but the latest rows (the registry, as-of reads, scans, stats)
// is read from it directly.
//
// Reads look the whole batch up in the cache in one round trip, read the
// misses from the inner store in one call, and fill them into the cache
// (rows and absences) with compare-and-set. Writes commit to the inner store
// and then write through, with compare-and-set, the newest row per key.
//
// A failing cache makes calls slower, never failed or stale: after an error
// the cache is skipped for RetryInterval (a circuit breaker); a write whose
// write-through fails or is skipped is still acknowledged but marks its keys
// dirty, and reads of dirty keys bypass the cache until a background repair
// loop has re-read them from the inner store and set them in the cache. If
// too many keys are dirty, the whole cache is distrusted until the repair
// loop has cleared it.
//
// Keys are <group>:<incarnation>:<entity>, where the incarnation is the
// group's CreatedAt in unix nanoseconds, so a re-created group never sees the
// rows cached for the deleted one. The incarnations are learned from the
// registry calls; a read or write of a group not yet seen asks the inner
// store for it once.
type Store struct {
	inner    store.Store
	c        Cache
	obs      Observer
	now      func() time.Time
	log      *zap.Logger
	retry    time.Duration
	maxDirty int

	groupsMu  sync.Mutex                        // serialises updates of groups and deleted
	groups    atomic.Pointer[map[string]string] // group name -> key prefix "<group>:<incarnation>:"
	deleted   map[string]string                 // group name -> key prefix of its last deleted incarnation
	registryV atomic.Uint64                     // bumped by every PutGroup and DeleteGroup

	breaker atomic.Int64 // 0: closed; else unix nanos until which the cache is skipped

	// gate is held shared around every cache Set and exclusively, briefly,
	// before the cache is cleared, so no Set that began while the cache was
	// trusted lands after the clear.
	gate    sync.RWMutex
	trusted atomic.Bool
	epoch   atomic.Uint64 // bumped whenever trust is lost

	dirtyMu  sync.Mutex
	dirty    map[string]dirtyKey // cache key -> entity
	dirtySeq uint64
	dirtyN   atomic.Int64

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type dirtyKey struct {
	key feature.Key
	seq uint64 // changes each time the key is marked again
}

var _ store.Store = (*Store)(nil)

// Wrap returns inner with cache c in front of it and starts the repair loop;
// Close stops it and closes inner (not the cache's client).
func Wrap(inner store.Store, c Cache, opts WrapOptions) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	if opts.MaxDirty <= 0 {
		opts.MaxDirty = DefaultMaxDirty
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	s := &Store{
		inner:    inner,
		c:        c,
		obs:      opts.Observer,
		now:      opts.Now,
		log:      opts.Logger.With(zap.String("cache", c.Name())),
		retry:    opts.RetryInterval,
		maxDirty: opts.MaxDirty,
		dirty:    make(map[string]dirtyKey),
		deleted:  make(map[string]string),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.groups.Store(&map[string]string{})
	s.trusted.Store(true)
	go s.repairLoop()
	return s
}

// Dirty returns the number of keys whose cached value may be stale, which
// reads bypass until the repair loop has fixed them.
func (s *Store) Dirty() int { return int(s.dirtyN.Load()) }

// Trusted reports whether the cache is used at all: false after too many
// dirty keys, until the repair loop has cleared the cache.
func (s *Store) Trusted() bool { return s.trusted.Load() }

// Close stops the repair loop and closes the inner store.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.done
	})
	return s.inner.Close()
}

// --- registry: pass through, learning incarnations ---

func keyPrefix(g feature.Group) string {
	return g.Name + ":" + strconv.FormatInt(g.CreatedAt.UnixNano(), 10) + ":"
}

// updateGroups applies fn to a copy of the incarnation map, unless the
// registry changed since version v (a read that started before a PutGroup or
// DeleteGroup must not bring back what that call replaced); v < 0 applies it
// unconditionally.
func (s *Store) updateGroups(v int64, fn func(m map[string]string)) {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	if v >= 0 && uint64(v) != s.registryV.Load() {
		return
	}
	m := maps.Clone(*s.groups.Load())
	fn(m)
	for name, p := range m {
		if s.deleted[name] == p {
			// Re-created with the CreatedAt of the deleted group (a clock
			// that stood still): the old rows' keys are reachable again.
			delete(s.deleted, name)
			s.distrust("group " + name + " re-created with its old incarnation")
		}
	}
	s.groups.Store(&m)
}

// ListGroups passes through and remembers every group's incarnation.
func (s *Store) ListGroups(ctx context.Context) ([]feature.Group, error) {
	v := int64(s.registryV.Load()) // #nosec G115 -- a version counter far below 2^63
	gs, err := s.inner.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	s.updateGroups(v, func(m map[string]string) {
		clear(m)
		for _, g := range gs {
			m[g.Name] = keyPrefix(g)
		}
	})
	return gs, nil
}

// GetGroup passes through and remembers the group's incarnation.
func (s *Store) GetGroup(ctx context.Context, name string) (feature.Group, error) {
	_, g, err := s.learnGroup(ctx, name)
	return g, err
}

// learnGroup reads a group from the inner store and remembers (or, if it is
// gone, forgets) its incarnation.
func (s *Store) learnGroup(ctx context.Context, name string) (string, feature.Group, error) {
	v := int64(s.registryV.Load()) // #nosec G115 -- a version counter far below 2^63
	g, err := s.inner.GetGroup(ctx, name)
	if err != nil {
		if feature.ErrorCode(err) == feature.CodeNotFound {
			s.updateGroups(v, func(m map[string]string) { delete(m, name) })
		}
		return "", g, err
	}
	p := keyPrefix(g)
	s.updateGroups(v, func(m map[string]string) { m[name] = p })
	return p, g, nil
}

// PutGroup passes through and remembers the stored group's incarnation.
func (s *Store) PutGroup(ctx context.Context, g feature.Group, now time.Time) (feature.Group, error) {
	out, err := s.inner.PutGroup(ctx, g, now)
	s.registryV.Add(1)
	if err != nil {
		return out, err
	}
	s.updateGroups(-1, func(m map[string]string) { m[out.Name] = keyPrefix(out) })
	return out, nil
}

// DeleteGroup passes through and forgets the group's incarnation; its cached
// rows become unreachable and expire.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	p, known := (*s.groups.Load())[name]
	err := s.inner.DeleteGroup(ctx, name)
	s.registryV.Add(1)
	s.updateGroups(-1, func(m map[string]string) {
		delete(m, name)
		if known && err == nil {
			s.deleted[name] = p
		}
	})
	return err
}

// prefix returns the key prefix of a group, asking the inner store for a
// group not seen yet; learned remembers, for one call, what it answered
// ("" for a group it could not tell).
func (s *Store) prefix(ctx context.Context, group string, learned map[string]string) (string, bool) {
	if p, ok := (*s.groups.Load())[group]; ok {
		return p, true
	}
	if p, ok := learned[group]; ok {
		return p, p != ""
	}
	p, _, _ := s.learnGroup(ctx, group)
	learned[group] = p
	return p, p != ""
}

// --- pass-through reads ---

// GetAsOf reads from the inner store: point-in-time reads come from the
// system of record.
func (s *Store) GetAsOf(ctx context.Context, key feature.Key, asOf time.Time) (*feature.Row, error) {
	return s.inner.GetAsOf(ctx, key, asOf)
}

// ScanLatest reads from the inner store.
func (s *Store) ScanLatest(ctx context.Context, group string, fn func(feature.Row) error) error {
	return s.inner.ScanLatest(ctx, group, fn)
}

// Stats reads from the inner store.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	return s.inner.Stats(ctx)
}

// --- circuit breaker ---

// cacheUsable reports whether to call the cache: always while the breaker is
// closed; while it is open, only one caller once RetryInterval has passed
// (which then re-arms the interval, so a dead cache costs one timeout per
// interval).
func (s *Store) cacheUsable() bool {
	until := s.breaker.Load()
	if until == 0 {
		return true
	}
	now := s.now().UnixNano()
	return now >= until && s.breaker.CompareAndSwap(until, now+int64(s.retry))
}

// cacheMayBeUsable is cacheUsable without taking the one call's turn: for
// a caller that may find it has nothing to ask the cache.
func (s *Store) cacheMayBeUsable() bool {
	until := s.breaker.Load()
	return until == 0 || s.now().UnixNano() >= until
}

func (s *Store) cacheOK() {
	if s.breaker.Load() != 0 {
		s.breaker.Store(0)
		s.log.Info("cache available again")
	}
}

func (s *Store) cacheFailed(op string, err error) {
	if s.breaker.Swap(s.now().UnixNano()+int64(s.retry)) == 0 {
		s.log.Warn("cache failed; skipping it", zap.String("operation", op), zap.Duration("retry_in", s.retry), zap.Error(err))
	}
	if s.obs != nil {
		s.obs.CacheError(s.c.Name(), op)
	}
}

// errSkipped says a Set was not attempted because the cache is distrusted
// (or, for a fill, was distrusted since the fill's data was read).
var errSkipped = errors.New("cache distrusted")

// set runs one Set under the gate. A fill (rows read from the inner store)
// is dropped if trust was lost since epoch, when its data was read; a
// write-through is always safe to apply while the cache is trusted.
func (s *Store) set(ctx context.Context, entries []SetEntry, fill bool, epoch uint64) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if !s.trusted.Load() || fill && s.epoch.Load() != epoch {
		return errSkipped
	}
	if err := s.c.Set(ctx, entries); err != nil {
		s.cacheFailed("set", err)
		return err
	}
	s.cacheOK()
	return nil
}

// --- reads ---

// groupCount accumulates hits and misses of one group in a batch.
type groupCount struct {
	group        string
	hits, misses int
}

func count(cs []groupCount, group string, hit bool) []groupCount {
	i := slices.IndexFunc(cs, func(c groupCount) bool { return c.group == group })
	if i < 0 {
		cs = append(cs, groupCount{group: group})
		i = len(cs) - 1
	}
	if hit {
		cs[i].hits++
	} else {
		cs[i].misses++
	}
	return cs
}

// GetLatest answers from the cache what it can, in one round trip, reads the
// rest from the inner store in one call and fills them into the cache.
func (s *Store) GetLatest(ctx context.Context, keys []feature.Key) ([]*feature.Row, error) {
	if len(keys) == 0 {
		return s.inner.GetLatest(ctx, keys)
	}
	epoch := s.epoch.Load()
	use := s.trusted.Load() && s.cacheMayBeUsable()
	out := make([]*feature.Row, len(keys))
	var (
		ckeys  []string // cache key per key; "" bypasses the cache
		lookup []string // the non-empty ckeys
		ents   []Entry
	)
	if use {
		ckeys = make([]string, len(keys))
		lookup = ckeys
		ids := make([]string, len(keys))
		var learned map[string]string
		cur := *s.groups.Load()
		for i, k := range keys {
			p, ok := cur[k.Group]
			if !ok {
				if learned == nil {
					learned = make(map[string]string)
				}
				p, ok = s.prefix(ctx, k.Group, learned)
			}
			if ok {
				ckeys[i], ids[i] = p, k.EntityID
			}
		}
		concat(ckeys, ids) // a key left "" (group unknown) stays ""
		if s.dirtyN.Load() > 0 {
			s.dirtyMu.Lock()
			for i, ck := range ckeys {
				if _, bad := s.dirty[ck]; bad {
					ckeys[i] = ""
				}
			}
			s.dirtyMu.Unlock()
		}
		for i, ck := range ckeys {
			if ck == "" {
				// Some keys bypass the cache: look up only the others.
				lookup = make([]string, 0, len(ckeys))
				lookup = append(lookup, ckeys[:i]...)
				for _, ck := range ckeys[i+1:] {
					if ck != "" {
						lookup = append(lookup, ck)
					}
				}
				break
			}
		}
		if len(lookup) == 0 || !s.cacheUsable() {
			use = false // nothing to ask the cache, or not now
		} else if e, err := s.c.Get(ctx, lookup); err != nil {
			s.cacheFailed("get", err)
			use = false
		} else {
			s.cacheOK()
			ents = e
		}
	}

	var (
		buf    [4]groupCount
		counts = buf[:0]
		miss   []int
		j      int
	)
	for i, k := range keys {
		hit := false
		if ents != nil && ckeys[i] != "" {
			if e := ents[j]; e.Found {
				hit = true
				if e.Row != nil {
					e.Row.Group, e.Row.EntityID = k.Group, k.EntityID
				}
				out[i] = e.Row
			}
			j++
		}
		if !hit {
			miss = append(miss, i)
		}
		if s.obs != nil {
			counts = count(counts, k.Group, hit)
		}
	}
	for _, c := range counts {
		if c.hits > 0 {
			s.obs.CacheHit(s.c.Name(), c.group, c.hits)
		}
		if c.misses > 0 {
			s.obs.CacheMiss(s.c.Name(), c.group, c.misses)
		}
	}
	if len(miss) == 0 {
		return out, nil
	}

	mkeys := make([]feature.Key, len(miss))
	for j, i := range miss {
		mkeys[j] = keys[i]
	}
	rows, err := s.inner.GetLatest(ctx, mkeys)
	if err != nil {
		return nil, err
	}
	var fill []SetEntry
	for j, i := range miss {
		out[i] = rows[j]
		if use && ckeys[i] != "" {
			fill = append(fill, SetEntry{Key: ckeys[i], Row: rows[j]})
		}
	}
	if len(fill) > 0 {
		_ = s.set(ctx, fill, true, epoch) // a failed fill only costs a later miss
	}
	return out, nil
}

// --- writes ---

// WriteRows writes to the inner store, then writes the newest row per key
// through to the cache. Once the inner store has committed, the write is
// acknowledged whatever the cache does: keys the cache could not take are
// marked dirty.
func (s *Store) WriteRows(ctx context.Context, rows []feature.Row) error {
	if len(rows) == 0 {
		return s.inner.WriteRows(ctx, rows)
	}
	// Learn the incarnations first, so that the write-through cannot fail
	// for want of one after the commit.
	learned := make(map[string]string)
	cur := *s.groups.Load()
	for _, r := range rows {
		if _, ok := cur[r.Group]; !ok {
			s.prefix(ctx, r.Group, learned)
		}
	}
	if err := s.inner.WriteRows(ctx, rows); err != nil {
		if feature.ErrorCode(err) == feature.CodeOutcomeUnknown {
			s.outcomeUnknown(rows, learned)
		}
		return err
	}
	if !s.trusted.Load() {
		return nil // the cache will be cleared before it is trusted again
	}
	for g, p := range learned {
		if p == "" {
			delete(learned, g) // ask again: the group exists, the write committed
		}
	}

	// The newest row of each key, compared as stored; ties within the batch
	// (which the store may resolve either way) are left to the repair loop.
	type newest struct {
		row *feature.Row
		tie bool
	}
	latest := make(map[string]newest, len(rows))
	order := make([]string, 0, len(rows))
	for i := range rows {
		r := storedRow(&rows[i])
		p, ok := s.prefix(ctx, r.Group, learned)
		if !ok {
			// Committed rows of a group whose incarnation the store would
			// not tell: their keys are unknown, so no key can be trusted.
			s.distrust("incarnation of a written group unknown")
			return nil
		}
		ck := p + r.EntityID
		n, seen := latest[ck]
		switch {
		case !seen:
			order = append(order, ck)
			latest[ck] = newest{row: r}
		case r.Newer(*n.row):
			latest[ck] = newest{row: r}
		case !n.row.Newer(*r):
			n.tie = true
			latest[ck] = n
		}
	}
	entries := make([]SetEntry, 0, len(order))
	var ties []SetEntry
	for _, ck := range order {
		n := latest[ck]
		e := SetEntry{Key: ck, Row: n.row, Written: true}
		if n.tie {
			ties = append(ties, e)
		} else {
			entries = append(entries, e)
		}
	}
	if len(ties) > 0 {
		s.markDirty(ties)
	}
	if len(entries) == 0 {
		return nil
	}
	if !s.cacheUsable() {
		s.markDirty(entries)
		return nil
	}
	if err := s.set(ctx, entries, false, 0); err != nil && !errors.Is(err, errSkipped) {
		s.markDirty(entries)
	}
	return nil
}

// outcomeUnknown marks dirty the keys of rows whose write may or may not
// have been committed: their cached values can no longer be vouched for
// (a retry of the write with its Idempotency-Key may be acknowledged
// without writing again), so reads bypass them until the repair loop has
// re-read them from the store. Other keys are served as before. A group
// whose incarnation is unknown leaves its keys unknown: the whole cache is
// distrusted instead.
func (s *Store) outcomeUnknown(rows []feature.Row, learned map[string]string) {
	if !s.trusted.Load() {
		return // cleared before it is trusted again
	}
	cur := *s.groups.Load()
	entries := make([]SetEntry, 0, len(rows))
	for i := range rows {
		p, ok := cur[rows[i].Group]
		if !ok {
			p = learned[rows[i].Group]
			ok = p != ""
		}
		if !ok {
			s.distrust("a write's commit outcome is unknown and its group's incarnation too")
			return
		}
		entries = append(entries, SetEntry{Key: p + rows[i].EntityID, Row: &rows[i]})
	}
	s.markDirty(entries)
}

// storedRow is r as the stores keep it: times in UTC truncated to
// microseconds, so its version is the one a later read would return.
func storedRow(r *feature.Row) *feature.Row {
	c := *r
	c.EventTime = r.EventTime.UTC().Truncate(time.Microsecond)
	c.WriteTime = r.WriteTime.UTC().Truncate(time.Microsecond)
	return &c
}

// markDirty records keys whose cached value may be older than the store's:
// reads bypass them until the repair loop has fixed them. Past MaxDirty the
// whole cache is distrusted instead.
func (s *Store) markDirty(entries []SetEntry) {
	s.dirtyMu.Lock()
	defer s.dirtyMu.Unlock()
	for _, e := range entries {
		if _, ok := s.dirty[e.Key]; !ok && len(s.dirty) >= s.maxDirty {
			s.distrustLocked("too many dirty keys")
			return
		}
		s.dirtySeq++
		s.dirty[e.Key] = dirtyKey{key: feature.Key{Group: e.Row.Group, EntityID: e.Row.EntityID}, seq: s.dirtySeq}
	}
	s.dirtyN.Store(int64(len(s.dirty)))
}

// distrust stops all use of the cache until the repair loop has cleared it.
func (s *Store) distrust(reason string) {
	s.dirtyMu.Lock()
	defer s.dirtyMu.Unlock()
	s.distrustLocked(reason)
}

func (s *Store) distrustLocked(reason string) {
	if s.trusted.Load() {
		s.log.Warn("cache distrusted until cleared", zap.String("reason", reason))
	}
	s.trusted.Store(false)
	s.epoch.Add(1)
	clear(s.dirty)
	s.dirtyN.Store(0)
}

// --- repair ---

func (s *Store) repairLoop() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	t := time.NewTicker(s.retry)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		switch {
		case !s.trusted.Load():
			if s.cacheUsable() {
				s.clearCache(ctx)
			}
		case s.dirtyN.Load() > 0:
			if s.cacheUsable() {
				s.repairDirty(ctx)
			}
		}
	}
}

// clearCache deletes every cached entry and then trusts the cache again.
func (s *Store) clearCache(ctx context.Context) {
	epoch := s.epoch.Load()
	// Wait for Sets that began while the cache was trusted (an empty
	// critical section: taking the lock is the wait); later ones see it
	// distrusted and skip.
	s.gate.Lock()
	s.gate.Unlock()
	if err := s.c.Clear(ctx); err != nil {
		s.cacheFailed("clear", err)
		return
	}
	s.cacheOK()
	s.dirtyMu.Lock()
	defer s.dirtyMu.Unlock()
	if s.epoch.Load() != epoch {
		return // distrusted again meanwhile: clear again next time
	}
	clear(s.dirty)
	s.dirtyN.Store(0)
	s.trusted.Store(true)
	s.log.Info("cache cleared and trusted again")
}

// repairDirty re-reads dirty keys from the inner store, sets them in the
// cache and forgets those not marked again meanwhile.
func (s *Store) repairDirty(ctx context.Context) {
	type item struct {
		ck string
		d  dirtyKey
	}
	for s.dirtyN.Load() > 0 && ctx.Err() == nil {
		epoch := s.epoch.Load()
		s.dirtyMu.Lock()
		batch := make([]item, 0, min(len(s.dirty), repairBatch))
		for ck, d := range s.dirty {
			if batch = append(batch, item{ck, d}); len(batch) == repairBatch {
				break
			}
		}
		s.dirtyMu.Unlock()

		byGroup := make(map[string][]item)
		for _, it := range batch {
			byGroup[it.d.key.Group] = append(byGroup[it.d.key.Group], it)
		}
		var (
			fill []SetEntry
			done []item
		)
		for group, items := range byGroup {
			keys := make([]feature.Key, len(items))
			for i, it := range items {
				keys[i] = it.d.key
			}
			rows, err := s.inner.GetLatest(ctx, keys)
			if feature.ErrorCode(err) == feature.CodeNotFound {
				done = append(done, items...) // the group is gone, and its keys with it
				continue
			}
			if err != nil {
				s.log.Warn("cache repair: read from store", zap.String("group", group), zap.Error(err))
				return
			}
			for i, it := range items {
				fill = append(fill, SetEntry{Key: it.ck, Row: rows[i]})
			}
			done = append(done, items...)
		}
		if len(fill) > 0 {
			if err := s.set(ctx, fill, true, epoch); err != nil {
				return
			}
		}
		s.dirtyMu.Lock()
		for _, it := range done {
			if d, ok := s.dirty[it.ck]; ok && d.seq == it.d.seq {
				delete(s.dirty, it.ck)
			}
		}
		s.dirtyN.Store(int64(len(s.dirty)))
		s.dirtyMu.Unlock()
	}
}
