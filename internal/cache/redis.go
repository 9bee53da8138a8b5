package cache

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// Recommended Redis client timeouts: the cache is an accelerator with the
// store behind it, so a slow or dead Redis should cost a short timeout (and
// then the circuit breaker of Store skips it), never a long wait.
const (
	DefaultDialTimeout  = 250 * time.Millisecond
	DefaultReadTimeout  = 250 * time.Millisecond
	DefaultWriteTimeout = 250 * time.Millisecond
	DefaultPoolTimeout  = 500 * time.Millisecond
)

// RedisOptionsFromURL parses a redis:// or rediss:// URL with
// redis.ParseURL and applies the cache's defaults for what the URL leaves
// unset: dial, read and write timeouts of 250ms, a pool timeout of 500ms, and
// no retries (max_retries=-1). It also makes a failed dial fail at once
// (DialerRetries=1, which no URL parameter sets; go-redis would otherwise
// try 5 times, 100ms apart). A failed cache call falls back to the store, and
// the circuit breaker of Store does the retrying, so a retry inside the
// client would only add another timeout to the request.
func RedisOptionsFromURL(rawURL string) (*redis.Options, error) {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	q := u.Query()
	if !q.Has("dial_timeout") {
		opts.DialTimeout = DefaultDialTimeout
	}
	if !q.Has("read_timeout") {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if !q.Has("write_timeout") {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if !q.Has("pool_timeout") {
		opts.PoolTimeout = DefaultPoolTimeout
	}
	if !q.Has("max_retries") {
		opts.MaxRetries = -1
	}
	opts.DialerRetries = 1
	return opts, nil
}

// RedisOptions configure a Redis cache.
type RedisOptions struct {
	// Prefix starts every key, followed by a colon; "" means "fs".
	Prefix string
	// TTL is how long a row stays cached; 0 means DefaultTTL.
	TTL time.Duration
	// AbsenceTTL is how long an absence or a fence stays cached; 0 means
	// DefaultAbsenceTTL.
	AbsenceTTL time.Duration
	// Now is the clock for latency measurements; nil means time.Now.
	Now func() time.Time
	// ConfigureTLS, for OpenRedis, completes the TLS configuration of a
	// rediss:// URL (nil for redis://); see NewRedisClient.
	ConfigureTLS func(*tls.Config) error
	// NearCache bounds the entries of the near cache, the in-process copy
	// of Redis values kept true by server-assisted invalidation (see
	// nearCache); 0 turns it off. It is used only with a single server:
	// OpenRedis turns it off for a cluster or Sentinel, and NearCacheOff
	// says why.
	NearCache int
}

// casScript is the compare-and-set of one key (see SetEntry). ARGV: the new
// value (version, then payload), its TTL in milliseconds, "1" if the row was
// written rather than read, and the TTL of a fence. Versions compare byte by
// byte: Lua's < on strings uses strcoll, which depends on the server's locale.
var casScript = redis.NewScript(casNewer + `
return cas(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
`)

// casManyScript is casScript over every key of KEYS, with four ARGV per
// key in the same order: one script call per chunk of keys instead of one
// per key, which costs Redis several times less CPU in a bulk
// write-through. Its keys are in different hash slots, so it is only used
// where every key is on one server (not with a cluster).
var casManyScript = redis.NewScript(casNewer + `
local n = 0
for k = 1, #KEYS do
  local j = 4 * (k - 1)
  n = n + cas(KEYS[k], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4])
end
return n
`)

// casNewer defines the compare-and-set of one key shared by casScript and
// casManyScript.
const casNewer = `
local function newer(a, b)
  for i = 1, 25 do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return false
end
local function cas(key, new, ttl, written, fenceTTL)
  local cur = redis.call('GET', key)
  if cur and #cur < 25 then cur = false end
  if written == '1' and (not cur or string.byte(cur, 25) == 1) then
    new, ttl = string.sub(new, 1, 24) .. '\1', fenceTTL
  end
  if cur and not newer(new, cur) then return 0 end
  redis.call('SET', key, new, 'PX', ttl)
  return 1
end
`

// Redis is a Cache in Redis, standalone or cluster. Each key holds one
// string: the encoded version followed by the encoded row.
type Redis struct {
	client     redis.UniversalClient
	prefix     string // with the trailing colon
	ttl        time.Duration
	ttlMS      string
	absenceMS  string
	now        func() time.Time
	singleNode bool // MGET works: every key is on one server
	owned      bool // Close closes the client
	nodes      nodeWatch
	near       *nearCache   // nil: off
	nearOff    string       // why the near cache is off
	nearName   string       // the client name of the tracking connections of this prefix
	entryBytes atomic.Int64 // bytes per entry of the last casArgs, to size the next one's buffer
	// afterFetch, for tests, runs between a near-cache miss's fetch from
	// Redis and its fill.
	afterFetch func()
}

var (
	_ Cache               = (*Redis)(nil)
	_ store.HealthChecker = (*Redis)(nil)
)

// NewRedis returns a cache using client, which may be a plain client or a
// cluster client; the caller keeps ownership of it and closes it.
func NewRedis(client redis.UniversalClient, opts RedisOptions) *Redis {
	if opts.Prefix == "" {
		opts.Prefix = "fs"
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
	c, single := client.(*redis.Client)
	r := &Redis{
		client:     client,
		prefix:     opts.Prefix + ":",
		ttl:        opts.TTL,
		ttlMS:      strconv.FormatInt(max(1, opts.TTL.Milliseconds()), 10),
		absenceMS:  strconv.FormatInt(max(1, opts.AbsenceTTL.Milliseconds()), 10),
		now:        opts.Now,
		singleNode: single,
		nearName:   nearClientName(opts.Prefix + ":"),
	}
	switch {
	case opts.NearCache <= 0:
		r.nearOff = "turned off (--redis-near-cache-entries 0)"
	case !single:
		r.nearOff = "not used with a Redis Cluster"
	default:
		r.startNear(c.Options(), opts.NearCache)
	}
	return r
}

// startNear starts the near cache and its tracking connection, with the
// client's address, dialer and credentials.
func (r *Redis) startNear(o *redis.Options, entries int) {
	hello := []string{"HELLO", "3"}
	if o.Password != "" {
		hello = append(hello, "AUTH", cmp.Or(o.Username, "default"), o.Password)
	}
	hello = append(hello, "SETNAME", r.nearName)
	n := newNearCache(r.prefix, entries)
	n.track = &tracker{
		near:    n,
		dial:    func(ctx context.Context) (net.Conn, error) { return o.Dialer(ctx, o.Network, o.Addr) },
		hello:   hello,
		prefix:  r.prefix,
		channel: r.nearName,
		start:   time.Now(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	r.near = n
	go n.track.run()
}

// NearCacheOff says why the near cache is off ("" if it is on).
func (r *Redis) NearCacheOff() string { return r.nearOff }

// OpenRedis connects to Redis in mode (see NewRedisClient) and returns a
// cache that owns the client (Close closes it) and checks every new
// connection: a connection to a server the cache has not validated (a
// restarted server, a promoted replica) distrusts the cache at once, before
// the connection serves a read (see Store).
func OpenRedis(mode, rawURL string, opts RedisOptions) (*Redis, error) {
	var r *Redis
	off := ""
	if mode == RedisSentinel && opts.NearCache > 0 {
		opts.NearCache, off = 0, "not used with Sentinel"
	}
	client, err := NewRedisClient(mode, rawURL, func(ctx context.Context, cn *redis.Conn) error {
		return r.nodes.checkConn(ctx, cn)
	}, opts.ConfigureTLS)
	if err != nil {
		return nil, err
	}
	r = NewRedis(client, opts)
	r.owned = true
	if off != "" {
		r.nearOff = off
	}
	return r, nil
}

// Close stops the near cache and closes the client if OpenRedis made it.
func (r *Redis) Close() error {
	if r.near != nil {
		r.near.track.close()
	}
	if !r.owned {
		return nil
	}
	return r.client.Close()
}

// Name returns "redis".
func (r *Redis) Name() string { return "redis" }

// PoolStats returns the client's connection pool statistics.
func (r *Redis) PoolStats() *redis.PoolStats { return r.client.PoolStats() }

// Get reads the batch with one MGET on a single server, or one pipeline of
// GETs on a cluster (which go-redis sends to each node in parallel). With
// the near cache, a batch whose keys are all in it is answered from it,
// and only the others are read.
func (r *Redis) Get(ctx context.Context, keys []string) ([]Entry, error) {
	out := make([]Entry, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if r.near != nil { // a single server
		rows := newRowCopies(ctx)
		if err := r.near.get(ctx, keys, out, &rows, r.fetch); err != nil {
			return nil, err
		}
		return out, nil
	}
	full := r.fullKeys(keys)
	d := entryDecoder{out: out, keys: full, only: store.FeatureHint(ctx)}
	if !r.singleNode && len(keys) > 1 {
		if err := r.getPipelined(ctx, full, &d); err != nil {
			return nil, err
		}
		return out, nil
	}
	vals, err := r.mget(ctx, full)
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			if err := d.decode(i, s); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// fullKeys returns the Redis keys of keys: with the prefix.
func (r *Redis) fullKeys(keys []string) []string {
	full := make([]string, len(keys))
	for i := range keys {
		full[i] = r.prefix
	}
	concat(full, keys)
	return full
}

// entryDecoder decodes the cached values of a batch into its entries, with
// one allocation for all the batch's rows.
type entryDecoder struct {
	out  []Entry
	keys []string // full keys, for errors
	rows []feature.Row
	only []string // the features to decode (store.FeatureHint); nil: all
}

// decode sets out[i] from the value s of keys[i].
func (d *entryDecoder) decode(i int, s string) error {
	if d.rows == nil {
		d.rows = make([]feature.Row, len(d.out)-i)
	}
	kind, err := decodeValue(s, &d.rows[0], d.only)
	if err != nil {
		return fmt.Errorf("%w: key %s", err, d.keys[i])
	}
	switch kind {
	case kindAbsent:
		d.out[i].Found = true
	case kindGone:
		d.out[i].Gone = true
	case kindRow:
		d.out[i] = Entry{Found: true, Row: &d.rows[0]}
		d.rows = d.rows[1:]
	}
	return nil
}

// getPipelined reads keys with one pipeline of GETs, for a cluster.
func (r *Redis) getPipelined(ctx context.Context, keys []string, d *entryDecoder) error {
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis get: %w", err)
	}
	for i, c := range cmds {
		s, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return fmt.Errorf("redis get: %w", err)
		}
		if err := d.decode(i, s); err != nil {
			return err
		}
	}
	return nil
}

// fetch reads keys (without the prefix) from Redis for the near cache
// (see nearCache.get).
func (r *Redis) fetch(ctx context.Context, keys []string) ([]any, error) {
	vals, err := r.mget(ctx, r.fullKeys(keys))
	if err == nil && r.afterFetch != nil {
		r.afterFetch()
	}
	return vals, err
}

func (r *Redis) mget(ctx context.Context, keys []string) ([]any, error) {
	if len(keys) == 1 {
		s, err := r.client.Get(ctx, keys[0]).Result()
		if errors.Is(err, redis.Nil) {
			return []any{nil}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("redis get: %w", err)
		}
		return []any{s}, nil
	}
	vals, err := r.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis mget: %w", err)
	}
	return vals, nil
}

// setChunk bounds the commands of one pipeline: each pipeline's replies are
// read under one read timeout, which a bulk write-through of many thousand
// entries in one pipeline could pass on a busy server.
const setChunk = 1000

// Set runs the compare-and-set script for each entry, in pipelines of
// EVALSHA of up to setChunk entries (each script touches one key, so it is
// cluster-safe; a cluster client sends each node its share of a pipeline
// in parallel). Entries the server has no script for (after a restart) are
// retried with EVAL.
//
// A write (an entry Written or Gone) returns only after the barrier of
// afterWrite: every near cache has its invalidations.
func (r *Redis) Set(ctx context.Context, entries []SetEntry) error {
	keys, args := r.casArgs(entries)
	err := r.set(ctx, keys, args)
	// This process's next reads of the keys go to Redis at once, whatever
	// the outcome, rather than to a copy Redis's invalidation has not yet
	// reached: a fill runs no barrier, and a fence copied before it would
	// otherwise send a read to the store (which may be down) for a row
	// Redis now has.
	r.near.drop(entries)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(entries, func(e SetEntry) bool { return e.Written || e.Gone }) {
		return r.afterWrite(ctx)
	}
	return nil
}

func (r *Redis) set(ctx context.Context, keys []string, args [][]any) error {
	if r.singleNode && len(keys) > 1 {
		return r.setMany(ctx, keys, args)
	}
	for lo := 0; lo < len(keys); lo += setChunk {
		hi := min(lo+setChunk, len(keys))
		if err := r.setPipelined(ctx, keys[lo:hi], args[lo:hi]); err != nil {
			return err
		}
	}
	return nil
}

// afterWrite is a writer's barrier for the near caches of every process
// (see nearCache): it returns once every tracking connection of the
// prefix has applied the invalidations of the writes before it. It
// publishes a token on the connections' channel: Redis queues it on each
// connection behind the invalidations of the writes it has already
// applied, and a connection acknowledges it (its id on a list named by the
// token) after applying everything before it. PUBLISH says how many
// connections received the token; the barrier waits for as many
// acknowledgements. Connections that have not acknowledged after
// nearDrainTimeout are disconnected (their near caches turn off, and their
// leases ran out before that). A cluster, whose processes keep no near
// cache, skips it, and so does a writer refused PUBLISH: a near cache
// whose user is refused it is never set up, and servers and writers share
// the user.
func (r *Redis) afterWrite(ctx context.Context) error {
	c, ok := r.client.(*redis.Client)
	if !ok {
		return nil
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	n, err := c.Publish(ctx, r.nearName, token).Result()
	if redis.HasErrorPrefix(err, "NOPERM") {
		return nil // no near cache runs as a user refused PUBLISH (see tracker.handshake)
	}
	if err != nil {
		return fmt.Errorf("redis near-cache barrier: %w", err)
	}
	if n == 0 {
		return nil
	}
	key := nearAckKey(r.prefix, token)
	deadline := time.Now().Add(nearDrainTimeout)
	for pause := time.Duration(0); ; pause = min(2*pause+50*time.Microsecond, 5*time.Millisecond) {
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("redis near-cache barrier: %w", ctx.Err())
			case <-t.C:
			}
		}
		ids, err := c.LRange(ctx, key, 0, -1).Result()
		if err != nil {
			return fmt.Errorf("redis near-cache barrier: %w", err)
		}
		if int64(len(ids)) >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return r.disconnectLaggards(ctx, c, ids)
		}
	}
}

// disconnectLaggards disconnects the tracking connections of the prefix
// whose ids are not in acked.
func (r *Redis) disconnectLaggards(ctx context.Context, c *redis.Client, acked []string) error {
	list, err := c.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		return fmt.Errorf("redis near-cache barrier: %w", err)
	}
	seen := make(map[string]bool, len(acked))
	for _, id := range acked {
		seen[id] = true
	}
	for _, id := range nearLaggards(list, r.nearName, seen) {
		if err := c.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil && !redis.HasErrorPrefix(err, "ERR No such client") {
			return fmt.Errorf("redis near-cache barrier: disconnect a tracking connection that did not acknowledge: %w", err)
		}
	}
	return nil
}

func (r *Redis) setPipelined(ctx context.Context, keys []string, args [][]any) error {
	cmds := make([]*redis.Cmd, len(keys))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = casScript.EvalSha(ctx, p, []string{k}, args[i]...)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	var retry []int
	for i, c := range cmds {
		if err := c.Err(); err != nil {
			if !redis.HasErrorPrefix(err, "NOSCRIPT") {
				return fmt.Errorf("redis set: %w", err)
			}
			retry = append(retry, i)
		}
	}
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, i := range retry {
			casScript.Eval(ctx, p, []string{keys[i]}, args[i]...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis set: %w", err)
	}
	return nil
}

// setManyChunk is how many keys one casManyScript call sets: small enough
// that the script, which runs atomically, holds Redis for well under a
// millisecond; large enough that the cost of a call is spread thin.
const setManyChunk = 100

// setMany sets the entries on a single server with one pipeline of
// casManyScript calls of up to setManyChunk keys each, retried with EVAL
// if the server has no script (after a restart).
func (r *Redis) setMany(ctx context.Context, keys []string, args [][]any) error {
	type call struct {
		keys []string
		argv []any
	}
	calls := make([]call, 0, (len(keys)+setManyChunk-1)/setManyChunk)
	for lo := 0; lo < len(keys); lo += setManyChunk {
		hi := min(lo+setManyChunk, len(keys))
		c := call{keys: keys[lo:hi], argv: make([]any, 0, 4*(hi-lo))}
		for _, a := range args[lo:hi] {
			c.argv = append(c.argv, a...)
		}
		calls = append(calls, c)
	}
	for lo := 0; lo < len(calls); lo += setChunk / setManyChunk {
		chunk := calls[lo:min(lo+setChunk/setManyChunk, len(calls))]
		cmds := make([]*redis.Cmd, len(chunk))
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range chunk {
				cmds[i] = casManyScript.EvalSha(ctx, p, c.keys, c.argv...)
			}
			return nil
		})
		if err == nil {
			continue
		}
		for _, c := range cmds {
			if err := c.Err(); err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
				return fmt.Errorf("redis set: %w", err)
			}
		}
		_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range chunk {
				if cmds[i].Err() != nil {
					casManyScript.Eval(ctx, p, c.keys, c.argv...)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("redis set: %w", err)
		}
	}
	return nil
}

