package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// RetentionStore is a system of record whose history can be pruned: what
// RunRetention tests. The cache wrapper is not one; the engines are.
type RetentionStore interface {
	store.Store
	PruneHistory(ctx context.Context, horizons []store.Horizon, batch int) (store.PruneResult, error)
}

// RunRetention runs the retention contract of the engines: retention stored
// with the group, pruning that keeps every as-of answer at or after the
// horizon, refusal of as-of reads before it, the skipping of rows that
// repeat the latest, and counts that follow writes, prunes and deletes.
func RunRetention(t *testing.T, newStore func(t *testing.T) RetentionStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s RetentionStore)
	}{
		{"RetentionRoundTrip", testRetentionRoundTrip},
		{"PruneKeepsAsOfAnswers", testPruneKeepsAsOfAnswers},
		{"PruneBatches", testPruneBatches},
		{"WatermarkOnlyMovesForward", testWatermarkForward},
		{"RepeatedRowSkipped", testRepeatedRowSkipped},
		{"CountsFollowChanges", testCountsFollowChanges},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func retention(d time.Duration) *feature.Duration {
	r := feature.Duration(d)
	return &r
}

func testRetentionRoundTrip(t *testing.T, s RetentionStore) {
	g := movies("kept")
	g.HistoryRetention = retention(30 * 24 * time.Hour)
	out := putGroup(t, s, g, base)
	if out.HistoryRetention == nil || *out.HistoryRetention != *g.HistoryRetention {
		t.Errorf("PutGroup returned retention %v, want %v", out.HistoryRetention, *g.HistoryRetention)
	}
	got, err := s.GetGroup(t.Context(), "kept")
	if err != nil {
		t.Fatalf("GetGroup: %v", err)
	}
	if diff := cmp.Diff(out, got); diff != "" {
		t.Errorf("GetGroup (-put +got):\n%s", diff)
	}
	g.HistoryRetention = retention(0)
	if got = putGroup(t, s, g, at(1)); got.HistoryRetention == nil || *got.HistoryRetention != 0 {
		t.Errorf("retention 0 (keep all) stored as %v", got.HistoryRetention)
	}
	g.HistoryRetention = nil
	if got = putGroup(t, s, g, at(2)); got.HistoryRetention != nil {
		t.Errorf("no retention (the default) stored as %v", *got.HistoryRetention)
	}
	g.HistoryRetention = retention(-time.Second)
	_, err = s.PutGroup(t.Context(), g, at(3))
	wantCode(t, "PutGroup with a negative retention", err, feature.CodeInvalid)
}

func prune(t *testing.T, s RetentionStore, batch int, horizons ...store.Horizon) int64 {
	t.Helper()
	res, err := s.PruneHistory(t.Context(), horizons, batch)
	if err != nil {
		t.Fatalf("PruneHistory: %v", err)
	}
	if res.Skipped {
		t.Fatal("PruneHistory skipped: another process holds the maintenance lock of a fresh store")
	}
	return res.Rows
}

// asOfAll reads every entity's as-of value at each time.
func asOfAll(t *testing.T, s store.Store, group string, ids []string, times []time.Time) map[string]*feature.Row {
	t.Helper()
	out := map[string]*feature.Row{}
	for _, id := range ids {
		for _, when := range times {
			out[fmt.Sprintf("%s@%s", id, when.Format(time.RFC3339))] = asOf(t, s, group, id, when)
		}
	}
	return out
}

func testPruneKeepsAsOfAnswers(t *testing.T, s RetentionStore) {
	putGroup(t, s, movies("movies"), base)
	putGroup(t, s, movies("other"), base)
	write(t, s,
		movie("movies", "m1", at(10), at(10), "a"),
		movie("movies", "m1", at(20), at(20), "b"),
		movie("movies", "m1", at(30), at(30), "c"),
		movie("movies", "m1", at(40), at(40), "d"),
		movie("movies", "m2", at(5), at(5), "only"), // its latest, before the horizon
		movie("movies", "m3", at(50), at(50), "after"),
		movie("other", "m1", at(10), at(10), "x"),
		movie("other", "m1", at(20), at(20), "y"))
	horizon := at(25)
	ids := []string{"m1", "m2", "m3"}
	times := []time.Time{horizon, at(29), at(30), at(35), at(40), at(1000)}
	before := asOfAll(t, s, "movies", ids, times)
	latestBefore := latest(t, s, feature.Key{Group: "movies", EntityID: "m1"}, feature.Key{Group: "movies", EntityID: "m2"})

	if n := prune(t, s, 100, store.Horizon{Group: "movies", Before: horizon}); n != 1 {
		t.Errorf("pruned %d rows, want 1 (m1 at 10, superseded by m1 at 20 before the horizon)", n)
	}
	if diff := cmp.Diff(before, asOfAll(t, s, "movies", ids, times), rowOpts); diff != "" {
		t.Errorf("as-of answers at or after the horizon changed (-before +after):\n%s", diff)
	}
	wantRow(t, "latest m1 after the prune", latestBefore[0], latestOne(t, s, "movies", "m1"))
	wantRow(t, "latest m2 after the prune", latestBefore[1], latestOne(t, s, "movies", "m2"))
	for _, when := range []time.Time{at(24), at(10), at(0)} {
		_, err := s.GetAsOf(t.Context(), feature.Key{Group: "movies", EntityID: "m1"}, when)
		wantCode(t, fmt.Sprintf("GetAsOf before the horizon (%v)", when), err, feature.CodeHistoryExpired)
	}
	// The other group was not pruned and still answers its whole history.
	wantRow(t, "other group as of 10", stored(movie("other", "m1", at(10), at(10), "x")), asOf(t, s, "other", "m1", at(15)))
	if _, gs := groupStats(t, s); gs["movies"].Rows != 5 || gs["other"].Rows != 2 {
		t.Errorf("history rows after the prune: movies %d, other %d; want 5 and 2", gs["movies"].Rows, gs["other"].Rows)
	}
	// A second pass finds nothing left to prune.
	if n := prune(t, s, 100, store.Horizon{Group: "movies", Before: horizon}); n != 0 {
		t.Errorf("second prune deleted %d rows, want 0", n)
	}
}

func testPruneBatches(t *testing.T, s RetentionStore) {
	putGroup(t, s, movies("movies"), base)
	var rows []feature.Row
	for e := range 7 {
		for v := range 5 {
			id := fmt.Sprintf("e%d", e)
			rows = append(rows, movie("movies", id, at(10*v), at(10*v+e), fmt.Sprintf("%s-%d", id, v)))
		}
	}
	write(t, s, rows...)
	// Horizon at 30: rows at 0, 10, 20 of each entity go (30 answers), 30 and 40 stay.
	if n := prune(t, s, 2, store.Horizon{Group: "movies", Before: at(30)}); n != 7*3 {
		t.Errorf("pruned %d rows in batches of 2, want %d", n, 7*3)
	}
	for e := range 7 {
		id := fmt.Sprintf("e%d", e)
		wantRow(t, id+" as of the horizon", stored(movie("movies", id, at(30), at(30+e), id+"-3")), asOf(t, s, "movies", id, at(30)))
		wantRow(t, id+" latest", stored(movie("movies", id, at(40), at(40+e), id+"-4")), latestOne(t, s, "movies", id))
	}
	if _, gs := groupStats(t, s); gs["movies"].Rows != 7*2 || gs["movies"].Entities != 7 {
		t.Errorf("stats after the prune: %+v, want 14 rows of 7 entities", gs["movies"])
	}
}

func testWatermarkForward(t *testing.T, s RetentionStore) {
	putGroup(t, s, movies("movies"), base)
	write(t, s, movie("movies", "m1", at(10), at(10), "a"), movie("movies", "m1", at(20), at(20), "b"))
	prune(t, s, 10, store.Horizon{Group: "movies", Before: at(30)})
	prune(t, s, 10, store.Horizon{Group: "movies", Before: at(15)}) // a shorter horizon: retention raised
	_, err := s.GetAsOf(t.Context(), feature.Key{Group: "movies", EntityID: "m1"}, at(15))
	wantCode(t, "GetAsOf between the new and the old horizon", err, feature.CodeHistoryExpired)
	wantRow(t, "as of the old horizon", stored(movie("movies", "m1", at(20), at(20), "b")), asOf(t, s, "movies", "m1", at(30)))
	// A late row before the watermark is stored (it may be the latest) but
	// never answers a refused as-of read.
	write(t, s, movie("movies", "m2", at(5), at(5), "late"))
	wantRow(t, "late row as latest", stored(movie("movies", "m2", at(5), at(5), "late")), latestOne(t, s, "movies", "m2"))
	_, err = s.GetAsOf(t.Context(), feature.Key{Group: "movies", EntityID: "m2"}, at(6))
	wantCode(t, "GetAsOf of a late row before the watermark", err, feature.CodeHistoryExpired)
	// Deleting and recreating the group starts a new history.
	if err := s.DeleteGroup(t.Context(), "movies"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	putGroup(t, s, movies("movies"), at(40))
	if r := asOf(t, s, "movies", "m1", at(15)); r != nil {
		t.Errorf("recreated group answers %+v, want nil", r)
	}
}

func testRepeatedRowSkipped(t *testing.T, s RetentionStore) {
	putGroup(t, s, movies("movies"), base)
	row := func(event, write time.Time, title string) feature.Row {
		return feature.Row{Group: "movies", EntityID: "m1", EventTime: event, WriteTime: write,
			Values: feature.Values{"budget": int64(1), "rating": 7.0, "adult": false, "title": title}}
	}
	first := row(at(10), at(10), "a")
	write(t, s, first)
	write(t, s, row(at(10), at(11), "a")) // a retry: same event time, same values
	wantRow(t, "latest after a repeat", stored(first), latestOne(t, s, "movies", "m1"))
	wantRow(t, "as of after a repeat", stored(first), asOf(t, s, "movies", "m1", at(10)))
	if _, gs := groupStats(t, s); gs["movies"].Rows != 1 {
		t.Errorf("history rows after a repeated write: %d, want 1", gs["movies"].Rows)
	}
	changed := row(at(10), at(12), "b") // same event time, other values: a correction
	later := row(at(20), at(13), "b")   // same values, later event time: a confirmation
	write(t, s, changed)
	wantRow(t, "latest after a correction", stored(changed), latestOne(t, s, "movies", "m1"))
	write(t, s, later)
	wantRow(t, "latest after a confirmation", stored(later), latestOne(t, s, "movies", "m1"))
	wantRow(t, "as of between", stored(changed), asOf(t, s, "movies", "m1", at(15)))
	if _, gs := groupStats(t, s); gs["movies"].Rows != 3 {
		t.Errorf("history rows: %d, want 3", gs["movies"].Rows)
	}
	// A value that differs only in its type (1 and 1.0) is not a repeat.
	typed := row(at(20), at(14), "b")
	typed.Values["budget"] = float64(1)
	write(t, s, typed)
	wantRow(t, "latest after a change of type", stored(typed), latestOne(t, s, "movies", "m1"))
}

func testCountsFollowChanges(t *testing.T, s RetentionStore) {
	putGroup(t, s, movies("movies"), base)
	putGroup(t, s, movies("gone"), base)
	for i := range 3 {
		var rows []feature.Row
		for e := range 4 {
			rows = append(rows, movie("movies", fmt.Sprintf("e%d", e), at(10*i), at(10*i+e), "t"))
			rows = append(rows, movie("gone", fmt.Sprintf("e%d", e), at(10*i), at(10*i+e), "t"))
		}
		write(t, s, rows...)
	}
	_, gs := groupStats(t, s)
	if want := (store.GroupStats{Group: "movies", Entities: 4, Rows: 12, NewestEventTime: at(20)}); gs["movies"] != want {
		t.Errorf("stats after writes: %+v, want %+v", gs["movies"], want)
	}
	prune(t, s, 3, store.Horizon{Group: "movies", Before: at(20)}, store.Horizon{Group: "gone", Before: at(10)})
	if err := s.DeleteGroup(t.Context(), "gone"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	st, gs := groupStats(t, s)
	if want := (store.GroupStats{Group: "movies", Entities: 4, Rows: 4, NewestEventTime: at(20)}); gs["movies"] != want {
		t.Errorf("stats after the prune: %+v, want %+v", gs["movies"], want)
	}
	if len(st.Groups) != 1 {
		t.Errorf("stats list %d groups after a delete, want 1: %+v", len(st.Groups), st.Groups)
	}
	putGroup(t, s, movies("gone"), at(100))
	if _, gs = groupStats(t, s); gs["gone"] != (store.GroupStats{Group: "gone"}) {
		t.Errorf("a recreated group starts with counts %+v", gs["gone"])
	}
}
