// Package cache is the online cache in front of the system of record: a
// Redis cache (or an in-process memory cache in the embedded mode) holding the
// latest row of each entity, and Store, a store.Store that wraps any backend
// with that cache, read-through and write-through.
//
// Every cached value carries its version, the row's (EventTime, WriteTime),
// and every write into the cache is a compare-and-set that keeps the newer
// version, atomically per key. So a reader that loaded an old row from the
// store cannot overwrite the newer row a concurrent writer has just put in
// the cache, and the cache never goes backwards.
//
// A cache entry is one of three kinds:
//
//   - a row: the entity's latest row, a hit;
//   - an absence: the entity had no row when it was read (negative caching,
//     a hit that returns nil); it has the lowest version, so any row or fence
//     replaces it;
//   - a fence: the version of a row that was written while the cache held no
//     entry for the key. The writer cannot know whether its row is the latest
//     (a late-arriving older event does not replace a newer latest row in the
//     store), so it records only the version: a fence is a miss, and it turns
//     away any fill older than the written row.
//
// A fourth kind, a tombstone, is kept not under an entity's key but under an
// incarnation's (<group>:<incarnation>, see Store.DeleteGroup): it says that
// incarnation was deleted. It has the highest version, so nothing replaces it
// before it expires.
//
// # How Store is built
//
// Store, which wraps a store.Store with a cache, promises that a read that
// begins after a write was acknowledged returns the written row or a newer
// one, whatever the cache does. It is built from small types, each keeping
// one invariant:
//
//   - breaker, the circuit breaker: closed, every call goes to the cache;
//     after any failure, open for RetryInterval, and no call goes; then
//     half-open: exactly one caller, the probe, takes the turn (which
//     re-arms the interval); its success closes the breaker, its failure
//     opens it again. A dead cache costs one call per interval, in all.
//   - barrier, the cache's trust and epochs: open while the cache is
//     trusted; every loss of trust (Close) starts a new epoch. Every Set
//     happens between Enter (or EnterAt, with the epoch in which its data
//     was read) and Exit, and is admitted only while the barrier is open
//     (and still in that epoch). After Close, Wait returns once every Set
//     admitted before the Close has ended, so a clear that follows leaves
//     nothing written before trust was lost. Close never blocks.
//   - dirtySet: while the cache is trusted, every key whose cached entry
//     may be older than an acknowledged write is in the set, and reads
//     bypass it, until a repair that read the store after the key's last
//     mark has set the store's row in the cache. Past MaxDirty the set
//     gives up and distrusts the cache, which makes every key dirty. The
//     set and the trust change together, under one lock.
//   - repairer, the repair loop: the only goroutine that regains trust
//     (Wait, clear, then Open of the epoch it began in, or nothing if trust
//     was lost again meanwhile) and that forgets dirty keys; it runs every
//     RetryInterval and calls the cache only when the breaker lets it.
//   - incarnations: a key prefix names one incarnation of a group; what a
//     registry read learned never overwrites what a later PutGroup or
//     DeleteGroup set; re-creating a deleted incarnation distrusts the
//     cache.
//   - guardedCache: every cache call's outcome reaches the breaker (and
//     each failure the observer), and every Set goes through the barrier.
//   - validator, for a cache with an identity (Redis): reads use the cache
//     only while it matches the system of record's account of it (an
//     EpochStore: a generation and the identity of the Redis masters the
//     content was built on), as checked at start, every RetryInterval and
//     after any failure; a read drops what it looked up if a check failed
//     meanwhile. A mismatch (a restarted or restored Redis, a promoted
//     replica, a writer that went around the cache) distrusts the cache;
//     the repair loop clears it, stamps it with the identity and
//     generation, and trusts it again. Every new Redis connection is
//     checked too (nodeWatch), so a restarted server is distrusted before
//     any read is served from it.
package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// Cache is one online cache: Redis or in-process memory. Keys are relative
// (the cache adds its own prefix); Store builds them as
// <group>:<incarnation>:<entity>.
type Cache interface {
	// Get looks up a batch of keys in one round trip and returns one Entry
	// per key, in order.
	Get(ctx context.Context, keys []string) ([]Entry, error)
	// Set stores a batch of entries in one round trip, each with
	// compare-and-set by version (see SetEntry).
	Set(ctx context.Context, entries []SetEntry) error
	// Clear deletes every key of the cache.
	Clear(ctx context.Context) error
	// Name is "redis" or "memory": the cache_type metric label.
	Name() string
}