// maxPresize bounds the buffer casArgs allocates from the last call's
// bytes per entry: a call of large rows does not make the next, of many
// small ones, allocate their count times the large size.
const maxPresize = 16 << 20

// casArgs returns the full key and the script's arguments of each entry
// to set (see casScript). A row that cannot be encoded is not cached; if it
// was written, its version is still set, as a fence, to turn older fills
// away.
func (r *Redis) casArgs(entries []SetEntry) (keys []string, args [][]any) {
	args = make([][]any, 0, len(entries))
	// One buffer for every value, sized from the last call's bytes per
	// entry (regrowing a buffer of megabytes by copies was most of the
	// encoding's cost), one string holding every key, and one backing array
	// for every argument list; the arguments that repeat are boxed once.
	// The values are sliced out of the buffer once it has stopped growing.
	var (
		buf   = make([]byte, 0, min(int(r.entryBytes.Load())*len(entries)*9/8, maxPresize))
		all   strings.Builder
		ends  = make([]int, 0, len(entries))
		kends = make([]int, 0, len(entries))
		argv  = make([]any, 0, 4*len(entries))
		ttl   = [2]any{r.absenceMS, r.ttlMS}
		wrote = [2]any{"0", "1"}
		fence = any(r.absenceMS)
	)
	keyBytes := 0
	for i := range entries {
		keyBytes += len(r.prefix) + len(entries[i].Key)
	}
	all.Grow(keyBytes)
	for i := range entries {
		e := &entries[i]
		v := entryVersion(e)
		out, err := appendValue(buf, v, e.Row)
		switch {
		case err == nil:
			buf = out
		case !e.Written:
			continue
		default:
			v[24] = kindFence
			buf = append(buf, v[:]...)
		}
		long, written := 0, 0
		if v[24] == kindRow || v[24] == kindGone {
			long = 1
		}
		if e.Written {
			written = 1
		}
		all.WriteString(r.prefix)
		all.WriteString(e.Key)
		kends = append(kends, all.Len())
		ends = append(ends, len(buf))
		argv = append(argv, nil, ttl[long], wrote[written], fence)
	}
	if len(ends) > 0 {
		r.entryBytes.Store(int64(len(buf)/len(ends) + 1))
	}
	keys = make([]string, 0, len(ends))
	joined := all.String()
	start, kstart := 0, 0
	for i, end := range ends {
		keys = append(keys, joined[kstart:kends[i]])
		argv[4*i] = buf[start:end:end]
		args = append(args, argv[4*i:4*i+4:4*i+4])
		start, kstart = end, kends[i]
	}
	return keys, args
}

