package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// ServiceStore is a backend that also keeps feature services.
type ServiceStore interface {
	store.Store
	// ListFeatureServices returns every feature service, ordered by name.
	ListFeatureServices(ctx context.Context) ([]feature.FeatureService, error)
	// GetFeatureService returns one service or a NotFound error.
	GetFeatureService(ctx context.Context, name string) (feature.FeatureService, error)
	// PutFeatureService creates or replaces a service, versioned like a
	// group (see store.Store.PutGroup). A reference to an unregistered group
	// is a NotFound error and nothing is written.
	PutFeatureService(ctx context.Context, fs feature.FeatureService, now time.Time) (feature.FeatureService, error)
	// DeleteFeatureService removes a service; NotFound if there is none.
	DeleteFeatureService(ctx context.Context, name string) error
}

// RunFeatureServices runs the contract of the feature-service registry and
// of DeleteGroup's refusal to delete a group a service uses; newStore is as
// for Run.
func RunFeatureServices(t *testing.T, newStore func(t *testing.T) ServiceStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s ServiceStore)
	}{
		{"Versioning", testServiceVersioning},
		{"NotFound", testServiceNotFound},
		{"UnknownGroup", testServiceUnknownGroup},
		{"Invalid", testServiceInvalid},
		{"GroupInUse", testServiceGroupInUse},
		{"DeleteRacesPut", testServiceDeleteRacesPut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func putService(t *testing.T, s ServiceStore, fs feature.FeatureService, now time.Time) feature.FeatureService {
	t.Helper()
	out, err := s.PutFeatureService(t.Context(), fs, now)
	if err != nil {
		t.Fatalf("PutFeatureService(%s): %v", fs.Name, err)
	}
	return out
}

func getService(t *testing.T, s ServiceStore, name string) feature.FeatureService {
	t.Helper()
	fs, err := s.GetFeatureService(t.Context(), name)
	if err != nil {
		t.Fatalf("GetFeatureService(%s): %v", name, err)
	}
	return fs
}

func testServiceVersioning(t *testing.T, s ServiceStore) {
	putGroup(t, s, movies("a"), base)
	putGroup(t, s, movies("b"), base)
	created := base.Add(123456789 * time.Nanosecond)
	v1 := feature.FeatureService{Name: "ranker", Features: []string{"b:title", "a:rating", "a:budget"},
		Description: "ranking model v1", Tags: map[string]string{"team": "recs"}}
	got := putService(t, s, v1, created)
	want := v1
	want.SchemaVersion = 1
	want.CreatedAt, want.UpdatedAt = created.Truncate(time.Microsecond), created.Truncate(time.Microsecond)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PutFeatureService (create) returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, getService(t, s, "ranker")); diff != "" {
		t.Errorf("GetFeatureService after create (-want +got):\n%s", diff)
	}

	v2 := feature.FeatureService{Name: "ranker", Features: []string{"a:title"}}
	got = putService(t, s, v2, at(60))
	want = v2
	want.SchemaVersion = 2
	want.CreatedAt, want.UpdatedAt = created.Truncate(time.Microsecond), at(60)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PutFeatureService (replace) returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, getService(t, s, "ranker")); diff != "" {
		t.Errorf("GetFeatureService after replace (-want +got):\n%s", diff)
	}

	putService(t, s, feature.FeatureService{Name: "alpha", Features: []string{"b:adult"}}, at(70))
	list, err := s.ListFeatureServices(t.Context())
	if err != nil {
		t.Fatalf("ListFeatureServices: %v", err)
	}
	var names []string
	for _, fs := range list {
		names = append(names, fs.Name)
	}
	if diff := cmp.Diff([]string{"alpha", "ranker"}, names); diff != "" {
		t.Errorf("ListFeatureServices names (-want +got):\n%s", diff)
	}
	// v2 no longer uses b: b can go; a cannot.
	if err := s.DeleteGroup(t.Context(), "a"); feature.ErrorCode(err) != feature.CodeConflict {
		t.Errorf("DeleteGroup(a) used by ranker = %v, want a conflict", err)
	}
	if err := s.DeleteFeatureService(t.Context(), "alpha"); err != nil {
		t.Fatalf("DeleteFeatureService(alpha): %v", err)
	}
	if err := s.DeleteGroup(t.Context(), "b"); err != nil {
		t.Errorf("DeleteGroup(b), no longer used: %v", err)
	}
}

func testServiceNotFound(t *testing.T, s ServiceStore) {
	ctx := t.Context()
	_, err := s.GetFeatureService(ctx, "nope")
	wantCode(t, "GetFeatureService(nope)", err, feature.CodeNotFound)
	wantCode(t, "DeleteFeatureService(nope)", s.DeleteFeatureService(ctx, "nope"), feature.CodeNotFound)
	list, err := s.ListFeatureServices(ctx)
	if err != nil || list == nil || len(list) != 0 {
		t.Errorf("ListFeatureServices on an empty store = %#v, %v; want an empty, non-nil list", list, err)
	}
	putGroup(t, s, movies("a"), base)
	putService(t, s, feature.FeatureService{Name: "svc", Features: []string{"a:title"}}, base)
	if err := s.DeleteFeatureService(ctx, "svc"); err != nil {
		t.Fatalf("DeleteFeatureService: %v", err)
	}
	_, err = s.GetFeatureService(ctx, "svc")
	wantCode(t, "GetFeatureService after delete", err, feature.CodeNotFound)
	if err := s.DeleteGroup(ctx, "a"); err != nil {
		t.Errorf("DeleteGroup after its service was deleted: %v", err)
	}
}

