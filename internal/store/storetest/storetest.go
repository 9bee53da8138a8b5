// Package storetest is the contract test suite of store.Store. Every backend
// and every wrapper around one (the cache) runs the very same suite:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// Beyond what the store.Store doc comments say, the suite pins down these
// rules, which every implementation keeps:
//
//   - Times are stored with microsecond precision. WriteRows truncates
//     EventTime and WriteTime to microseconds (time.Truncate) and PutGroup
//     truncates its now; reads return the truncated times, and every
//     comparison (which row is newer, which rows GetAsOf sees) uses them.
//     GetAsOf truncates asOf the same way.
//   - GetLatest, GetAsOf and ScanLatest on an unregistered group return a
//     NotFound error (a registered group without the entity gives nil).
//   - Values come back with exactly the Go types they were written with:
//     int64 (all 64 bits), float64 (also whole ones, e.g. 3.0), bool, string
//     and nil. A string value a backend cannot store (invalid UTF-8, NUL) is
//     an Invalid error and nothing is written.
//   - ListGroups and ScanLatest order by byte order of the names and ids.
//
// BenchGetLatest and BenchWriteRows are the benchmarks every backend runs.
package storetest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// Run runs the contract suite. Each subtest calls newStore for a fresh,
// empty store and runs in parallel with the others, so newStore must be safe
// to call concurrently, must isolate the stores it makes from each other and
// must register (with t.Cleanup) whatever closes the store and drops its data.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PutGroupCreate", testPutGroupCreate},
		{"PutGroupReplace", testPutGroupReplace},
		{"PutGroupInvalid", testPutGroupInvalid},
		{"ListGroupsOrder", testListGroupsOrder},
		{"GroupNotFound", testGroupNotFound},
		{"DeleteGroup", testDeleteGroup},
		{"WriteRowsAllOrNothing", testWriteRowsAllOrNothing},
		{"LatestSemantics", testLatestSemantics},
		{"GetLatestBatch", testGetLatestBatch},
		{"GetAsOf", testGetAsOf},
		{"ScanLatest", testScanLatest},
		{"Stats", testStats},
		{"ValuesRoundTrip", testValuesRoundTrip},
		{"UnstorableStrings", testUnstorableStrings},
		{"TimePrecision", testTimePrecision},
		{"ConcurrentWrites", testConcurrentWrites},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// base is the suite's reference time: the TMDB snapshot's.
var base = time.Date(2025, 6, 5, 2, 24, 12, 0, time.UTC)

func at(seconds int) time.Time { return base.Add(time.Duration(seconds) * time.Second) }

func movies(name string) feature.Group {
	return feature.Group{
		Name:      name,
		EntityKey: "movie_id",
		Features: []feature.Spec{
			{Name: "budget", Type: feature.Int64, Description: "production budget in USD"},
			{Name: "rating", Type: feature.Float64},
			{Name: "adult", Type: feature.Bool},
			{Name: "title", Type: feature.String},
		},
		TTL:         feature.Duration(48 * time.Hour),
		Description: "TMDB movie features",
		Tags:        map[string]string{"owner": "ml", "source": "tmdb"},
	}
}

func putGroup(t *testing.T, s store.Store, g feature.Group, now time.Time) feature.Group {
	t.Helper()
	out, err := s.PutGroup(t.Context(), g, now)
	if err != nil {
		t.Fatalf("PutGroup(%s): %v", g.Name, err)
	}
	return out
}

// movie is a row of the movies group whose budget encodes its write time, so
// a reader can tell that values and times belong together.
func movie(group, id string, event, write time.Time, title string) feature.Row {
	return feature.Row{Group: group, EntityID: id, EventTime: event, WriteTime: write, Values: feature.Values{
		"budget": write.UnixMicro(), "rating": 7.25, "adult": false, "title": title,
	}}
}

func write(t *testing.T, s store.Store, rows ...feature.Row) {
	t.Helper()
	if err := s.WriteRows(t.Context(), rows); err != nil {
		t.Fatalf("WriteRows: %v", err)
	}
}

// stored is r as a store returns it: times truncated to microseconds.
func stored(r feature.Row) *feature.Row {
	r.EventTime = r.EventTime.Truncate(time.Microsecond)
	r.WriteTime = r.WriteTime.Truncate(time.Microsecond)
	return &r
}

