package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// EpochStore is the system of record's account of a cache, which every
// server and every command that uses the cache (or writes around it) goes
// by. Per cache key prefix it holds:
//
//   - a generation, which any writer that cannot keep the cache up to date
//     bumps (a command writing without the cache, a server shutting down
//     with keys it could not repair, an operator's `featurestore cache
//     invalidate`): a cache stamped with an older generation is cleared;
//   - the identity of the Redis servers the cache content was built on: the
//     run_id and replication id of each master. A restarted server (which
//     may have loaded an older RDB or AOF) and a promoted replica (which may
//     lag its old master) have another identity, so their content is
//     cleared before it is trusted.
//
// The Postgres store implements it; without it (the embedded store), a
// server keeps the account in memory for itself.
type EpochStore interface {
	// CacheEpoch returns the generation and identity recorded for the
	// cache of prefix (creating the record, with generation 1 and no
	// identity, if there is none) and records that a server using it with
	// entries living ttl was seen now.
	CacheEpoch(ctx context.Context, prefix string, ttl time.Duration) (generation int64, identity string, err error)
	// AdvanceCacheEpoch records identity to as the cache's and bumps the
	// generation, if the recorded identity is still from; it returns the
	// record as it is then.
	AdvanceCacheEpoch(ctx context.Context, prefix, from, to string) (generation int64, identity string, err error)
	// BumpCacheGeneration bumps the generation of the cache of prefix,
	// which makes every server clear it.
	BumpCacheGeneration(ctx context.Context, prefix string) error
}

// memEpochs is an EpochStore of one process, for a system of record that
// keeps none: it still detects a Redis restart or failover that this
// process sees.
type memEpochs struct {
	mu       sync.Mutex
	gen      int64
	identity string
}

func (m *memEpochs) CacheEpoch(context.Context, string, time.Duration) (int64, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen == 0 {
		m.gen = 1
	}
	return m.gen, m.identity, nil
}

func (m *memEpochs) AdvanceCacheEpoch(_ context.Context, _, from, to string) (int64, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.identity == from {
		m.identity = to
		m.gen++
	}
	return m.gen, m.identity, nil
}

func (m *memEpochs) BumpCacheGeneration(context.Context, string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	return nil
}

// identified is a cache whose servers have an identity and that holds the
// generation it was stamped with (Redis; not the memory cache, which lives
// and dies with its process).
type identified interface {
	// Identity names the servers the cache is on: for each master,
	// "run_id/master_replid", sorted and joined by commas.
	Identity(ctx context.Context) (string, error)
	// Generation returns the generation the cache was stamped with, 0 if
	// none.
	Generation(ctx context.Context) (int64, error)
	// SetGeneration stamps the cache with gen.
	SetGeneration(ctx context.Context, gen int64) error
	// Prefix is the cache's key prefix, which names it in the EpochStore.
	Prefix() string
	// TTL is how long a row stays cached.
	TTL() time.Duration
	// watch makes the cache report, before it serves anything from it, a
	// connection to a master whose identity was not accepted.
	watch(accept func() map[string]bool, suspect func(reason string))
}

// Reasons of a mismatch between the cache and the system of record's
// account of it: the feature_store_cache_mismatches_total label values.
const (
	MismatchIdentity   = "identity"   // the masters are not the ones the content was built on
	MismatchGeneration = "generation" // a writer went around the cache, or an operator invalidated it
	MismatchConnection = "connection" // a new connection reached an unknown master
)

// MismatchObserver, if the Observer implements it, counts mismatches.
type MismatchObserver interface {
	CacheMismatch(cacheType, reason string)
}

// validator keeps reads away from a cache that has not been checked
// against the system of record since it could have changed behind the
// server's back.
//
// Its state is seq<<1 | valid. It is valid once a check found the cache's
// identity and generation equal to the EpochStore's; any cache failure
// (which is how a restart or a failover first shows) or a mismatch makes it
// invalid and bumps seq. A read uses the cache only while it is valid, and
// drops what the cache answered if the state (or the barrier's epoch)
// changed during the lookup, so a read whose connection found a restarted
// server (see nodeWatch) returns nothing it read there.
type validator struct {
	state    atomic.Uint64
	cache    *guardedCache
	ident    identified
	epochs   EpochStore
	distrust func(reason string)
	obs      MismatchObserver
	log      *zap.Logger

	accepted atomic.Pointer[map[string]bool] // master identities of the last successful check

	mu           sync.Mutex // guards what health reports
	mismatches   int64
	lastMismatch string
	lastAt       time.Time
	lastStamp    time.Time
	generation   int64
	record       *epochRecord // the EpochStore's record as last read
}