// clearScanCount is the COUNT of each SCAN of Clear.
const clearScanCount = 10_000

// Clear deletes every key under the prefix with SCAN and UNLINK, on every
// master of a cluster.
func (r *Redis) Clear(ctx context.Context) error {
	pattern := globEscape(r.prefix) + "*"
	clearNode := func(ctx context.Context, c *redis.Client) error {
		// A large COUNT: the clear walks the whole keyspace of the server,
		// other prefixes' keys included, in as few round trips as it can.
		iter := c.Scan(ctx, 0, pattern, clearScanCount).Iterator()
		batch := make([]string, 0, 1000)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			// One UNLINK per key: cluster nodes refuse multi-key commands
			// across slots.
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range batch {
					p.Unlink(ctx, k)
				}
				return nil
			})
			batch = batch[:0]
			return err
		}
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, clearNode)
	case *redis.Client:
		err = clearNode(ctx, c)
	default:
		err = fmt.Errorf("unsupported client type %T", r.client)
	}
	if err != nil {
		return fmt.Errorf("redis clear: %w", err)
	}
	return r.afterWrite(ctx)
}

func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Health pings the server, checks that a probe key under the prefix can be
// written, read and deleted, and reports the server version, memory,
// clients and the client's pool statistics. On a cluster it first reports
// the cluster's state (CLUSTER INFO): down unless it is ok; INFO comes from
// one node.
func (r *Redis) Health(ctx context.Context) store.Component {
	details := map[string]any{"pool": poolDetails(r.client.PoolStats())}
	r.nearDetails(details)
	down := func(err error) store.Component {
		return store.Component{Status: store.HealthDown, Details: details, Error: err.Error()}
	}
	if cc, ok := r.client.(*redis.ClusterClient); ok {
		if err := clusterHealth(ctx, cc, details); err != nil {
			return down(err)
		}
	}
	start := r.now()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return down(fmt.Errorf("redis ping: %w", err))
	}
	details["ping_latency_ms"] = float64(r.now().Sub(start).Microseconds()) / 1000

	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	probe, want := r.prefix+"health:"+hex.EncodeToString(nonce[:]), strconv.FormatInt(r.now().UnixNano(), 10)
	if err := r.client.Set(ctx, probe, want, 10*time.Second).Err(); err != nil {
		return down(fmt.Errorf("redis health write: %w", err))
	}
	got, err := r.client.Get(ctx, probe).Result()
	if err != nil {
		return down(fmt.Errorf("redis health read: %w", err))
	}
	if err := r.client.Del(ctx, probe).Err(); err != nil {
		return down(fmt.Errorf("redis health delete: %w", err))
	}
	if got != want {
		return down(fmt.Errorf("redis health read: got %q, wrote %q", got, want))
	}
	details["read_write_check"] = "ok"

	info, err := r.client.Info(ctx, "server", "memory", "clients").Result()
	if err != nil {
		return down(fmt.Errorf("redis info: %w", err))
	}
	fields := parseInfo(info)
	details["version"] = fields["redis_version"]
	for detail, field := range map[string]string{
		"used_memory_bytes": "used_memory",
		"maxmemory_bytes":   "maxmemory",
		"connected_clients": "connected_clients",
	} {
		n, _ := strconv.ParseInt(fields[field], 10, 64)
		details[detail] = n
	}
	return store.Component{Status: store.HealthUp, Details: details}
}