// rowOpts compare rows: times by Equal (cmp uses time.Time.Equal), values by
// dynamic type and value, an empty values map equal to a nil one.
var rowOpts = cmp.Options{cmpopts.EquateEmpty()}

func latest(t *testing.T, s store.Store, keys ...feature.Key) []*feature.Row {
	t.Helper()
	rows, err := s.GetLatest(t.Context(), keys)
	if err != nil {
		t.Fatalf("GetLatest: %v", err)
	}
	if len(rows) != len(keys) {
		t.Fatalf("GetLatest(%d keys) returned %d rows", len(keys), len(rows))
	}
	return rows
}

func latestOne(t *testing.T, s store.Store, group, id string) *feature.Row {
	t.Helper()
	return latest(t, s, feature.Key{Group: group, EntityID: id})[0]
}

func asOf(t *testing.T, s store.Store, group, id string, when time.Time) *feature.Row {
	t.Helper()
	r, err := s.GetAsOf(t.Context(), feature.Key{Group: group, EntityID: id}, when)
	if err != nil {
		t.Fatalf("GetAsOf(%s/%s, %v): %v", group, id, when, err)
	}
	return r
}

func wantRow(t *testing.T, what string, want, got *feature.Row) {
	t.Helper()
	if diff := cmp.Diff(want, got, rowOpts); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func wantCode(t *testing.T, what string, err error, code feature.Code) {
	t.Helper()
	if got := feature.ErrorCode(err); got != code {
		t.Errorf("%s: error code %q (err %v), want %q", what, got, err, code)
	}
}

func groupStats(t *testing.T, s store.Store) (store.Stats, map[string]store.GroupStats) {
	t.Helper()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	m := map[string]store.GroupStats{}
	for _, g := range st.Groups {
		m[g.Group] = g
	}
	return st, m
}

func testPutGroupCreate(t *testing.T, s store.Store) {
	now := base.Add(123456789 * time.Nanosecond)
	got := putGroup(t, s, movies("movies"), now)

	want := movies("movies")
	want.SchemaVersion = 1
	want.CreatedAt = now.Truncate(time.Microsecond)
	want.UpdatedAt = now.Truncate(time.Microsecond)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PutGroup returned (-want +got):\n%s", diff)
	}
	read, err := s.GetGroup(t.Context(), "movies")
	if err != nil {
		t.Fatalf("GetGroup: %v", err)
	}
	if diff := cmp.Diff(want, read); diff != "" {
		t.Errorf("GetGroup (-want +got):\n%s", diff)
	}
	list, err := s.ListGroups(t.Context())
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if diff := cmp.Diff([]feature.Group{want}, list); diff != "" {
		t.Errorf("ListGroups (-want +got):\n%s", diff)
	}

	// A group without tags or descriptions round-trips too.
	bare := feature.Group{Name: "bare", EntityKey: "id", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}}
	gotBare := putGroup(t, s, bare, now)
	bare.SchemaVersion, bare.CreatedAt, bare.UpdatedAt = 1, now.Truncate(time.Microsecond), now.Truncate(time.Microsecond)
	if diff := cmp.Diff(bare, gotBare, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("PutGroup(bare) (-want +got):\n%s", diff)
	}
}

func testPutGroupReplace(t *testing.T, s store.Store) {
	created := at(0)
	putGroup(t, s, movies("movies"), created)
	write(t, s, movie("movies", "m1", at(1), at(2), "Parasite"))

	changed := movies("movies")
	changed.Description = "TMDB movie features, v2"
	changed.Features = append(changed.Features, feature.Spec{Name: "votes", Type: feature.Int64})
	changed.TTL = feature.Duration(time.Hour)
	changed.Tags = map[string]string{"owner": "search"}
	got := putGroup(t, s, changed, at(100))

	want := changed
	want.SchemaVersion = 2
	want.CreatedAt = created
	want.UpdatedAt = at(100)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replace returned (-want +got):\n%s", diff)
	}
	read, err := s.GetGroup(t.Context(), "movies")
	if err != nil {
		t.Fatalf("GetGroup: %v", err)
	}
	if diff := cmp.Diff(want, read); diff != "" {
		t.Errorf("GetGroup after replace (-want +got):\n%s", diff)
	}
	if got := putGroup(t, s, changed, at(200)); got.SchemaVersion != 3 || !got.CreatedAt.Equal(created) || !got.UpdatedAt.Equal(at(200)) {
		t.Errorf("second replace: version %d created %v updated %v, want 3, %v, %v", got.SchemaVersion, got.CreatedAt, got.UpdatedAt, created, at(200))
	}
	// Replacing the definition keeps the group's rows.
	wantRow(t, "latest after replace", stored(movie("movies", "m1", at(1), at(2), "Parasite")), latestOne(t, s, "movies", "m1"))
}

