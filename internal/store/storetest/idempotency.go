package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// IdempotentStore is a system of record that keeps Idempotency-Key
// records: they are written by its writes (a store.IdempotentWrite in the
// context) and read and expired here.
type IdempotentStore interface {
	store.Store
	GetIdempotencyRecord(ctx context.Context, key string) (store.IdempotencyRecord, bool, error)
	DeleteIdempotencyRecords(ctx context.Context, createdBefore time.Time) (int64, error)
}

// RunIdempotency is the contract of the idempotency records: a write with
// an IdempotentWrite in its context commits the record with the answer
// rendered from its result, or neither; an unexpired record of the key
// makes the write fail with store.ErrIdempotencyKeyInUse and write nothing;
// an expired one is replaced.
func RunIdempotency(t *testing.T, newStore func(t *testing.T) IdempotentStore) {
	t.Run("IdempotentWriteRows", func(t *testing.T) {
		t.Parallel()
		testIdempotentWriteRows(t, newStore(t))
	})
	t.Run("IdempotentGroupChanges", func(t *testing.T) {
		t.Parallel()
		testIdempotentGroupChanges(t, newStore(t))
	})
	t.Run("IdempotentConcurrentSameKey", func(t *testing.T) {
		t.Parallel()
		testIdempotentConcurrent(t, newStore(t))
	})
}

var idemT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func idemGroup(t *testing.T, s store.Store) {
	t.Helper()
	if _, err := s.PutGroup(t.Context(), feature.Group{Name: "g", EntityKey: "id",
		Features: []feature.Spec{{Name: "n", Type: feature.Int64}}}, idemT0); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
}

func idemRows(ids ...string) []feature.Row {
	rows := make([]feature.Row, len(ids))
	for i, id := range ids {
		rows[i] = feature.Row{Group: "g", EntityID: id, EventTime: idemT0, WriteTime: idemT0, Values: feature.Values{"n": int64(i)}}
	}
	return rows
}

// idemWrite is an idempotent write of key whose answer is "<status> <result>".
func idemWrite(key, fp string, now time.Time, ttl time.Duration) *store.IdempotentWrite {
	return store.NewIdempotentWrite(key, fp, now, now.Add(-ttl), func(result any) (int, []byte) {
		if g, ok := result.(feature.Group); ok {
			return 201, []byte(g.Name)
		}
		if result == nil {
			return 204, nil
		}
		return 200, []byte(result.(string))
	})
}

func countRows(t *testing.T, s store.Store, ids ...string) int {
	t.Helper()
	keys := make([]feature.Key, len(ids))
	for i, id := range ids {
		keys[i] = feature.Key{Group: "g", EntityID: id}
	}
	got, err := s.GetLatest(t.Context(), keys)
	if err != nil {
		t.Fatalf("GetLatest: %v", err)
	}
	n := 0
	for _, r := range got {
		if r != nil {
			n++
		}
	}
	return n
}

func wantRecord(t *testing.T, s IdempotentStore, key, fp string, status int, body string, created time.Time) {
	t.Helper()
	rec, ok, err := s.GetIdempotencyRecord(t.Context(), key)
	if err != nil || !ok {
		t.Fatalf("GetIdempotencyRecord(%q) = %v, %v", key, ok, err)
	}
	if rec.Fingerprint != fp || rec.Status != status || string(rec.Body) != body || !rec.CreatedAt.Equal(created) {
		t.Errorf("record %q = %+v (body %q), want fingerprint %s, %d %q, created %v", key, rec, rec.Body, fp, status, body, created)
	}
}

