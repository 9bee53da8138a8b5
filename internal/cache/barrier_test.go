package cache

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

func TestBarrierTrustAndEpochs(t *testing.T) {
	t.Parallel()
	var b barrier
	check := func(what string, wantEpoch uint64, wantOpen bool) {
		t.Helper()
		if e, open := b.State(); e != wantEpoch || open != wantOpen || b.IsOpen() != wantOpen || b.Epoch() != wantEpoch {
			t.Fatalf("%s: epoch %d, open %v; want %d, %v", what, e, open, wantEpoch, wantOpen)
		}
	}
	check("new", 0, true)
	if !b.Enter() {
		t.Fatal("open barrier refused a writer")
	}
	b.Exit()
	if !b.EnterAt(0) {
		t.Fatal("open barrier refused a writer of its epoch")
	}
	b.Exit()

	if !b.Close() {
		t.Error("first Close did not report the barrier open")
	}
	check("closed", 1, false)
	if b.Enter() || b.EnterAt(0) || b.EnterAt(1) {
		t.Fatal("closed barrier admitted a writer")
	}
	if b.Close() {
		t.Error("second Close reported the barrier open")
	}
	check("closed again", 2, false)
	if b.Open(1) {
		t.Fatal("Open of an epoch that was closed again succeeded")
	}
	check("after a stale Open", 2, false)
	if !b.Open(2) {
		t.Fatal("Open of the current epoch failed")
	}
	check("reopened", 2, true)
	if b.Open(2) {
		t.Error("Open of an open barrier succeeded")
	}
	if b.EnterAt(1) {
		t.Fatal("writer of an epoch before the last Close admitted")
	}
	if !b.EnterAt(2) || !b.Enter() {
		t.Fatal("reopened barrier refused a writer")
	}
	b.Exit()
	b.Exit()
}

// Wait blocks while a writer admitted before the Close is inside, and
// returns when it exits. synctest tells "blocked" from "slow".
func TestBarrierWaitsForWriters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b barrier
		for range 2 {
			if !b.Enter() {
				t.Fatal("open barrier refused a writer")
			}
		}
		b.Close()
		var returned atomic.Bool
		go func() {
			if err := b.Wait(context.Background()); err != nil {
				t.Errorf("Wait: %v", err)
			}
			returned.Store(true)
		}()
		synctest.Wait()
		if returned.Load() {
			t.Fatal("Wait returned with two writers inside")
		}
		b.Exit()
		synctest.Wait()
		if returned.Load() {
			t.Fatal("Wait returned with a writer inside")
		}
		b.Exit()
		synctest.Wait()
		if !returned.Load() {
			t.Fatal("Wait still blocked after the last writer exited")
		}
		if err := b.Wait(context.Background()); err != nil {
			t.Errorf("Wait with nobody inside: %v", err)
		}
	})
}

func TestBarrierWaitCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var b barrier
		b.Enter()
		b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- b.Wait(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Wait after cancel = %v, want context.Canceled", err)
		}
		b.Exit()
		if err := b.Wait(context.Background()); err != nil {
			t.Errorf("Wait once the writer exited: %v", err)
		}
	})
}

// TestBarrierStress races writers against Close and Wait: once Wait has
// returned, no admitted writer may still be inside, and none may be
// admitted until the barrier is opened again.
func TestBarrierStress(t *testing.T) {
	t.Parallel()
	var (
		b          barrier
		cleared    atomic.Bool  // set between Wait and Open: where the clear would run
		violations atomic.Int64 // writers seen inside while cleared
		admitted   atomic.Int64
		stop       atomic.Bool
		wg         sync.WaitGroup
	)
	for range 8 {
		wg.Go(func() {
			for !stop.Load() {
				if !b.EnterAt(b.Epoch()) {
					runtime.Gosched()
					continue
				}
				admitted.Add(1)
				if cleared.Load() {
					violations.Add(1)
				}
				runtime.Gosched()
				if cleared.Load() {
					violations.Add(1)
				}
				b.Exit()
			}
		})
	}
	for round := range 200 {
		for n := admitted.Load(); admitted.Load() == n; {
			runtime.Gosched() // let some writers in before closing
		}
		b.Close()
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		cleared.Store(true)
		runtime.Gosched()
		cleared.Store(false)
		if !b.Open(b.Epoch()) {
			t.Fatalf("round %d: Open failed", round)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := violations.Load(); n != 0 {
		t.Errorf("%d times a writer was inside after Wait returned", n)
	}
}