func testPutGroupInvalid(t *testing.T, s store.Store) {
	g := movies("Not A Name")
	_, err := s.PutGroup(t.Context(), g, base)
	wantCode(t, "PutGroup(invalid name)", err, feature.CodeInvalid)
	list, err := s.ListGroups(t.Context())
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if len(list) != 0 {
		t.Errorf("ListGroups after invalid PutGroup = %d groups, want 0", len(list))
	}
}

func testListGroupsOrder(t *testing.T, s store.Store) {
	list, err := s.ListGroups(t.Context())
	if err != nil {
		t.Fatalf("ListGroups on empty store: %v", err)
	}
	if len(list) != 0 {
		t.Fatalf("ListGroups on empty store = %v, want none", list)
	}
	for _, n := range []string{"zeta", "alpha", "mid_2", "mid_10", "b"} {
		putGroup(t, s, movies(n), base)
	}
	list, err = s.ListGroups(t.Context())
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	var names []string
	for _, g := range list {
		names = append(names, g.Name)
	}
	if diff := cmp.Diff([]string{"alpha", "b", "mid_10", "mid_2", "zeta"}, names); diff != "" {
		t.Errorf("ListGroups order (-want +got):\n%s", diff)
	}
}

func testGroupNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetGroup(ctx, "nope")
	wantCode(t, "GetGroup(nope)", err, feature.CodeNotFound)
	wantCode(t, "DeleteGroup(nope)", s.DeleteGroup(ctx, "nope"), feature.CodeNotFound)
	wantCode(t, "WriteRows(nope)", s.WriteRows(ctx, []feature.Row{movie("nope", "m1", at(1), at(1), "x")}), feature.CodeNotFound)

	putGroup(t, s, movies("movies"), base)
	_, err = s.GetLatest(ctx, []feature.Key{{Group: "movies", EntityID: "m1"}, {Group: "nope", EntityID: "m1"}})
	wantCode(t, "GetLatest(nope)", err, feature.CodeNotFound)
	_, err = s.GetAsOf(ctx, feature.Key{Group: "nope", EntityID: "m1"}, at(1))
	wantCode(t, "GetAsOf(nope)", err, feature.CodeNotFound)
	calls := 0
	err = s.ScanLatest(ctx, "nope", func(feature.Row) error { calls++; return nil })
	wantCode(t, "ScanLatest(nope)", err, feature.CodeNotFound)
	if calls != 0 {
		t.Errorf("ScanLatest(nope) called fn %d times", calls)
	}
}

func testDeleteGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	putGroup(t, s, movies("doomed"), base)
	putGroup(t, s, movies("kept"), base)
	write(t, s,
		movie("doomed", "m1", at(1), at(1), "a"), movie("doomed", "m1", at(2), at(2), "b"),
		movie("doomed", "m2", at(1), at(1), "c"), movie("kept", "m1", at(1), at(1), "d"))

	if err := s.DeleteGroup(ctx, "doomed"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	_, err := s.GetGroup(ctx, "doomed")
	wantCode(t, "GetGroup after delete", err, feature.CodeNotFound)
	wantCode(t, "second DeleteGroup", s.DeleteGroup(ctx, "doomed"), feature.CodeNotFound)
	_, err = s.GetLatest(ctx, []feature.Key{{Group: "doomed", EntityID: "m1"}})
	wantCode(t, "GetLatest after delete", err, feature.CodeNotFound)
	list, err := s.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if len(list) != 1 || list[0].Name != "kept" {
		t.Errorf("ListGroups after delete = %v, want only kept", list)
	}
	_, stats := groupStats(t, s)
	if _, ok := stats["doomed"]; ok {
		t.Errorf("Stats still lists the deleted group: %+v", stats["doomed"])
	}
	if got := stats["kept"]; got.Rows != 1 || got.Entities != 1 {
		t.Errorf("Stats of the other group = %+v, want 1 row, 1 entity", got)
	}
	wantRow(t, "other group's row", stored(movie("kept", "m1", at(1), at(1), "d")), latestOne(t, s, "kept", "m1"))

	// Re-creating the group starts empty: the rows went with the group.
	if g := putGroup(t, s, movies("doomed"), at(10)); g.SchemaVersion != 1 || !g.CreatedAt.Equal(at(10)) {
		t.Errorf("re-created group: version %d created %v, want 1, %v", g.SchemaVersion, g.CreatedAt, at(10))
	}
	for _, r := range latest(t, s, feature.Key{Group: "doomed", EntityID: "m1"}, feature.Key{Group: "doomed", EntityID: "m2"}) {
		if r != nil {
			t.Errorf("latest row survived delete: %+v", r)
		}
	}
	if r := asOf(t, s, "doomed", "m1", at(100)); r != nil {
		t.Errorf("history row survived delete: %+v", r)
	}
	if _, stats = groupStats(t, s); stats["doomed"].Rows != 0 || stats["doomed"].Entities != 0 {
		t.Errorf("Stats of re-created group = %+v, want empty", stats["doomed"])
	}
}