type epochRecord struct {
	gen      int64
	identity string
}

const validBit = 1

// snapshot returns the state and whether the cache may be read.
func (v *validator) snapshot() (uint64, bool) {
	if v == nil {
		return 0, true
	}
	s := v.state.Load()
	return s, s&validBit != 0
}

// unchanged reports whether the state is still s.
func (v *validator) unchanged(s uint64) bool { return v == nil || v.state.Load() == s }

// invalidate keeps reads away until the next successful check.
func (v *validator) invalidate() {
	if v == nil {
		return
	}
	for {
		s := v.state.Load()
		if v.state.CompareAndSwap(s, (s>>1+1)<<1) {
			return
		}
	}
}

// markValid makes the cache readable, if nothing invalidated it since the
// state was from; it reports whether it was not readable until then.
func (v *validator) markValid(from uint64) bool {
	if from&validBit != 0 {
		return false
	}
	return v.state.CompareAndSwap(from, (from>>1+1)<<1|validBit)
}

func (v *validator) mismatch(reason, detail string) {
	v.invalidate()
	v.mu.Lock()
	v.mismatches++
	v.lastMismatch, v.lastAt = reason+": "+detail, time.Now().UTC()
	v.mu.Unlock()
	if v.obs != nil {
		v.obs.CacheMismatch(v.cache.name, reason)
	}
	v.distrust("cache does not match the system of record: " + detail)
}

// accept records identity as the cache's, for nodeWatch.
func (v *validator) accept(identity string) {
	m := make(map[string]bool)
	for id := range strings.SplitSeq(identity, ",") {
		m[id] = true
	}
	v.accepted.Store(&m)
}

// acceptedNodes returns the accepted master identities, nil before the
// first check.
func (v *validator) acceptedNodes() map[string]bool {
	if p := v.accepted.Load(); p != nil {
		return *p
	}
	return nil
}

// suspectConn is nodeWatch's report of an unknown master.
func (v *validator) suspectConn(reason string) {
	v.mismatch(MismatchConnection, reason)
}

// epochAndIdentity reads the EpochStore's record and the cache's identity.
// If the system of record cannot be read, the record last read stands in
// for it (if there is one): nobody can write, nor bump the generation,
// while it is down, so a cache that matched it still does, and cached
// reads go on being served through an outage of the system of record.
func (v *validator) epochAndIdentity(ctx context.Context) (gen int64, recorded, current string, err error) {
	gen, recorded, err = v.epochs.CacheEpoch(ctx, v.ident.Prefix(), v.ident.TTL())
	v.mu.Lock()
	if err == nil {
		v.record = &epochRecord{gen, recorded}
	} else if v.record != nil {
		gen, recorded, err = v.record.gen, v.record.identity, nil
	}
	v.mu.Unlock()
	if err != nil {
		return 0, "", "", fmt.Errorf("read cache epoch from the system of record: %w", err)
	}
	err = v.cache.call("identity", func() (err error) {
		current, err = v.ident.Identity(ctx)
		return err
	})
	return gen, recorded, current, err
}

