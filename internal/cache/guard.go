package cache

import (
	"context"
	"errors"

	"go.uber.org/zap"
)

// guardedCache is the cache as Store and its repair loop call it: behind
// the circuit breaker, with every write through the barrier, and every
// outcome reported to the breaker, the log and the observer.
//
// It decides nothing about when to call: callers ask the breaker first
// (allow, or ready to look without taking a probe's turn), and each call
// reports its outcome, so a success anywhere closes the breaker and a
// failure anywhere opens it.
type guardedCache struct {
	c       Cache
	name    string
	breaker *breaker
	gate    *barrier
	obs     Observer
	log     *zap.Logger
	// onFail, if set, hears of every failure (before the caller does).
	onFail func()
}

// errSkipped says a Set was not attempted because the cache is distrusted
// (or, for a fill, was distrusted since the fill's data was read).
var errSkipped = errors.New("cache distrusted")

func (g *guardedCache) ok() {
	if g.breaker.success() {
		g.log.Info("cache available again")
	}
}

func (g *guardedCache) failed(op string, err error) {
	if g.onFail != nil {
		g.onFail()
	}
	if g.breaker.failure() {
		g.log.Warn("cache failed; skipping it", zap.String("operation", op),
			zap.Duration("retry_in", g.breaker.interval), zap.Error(err))
	}
	if g.obs != nil {
		g.obs.CacheError(g.name, op)
	}
}

// call runs one other cache operation, op, reporting its outcome.
func (g *guardedCache) call(op string, fn func() error) error {
	if err := fn(); err != nil {
		g.failed(op, err)
		return err
	}
	g.ok()
	return nil
}

// get looks keys up.
func (g *guardedCache) get(ctx context.Context, keys []string) ([]Entry, error) {
	ents, err := g.c.Get(ctx, keys)
	if err != nil {
		g.failed("get", err)
		return nil, err
	}
	g.ok()
	return ents, nil
}

// writeThrough sets rows just written to the store, if the cache is
// trusted: they are safe to set whenever it is.
func (g *guardedCache) writeThrough(ctx context.Context, entries []SetEntry) error {
	if !g.gate.Enter() {
		return errSkipped
	}
	defer g.gate.Exit()
	return g.set(ctx, entries)
}

// fill sets rows read from the store in epoch, if the cache has been
// trusted since: rows read before trust was lost may be what the clear that
// regains it is to erase.
func (g *guardedCache) fill(ctx context.Context, entries []SetEntry, epoch uint64) error {
	if !g.gate.EnterAt(epoch) {
		return errSkipped
	}
	defer g.gate.Exit()
	return g.set(ctx, entries)
}

func (g *guardedCache) set(ctx context.Context, entries []SetEntry) error {
	if err := g.c.Set(ctx, entries); err != nil {
		g.failed("set", err)
		return err
	}
	g.ok()
	return nil
}

// clear waits for the writers admitted before the barrier closed, then
// deletes every entry. The caller must have closed the barrier.
func (g *guardedCache) clear(ctx context.Context) error {
	if err := g.gate.Wait(ctx); err != nil {
		return err
	}
	if err := g.c.Clear(ctx); err != nil {
		g.failed("clear", err)
		return err
	}
	g.ok()
	return nil
}