// Entry is the result of looking up one key.
type Entry struct {
	// Found reports a hit: a cached row or a cached absence. A missing key,
	// an expired one and a fence are misses.
	Found bool
	// Row is the cached row, nil for a cached absence. Group and EntityID are
	// left empty (the caller knows them), except in a row the cache shares
	// with a reader that only reads (store.WithReadHint): there they are
	// the key's, and the row must not be written to.
	Row *feature.Row
	// Gone reports a tombstone (Found is false).
	Gone bool
}

// SetEntry is one compare-and-set. The new value replaces the cached one only
// if its version is strictly greater (as feature.Row.Newer orders rows; an
// absence is older than any row, a fence older than the row of the same
// version), so the cache and the store agree on ties.
type SetEntry struct {
	Key string
	// Row is the row to cache; nil caches an absence.
	Row *feature.Row
	// Written marks a row that was just written to the store rather than
	// read from it as the latest. Where the cache holds a row or an absence
	// (which is the latest the store had), the written row replaces it if
	// newer; where it holds nothing or a fence, only the row's version is
	// kept, as a fence.
	Written bool
	// Gone sets a tombstone (Row is ignored): the highest version, which
	// nothing replaces; it lives as long as a row.
	Gone bool
}

// Entry kinds, the last byte of a version: at equal times a row outranks a
// fence, and an absence has all-zero times besides.
const (
	kindAbsent byte = 0
	kindFence  byte = 1
	kindRow    byte = 2
	kindGone   byte = 3 // a tombstone, with all-ones times
)

// versionLen is the length of an encoded version: event seconds (offset by
// 2^63 so that the unsigned big-endian bytes order like the signed number)
// and nanoseconds, the same for the write time, then the kind. Comparing two
// versions byte by byte orders them like feature.Row.Newer.
const versionLen = 8 + 4 + 8 + 4 + 1

type version [versionLen]byte

func rowVersion(r *feature.Row, kind byte) version {
	var v version
	putTime(v[0:12], r.EventTime)
	putTime(v[12:24], r.WriteTime)
	v[24] = kind
	return v
}

func putTime(b []byte, t time.Time) {
	binary.BigEndian.PutUint64(b, uint64(t.Unix())+1<<63)     // #nosec G115 -- the offset encoding of a signed time: the wrap is intended and undone by getTime
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond())) // #nosec G115 -- Nanosecond() is within [0, 1e9)
}

// entryVersion is the version a SetEntry carries.
func entryVersion(e *SetEntry) version {
	if e.Gone {
		var v version
		for i := range v {
			v[i] = 0xff
		}
		v[24] = kindGone
		return v
	}
	if e.Row == nil {
		return version{} // absence: zero times, kindAbsent
	}
	return rowVersion(e.Row, kindRow)
}

// Value tags of the payload encoding.
const (
	tagNull byte = iota
	tagFalse
	tagTrue
	tagInt
	tagFloat
	tagString
)

// appendValue appends the cache encoding of an entry: its version, then for
// a row the feature count and each feature as name length, name, tag and
// value (int64 as a zig-zag varint, float64 as 8 little-endian bytes of its
// bits, string as length and bytes). It accepts the canonical value types
// only: nil, int64, float64, bool, string.
func appendValue(b []byte, v version, r *feature.Row) ([]byte, error) {
	b = append(b, v[:]...)
	if r == nil || v[24] != kindRow {
		return b, nil
	}
	b = binary.AppendUvarint(b, uint64(len(r.Values)))
	for name, val := range r.Values {
		b = binary.AppendUvarint(b, uint64(len(name)))
		b = append(b, name...)
		switch x := val.(type) {
		case nil:
			b = append(b, tagNull)
		case bool:
			if x {
				b = append(b, tagTrue)
			} else {
				b = append(b, tagFalse)
			}
		case int64:
			b = append(b, tagInt)
			b = binary.AppendVarint(b, x)
		case float64:
			b = append(b, tagFloat)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		case string:
			b = append(b, tagString)
			b = binary.AppendUvarint(b, uint64(len(x)))
			b = append(b, x...)
		default:
			return nil, fmt.Errorf("cache: feature %q: unsupported value type %T", name, val)
		}
	}
	return b, nil
}

var errCorrupt = errors.New("cache: corrupt cached value")