// clusterHealth adds the cluster's state to details, as CLUSTER INFO of a
// reachable node reports it, and fails unless it is ok: a dead node whose
// slots a replica took over leaves the cluster ok; slots without a master
// do not.
func clusterHealth(ctx context.Context, cc *redis.ClusterClient, details map[string]any) error {
	info, err := cc.ClusterInfo(ctx).Result()
	if err != nil {
		return fmt.Errorf("redis cluster info: %w", err)
	}
	f := parseInfo(info)
	details["cluster_state"] = f["cluster_state"]
	for detail, field := range map[string]string{
		"cluster_slots_ok":    "cluster_slots_ok",
		"cluster_slots_fail":  "cluster_slots_fail",
		"cluster_known_nodes": "cluster_known_nodes",
		"cluster_masters":     "cluster_size",
	} {
		n, _ := strconv.ParseInt(f[field], 10, 64)
		details[detail] = n
	}
	if f["cluster_state"] != "ok" {
		return fmt.Errorf("redis cluster state is %s (%s of 16384 slots ok)", f["cluster_state"], f["cluster_slots_ok"])
	}
	return nil
}

// parseInfo reads the field:value lines of an INFO reply.
func parseInfo(info string) map[string]string {
	fields := make(map[string]string)
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			fields[k] = v
		}
	}
	return fields
}

func poolDetails(st *redis.PoolStats) map[string]any {
	return map[string]any{
		"hits":        st.Hits,
		"misses":      st.Misses,
		"timeouts":    st.Timeouts,
		"total_conns": st.TotalConns,
		"idle_conns":  st.IdleConns,
		"stale_conns": st.StaleConns,
	}
}

// nearDetails adds the near cache's state to details.
func (r *Redis) nearDetails(d map[string]any) {
	r.near.details(d)
	if r.near == nil {
		d["near_cache"].(map[string]any)["reason"] = r.nearOff
	}
}