func testWriteRowsAllOrNothing(t *testing.T, s store.Store) {
	ctx := t.Context()
	putGroup(t, s, movies("movies"), base)
	if err := s.WriteRows(ctx, nil); err != nil {
		t.Errorf("WriteRows(nil) = %v, want nil", err)
	}
	batch := []feature.Row{
		movie("movies", "m1", at(1), at(1), "a"),
		movie("movies", "m2", at(1), at(1), "b"),
		movie("unknown", "m3", at(1), at(1), "c"),
		movie("movies", "m4", at(1), at(1), "d"),
	}
	wantCode(t, "WriteRows with an unknown group", s.WriteRows(ctx, batch), feature.CodeNotFound)
	for _, r := range latest(t, s, feature.Key{Group: "movies", EntityID: "m1"}, feature.Key{Group: "movies", EntityID: "m2"},
		feature.Key{Group: "movies", EntityID: "m4"}) {
		if r != nil {
			t.Errorf("row of a failed batch was written: %+v", r)
		}
	}
	if _, stats := groupStats(t, s); stats["movies"].Rows != 0 {
		t.Errorf("history rows after failed batch = %d, want 0", stats["movies"].Rows)
	}

	// An existing latest row is untouched by a failed batch.
	write(t, s, movie("movies", "m1", at(1), at(1), "a"))
	wantCode(t, "second failed batch", s.WriteRows(ctx, []feature.Row{
		movie("movies", "m1", at(5), at(5), "newer"), movie("unknown", "m1", at(5), at(5), "x"),
	}), feature.CodeNotFound)
	wantRow(t, "latest after failed batch", stored(movie("movies", "m1", at(1), at(1), "a")), latestOne(t, s, "movies", "m1"))
	if r := asOf(t, s, "movies", "m1", at(10)); r == nil || r.Values["title"] != "a" {
		t.Errorf("as-of after failed batch = %+v, want the row titled a", r)
	}
}

func testLatestSemantics(t *testing.T, s store.Store) {
	putGroup(t, s, movies("movies"), base)
	t2 := movie("movies", "m1", at(20), at(100), "t2")
	write(t, s, t2)

	// A late-arriving older event goes to history but does not replace latest.
	t1 := movie("movies", "m1", at(10), at(200), "t1-late")
	write(t, s, t1)
	wantRow(t, "latest after late older event", stored(t2), latestOne(t, s, "movies", "m1"))
	wantRow(t, "as-of sees the late row in history", stored(t1), asOf(t, s, "movies", "m1", at(15)))

	// Same event time, later write time: replaces.
	t2b := movie("movies", "m1", at(20), at(300), "t2-rewrite")
	write(t, s, t2b)
	wantRow(t, "latest after same-event later write", stored(t2b), latestOne(t, s, "movies", "m1"))

	// Same event time, earlier write time (a delayed retry): does not replace.
	write(t, s, movie("movies", "m1", at(20), at(250), "t2-delayed"))
	wantRow(t, "latest after same-event earlier write", stored(t2b), latestOne(t, s, "movies", "m1"))

	// Within one batch the newest row wins whatever its position, and every
	// row goes to history.
	newest := movie("movies", "m2", at(30), at(400), "newest")
	write(t, s,
		movie("movies", "m2", at(10), at(400), "old"),
		newest,
		movie("movies", "m2", at(30), at(399), "same-event-earlier-write"),
		movie("movies", "m2", at(20), at(401), "middle"),
	)
	wantRow(t, "latest of a batch", stored(newest), latestOne(t, s, "movies", "m2"))
	wantRow(t, "as-of inside a batch", stored(movie("movies", "m2", at(20), at(401), "middle")), asOf(t, s, "movies", "m2", at(25)))
	if _, stats := groupStats(t, s); stats["movies"].Rows != 8 || stats["movies"].Entities != 2 {
		t.Errorf("stats = %+v, want 8 rows, 2 entities", stats["movies"])
	}
}