// decodeValue decodes a cached value into r. It reports the entry's kind;
// r is filled only for kindRow. Names and strings share s's memory. With
// only (a store.FeatureHint) shorter than the row, the row's Values hold
// only those of its features: the others are checked and skipped, not
// decoded.
func decodeValue(s string, r *feature.Row, only []string) (byte, error) {
	if len(s) < versionLen {
		return 0, errCorrupt
	}
	kind := s[24]
	if kind != kindRow {
		if kind > kindGone {
			return 0, errCorrupt
		}
		return kind, nil
	}
	r.EventTime = getTime(s[0:12])
	r.WriteTime = getTime(s[12:24])
	d := decoder{s: s, i: versionLen}
	n := d.uvarint()
	if n > uint64(len(s)) {
		return 0, errCorrupt
	}
	if uint64(len(only)) >= n {
		only = nil // as many features wanted as the row has: decoding all is cheaper than choosing
	}
	size := n
	if only != nil {
		size = uint64(len(only))
	}
	vals := make(feature.Values, size)
	for range n {
		name := d.str()
		if d.i >= len(d.s) {
			return 0, errCorrupt
		}
		tag := d.s[d.i]
		d.i++
		if only != nil && !slices.Contains(only, name) {
			if d.skip(tag); d.bad {
				return 0, errCorrupt
			}
			continue
		}
		switch tag {
		case tagNull:
			vals[name] = nil
		case tagFalse:
			vals[name] = false
		case tagTrue:
			vals[name] = true
		case tagInt:
			u := d.uvarint()
			vals[name] = int64(u>>1) ^ -int64(u&1)
		case tagFloat:
			if d.i+8 > len(d.s) {
				return 0, errCorrupt
			}
			vals[name] = math.Float64frombits(le64(d.s[d.i:]))
			d.i += 8
		case tagString:
			vals[name] = d.str()
		default:
			return 0, errCorrupt
		}
		if d.bad {
			return 0, errCorrupt
		}
	}
	if d.bad || d.i != len(s) {
		return 0, errCorrupt
	}
	r.Values = vals
	return kindRow, nil
}

// decoder reads varints and strings from a string without copying.
type decoder struct {
	s   string
	i   int
	bad bool
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.i >= len(d.s) {
			break
		}
		c := d.s[d.i]
		d.i++
		if c < 0x80 {
			if shift == 63 && c > 1 {
				break
			}
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
	}
	d.bad = true
	return 0
}

// skip passes over a value with the given tag, as decodeValue would read
// it, without decoding it; an unknown tag is corrupt.
func (d *decoder) skip(tag byte) {
	switch tag {
	case tagNull, tagFalse, tagTrue:
	case tagInt:
		d.uvarint()
	case tagFloat:
		if d.i+8 > len(d.s) {
			d.bad = true
			return
		}
		d.i += 8
	case tagString:
		d.str()
	default:
		d.bad = true
	}
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.s)-d.i) { // #nosec G115 -- d.i <= len(d.s), so the difference is not negative
		d.bad = true
		return ""
	}
	s := d.s[d.i : d.i+int(n)] // #nosec G115 -- n was checked against the remaining length above
	d.i += int(n)              // #nosec G115 -- n was checked against the remaining length above
	return s
}

func getTime(s string) time.Time {
	sec := int64(be64(s) - 1<<63) // #nosec G115 -- undoes putTime's offset encoding
	nsec := int64(uint32(s[8])<<24 | uint32(s[9])<<16 | uint32(s[10])<<8 | uint32(s[11]))
	return time.Unix(sec, nsec).UTC()
}

func be64(s string) uint64 {
	_ = s[7]
	return uint64(s[0])<<56 | uint64(s[1])<<48 | uint64(s[2])<<40 | uint64(s[3])<<32 |
		uint64(s[4])<<24 | uint64(s[5])<<16 | uint64(s[6])<<8 | uint64(s[7])
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[7])<<56 | uint64(s[6])<<48 | uint64(s[5])<<40 | uint64(s[4])<<32 |
		uint64(s[3])<<24 | uint64(s[2])<<16 | uint64(s[1])<<8 | uint64(s[0])
}

// concat sets each heads[i] to heads[i]+tails[i], with one allocation for
// all of them (the keys of a batch live and die together).
func concat(heads, tails []string) {
	n := 0
	for i := range heads {
		n += len(heads[i]) + len(tails[i])
	}
	var b strings.Builder
	b.Grow(n)
	for i := range heads {
		b.WriteString(heads[i])
		b.WriteString(tails[i])
	}
	all, off := b.String(), 0
	for i := range heads {
		end := off + len(heads[i]) + len(tails[i])
		heads[i], off = all[off:end], end
	}
}
