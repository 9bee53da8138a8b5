package cache

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
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
	// Epochs is the system of record's account of the cache (see
	// EpochStore), for a cache that has an identity (Redis). Nil means the
	// inner store, if it is an EpochStore, or else one kept in memory.
	Epochs EpochStore
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
	inner  store.Store
	cache  *guardedCache
	obs    Observer
	log    *zap.Logger
	groups *incarnations
	dirty  *dirtySet
	repair *repairer
	valid  *validator // nil for a cache without an identity
}

var _ store.Store = (*Store)(nil)

// Wrap returns inner with cache c in front of it, having checked the cache
// against the system of record (see EpochStore) once, and starts the repair
// loop; Close stops it and closes inner (not the cache's client).
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
	log := opts.Logger.With(zap.String("cache", c.Name()))
	gate := &barrier{}
	s := &Store{
		inner: inner,
		cache: &guardedCache{
			c:       c,
			name:    c.Name(),
			breaker: newBreaker(opts.Now, opts.RetryInterval),
			gate:    gate,
			obs:     opts.Observer,
			log:     log,
		},
		obs:   opts.Observer,
		log:   log,
		dirty: newDirtySet(opts.MaxDirty, gate),
	}
	s.groups = newIncarnations(inner.GetGroup, s.distrust)
	s.valid = newValidator(inner, c, s, opts)
	s.repair = &repairer{
		valid:    s.valid,
		interval: opts.RetryInterval,
		latest:   inner.GetLatest,
		cache:    s.cache,
		dirty:    s.dirty,
		log:      log,
	}
	// The first pass runs now, so that a server is ready with its cache
	// checked against the system of record (and cleared, if it must be),
	// unless the cache or the store does not answer in time.
	ctx, cancel := context.WithTimeout(context.Background(), firstPassTimeout)
	s.repair.pass(ctx)
	cancel()
	s.repair.start()
	return s
}

// firstPassTimeout bounds the repair loop's first pass, which Wrap runs
// before it returns.
const firstPassTimeout = 5 * time.Second

// newValidator returns the validator of a cache with an identity, nil for
// another.
func newValidator(inner store.Store, c Cache, s *Store, opts WrapOptions) *validator {
	ident, ok := c.(identified)
	if !ok {
		return nil
	}
	epochs := opts.Epochs
	if epochs == nil {
		if e, ok := inner.(EpochStore); ok {
			epochs = e
		} else {
			epochs = &memEpochs{}
		}
	}
	v := &validator{cache: s.cache, ident: ident, epochs: epochs, distrust: s.distrust, log: s.log}
	if mo, ok := opts.Observer.(MismatchObserver); ok {
		v.obs = mo
	}
	s.cache.onFail = v.invalidate
	ident.watch(v.acceptedNodes, v.suspectConn)
	return v
}

// Checked reports whether reads may use the cache as far as the system of
// record's account goes: it matched at the last check, and nothing failed
// since. Always true for a cache without an identity.
func (s *Store) Checked() bool {
	_, ok := s.valid.snapshot()
	return ok
}

// HealthOf returns c's health (the cache's own check) with what Store
// knows of the cache added to its details: whether it is trusted and
// checked against the system of record, its dirty keys, and the
// mismatches found (the last one's reason and time) and when the cache was
// last cleared and rebuilt because of one.
func (s *Store) HealthOf(c store.HealthChecker) store.HealthChecker {
	return healthFunc(func(ctx context.Context) store.Component {
		comp := c.Health(ctx)
		d := make(map[string]any, len(comp.Details)+8)
		maps.Copy(d, comp.Details)
		d["trusted"] = s.Trusted()
		d["dirty_keys"] = s.Dirty()
		if s.valid != nil {
			s.valid.details(d)
		}
		comp.Details = d
		return comp
	})
}

type healthFunc func(ctx context.Context) store.Component

func (f healthFunc) Health(ctx context.Context) store.Component { return f(ctx) }

// Dirty returns the number of keys whose cached value may be stale, which
// reads bypass until the repair loop has fixed them.
func (s *Store) Dirty() int { return s.dirty.Len() }

// Trusted reports whether the cache is used at all: false after too many
// dirty keys, until the repair loop has cleared the cache.
func (s *Store) Trusted() bool { return s.cache.gate.IsOpen() }