func testGetLatestBatch(t *testing.T, s store.Store) {
	putGroup(t, s, movies("movies"), base)
	putGroup(t, s, movies("shows"), base)
	a := movie("movies", "a", at(1), at(1), "A")
	b := movie("movies", "b", at(2), at(2), "B")
	c := movie("shows", "a", at(3), at(3), "show A")
	write(t, s, a, b, c)

	if rows := latest(t, s); len(rows) != 0 {
		t.Errorf("GetLatest(no keys) = %v, want empty", rows)
	}
	keys := []feature.Key{
		{Group: "movies", EntityID: "b"},
		{Group: "movies", EntityID: "missing"},
		{Group: "shows", EntityID: "a"},
		{Group: "movies", EntityID: "a"},
		{Group: "shows", EntityID: "b"},
		{Group: "movies", EntityID: "b"},
	}
	want := []*feature.Row{stored(b), nil, stored(c), stored(a), nil, stored(b)}
	if diff := cmp.Diff(want, latest(t, s, keys...), rowOpts); diff != "" {
		t.Errorf("GetLatest (-want +got):\n%s", diff)
	}

	// A large batch keeps its order too.
	var rows []feature.Row
	for i := range 300 {
		rows = append(rows, movie("movies", fmt.Sprintf("e%03d", i), at(i), at(i), fmt.Sprint(i)))
	}
	write(t, s, rows...)
	keys = keys[:0]
	want = want[:0]
	for i := 299; i >= 0; i-- {
		keys = append(keys, feature.Key{Group: "movies", EntityID: fmt.Sprintf("e%03d", i)})
		want = append(want, stored(rows[i]))
		if i%50 == 0 {
			keys = append(keys, feature.Key{Group: "movies", EntityID: fmt.Sprintf("none%d", i)})
			want = append(want, nil)
		}
	}
	if diff := cmp.Diff(want, latest(t, s, keys...), rowOpts); diff != "" {
		t.Errorf("GetLatest(%d keys) (-want +got):\n%s", len(keys), diff)
	}
}

func testGetAsOf(t *testing.T, s store.Store) {
	putGroup(t, s, movies("movies"), base)
	r10 := movie("movies", "m1", at(10), at(10), "at 10")
	r20a := movie("movies", "m1", at(20), at(20), "at 20, first write")
	r20b := movie("movies", "m1", at(20), at(21), "at 20, second write")
	r30 := movie("movies", "m1", at(30), at(30), "at 30")
	// Written out of order: history is ordered by event time, not arrival.
	write(t, s, r30)
	write(t, s, r20b, r10)
	write(t, s, r20a)
	write(t, s, movie("movies", "other", at(15), at(15), "other entity"))

	for _, tc := range []struct {
		name string
		asOf time.Time
		want *feature.Row
	}{
		{"before the first row", at(9), nil},
		{"just before the first row", at(10).Add(-time.Microsecond), nil},
		{"exactly the first row", at(10), stored(r10)},
		{"between rows", at(15), stored(r10)},
		{"exactly a tied event time: later write wins", at(20), stored(r20b)},
		{"between later rows", at(29), stored(r20b)},
		{"exactly the last row", at(30), stored(r30)},
		{"after the last row", at(1_000_000), stored(r30)},
	} {
		wantRow(t, "GetAsOf "+tc.name, tc.want, asOf(t, s, "movies", "m1", tc.asOf))
	}
	if r := asOf(t, s, "movies", "never-written", at(100)); r != nil {
		t.Errorf("GetAsOf of an entity without rows = %+v, want nil", r)
	}
}