func testIdempotentWriteRows(t *testing.T, s IdempotentStore) {
	idemGroup(t, s)
	ttl := time.Hour
	w := idemWrite("k1", "fp1", idemT0, ttl)
	ctx := store.WithIdempotentWrite(t.Context(), w)
	store.RecordAnswer(ctx, "first")
	if err := s.WriteRows(ctx, idemRows("a", "b")); err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
	wantRecord(t, s, "k1", "fp1", 200, "first", idemT0)

	// The same key again within its lifetime: refused, nothing written.
	w2 := idemWrite("k1", "fp2", idemT0.Add(time.Minute), ttl)
	ctx2 := store.WithIdempotentWrite(t.Context(), w2)
	store.RecordAnswer(ctx2, "second")
	if err := s.WriteRows(ctx2, idemRows("c")); !errors.Is(err, store.ErrIdempotencyKeyInUse) {
		t.Errorf("WriteRows with a used key = %v, want ErrIdempotencyKeyInUse", err)
	}
	if n := countRows(t, s, "c"); n != 0 {
		t.Errorf("the refused write wrote %d rows", n)
	}
	wantRecord(t, s, "k1", "fp1", 200, "first", idemT0)

	// A write that fails leaves no record.
	w3 := idemWrite("k3", "fp3", idemT0, ttl)
	ctx3 := store.WithIdempotentWrite(t.Context(), w3)
	store.RecordAnswer(ctx3, "never")
	bad := idemRows("d")
	bad[0].Group = "nope"
	if err := s.WriteRows(ctx3, bad); feature.ErrorCode(err) != feature.CodeNotFound {
		t.Errorf("WriteRows to an unknown group = %v, want not_found", err)
	}
	if _, ok, err := s.GetIdempotencyRecord(t.Context(), "k3"); ok || err != nil {
		t.Errorf("a failed write left a record (%v, %v)", ok, err)
	}

	// Once expired, the key is free again and its record replaced.
	later := idemT0.Add(2 * ttl)
	w4 := idemWrite("k1", "fp4", later, ttl)
	ctx4 := store.WithIdempotentWrite(t.Context(), w4)
	store.RecordAnswer(ctx4, "fourth")
	if err := s.WriteRows(ctx4, idemRows("e")); err != nil {
		t.Fatalf("WriteRows with an expired key: %v", err)
	}
	wantRecord(t, s, "k1", "fp4", 200, "fourth", later)

	// Expiry deletes exactly the records created before the cut-off.
	if err := s.WriteRows(store.WithIdempotentWrite(t.Context(), idemWrite("old", "fp", idemT0, ttl)), idemRows("f")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteIdempotencyRecords(t.Context(), idemT0.Add(time.Second)); err != nil || n != 1 {
		t.Errorf("DeleteIdempotencyRecords = %d, %v; want 1", n, err)
	}
	if _, ok, _ := s.GetIdempotencyRecord(t.Context(), "old"); ok {
		t.Error("an expired record survived its deletion")
	}
	wantRecord(t, s, "k1", "fp4", 200, "fourth", later)
}

func testIdempotentGroupChanges(t *testing.T, s IdempotentStore) {
	put := idemWrite("put", "fp-put", idemT0, time.Hour)
	ctx := store.WithIdempotentWrite(t.Context(), put)
	if _, err := s.PutGroup(ctx, feature.Group{Name: "g", EntityKey: "id",
		Features: []feature.Spec{{Name: "n", Type: feature.Int64}}}, idemT0); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
	wantRecord(t, s, "put", "fp-put", 201, "g", idemT0) // rendered by the store from the stored group

	// A used key fails the change and leaves the group as it was.
	again := store.WithIdempotentWrite(t.Context(), idemWrite("put", "fp-other", idemT0, time.Hour))
	if _, err := s.PutGroup(again, feature.Group{Name: "g", EntityKey: "id",
		Features: []feature.Spec{{Name: "n", Type: feature.Int64}, {Name: "m", Type: feature.Int64}}}, idemT0); !errors.Is(err, store.ErrIdempotencyKeyInUse) {
		t.Errorf("PutGroup with a used key = %v, want ErrIdempotencyKeyInUse", err)
	}
	if g, err := s.GetGroup(t.Context(), "g"); err != nil || len(g.Features) != 1 || g.SchemaVersion != 1 {
		t.Errorf("group after the refused change = %+v, %v", g, err)
	}

	del := store.WithIdempotentWrite(t.Context(), idemWrite("del", "fp-del", idemT0, time.Hour))
	if err := s.DeleteGroup(del, "g"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	wantRecord(t, s, "del", "fp-del", 204, "", idemT0)
	// Deleting what is not there fails and records nothing.
	if err := s.DeleteGroup(store.WithIdempotentWrite(t.Context(), idemWrite("del2", "fp", idemT0, time.Hour)), "g"); feature.ErrorCode(err) != feature.CodeNotFound {
		t.Errorf("DeleteGroup of a missing group = %v", err)
	}
	if _, ok, _ := s.GetIdempotencyRecord(t.Context(), "del2"); ok {
		t.Error("a failed delete left a record")
	}
}

func testIdempotentConcurrent(t *testing.T, s IdempotentStore) {
	idemGroup(t, s)
	const n = 8
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		written, inUse int
		others         []error
	)
	for i := range n {
		wg.Go(func() {
			w := idemWrite("same", "fp", idemT0, time.Hour)
			ctx := store.WithIdempotentWrite(context.Background(), w)
			store.RecordAnswer(ctx, "answer")
			err := s.WriteRows(ctx, idemRows(fmt.Sprintf("x%d", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				written++
			case errors.Is(err, store.ErrIdempotencyKeyInUse):
				inUse++
			default:
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if written != 1 || inUse != n-1 || len(others) > 0 {
		t.Errorf("%d concurrent writes with one key: %d written, %d refused, errors %v; want 1 and %d", n, written, inUse, others, n-1)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("x%d", i)
	}
	if got := countRows(t, s, ids...); got != 1 {
		t.Errorf("%d rows written, want exactly 1", got)
	}
}