// Close stops the repair loop and closes the inner store. If keys are
// still dirty, or the cache is distrusted, the cache holds entries older
// than acknowledged writes that nobody will repair now: Close bumps the
// cache generation in the system of record, so that the other servers
// clear the cache.
func (s *Store) Close() error {
	s.repair.close()
	if s.valid != nil && (s.dirty.Len() > 0 || !s.cache.gate.IsOpen()) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.valid.bump(ctx)
		cancel()
		if err != nil {
			s.log.Error("cache holds entries older than acknowledged writes and the cache generation could not be bumped: other servers may read them until they expire", zap.Error(err))
		} else {
			s.log.Warn("cache generation bumped: it holds entries older than acknowledged writes, which the other servers will clear")
		}
	}
	return s.inner.Close()
}

// distrust stops all use of the cache until the repair loop has cleared it.
func (s *Store) distrust(reason string) {
	if s.dirty.Distrust() {
		s.log.Warn("cache distrusted until cleared", zap.String("reason", reason))
	}
}

// markDirty records keys whose cached value may be older than the store's:
// reads bypass them until the repair loop has fixed them. Past MaxDirty the
// whole cache is distrusted instead.
func (s *Store) markDirty(entries []SetEntry) {
	if s.dirty.Mark(entries) {
		s.log.Warn("cache distrusted until cleared", zap.String("reason", "too many dirty keys"))
	}
}

// --- registry: pass through, learning incarnations ---

// ListGroups passes through and remembers every group's incarnation.
func (s *Store) ListGroups(ctx context.Context) ([]feature.Group, error) {
	v := s.groups.readVersion()
	gs, err := s.inner.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	s.groups.update(v, func(m, _ map[string]string) {
		clear(m)
		for _, g := range gs {
			m[g.Name] = keyPrefix(g)
		}
	})
	return gs, nil
}

// GetGroup passes through and remembers the group's incarnation.
func (s *Store) GetGroup(ctx context.Context, name string) (feature.Group, error) {
	_, g, err := s.groups.learn(ctx, name)
	return g, err
}

// PutGroup passes through and remembers the stored group's incarnation.
func (s *Store) PutGroup(ctx context.Context, g feature.Group, now time.Time) (feature.Group, error) {
	out, err := s.inner.PutGroup(ctx, g, now)
	s.groups.changed()
	if err != nil {
		return out, err
	}
	s.groups.update(-1, func(m, _ map[string]string) { m[out.Name] = keyPrefix(out) })
	return out, nil
}

// DeleteGroup passes through and forgets the group's incarnation; its cached
// rows become unreachable and expire.
//
// Another server learns of the deletion when the registry change reaches it
// (pushed, in milliseconds, or by its periodic refresh); until then it
// still knows the incarnation, and its cached rows would answer its reads
// after this deletion was acknowledged. So, with a cache that other servers
// share, the deleted incarnation gets a tombstone in the cache before
// DeleteGroup returns: every read looks up the tombstones of the
// incarnations it reads along with their keys, in the same round trip, and
// a tombstone turns the incarnation's entries into misses, read from the
// inner store, which no longer has the group. If the tombstone cannot be
// written, the cache generation is bumped instead: the other servers then
// stop reading the cache at their next check, within RetryInterval.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	p, known := s.groups.load()[name]
	var prefixes []string
	if s.valid != nil {
		// The incarnation the system of record has now, which may be newer
		// than the one this server knows (another server re-created the
		// group), is the one to be deleted.
		if known {
			prefixes = append(prefixes, p)
		}
		if g, err := s.inner.GetGroup(ctx, name); err == nil && (!known || keyPrefix(g) != p) {
			prefixes = append(prefixes, keyPrefix(g))
		}
	}
	err := s.inner.DeleteGroup(ctx, name)
	s.groups.changed()
	s.groups.update(-1, func(m, deleted map[string]string) {
		delete(m, name)
		if known && err == nil {
			deleted[name] = p
		}
	})
	if len(prefixes) > 0 && (err == nil || feature.ErrorCode(err) == feature.CodeOutcomeUnknown) {
		// A tombstone of an incarnation that is still there (the commit's
		// outcome is unknown) only sends its reads to the inner store.
		s.tombstone(context.WithoutCancel(ctx), name, prefixes)
	}
	return err
}