func testScanLatest(t *testing.T, s store.Store) {
	ctx := t.Context()
	putGroup(t, s, movies("movies"), base)
	putGroup(t, s, movies("other"), base)
	putGroup(t, s, movies("empty"), base)

	calls := 0
	if err := s.ScanLatest(ctx, "empty", func(feature.Row) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("ScanLatest(empty) = %v after %d calls, want nil after 0", err, calls)
	}

	// More entities than any sensible page, ids whose byte order differs from
	// numeric and case-insensitive order, two versions of some.
	ids := []string{"a", "B", "b", "가", "10", "9", "a b", "Z", "é"}
	for i := range 1200 {
		ids = append(ids, fmt.Sprintf("m%d", i))
	}
	rng := rand.New(rand.NewPCG(1, 2)) // #nosec G404 -- deterministic test data, not a secret
	want := map[string]feature.Row{}
	var rows []feature.Row
	for _, i := range rng.Perm(len(ids)) {
		id := ids[i]
		r := movie("movies", id, at(i), at(i), id)
		rows = append(rows, r)
		want[id] = r
		if i%3 == 0 {
			rows = append(rows, movie("movies", id, at(i-1), at(i+1), "older "+id))
		}
	}
	write(t, s, rows...)
	write(t, s, movie("other", "a", at(1), at(1), "other group"))

	var got []feature.Row
	if err := s.ScanLatest(ctx, "movies", func(r feature.Row) error { got = append(got, r); return nil }); err != nil {
		t.Fatalf("ScanLatest: %v", err)
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	var wantRows []feature.Row
	for _, id := range sorted {
		wantRows = append(wantRows, *stored(want[id]))
	}
	if diff := cmp.Diff(wantRows, got, rowOpts); diff != "" {
		t.Errorf("ScanLatest (-want +got):\n%s", diff)
	}

	// fn's error stops the scan at once and is returned.
	stop := errors.New("stop")
	calls = 0
	err := s.ScanLatest(ctx, "movies", func(feature.Row) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("ScanLatest stopping at 3 = %v after %d calls, want %v after 3", err, calls, stop)
	}
}

func testStats(t *testing.T, s store.Store) {
	st, _ := groupStats(t, s)
	if st.Backend == "" {
		t.Error("Stats.Backend is empty")
	}
	if len(st.Groups) != 0 {
		t.Errorf("Stats of an empty store lists groups: %+v", st.Groups)
	}
	putGroup(t, s, movies("movies"), base)
	putGroup(t, s, movies("empty"), base)
	write(t, s,
		movie("movies", "m1", at(10), at(10), "a"),
		movie("movies", "m1", at(30), at(11), "b"),
		movie("movies", "m2", at(20), at(12), "c"))
	write(t, s, movie("movies", "m2", at(5), at(13), "late"))

	st, _ = groupStats(t, s)
	want := []store.GroupStats{
		{Group: "empty"},
		{Group: "movies", Entities: 2, Rows: 4, NewestEventTime: at(30)},
	}
	if diff := cmp.Diff(want, st.Groups); diff != "" {
		t.Errorf("Stats.Groups (-want +got):\n%s", diff)
	}
	if st.StorageBytes <= 0 {
		t.Errorf("Stats.StorageBytes = %d, want > 0", st.StorageBytes)
	}
}

func testValuesRoundTrip(t *testing.T, s store.Store) {
	values := feature.Values{
		"i_max":        int64(math.MaxInt64),
		"i_min":        int64(math.MinInt64),
		"i_2p53_plus1": int64(1<<53 + 1),
		"i_neg":        int64(-(1<<53 + 1)),
		"i_zero":       int64(0),
		"f_tenth":      0.1,
		"f_whole":      3.0,
		"f_zero":       0.0,
		"f_neg_small":  -2.5e-10,
		"f_max":        math.MaxFloat64,
		"f_tiny":       math.SmallestNonzeroFloat64,
		"f_1e18":       1e18,
		"f_2p53_plus2": float64(1<<53 + 2),
		"b_true":       true,
		"b_false":      false,
		"s_korean":     "기생충 (Parasite) — 봉준호 감독",
		"s_empty":      "",
		"s_escapes":    "quote \" backslash \\ tab \t newline \n <html> & 'single' \u2028 🎬",
		"s_number":     "42",
		"s_null":       "null",
		"n_int":        nil,
		"n_string":     nil,
	}
	g := feature.Group{Name: "values", EntityKey: "id"}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	slices.Sort(names)
	types := map[byte]feature.ValueType{'i': feature.Int64, 'f': feature.Float64, 'b': feature.Bool, 's': feature.String}
	for _, n := range names {
		typ := types[n[0]]
		if n[0] == 'n' {
			typ = map[string]feature.ValueType{"n_int": feature.Int64, "n_string": feature.String}[n]
		}
		g.Features = append(g.Features, feature.Spec{Name: n, Type: typ})
	}
	putGroup(t, s, g, base)
	r := feature.Row{Group: "values", EntityID: "영화-1", EventTime: at(1), WriteTime: at(1), Values: values}
	write(t, s, r)

	want := stored(r)
	wantRow(t, "GetLatest values", want, latestOne(t, s, "values", "영화-1"))
	wantRow(t, "GetAsOf values", want, asOf(t, s, "values", "영화-1", at(1)))
	var scanned []feature.Row
	if err := s.ScanLatest(t.Context(), "values", func(r feature.Row) error { scanned = append(scanned, r); return nil }); err != nil {
		t.Fatalf("ScanLatest: %v", err)
	}
	if diff := cmp.Diff([]feature.Row{*want}, scanned, rowOpts); diff != "" {
		t.Errorf("ScanLatest values (-want +got):\n%s", diff)
	}
}

func testUnstorableStrings(t *testing.T, s store.Store) {
	putGroup(t, s, movies("movies"), base)
	for name, title := range map[string]string{"NUL": "a\x00b", "invalid UTF-8": "a\xffb"} {
		err := s.WriteRows(t.Context(), []feature.Row{
			movie("movies", "ok", at(1), at(1), "fine"),
			movie("movies", "bad", at(1), at(1), title),
		})
		wantCode(t, "WriteRows with "+name, err, feature.CodeInvalid)
	}
	for _, r := range latest(t, s, feature.Key{Group: "movies", EntityID: "ok"}, feature.Key{Group: "movies", EntityID: "bad"}) {
		if r != nil {
			t.Errorf("row of a rejected batch was written: %+v", r)
		}
	}
}

func testTimePrecision(t *testing.T, s store.Store) {
	putGroup(t, s, movies("movies"), base)
	seoul := time.FixedZone("KST", 9*60*60)
	event := time.Date(2025, 6, 5, 11, 24, 12, 123456789, seoul)
	r := movie("movies", "m1", event, event.Add(time.Hour+999*time.Nanosecond), "precise")
	write(t, s, r)

	got := latestOne(t, s, "movies", "m1")
	wantRow(t, "latest", stored(r), got)
	if got != nil && (got.EventTime.Nanosecond()%1000 != 0 || got.WriteTime.Nanosecond()%1000 != 0) {
		t.Errorf("times not truncated to microseconds: %v, %v", got.EventTime, got.WriteTime)
	}
	// As-of compares the truncated times: the row's event time is stored as
	// ...123456µs, so it is visible as of ...123456µs+500ns although the event
	// was at +789ns.
	trunc := event.Truncate(time.Microsecond)
	wantRow(t, "as of the truncated event time", stored(r), asOf(t, s, "movies", "m1", trunc))
	wantRow(t, "as of just after the truncated event time", stored(r), asOf(t, s, "movies", "m1", trunc.Add(500*time.Nanosecond)))
	if got := asOf(t, s, "movies", "m1", trunc.Add(-time.Nanosecond)); got != nil {
		t.Errorf("as of just before the truncated event time = %+v, want nil", got)
	}

	// Times far from now survive too.
	old := movie("movies", "m2", time.Date(1895, 12, 28, 20, 0, 0, 1000, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), "old")
	write(t, s, old)
	wantRow(t, "old event", stored(old), latestOne(t, s, "movies", "m2"))
}

// testConcurrentWrites races writers over shared and private entities while
// readers poll the shared ones. Readers must never see a row older than one
// they saw before, nor values torn from their times; once every write is
// acknowledged, each entity's latest is the newest acknowledged row.
func testConcurrentWrites(t *testing.T, s store.Store) {
	const (
		writers = 6
		batches = 25
		readers = 3
	)
	putGroup(t, s, movies("movies"), base)
	r := &race{s: s, shared: []string{"s0", "s1", "s2", "s3", "s4"}}
	var writeWG, readWG sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		writeWG.Go(func() { r.write(t, w, batches) })
	}
	for range readers {
		readWG.Go(func() { r.read(t, done) })
	}
	writeWG.Wait()
	close(done)
	readWG.Wait()
	if t.Failed() {
		return
	}
	r.checkNewest(t)
}

