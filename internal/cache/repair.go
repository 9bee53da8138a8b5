package cache

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
)

// repairBatch is how many dirty keys the repair loop re-reads per store call.
const repairBatch = 1000

// repairer is the loop that brings a cache that missed writes back in line
// with the store. Every interval it does one of two things, and only if the
// breaker lets it call the cache (so while the cache stays down, it makes
// one call per interval at most, like everyone else):
//
//   - if the cache is distrusted, it waits for the writers admitted before
//     trust was lost, clears the cache and trusts it again, unless trust was
//     lost again meanwhile (then it clears again next time);
//   - otherwise, if keys are dirty, it re-reads them from the store, in
//     batches, sets them in the cache as fills of the epoch in which it read
//     them, and forgets those not marked again meanwhile. It stops at the
//     first failure, to go on at the next interval.
//
// Keys of a group that no longer exists are forgotten without a cache write:
// a re-created group has a new incarnation, hence new keys.
type repairer struct {
	valid    *validator // nil for a cache without an identity
	interval time.Duration
	latest   func(ctx context.Context, keys []feature.Key) ([]*feature.Row, error) // the store's GetLatest
	cache    *guardedCache
	dirty    *dirtySet
	log      *zap.Logger

	cancel context.CancelFunc
	done   chan struct{}
}

// start runs the loop until close.
func (r *repairer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(ctx)
}

// close stops the loop, cancelling the pass under way, and waits for it.
// It may be called more than once.
func (r *repairer) close() {
	r.cancel()
	<-r.done
}

func (r *repairer) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.pass(ctx)
	}
}

// pass is one round of the loop.
func (r *repairer) pass(ctx context.Context) {
	if r.valid != nil && r.cache.gate.IsOpen() && r.cache.breaker.allow() {
		r.valid.check(ctx) // a mismatch distrusts the cache, which is cleared below
	}
	switch {
	case !r.cache.gate.IsOpen():
		if r.cache.breaker.allow() {
			r.clearCache(ctx)
		}
	case r.dirty.Len() > 0:
		if r.cache.breaker.allow() {
			r.repairDirty(ctx)
		}
	}
}

// clearCache deletes every cached entry and then trusts the cache again.
func (r *repairer) clearCache(ctx context.Context) {
	epoch := r.cache.gate.Epoch()
	var vstate uint64
	if r.valid != nil {
		r.valid.invalidate()
		vstate = r.valid.state.Load()
	}
	if r.cache.clear(ctx) != nil {
		return
	}
	if r.valid != nil {
		if err := r.valid.stamp(ctx, vstate); err != nil {
			r.log.Warn("cache cleared but not stamped; trying again", zap.Error(err))
			return
		}
	}
	if r.dirty.Retrust(epoch) {
		r.log.Info("cache cleared and trusted again")
	}
}

// repairDirty re-reads dirty keys from the store, sets them in the cache
// and forgets those not marked again meanwhile.
func (r *repairer) repairDirty(ctx context.Context) {
	for r.dirty.Len() > 0 && ctx.Err() == nil {
		if !r.repairOnce(ctx) {
			return
		}
	}
}

// repairOnce repairs one batch of dirty keys and reports whether it could.
func (r *repairer) repairOnce(ctx context.Context) bool {
	epoch := r.cache.gate.Epoch()
	fill, done, ok := r.reread(ctx, r.dirty.Batch(repairBatch))
	if !ok {
		return false
	}
	if len(fill) > 0 && r.cache.fill(ctx, fill, epoch) != nil {
		return false
	}
	r.dirty.Forget(done)
	return true
}

// reread reads the latest rows of batch from the store, one call per group,
// and returns the entries to set and the items they repair (with those of
// groups that are gone); ok is false if the store failed.
func (r *repairer) reread(ctx context.Context, batch []dirtyItem) (fill []SetEntry, done []dirtyItem, ok bool) {
	byGroup := make(map[string][]dirtyItem)
	for _, it := range batch {
		byGroup[it.d.key.Group] = append(byGroup[it.d.key.Group], it)
	}
	for group, items := range byGroup {
		keys := make([]feature.Key, len(items))
		for i, it := range items {
			keys[i] = it.d.key
		}
		rows, err := r.latest(ctx, keys)
		if feature.ErrorCode(err) == feature.CodeNotFound {
			done = append(done, items...) // the group is gone, and its keys with it
			continue
		}
		if err != nil {
			r.log.Warn("cache repair: read from store", zap.String("group", group), zap.Error(err))
			return nil, nil, false
		}
		for i, it := range items {
			fill = append(fill, SetEntry{Key: it.ck, Row: rows[i]})
		}
		done = append(done, items...)
	}
	return fill, done, true
}
