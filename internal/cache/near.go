package cache

import (
	"context"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/featurestore/featurestore/internal/feature"
)

// The near cache keeps, in the process, a copy of the Redis values its reads
// fetched, so that a read of a hot key costs a map lookup instead of a round
// trip to Redis. It only ever answers what Redis itself would answer at that
// moment, which is what keeps every replica giving the same answer:
//
//   - Redis tells it of every change. A tracker holds a connection of its
//     own on which server-assisted client-side caching is on in broadcast
//     mode for the cache's key prefix (CLIENT TRACKING ON BCAST PREFIX):
//     every key under the prefix that is written, deleted, expired or
//     evicted, and every flush, is pushed to it, and the copy is dropped.
//   - A write is acknowledged only after every near cache has applied its
//     invalidations. Every writer (servers and the CLI alike) ends a write
//     into Redis with a barrier (Redis.afterWrite): it publishes a token
//     that Redis queues on every tracking connection behind the write's
//     invalidations, and waits for each connection's acknowledgement, sent
//     once everything before the token is applied. A connection that does
//     not acknowledge within nearDrainTimeout is disconnected.
//   - A read uses its copy only while the tracking connection is up, Redis
//     answered a PING sent within the lease (shorter than a writer's wait,
//     so a connection that stopped taking its messages stops answering
//     before a write it missed is acknowledged), and nothing waits in its
//     socket (a killed or reset connection is seen at once).
//   - A fill cannot resurrect a value: a read notes the invalidation
//     sequence of each key's shard before it asks Redis and stores what
//     Redis answered only if no invalidation reached the shard meanwhile.
//   - Anything that breaks the tracking connection (Redis restarted, killed
//     or unreachable, the connection killed or silent) empties the copy and
//     turns it off until a new connection is set up.
//
// A read that the copy cannot answer whole goes to Redis as before, so the
// cache's behaviour (the Store's trust, dirty keys, tombstones) is unchanged:
// the copy is below all of it. It is used with a single Redis server; with a
// cluster or Sentinel it is off.

// nearShards is the number of independently locked shards of a near cache.
const nearShards = 64

// nearShard is one shard of the copy, keyed by the cache's keys (without
// the Redis prefix, which every tracked key has), so that a read answered
// by the copy builds no Redis key. seq counts the invalidations that
// reached the shard; a fill stores its values only if it is unchanged since
// the read began.
type nearShard struct {
	mu  sync.RWMutex
	seq uint64
	m   map[string]nearValue
}

// nearValue is Redis's answer for a key, decoded: ok false if Redis had no
// such key, else the entry's kind and, for a row, the row (all its
// features; Group and EntityID those the key names, if it is
// <group>:<incarnation>:<entity>, else empty: see keyRow). The row is never
// modified once stored: readers that promise to only read it share it
// (store.WithReadHint), the others get copies (see rowCopies).
type nearValue struct {
	ok   bool
	kind byte
	raw  string // Redis's value, which the row's strings share anyway
	row  *feature.Row
}

// nearCache is the copy, with the tracker that keeps it true.
type nearCache struct {
	seed     maphash.Seed
	perShard int
	prefix   string // the Redis prefix of the keys, with its colon
	shards   [nearShards]nearShard
	track    *tracker

	hits, misses, fills, refused atomic.Uint64
}

func newNearCache(prefix string, maxEntries int) *nearCache {
	n := &nearCache{seed: maphash.MakeSeed(), perShard: max(1, maxEntries/nearShards), prefix: prefix}
	for i := range n.shards {
		n.shards[i].m = make(map[string]nearValue)
	}
	return n
}

func (n *nearCache) shard(key string) *nearShard {
	return &n.shards[maphash.String(n.seed, key)%nearShards]
}

