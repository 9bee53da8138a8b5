package postgres

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
)

// proxiedStores opens one schema twice: through a CutProxy (with the
// extended protocol in one round trip, so a write's SQL and its commit
// travel together) and directly, to look at what was committed.
func proxiedStores(t *testing.T) (via *Store, direct *Store, proxy *testenv.CutProxy) {
	t.Helper()
	raw := testenv.PostgresSchemaURL(t, "fs_t")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	proxy = testenv.StartCutProxy(t, u.Host)
	q := u.Query()
	q.Set("default_query_exec_mode", "exec")
	u.RawQuery = q.Encode()
	direct = openStore(t, raw)
	via = openStore(t, proxy.URL(t, u.String()))
	return via, direct, proxy
}

var outcomeT0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func outcomeGroup(t *testing.T, s *Store) {
	t.Helper()
	if _, err := s.PutGroup(t.Context(), feature.Group{Name: "g", EntityKey: "id",
		Features: []feature.Spec{{Name: "n", Type: feature.Int64}}}, outcomeT0); err != nil {
		t.Fatalf("PutGroup: %v", err)
	}
}

func committed(t *testing.T, s *Store, id string) bool {
	t.Helper()
	rows, err := s.GetLatest(t.Context(), []feature.Key{{Group: "g", EntityID: id}})
	if err != nil {
		t.Fatalf("GetLatest: %v", err)
	}
	return rows[0] != nil
}

// TestWriteOutcomeUnknown is the finding "when Postgres stops mid-commit,
// writes answered '503, nothing was written' were in fact committed": the
// connection is cut after the write reached the server and before its
// answer came back. The write is committed, and the store says
// outcome_unknown, not unavailable.
func TestWriteOutcomeUnknown(t *testing.T) {
	t.Parallel()
	via, direct, proxy := proxiedStores(t)
	outcomeGroup(t, direct)

	cut := proxy.Arm("feature_latest AS l") // the write statement
	err := via.WriteRows(t.Context(), []feature.Row{{Group: "g", EntityID: "a", EventTime: outcomeT0, WriteTime: outcomeT0,
		Values: feature.Values{"n": int64(1)}}})
	<-cut
	if feature.ErrorCode(err) != feature.CodeOutcomeUnknown {
		t.Fatalf("WriteRows whose answer was lost = %v, want outcome_unknown", err)
	}
	if !committed(t, direct, "a") {
		t.Error("the write was not committed: the test did not cut after the commit")
	}

	// A failure before anything was sent stays unavailable: nothing written.
	via.Close()
	err = via.WriteRows(t.Context(), []feature.Row{{Group: "g", EntityID: "b", EventTime: outcomeT0, WriteTime: outcomeT0,
		Values: feature.Values{"n": int64(1)}}})
	if code := feature.ErrorCode(err); code == feature.CodeOutcomeUnknown {
		t.Errorf("WriteRows on a closed pool = %v: nothing was sent, the outcome is known", err)
	}
	if committed(t, direct, "b") {
		t.Error("a write on a closed pool was committed")
	}
}

// TestIdempotentCommitLost: the connection is cut right after COMMIT was
// sent. The error is outcome_unknown, and the idempotency record committed
// with the rows is there to tell a retry what happened.
func TestIdempotentCommitLost(t *testing.T) {
	t.Parallel()
	via, direct, proxy := proxiedStores(t)
	outcomeGroup(t, direct)

	w := store.NewIdempotentWrite("key-1", "fp", outcomeT0, outcomeT0.Add(-time.Hour), func(any) (int, []byte) {
		return 200, []byte(`{"ok":true}`)
	})
	ctx := store.WithIdempotentWrite(t.Context(), w)
	store.RecordAnswer(ctx, nil)
	cut := proxy.Arm("commit")
	err := via.WriteRows(ctx, []feature.Row{{Group: "g", EntityID: "a", EventTime: outcomeT0, WriteTime: outcomeT0,
		Values: feature.Values{"n": int64(1)}}})
	<-cut
	if feature.ErrorCode(err) != feature.CodeOutcomeUnknown {
		t.Fatalf("WriteRows whose COMMIT answer was lost = %v, want outcome_unknown", err)
	}
	rec, ok, err := direct.GetIdempotencyRecord(t.Context(), "key-1")
	if err != nil || !ok || rec.Status != 200 || string(rec.Body) != `{"ok":true}` {
		t.Fatalf("record after the lost commit = %+v, %v, %v; want the answer", rec, ok, err)
	}
	if !committed(t, direct, "a") {
		t.Error("the record is there but the rows are not")
	}
	// The retry finds the key in use: it must replay, not write again.
	retry := store.WithIdempotentWrite(t.Context(), store.NewIdempotentWrite("key-1", "fp", outcomeT0, outcomeT0.Add(-time.Hour), nil))
	if err := direct.WriteRows(retry, []feature.Row{{Group: "g", EntityID: "z", EventTime: outcomeT0, WriteTime: outcomeT0,
		Values: feature.Values{"n": int64(1)}}}); !errors.Is(err, store.ErrIdempotencyKeyInUse) {
		t.Errorf("retry = %v, want ErrIdempotencyKeyInUse", err)
	}
}

// TestPutGroupOutcomeUnknown: the same for a registry change.
func TestPutGroupOutcomeUnknown(t *testing.T) {
	t.Parallel()
	via, direct, proxy := proxiedStores(t)
	cut := proxy.Arm("INSERT INTO feature_groups")
	_, err := via.PutGroup(t.Context(), feature.Group{Name: "lost", EntityKey: "id",
		Features: []feature.Spec{{Name: "n", Type: feature.Int64}}}, outcomeT0)
	<-cut
	if feature.ErrorCode(err) != feature.CodeOutcomeUnknown {
		t.Fatalf("PutGroup whose answer was lost = %v, want outcome_unknown", err)
	}
	if _, err := direct.GetGroup(t.Context(), "lost"); err != nil {
		t.Errorf("the group was not committed: %v", err)
	}
}