// tombstone writes the tombstones of a deleted group's incarnations (see
// DeleteGroup), or, if it cannot, bumps the cache generation.
func (s *Store) tombstone(ctx context.Context, name string, prefixes []string) {
	ents := make([]SetEntry, len(prefixes))
	for i, p := range prefixes {
		ents[i] = SetEntry{Key: tombKey(p), Gone: true}
	}
	err := s.cache.writeThrough(ctx, ents)
	if err == nil {
		return
	}
	log := s.log.With(zap.String("group", name), zap.NamedError("tombstone_error", err))
	if err := s.valid.bump(ctx); err != nil {
		log.Error("deleted group's tombstone not written to the cache and the cache generation could not be bumped: other servers may serve its cached rows until the deletion reaches them", zap.Error(err))
		return
	}
	log.Warn("deleted group's tombstone not written to the cache: cache generation bumped instead")
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

// --- reads ---

// GetLatest answers from the cache what it can, in one round trip, reads the
// rest from the inner store in one call and fills them into the cache.
//
// It plans the cache keys, looks them up, reads the misses from the store,
// and fills what it read into the cache if the lookup succeeded (so a cache
// that failed is not written to by the same call). The fill is tagged with
// the epoch read before anything else: it is dropped if trust was lost
// since.
func (s *Store) GetLatest(ctx context.Context, keys []feature.Key) ([]*feature.Row, error) {
	if len(keys) == 0 {
		return s.inner.GetLatest(ctx, keys)
	}
	epoch, trusted := s.cache.gate.State()
	vstate, checked := s.valid.snapshot()
	var (
		ckeys []string // cache key per key; "" bypasses the cache
		ents  []Entry  // one per non-empty ckey, if the cache answered
		used  bool     // the cache answered
	)
	var gone []int // keys of deleted incarnations: misses, not filled
	if trusted && checked && s.cache.breaker.ready() {
		var lookup, marks []string
		ckeys, lookup, marks = s.cacheKeys(ctx, keys)
		n := len(lookup)
		if n > 0 && len(marks) > 0 {
			lookup = append(lookup, marks...) // into ckeys' spare room, or a copy: ckeys keeps its length
		}
		ents, used = s.lookup(ctx, lookup)
		if used && (s.cache.gate.Epoch() != epoch || !s.valid.unchanged(vstate)) {
			// Trust was lost during the lookup (it may have reached a
			// restarted server): nothing it answered is used or filled.
			ents, used = nil, false
		}
		if used && len(marks) > 0 {
			ents, gone = dropGone(ckeys, ents[:n], marks, ents[n:])
		}
	}
	out := make([]*feature.Row, len(keys))
	miss := s.takeHits(keys, ckeys, ents, out)
	for _, i := range gone {
		ckeys[i] = ""
	}
	if len(miss) == 0 {
		return out, nil
	}
	if err := s.readMisses(ctx, keys, miss, out); err != nil {
		return nil, err
	}
	if used {
		s.fillMisses(ctx, ckeys, miss, out, epoch)
	}
	return out, nil
}

// cacheKeys returns the cache key of each key ("" for a key that bypasses
// the cache: its group is unknown, or it is dirty), the non-empty ones in
// order, which are to be looked up, and, for a cache that other servers
// share, the tombstone keys of the incarnations they name, to be looked up
// with them (see DeleteGroup).
//
// For a shared cache, ckeys has room for one tombstone key past its end (a
// batch usually reads one group), so that the keys and the marks are
// looked up together without another copy of the batch's keys.
func (s *Store) cacheKeys(ctx context.Context, keys []feature.Key) (ckeys, lookup, marks []string) {
	room := 0
	if s.valid != nil {
		room = 1
	}
	ckeys = make([]string, len(keys), len(keys)+room)
	var learned map[string]string
	cur := s.groups.load()
	var (
		last   string // the previous key's group and prefix: a batch's keys come group by group
		lastP  string
		lastOK bool
	)
	for i, k := range keys {
		p, ok := lastP, lastOK
		if i == 0 || k.Group != last {
			if p, ok = cur[k.Group]; !ok {
				if learned == nil {
					learned = make(map[string]string)
				}
				p, ok = s.groups.prefix(ctx, k.Group, learned)
			}
			last, lastP, lastOK = k.Group, p, ok
			if ok && s.valid != nil && !slices.Contains(marks, tombKey(p)) {
				marks = append(marks, tombKey(p)) // distinct, in order of first use
			}
		}
		if ok {
			ckeys[i] = p
		}
	}
	concatIDs(ckeys, keys) // a key left "" (group unknown) stays ""
	s.dirty.Bypass(ckeys)
	return ckeys, nonEmpty(ckeys), marks
}

// concatIDs is concat of each non-empty prefix and its key's entity id.
func concatIDs(prefixes []string, keys []feature.Key) {
	n := 0
	for i, p := range prefixes {
		if p != "" {
			n += len(p) + len(keys[i].EntityID)
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i, p := range prefixes {
		if p != "" {
			b.WriteString(p)
			b.WriteString(keys[i].EntityID)
		}
	}
	all, off := b.String(), 0
	for i, p := range prefixes {
		if p != "" {
			end := off + len(p) + len(keys[i].EntityID)
			prefixes[i], off = all[off:end], end
		}
	}
}

// tombKey is the cache key of the tombstone of the incarnation whose keys
// start with prefix: the prefix without its trailing colon, which no
// entity's key equals.
func tombKey(prefix string) string { return prefix[:len(prefix)-1] }

// dropGone turns into misses the entries (one per non-empty ckey) of the
// incarnations whose tombstone the lookup found (tombs, one per mark), and
// returns the indexes of their keys, which must not be filled either.
func dropGone(ckeys []string, ents []Entry, marks []string, tombs []Entry) ([]Entry, []int) {
	var dead []string
	for j, t := range tombs {
		if t.Gone {
			dead = append(dead, marks[j]+":")
		}
	}
	if dead == nil {
		return ents, nil
	}
	var gone []int
	j := 0
	for i, ck := range ckeys {
		if ck == "" {
			continue
		}
		if slices.ContainsFunc(dead, func(p string) bool { return strings.HasPrefix(ck, p) }) {
			ents[j] = Entry{}
			gone = append(gone, i)
		}
		j++
	}
	return ents, gone
}

// nonEmpty returns the non-empty strings of ss: ss itself if all are.
func nonEmpty(ss []string) []string {
	i := slices.Index(ss, "")
	if i < 0 {
		return ss
	}
	out := make([]string, i, len(ss))
	copy(out, ss[:i])
	for _, s := range ss[i+1:] {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// lookup asks the cache for keys, if there are any and the breaker lets
// it; used reports whether the cache answered.
func (s *Store) lookup(ctx context.Context, keys []string) (ents []Entry, used bool) {
	if len(keys) == 0 || !s.cache.breaker.allow() {
		return nil, false // nothing to ask the cache, or not now
	}
	ents, err := s.cache.get(ctx, keys)
	return ents, err == nil
}

// takeHits copies into out the rows the cache answered for (ents holds one
// entry per non-empty ckey) and returns the indexes of the other keys, the
// misses. It reports the hits and misses of each group to the observer.
func (s *Store) takeHits(keys []feature.Key, ckeys []string, ents []Entry, out []*feature.Row) (miss []int) {
	var (
		buf    [4]groupCount
		counts = buf[:0]
		j      int
	)
	for i, k := range keys {
		hit := false
		if ents != nil && ckeys[i] != "" {
			if e := ents[j]; e.Found {
				hit = true
				// A row the cache shares (store.WithReadHint) has its
				// key's group and entity already: it is not written to.
				if e.Row != nil && (e.Row.Group != k.Group || e.Row.EntityID != k.EntityID) {
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
	s.report(counts)
	return miss
}

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

func (s *Store) report(counts []groupCount) {
	for _, c := range counts {
		if c.hits > 0 {
			s.obs.CacheHit(s.cache.name, c.group, c.hits)
		}
		if c.misses > 0 {
			s.obs.CacheMiss(s.cache.name, c.group, c.misses)
		}
	}
}

// readMisses reads the keys at the indexes miss from the inner store into
// out.
func (s *Store) readMisses(ctx context.Context, keys []feature.Key, miss []int, out []*feature.Row) error {
	mkeys := make([]feature.Key, len(miss))
	for j, i := range miss {
		mkeys[j] = keys[i]
	}
	rows, err := s.inner.GetLatest(ctx, mkeys)
	if err != nil {
		return err
	}
	for j, i := range miss {
		out[i] = rows[j]
	}
	return nil
}

// fillMisses sets in the cache, as fills of epoch, what was read from the
// store for the misses that have a cache key.
func (s *Store) fillMisses(ctx context.Context, ckeys []string, miss []int, out []*feature.Row, epoch uint64) {
	var fill []SetEntry
	for _, i := range miss {
		if ckeys[i] != "" {
			fill = append(fill, SetEntry{Key: ckeys[i], Row: out[i]})
		}
	}
	if len(fill) > 0 {
		_ = s.cache.fill(ctx, fill, epoch) // a failed fill only costs a later miss
	}
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
	learned := s.learnGroups(ctx, rows)
	if err := s.inner.WriteRows(ctx, rows); err != nil {
		if feature.ErrorCode(err) == feature.CodeOutcomeUnknown {
			s.outcomeUnknown(rows, learned)
		}
		return err
	}
	if !s.cache.gate.IsOpen() {
		return nil // the cache will be cleared before it is trusted again
	}
	for g, p := range learned {
		if p == "" {
			delete(learned, g) // ask again: the group exists, the write committed
		}
	}
	entries, ties, ok := s.newestPerKey(ctx, rows, learned)
	if !ok {
		// Committed rows of a group whose incarnation the store would not
		// tell: their keys are unknown, so no key can be trusted.
		s.distrust("incarnation of a written group unknown")
		return nil
	}
	if len(ties) > 0 {
		s.markDirty(ties)
	}
	if len(entries) > 0 {
		s.writeThrough(ctx, entries)
	}
	return nil
}

// learnGroups learns the incarnations of the groups of rows not known yet.
func (s *Store) learnGroups(ctx context.Context, rows []feature.Row) map[string]string {
	learned := make(map[string]string)
	cur := s.groups.load()
	for _, r := range rows {
		if _, ok := cur[r.Group]; !ok {
			s.groups.prefix(ctx, r.Group, learned)
		}
	}
	return learned
}

// newestPerKey returns the entries that write through the newest row of
// each key, compared as stored, and apart from them the keys where two rows
// of the batch tie (which the store may resolve either way, so they are
// left to the repair loop). ok is false if an incarnation is unknown.
func (s *Store) newestPerKey(ctx context.Context, rows []feature.Row, learned map[string]string) (entries, ties []SetEntry, ok bool) {
	type newest struct {
		row *feature.Row
		tie bool
	}
	latest := make(map[string]newest, len(rows))
	order := make([]string, 0, len(rows))
	for i := range rows {
		r := storedRow(&rows[i])
		p, ok := s.groups.prefix(ctx, r.Group, learned)
		if !ok {
			return nil, nil, false
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
	entries = make([]SetEntry, 0, len(order))
	for _, ck := range order {
		n := latest[ck]
		e := SetEntry{Key: ck, Row: n.row, Written: true}
		if n.tie {
			ties = append(ties, e)
		} else {
			entries = append(entries, e)
		}
	}
	return entries, ties, true
}

// writeThrough sets entries in the cache, or marks them dirty if the
// breaker is open or the cache fails. A write-through skipped because the
// cache is distrusted marks nothing: the cache will be cleared.
func (s *Store) writeThrough(ctx context.Context, entries []SetEntry) {
	if !s.cache.breaker.allow() {
		s.markDirty(entries)
		return
	}
	if err := s.cache.writeThrough(ctx, entries); err != nil && !errors.Is(err, errSkipped) {
		s.markDirty(entries)
	}
}

// outcomeUnknown marks dirty the keys of rows whose write may or may not
// have been committed: their cached values can no longer be vouched for
// (a retry of the write with its Idempotency-Key may be acknowledged
// without writing again), so reads bypass them until the repair loop has
// re-read them from the store. Other keys are served as before. A group
// whose incarnation is unknown leaves its keys unknown: the whole cache is
// distrusted instead.
func (s *Store) outcomeUnknown(rows []feature.Row, learned map[string]string) {
	if !s.cache.gate.IsOpen() {
		return // cleared before it is trusted again
	}
	cur := s.groups.load()
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