// get sets out (one entry per key) from the copy, and for the keys it
// does not have (all of them if the copy may not be used now) from Redis,
// decoded; it stores what Redis answered where it may (see fill). fetch
// reads keys (the cache's, without the prefix) from Redis. A read answered
// whole by the copy, the common case, allocates nothing here; it counts as
// a hit, any other as a miss. Rows are handed out by rows.
func (n *nearCache) get(ctx context.Context, keys []string, out []Entry, rows *rowCopies,
	fetch func(context.Context, []string) ([]any, error)) error {
	missing := n.lookup(keys, out, rows)
	if len(missing) == 0 {
		n.hits.Add(1)
		return nil
	}
	n.misses.Add(1)
	sub := keys
	if len(missing) < len(keys) {
		sub = make([]string, len(missing))
		for j, i := range missing {
			sub[j] = keys[i]
		}
	}
	seqs := n.begin(sub)
	got, err := fetch(ctx, sub)
	if err != nil {
		return err
	}
	dec, err := n.fill(sub, got, seqs)
	if err != nil {
		return err
	}
	for j, i := range missing {
		out[i] = dec[j].entry(rows, len(missing)-j)
	}
	return nil
}

// lookup sets out[i] from the copy of keys[i] and returns the indexes of
// the keys it has no copy of: all of them if the copy may not be used now.
func (n *nearCache) lookup(keys []string, out []Entry, rows *rowCopies) (missing []int) {
	if !n.track.current() {
		missing = make([]int, len(keys))
		for i := range missing {
			missing[i] = i
		}
		return missing
	}
	for i, k := range keys {
		sh := n.shard(k)
		sh.mu.RLock()
		v, ok := sh.m[k]
		sh.mu.RUnlock()
		if !ok {
			missing = append(missing, i)
			continue
		}
		out[i] = v.entry(rows, len(keys)-i)
	}
	return missing
}

// entry is the cache entry of v, its row handed out by rows (left bounds
// the rows still to hand out in this pass).
func (v nearValue) entry(rows *rowCopies, left int) Entry {
	switch {
	case !v.ok || v.kind == kindFence: // a miss
		return Entry{}
	case v.kind == kindAbsent:
		return Entry{Found: true}
	case v.kind == kindGone:
		return Entry{Gone: true}
	default:
		return Entry{Found: true, Row: rows.row(v.row, left)}
	}
}

// begin returns the invalidation sequence of each key's shard, taken
// before the keys are read from Redis.
func (n *nearCache) begin(keys []string) []uint64 {
	seqs := make([]uint64, len(keys))
	for i, k := range keys {
		sh := n.shard(k)
		sh.mu.RLock()
		seqs[i] = sh.seq
		sh.mu.RUnlock()
	}
	return seqs
}

// fill decodes what Redis answered for keys (an MGET's values: a string
// or nil) and stores each value only if its shard saw no invalidation
// since begin: an invalidation that arrived meanwhile may be of a write
// Redis applied after it answered, whose value the answer does not have. A
// fill while the tracking connection is down stores nothing (the
// reconnection empties the copy and advances every sequence anyway).
//
// A value the copy already holds byte for byte (the read found the copy
// could not be used at that moment: a late heartbeat, a message waiting in
// the socket) is neither decoded nor stored again: the answer is the
// copy's, which is Redis's answer exactly.
func (n *nearCache) fill(keys []string, vals []any, seqs []uint64) ([]nearValue, error) {
	dec := make([]nearValue, len(keys))
	live := n.track.live.Load()
	for i, k := range keys {
		v := nearValue{}
		if s, ok := vals[i].(string); ok {
			if have, ok := n.peek(k); ok && have.ok && have.raw == s {
				dec[i] = have
				continue
			}
			v = nearValue{ok: true, raw: s, row: &feature.Row{}}
			var err error
			if v.kind, err = decodeValue(s, v.row, nil); err != nil {
				return nil, fmt.Errorf("%w: key %s%s", err, n.prefix, k)
			}
			if v.kind != kindRow {
				v.row = nil
			}
		}
		dec[i] = v
		if !live {
			n.refused.Add(1)
			continue
		}
		n.store(k, v, seqs[i])
	}
	return dec, nil
}

// peek returns the copy of key, if there is one.
func (n *nearCache) peek(key string) (nearValue, bool) {
	sh := n.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	v, ok := sh.m[key]
	return v, ok
}