// race is the state of testConcurrentWrites.
type race struct {
	s      store.Store
	shared []string     // entity ids every writer writes
	clock  atomic.Int64 // write times: unique, so "newest" is well defined
	mu     sync.Mutex
	acked  []feature.Row
}

func (r *race) writeTime() time.Time {
	return base.Add(time.Duration(r.clock.Add(1)) * time.Microsecond)
}

// write writes batches of rows of random shared entities and one private
// entity, in random order, remembering the acknowledged rows.
func (r *race) write(t *testing.T, w, batches int) {
	rng := rand.New(rand.NewPCG(uint64(w), 7)) // #nosec G115 G404 -- a deterministic test seed from a small worker index
	for b := range batches {
		var rows []feature.Row
		for _, id := range r.shared {
			if rng.IntN(10) < 7 {
				rows = append(rows, movie("movies", id, at(rng.IntN(40)), r.writeTime(), fmt.Sprintf("w%d b%d", w, b)))
			}
		}
		rows = append(rows, movie("movies", fmt.Sprintf("w%d-%d", w, b%4), at(b), r.writeTime(), "private"))
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		if err := r.s.WriteRows(t.Context(), rows); err != nil {
			t.Errorf("writer %d batch %d: %v", w, b, err)
			return
		}
		r.mu.Lock()
		r.acked = append(r.acked, rows...)
		r.mu.Unlock()
	}
}

