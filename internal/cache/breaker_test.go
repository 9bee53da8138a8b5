package cache

import (
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The breaker tests run in a synctest bubble: the breaker's clock is the
// bubble's fake time.Now, and time.Sleep moves it forward at once.

func TestBreakerOpensHalfOpensAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		b := newBreaker(time.Now, interval)
		for i := range 3 {
			if !b.allow() || !b.ready() {
				t.Fatalf("closed breaker refused call %d", i)
			}
		}
		if b.success() {
			t.Errorf("success on a closed breaker reported it open")
		}

		// One failure opens it.
		if !b.failure() {
			t.Errorf("first failure did not report the breaker closed until then")
		}
		if b.allow() || b.ready() {
			t.Fatalf("open breaker allowed a call")
		}
		time.Sleep(interval - time.Nanosecond)
		if b.allow() || b.ready() {
			t.Fatalf("breaker allowed a call before the interval passed")
		}

		// Half-open: one probe, the others stay away.
		time.Sleep(time.Nanosecond)
		if !b.ready() {
			t.Fatalf("breaker not ready after the interval")
		}
		if !b.allow() {
			t.Fatalf("breaker refused the probe after the interval")
		}
		if b.allow() || b.ready() {
			t.Fatalf("breaker allowed a second call while the probe is out")
		}

		// The probe fails: open for another interval from the failure.
		time.Sleep(interval / 2)
		if b.failure() {
			t.Errorf("failed probe reported the breaker closed until then")
		}
		time.Sleep(interval - time.Nanosecond)
		if b.allow() {
			t.Fatalf("breaker allowed a call within the interval after a failed probe")
		}
		time.Sleep(time.Nanosecond)
		if !b.allow() {
			t.Fatalf("breaker refused the second probe")
		}

		// The probe succeeds: closed, every call allowed again.
		if !b.success() {
			t.Errorf("successful probe did not report the breaker open until then")
		}
		for i := range 3 {
			if !b.allow() {
				t.Fatalf("breaker closed by a successful probe refused call %d", i)
			}
		}
	})
}

// A probe that never reports (it hung, or its caller had nothing to ask)
// does not keep the breaker open forever: the next interval brings another.
func TestBreakerProbeWithoutOutcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(time.Now, time.Second)
		b.failure()
		time.Sleep(time.Second)
		if !b.allow() {
			t.Fatal("no probe after the interval")
		}
		time.Sleep(time.Second)
		if !b.allow() {
			t.Fatal("no new probe an interval after a probe that did not report")
		}
	})
}

// Of many callers at the moment the interval ends, exactly one probes.
func TestBreakerOneProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBreaker(time.Now, time.Second)
		b.failure()
		var (
			probes atomic.Int64
			wg     sync.WaitGroup
		)
		for range 16 {
			wg.Go(func() {
				time.Sleep(time.Second) // all wake at the same fake instant
				if b.allow() {
					probes.Add(1)
				}
			})
		}
		wg.Wait()
		if n := probes.Load(); n != 1 {
			t.Errorf("%d callers probed at once, want 1", n)
		}
	})
}
