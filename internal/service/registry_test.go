package service

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/testenv"
)

// pushBudget is how soon a registry change made through one replica must be
// seen by another: the 1 s. A notification arrives in milliseconds
// even on a loaded machine, so the budget itself is the margin; the periodic
// refresh, which could mask a lost notification, is set to an hour.
const pushBudget = time.Second

// refreshed signals each completed periodic refresh (it ends with
// SetStorageBytes), so that a test knows the start-up refresh is behind it.
type refreshed struct {
	nopObserver
	done chan struct{}
}

func (r *refreshed) SetStorageBytes(string, int64) {
	select {
	case r.done <- struct{}{}:
	default:
	}
}

// readyListener passes registry notifications through and closes ready on
// the first call, which the postgres listener makes once it is listening.
type readyListener struct {
	inner RegistryListener
	once  sync.Once
	ready chan struct{}
}

func (l *readyListener) ListenRegistry(ctx context.Context, changed func()) {
	l.inner.ListenRegistry(ctx, func() {
		l.once.Do(func() { close(l.ready) })
		changed()
	})
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// within polls cond until it holds or budget has passed since start, and
// reports how long it took; the test fails if it never held in time.
func within(t *testing.T, start time.Time, budget time.Duration, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Since(start) > budget {
			t.Errorf("%s: not within %v", what, budget)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("%s after %v", what, time.Since(start))
}

// TestRegistryPushed: two replicas on one Postgres schema and one Redis
// prefix; a group created through a is served by b within pushBudget, and
// once a has acknowledged its deletion, b serves none of its rows, at once,
// whether it reads the system of record or the cache (see
// TestDeletedGroupBeforeNotify), and stops listing it within pushBudget.
func TestRegistryPushed(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	prefix := fmt.Sprintf("fs_t_%016x", rand.Uint64())
	c := newClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	a := newService(t, openPostgresURL(t, url, prefix), c, Options{})
	stB := openPostgresURL(t, url, prefix)
	sorB, _ := systems.Load(stB)
	listener := &readyListener{inner: sorB.(RegistryListener), ready: make(chan struct{})}
	obs := &refreshed{done: make(chan struct{}, 1)}
	b := newService(t, stB, c, Options{Registry: listener, RefreshInterval: time.Hour, Observer: obs})
	// d reads the system of record with no cache in front, as a replica
	// without Redis does; it never refreshes its registry.
	pg, err := postgres.Open(ctx, url, postgres.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	d := newService(t, pg, c, Options{})

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Run(ctx) }()
	defer wg.Wait()
	defer cancel()
	waitFor(t, listener.ready, "b's registry listener")
	waitFor(t, obs.done, "b's start-up refresh")

	g := feature.Group{Name: "user_stats", EntityKey: "user_id", Features: []feature.Spec{{Name: "clicks", Type: feature.Int64}}}
	if _, err := b.GetGroup(ctx, g.Name); feature.ErrorCode(err) != feature.CodeNotFound {
		t.Fatalf("b has the group before it exists: %v", err)
	}
	if _, _, err := a.PutGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	within(t, start, pushBudget, "b serves the new group", func() bool {
		_, err := b.GetGroup(ctx, g.Name)
		return err == nil
	})
	if _, err := a.WriteRows(ctx, g.Name, []RowInput{{EntityID: "u1", Values: map[string]any{"clicks": int64(3)}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetEntity(ctx, g.Name, "u1", nil, nil); err != nil { // now in b's cache too
		t.Fatal(err)
	}

	if err := a.DeleteGroup(ctx, g.Name); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if got, err := d.GetEntity(ctx, g.Name, "u1", nil, nil); feature.ErrorCode(err) != feature.CodeNotFound {
		t.Errorf("a replica reading Postgres right after the acknowledged delete: %+v, %v; want not found", got, err)
	}
	if got, err := b.GetEntity(ctx, g.Name, "u1", nil, nil); feature.ErrorCode(err) != feature.CodeNotFound {
		t.Errorf("b's read through the cache right after the acknowledged delete: %+v, %v; want not found", got, err)
	}
	within(t, start, pushBudget, "b no longer lists the deleted group", func() bool {
		_, err := b.GetGroup(ctx, g.Name)
		return feature.ErrorCode(err) == feature.CodeNotFound
	})
}

// heldListener passes registry notifications through, closes ready on the
// first, and, while held, keeps them from the service: a notification
// delayed in delivery, without a sleep. release delivers one.
type heldListener struct {
	inner RegistryListener
	once  sync.Once
	ready chan struct{}

	mu      sync.Mutex
	held    bool
	missed  int
	changed func()
}

func (l *heldListener) ListenRegistry(ctx context.Context, changed func()) {
	l.inner.ListenRegistry(ctx, func() {
		l.once.Do(func() { close(l.ready) })
		l.mu.Lock()
		l.changed = changed
		if l.held {
			l.missed++
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		changed()
	})
}

func (l *heldListener) hold() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = true
}

// release stops holding and delivers what was held.
func (l *heldListener) release() {
	l.mu.Lock()
	l.held = false
	n, changed := l.missed, l.changed
	l.mu.Unlock()
	if n > 0 {
		changed()
	}
}

// TestDeletedGroupBeforeNotify: two replicas on one Postgres schema and one
// Redis prefix; b has a group's row in the shared cache and its registry
// notifications are held back, so b still believes in the group when a
// acknowledges its deletion. b must not answer the row then (nor through
// a batch read), though its registry still lists the group until the
// notification is delivered.
func TestDeletedGroupBeforeNotify(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	prefix := fmt.Sprintf("fs_t_%016x", rand.Uint64())
	c := newClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	a := newService(t, openPostgresURL(t, url, prefix), c, Options{})
	stB := openPostgresURL(t, url, prefix)
	sorB, _ := systems.Load(stB)
	listener := &heldListener{inner: sorB.(RegistryListener), ready: make(chan struct{})}
	obs := &refreshed{done: make(chan struct{}, 1)}
	b := newService(t, stB, c, Options{Registry: listener, RefreshInterval: time.Hour, Observer: obs})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); b.Run(ctx) }()
	defer wg.Wait()
	defer cancel()
	waitFor(t, listener.ready, "b's registry listener")
	waitFor(t, obs.done, "b's start-up refresh")

	g := feature.Group{Name: "user_stats", EntityKey: "user_id", Features: []feature.Spec{{Name: "clicks", Type: feature.Int64}}}
	if _, _, err := a.PutGroup(ctx, g); err != nil {
		t.Fatal(err)
	}
	within(t, time.Now(), pushBudget, "b serves the new group", func() bool {
		_, err := b.GetGroup(ctx, g.Name)
		return err == nil
	})
	if _, err := a.WriteRows(ctx, g.Name, []RowInput{{EntityID: "u1", Values: map[string]any{"clicks": int64(3)}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the first read fills b's cache, the second hits it
		if got, err := b.GetEntity(ctx, g.Name, "u1", nil, nil); err != nil || got.Features["clicks"] != int64(3) {
			t.Fatalf("b's read before the delete = %+v, %v", got, err)
		}
	}

	listener.hold()
	if err := a.DeleteGroup(ctx, g.Name); err != nil {
		t.Fatal(err)
	}
	// The deletion is acknowledged; b has not been told.
	if got, err := b.GetEntity(ctx, g.Name, "u1", nil, nil); feature.ErrorCode(err) != feature.CodeNotFound {
		t.Errorf("b's read after the acknowledged delete = %+v, %v; want not found", got, err)
	}
	online, err := b.GetOnlineFeatures(ctx, OnlineRequest{Entities: map[string][]any{"user_id": {"u1"}}, Features: []string{"user_stats:clicks"}})
	if feature.ErrorCode(err) != feature.CodeNotFound {
		t.Errorf("b's online read after the acknowledged delete = %+v, %v; want not found", online, err)
	}
	if _, err := b.GetGroup(ctx, g.Name); err != nil {
		t.Fatalf("b no longer lists the group (%v): its notification was not held, the test proves nothing", err)
	}
	testenv.Eventually(t, time.Minute, "the delete's notification reaches b's listener (and is held)", func() (bool, string) {
		listener.mu.Lock()
		defer listener.mu.Unlock()
		return listener.missed > 0, ""
	})
	listener.release()
	if _, err := b.GetGroup(ctx, g.Name); feature.ErrorCode(err) != feature.CodeNotFound {
		t.Errorf("b lists the group after the delivered notification: %v", err)
	}
}
