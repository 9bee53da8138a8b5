package cache

import (
	"context"
	"sync"
	"sync/atomic"
)

// barrier holds the cache's trust and orders the cache's writers against
// its clear.
//
// It is open while the cache is trusted and closed while it is not. Every
// Close starts a new epoch, so an epoch names a stretch of time during which
// trust was not lost. A writer (anything that sets entries in the cache)
// calls Enter, or EnterAt with the epoch in which it read the data it
// writes, and is admitted only while the barrier is open (and, for EnterAt,
// still in that epoch); an admitted writer calls Exit when its write is
// done. Wait returns once no admitted writer is inside.
//
// The clear that regains trust relies on this: after Close, no writer is
// admitted any more, so once Wait has returned no write admitted before the
// Close can still land, and a Clear that follows erases them all. Open
// re-admits writers, but only if the barrier was not closed again meanwhile
// (the clear may have missed what that later Close was about).
//
// Close and Enter never block, so trust can be withdrawn from any caller,
// holding any lock; Wait blocks, and is for the repair loop alone.
type barrier struct {
	// state is epoch<<1 | closed: one word, so that a writer sees the
	// epoch and the trust of the same moment.
	state atomic.Uint64
	// inside counts the admitted writers that have not exited (plus,
	// briefly, writers that raced with a Close and are turned back).
	inside atomic.Int64
	// waiting is set while a Wait may be blocked on idle.
	waiting atomic.Bool

	mu   sync.Mutex    // guards idle
	idle chan struct{} // closed by the Exit that leaves nobody inside
}

const closedBit = 1

// State returns the current epoch and whether the barrier is open.
func (b *barrier) State() (epoch uint64, open bool) {
	s := b.state.Load()
	return s >> 1, s&closedBit == 0
}

// IsOpen reports whether the cache is trusted.
func (b *barrier) IsOpen() bool { return b.state.Load()&closedBit == 0 }

// Epoch returns the current epoch.
func (b *barrier) Epoch() uint64 { return b.state.Load() >> 1 }

// Enter admits a writer if the barrier is open. If it returns true, the
// caller must call Exit once its write is done.
func (b *barrier) Enter() bool {
	return b.enter(func(s uint64) bool { return s&closedBit == 0 })
}

// EnterAt admits a writer if the barrier is open and still in epoch: the
// writer's data, read in that epoch, was read while the cache was trusted
// throughout. If it returns true, the caller must call Exit.
func (b *barrier) EnterAt(epoch uint64) bool {
	return b.enter(func(s uint64) bool { return s == epoch<<1 })
}

func (b *barrier) enter(admit func(state uint64) bool) bool {
	if !admit(b.state.Load()) {
		return false // turned away without being counted: cannot delay a Wait
	}
	b.inside.Add(1)
	// Check again now that we are counted: either a Close that raced with
	// us is seen here, or its Wait sees us inside and waits for our Exit.
	if !admit(b.state.Load()) {
		b.Exit()
		return false
	}
	return true
}

// Exit lets out a writer that Enter or EnterAt admitted.
func (b *barrier) Exit() {
	if b.inside.Add(-1) == 0 && b.waiting.Load() {
		b.mu.Lock()
		if b.idle != nil {
			close(b.idle)
			b.idle = nil
		}
		b.mu.Unlock()
	}
}

// Close turns writers away from now on, starts a new epoch and reports
// whether the barrier was open. It does not wait for the writers inside:
// see Wait.
func (b *barrier) Close() (wasOpen bool) {
	for {
		s := b.state.Load()
		if b.state.CompareAndSwap(s, (s>>1+1)<<1|closedBit) {
			return s&closedBit == 0
		}
	}
}

// Open admits writers again, if the barrier is still closed in epoch, and
// reports whether it did.
func (b *barrier) Open(epoch uint64) bool {
	return b.state.CompareAndSwap(epoch<<1|closedBit, epoch<<1)
}

// Wait returns once no admitted writer is inside, or with ctx's error. Once
// the barrier is closed, writers only leave, so Wait cannot starve: it
// returns once the writers admitted before the Close have exited.
func (b *barrier) Wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		// waiting is set before inside is read, and an Exit decrements
		// inside before it reads waiting: the Exit that empties the barrier
		// after this read sees waiting and closes idle.
		b.waiting.Store(true)
		if b.inside.Load() == 0 {
			b.waiting.Store(false)
			b.mu.Unlock()
			return nil
		}
		if b.idle == nil {
			b.idle = make(chan struct{})
		}
		idle := b.idle
		b.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			b.mu.Lock()
			b.waiting.Store(false)
			b.mu.Unlock()
			return ctx.Err()
		}
	}
}