// testServiceUnknownGroup: a reference to an unregistered group writes
// nothing, on create as on replace.
func testServiceUnknownGroup(t *testing.T, s ServiceStore) {
	ctx := t.Context()
	putGroup(t, s, movies("a"), base)
	_, err := s.PutFeatureService(ctx, feature.FeatureService{Name: "svc", Features: []string{"a:title", "ghost:x"}}, base)
	wantCode(t, "PutFeatureService with an unknown group", err, feature.CodeNotFound)
	if err == nil || !strings.Contains(fmt.Sprint(err.(*feature.Error).Fields), "ghost") {
		t.Errorf("error %v does not name the unknown group", err)
	}
	_, err = s.GetFeatureService(ctx, "svc")
	wantCode(t, "GetFeatureService after a failed create", err, feature.CodeNotFound)

	v1 := putService(t, s, feature.FeatureService{Name: "svc", Features: []string{"a:title"}}, base)
	_, err = s.PutFeatureService(ctx, feature.FeatureService{Name: "svc", Features: []string{"ghost:x"}}, at(10))
	wantCode(t, "PutFeatureService replace with an unknown group", err, feature.CodeNotFound)
	if diff := cmp.Diff(v1, getService(t, s, "svc")); diff != "" {
		t.Errorf("service changed by a failed replace (-want +got):\n%s", diff)
	}
	wantCode(t, "DeleteGroup(a) still used", s.DeleteGroup(ctx, "a"), feature.CodeConflict)
}

func testServiceInvalid(t *testing.T, s ServiceStore) {
	putGroup(t, s, movies("a"), base)
	for _, fs := range []feature.FeatureService{
		{Name: "Bad Name", Features: []string{"a:title"}},
		{Name: "empty"},
		{Name: "noref", Features: []string{"title"}},
		{Name: "dup", Features: []string{"a:title", "a:title"}},
	} {
		_, err := s.PutFeatureService(t.Context(), fs, base)
		wantCode(t, "PutFeatureService("+fs.Name+")", err, feature.CodeInvalid)
	}
	list, err := s.ListFeatureServices(t.Context())
	if err != nil || len(list) != 0 {
		t.Errorf("ListFeatureServices after invalid puts = %v, %v; want none", list, err)
	}
}

// testServiceGroupInUse: deleting a group that services use is a conflict
// naming them, and deletes nothing.
func testServiceGroupInUse(t *testing.T, s ServiceStore) {
	ctx := t.Context()
	putGroup(t, s, movies("a"), base)
	write(t, s, movie("a", "m1", at(1), at(1), "kept"))
	putService(t, s, feature.FeatureService{Name: "zeta", Features: []string{"a:title"}}, base)
	putService(t, s, feature.FeatureService{Name: "alpha", Features: []string{"a:rating", "a:budget"}}, base)
	err := s.DeleteGroup(ctx, "a")
	wantCode(t, "DeleteGroup used by two services", err, feature.CodeConflict)
	var fe *feature.Error
	if e, ok := err.(*feature.Error); ok {
		fe = e
	}
	if fe == nil || !strings.Contains(fe.Message, `"alpha", "zeta"`) {
		t.Errorf("conflict %v does not name the services alpha and zeta in order", err)
	}
	if _, err := s.GetGroup(ctx, "a"); err != nil {
		t.Errorf("group gone after a refused delete: %v", err)
	}
	wantRow(t, "row after a refused delete", stored(movie("a", "m1", at(1), at(1), "kept")), latestOne(t, s, "a", "m1"))
	for _, n := range []string{"alpha", "zeta"} {
		if err := s.DeleteFeatureService(ctx, n); err != nil {
			t.Fatalf("DeleteFeatureService(%s): %v", n, err)
		}
	}
	if err := s.DeleteGroup(ctx, "a"); err != nil {
		t.Errorf("DeleteGroup once unused: %v", err)
	}
}

// testServiceDeleteRacesPut races the deletion of a group with the creation
// of a service that references it: whatever wins, no service is left
// referencing a group that does not exist.
func testServiceDeleteRacesPut(t *testing.T, s ServiceStore) {
	ctx := t.Context()
	for round := range 20 {
		g := fmt.Sprintf("g%02d", round)
		putGroup(t, s, movies(g), base)
		var (
			wg             sync.WaitGroup
			putErr, delErr error
		)
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, putErr = s.PutFeatureService(ctx, feature.FeatureService{Name: "svc" + g, Features: []string{g + ":title"}}, base)
		})
		wg.Go(func() { <-start; delErr = s.DeleteGroup(ctx, g) })
		close(start)
		wg.Wait()
		_, getGroupErr := s.GetGroup(ctx, g)
		_, getSvcErr := s.GetFeatureService(ctx, "svc"+g)
		groupExists, svcExists := getGroupErr == nil, getSvcErr == nil
		switch {
		case svcExists && !groupExists:
			t.Fatalf("round %d: service references deleted group (put %v, delete %v)", round, putErr, delErr)
		case delErr == nil && putErr == nil:
			t.Fatalf("round %d: both the delete and the put succeeded", round)
		case delErr != nil && feature.ErrorCode(delErr) != feature.CodeConflict:
			t.Fatalf("round %d: delete failed with %v, want success or a conflict", round, delErr)
		case putErr != nil && feature.ErrorCode(putErr) != feature.CodeNotFound:
			t.Fatalf("round %d: put failed with %v, want success or not found", round, putErr)
		}
	}
}