// check compares the cache with the EpochStore's record: equal, the cache
// becomes readable; different, it is distrusted (and the repair loop clears
// and stamps it).
func (v *validator) check(ctx context.Context) {
	from := v.state.Load()
	gen, recorded, current, err := v.epochAndIdentity(ctx)
	if err != nil {
		v.log.Debug("cache check failed", zap.Error(err))
		return
	}
	var stamped int64
	if err := v.cache.call("generation", func() (err error) {
		stamped, err = v.ident.Generation(ctx)
		return err
	}); err != nil {
		return
	}
	switch {
	case current != recorded:
		v.mismatch(MismatchIdentity, fmt.Sprintf("the Redis masters (%s) are not those its content was built on (%s): restarted, restored or failed over", current, orNone(recorded)))
	case stamped != gen:
		v.mismatch(MismatchGeneration, fmt.Sprintf("cache generation %d, system of record %d: written around or invalidated", stamped, gen))
	default:
		v.accept(current)
		v.mu.Lock()
		v.generation = gen
		v.mu.Unlock()
		if v.markValid(from) {
			v.log.Info("cache checked against the system of record", zap.Int64("generation", gen))
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none recorded"
	}
	return s
}

// stamp, after a clear, records the cache's identity in the EpochStore (a
// new identity bumps the generation there) and stamps the cache with the
// generation; from is the state before the clear.
func (v *validator) stamp(ctx context.Context, from uint64) error {
	gen, recorded, current, err := v.epochAndIdentity(ctx)
	if err != nil {
		return err
	}
	if recorded != current {
		gen, recorded, err = v.epochs.AdvanceCacheEpoch(ctx, v.ident.Prefix(), recorded, current)
		if err != nil {
			return fmt.Errorf("record cache identity in the system of record: %w", err)
		}
		if recorded != current {
			return errors.New("another server recorded another cache identity meanwhile")
		}
	}
	if err := v.cache.call("generation", func() error { return v.ident.SetGeneration(ctx, gen) }); err != nil {
		return err
	}
	v.accept(current)
	v.mu.Lock()
	v.generation, v.lastStamp = gen, time.Now().UTC()
	// What the system of record now holds: a check while it is down
	// compares with this, not with the account read before the stamp.
	v.record = &epochRecord{gen, current}
	v.mu.Unlock()
	v.markValid(from)
	return nil
}

// details are what /health reports of the checks.
func (v *validator) details(d map[string]any) {
	_, ok := v.snapshot()
	d["checked"] = ok
	v.mu.Lock()
	defer v.mu.Unlock()
	d["generation"] = v.generation
	d["mismatches"] = v.mismatches
	if v.lastMismatch != "" {
		d["last_mismatch"] = v.lastMismatch
		d["last_mismatch_at"] = v.lastAt
	}
	if !v.lastStamp.IsZero() {
		d["last_rebuilt_at"] = v.lastStamp
	}
}

// bump makes every server clear the cache (on their next check).
func (v *validator) bump(ctx context.Context) error {
	return v.epochs.BumpCacheGeneration(ctx, v.ident.Prefix())
}

// --- Redis ---

// nodeWatch checks each new Redis connection: a connection to a master
// whose identity is not among those accepted reports it before any command
// runs on it.
type nodeWatch struct {
	hook atomic.Pointer[nodeHook]
}

type nodeHook struct {
	accepted func() map[string]bool
	suspect  func(reason string)
}

func (w *nodeWatch) checkConn(ctx context.Context, cn *redis.Conn) error {
	h := w.hook.Load()
	if h == nil {
		return nil
	}
	acc := h.accepted()
	if acc == nil {
		return nil // not checked yet: nothing is read from the cache
	}
	info, err := cn.Info(ctx, "server", "replication").Result()
	if err != nil {
		return fmt.Errorf("identify redis server: %w", err)
	}
	f := parseInfo(info)
	if f["role"] != "master" {
		return nil // a replica: the cache reads and writes only masters
	}
	if id := nodeIdentity(f); !acc[id] {
		h.suspect("a new connection reached Redis master " + id + ", which the cache was not checked on (restarted, restored or failed over)")
	}
	return nil
}

func nodeIdentity(info map[string]string) string {
	return info["run_id"] + "/" + info["master_replid"]
}

func (r *Redis) watch(accepted func() map[string]bool, suspect func(string)) {
	r.nodes.hook.Store(&nodeHook{accepted: accepted, suspect: suspect})
}

// Prefix returns the key prefix, without the trailing colon.
func (r *Redis) Prefix() string { return strings.TrimSuffix(r.prefix, ":") }

// TTL returns how long a row stays cached.
func (r *Redis) TTL() time.Duration { return r.ttl }

// Identity returns "run_id/master_replid" of each master, sorted, joined by
// commas: on a cluster, of every master; otherwise of the server.
func (r *Redis) Identity(ctx context.Context) (string, error) {
	var (
		mu  sync.Mutex
		ids []string
	)
	node := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "server", "replication").Result()
		if err != nil {
			return err
		}
		mu.Lock()
		ids = append(ids, nodeIdentity(parseInfo(info)))
		mu.Unlock()
		return nil
	}
	var err error
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, node)
	case *redis.Client:
		err = node(ctx, c)
	default:
		err = fmt.Errorf("unsupported client type %T", r.client)
	}
	if err != nil {
		return "", fmt.Errorf("redis identity: %w", err)
	}
	slices.Sort(ids)
	return strings.Join(ids, ","), nil
}

func (r *Redis) generationKey() string { return r.prefix + "generation" }

// Generation returns the generation the cache was stamped with, 0 if none.
func (r *Redis) Generation(ctx context.Context) (int64, error) {
	s, err := r.client.Get(ctx, r.generationKey()).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis get generation: %w", err)
	}
	gen, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, nil // not ours: a mismatch, which clears it
	}
	return gen, nil
}

// SetGeneration stamps the cache with gen (no expiry).
func (r *Redis) SetGeneration(ctx context.Context, gen int64) error {
	if err := r.client.Set(ctx, r.generationKey(), strconv.FormatInt(gen, 10), 0).Err(); err != nil {
		return fmt.Errorf("redis set generation: %w", err)
	}
	return nil
}