// read polls the shared entities until done, failing at the first row that
// is older than one seen before or whose values are torn from its times.
func (r *race) read(t *testing.T, done <-chan struct{}) {
	keys := make([]feature.Key, len(r.shared))
	for i, id := range r.shared {
		keys[i] = feature.Key{Group: "movies", EntityID: id}
	}
	seen := map[string]feature.Row{}
	for {
		select {
		case <-done:
			return
		default:
		}
		rows, err := r.s.GetLatest(t.Context(), keys)
		if err != nil {
			t.Errorf("reader: GetLatest: %v", err)
			return
		}
		for i, row := range rows {
			if problem := readProblem(seen, r.shared[i], row); problem != "" {
				t.Error("reader: " + problem)
				return
			}
		}
	}
}

// readProblem checks one read of entity id against the newest row seen of
// it so far (recording row as that), and says what is wrong, if anything.
func readProblem(seen map[string]feature.Row, id string, row *feature.Row) string {
	prev, ok := seen[id]
	switch {
	case row == nil && ok:
		return id + " went back to no row"
	case row == nil:
		return ""
	case row.Values["budget"] != row.WriteTime.UnixMicro():
		return fmt.Sprintf("%s has values %v torn from its write time %v", id, row.Values, row.WriteTime)
	case ok && prev.Newer(*row):
		return fmt.Sprintf("%s went back from (%v, %v) to (%v, %v)", id, prev.EventTime, prev.WriteTime, row.EventTime, row.WriteTime)
	}
	seen[id] = *row
	return ""
}

// checkNewest checks, once every write is acknowledged, that each entity's
// latest and as-of rows are its newest acknowledged row, and the counts.
func (r *race) checkNewest(t *testing.T) {
	newest := map[string]feature.Row{}
	for _, row := range r.acked {
		if prev, ok := newest[row.EntityID]; !ok || row.Newer(prev) {
			newest[row.EntityID] = row
		}
	}
	var keys []feature.Key
	for id := range newest {
		keys = append(keys, feature.Key{Group: "movies", EntityID: id})
	}
	slices.SortFunc(keys, func(a, b feature.Key) int { return strings.Compare(a.EntityID, b.EntityID) })
	got := latest(t, r.s, keys...)
	for i, k := range keys {
		wantRow(t, "latest of "+k.EntityID+" after concurrent writes", stored(newest[k.EntityID]), got[i])
		wantRow(t, "as-of of "+k.EntityID+" after concurrent writes", stored(newest[k.EntityID]), asOf(t, r.s, "movies", k.EntityID, at(1000)))
	}
	if _, stats := groupStats(t, r.s); stats["movies"].Rows != int64(len(r.acked)) || stats["movies"].Entities != int64(len(newest)) {
		t.Errorf("stats after concurrent writes = %+v, want %d rows, %d entities", stats["movies"], len(r.acked), len(newest))
	}
}