// store keeps v for key unless its shard saw an invalidation since seq;
// a full shard evicts an entry, chosen by map order. The key stored is a
// copy: a read's keys share one string for the whole batch, which the copy
// would otherwise keep alive. A row gets the group and entity its key
// names (see keyRow), set in the row that v shares with the read that
// fetched it, which has not handed it out yet.
func (n *nearCache) store(key string, v nearValue, seq uint64) {
	sh := n.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.seq != seq {
		n.refused.Add(1)
		return
	}
	key = strings.Clone(key)
	if v.row != nil {
		v.row.Group, v.row.EntityID = keyRow(key)
	}
	if _, there := sh.m[key]; !there && len(sh.m) >= n.perShard {
		for old := range sh.m {
			delete(sh.m, old)
			break
		}
	}
	sh.m[key] = v
	n.fills.Add(1)
}

// keyRow returns the group and entity that key names if it is
// <group>:<incarnation>:<entity>, as Store builds keys (a group's name has
// no colon), else "", "". The near cache hands a row that has them, rather
// than a copy, to a reader that only reads it: Store then finds its key's
// group and entity already there and writes nothing into it.
func keyRow(key string) (group, entity string) {
	i := strings.IndexByte(key, ':')
	if i <= 0 {
		return "", ""
	}
	j := strings.IndexByte(key[i+1:], ':')
	if j <= 0 || i+1+j+1 == len(key) {
		return "", ""
	}
	return key[:i], key[i+1+j+1:]
}

// drop drops the copies of the keys of entries this process has just set;
// nil-safe.
func (n *nearCache) drop(entries []SetEntry) {
	if n == nil {
		return
	}
	for i := range entries {
		n.invalidateKey(entries[i].Key)
	}
}

// invalidate drops the copies of keys, Redis keys (an invalidation
// message): the keys of the prefix (every key the tracking connection
// hears of), without it.
func (n *nearCache) invalidate(keys []string) {
	for _, k := range keys {
		if rel, ok := strings.CutPrefix(k, n.prefix); ok {
			n.invalidateKey(rel)
		}
	}
}

// invalidateKey drops the copy of key, a cache key without the prefix.
func (n *nearCache) invalidateKey(key string) {
	sh := n.shard(key)
	sh.mu.Lock()
	delete(sh.m, key)
	sh.seq++
	sh.mu.Unlock()
}

// flush drops every copy and refuses every fill that began before it.
func (n *nearCache) flush() {
	for i := range n.shards {
		sh := &n.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.seq++
		sh.mu.Unlock()
	}
}

// size counts the copies.
func (n *nearCache) size() int {
	total := 0
	for i := range n.shards {
		sh := &n.shards[i]
		sh.mu.RLock()
		total += len(sh.m)
		sh.mu.RUnlock()
	}
	return total
}

// details adds the near cache's state to the Redis component of /health.
func (n *nearCache) details(d map[string]any) {
	if n == nil {
		d["near_cache"] = map[string]any{"enabled": false}
		return
	}
	nd := map[string]any{
		"enabled": true,
		"entries": n.size(),
		"hits":    n.hits.Load(),
		"misses":  n.misses.Load(),
		"fills":   n.fills.Load(),
		"refused": n.refused.Load(),
	}
	n.track.details(nd)
	d["near_cache"] = nd
}

// NearStats are the near cache's statistics, for metrics.
type NearStats struct {
	Hits, Misses, Stored, Refused, Connects uint64
	Entries                                 int
	Tracking, Usable                        bool
}

// NearStats returns the near cache's statistics; false if it is off.
func (r *Redis) NearStats() (NearStats, bool) {
	n := r.near
	if n == nil {
		return NearStats{}, false
	}
	n.track.mu.Lock()
	connects := n.track.connects
	n.track.mu.Unlock()
	return NearStats{
		Hits: n.hits.Load(), Misses: n.misses.Load(), Stored: n.fills.Load(), Refused: n.refused.Load(),
		Connects: connects, Entries: n.size(), Tracking: n.track.live.Load(), Usable: n.track.current(),
	}, true
}
