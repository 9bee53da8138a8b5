package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/testenv"
)

// TestListenRegistry: the listener calls back once listening, after every
// committed registry change of its schema (made through another store on
// the same schema), not for another schema's, and again after its
// connection was killed and it reconnected.
func TestListenRegistry(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	listening, writer := openStore(t, url), openStore(t, url)
	other := openStore(t, testenv.PostgresSchemaURL(t, "fs_t"))
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		listening.ListenRegistry(ctx, func() { calls <- struct{}{} })
	}()
	defer wg.Wait()
	defer cancel()

	next := func(what string) {
		t.Helper()
		select {
		case <-calls:
		case <-time.After(time.Minute):
			t.Fatalf("no call back %s", what)
		}
	}
	none := func(what string) {
		t.Helper()
		select {
		case <-calls:
			t.Fatalf("a call back %s", what)
		default:
		}
	}
	next("once listening")
	g := feature.Group{Name: "g", EntityKey: "k", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}}
	// A change to another schema first: its notification, if it were taken
	// for ours, would arrive before the one of our change below.
	if _, err := other.PutGroup(ctx, g, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.PutGroup(ctx, g, time.Now()); err != nil {
		t.Fatal(err)
	}
	next("after a PutGroup")
	if err := writer.DeleteGroup(ctx, g.Name); err != nil {
		t.Fatal(err)
	}
	next("after a DeleteGroup")
	none("for another schema's change")

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(listening.listenerPID.Load())).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listener's backend: %v, %v", killed, err)
	}
	next("after reconnecting")
	if _, err := writer.PutGroup(ctx, g, time.Now()); err != nil {
		t.Fatal(err)
	}
	next("after a PutGroup on the new connection")
}
