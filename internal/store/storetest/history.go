package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// HistoryStore is a backend that also answers point-in-time queries over
// many entity rows (the training-set read).
type HistoryStore interface {
	store.Store
	// ReadHistory calls fn once per entity row of q, in the order of
	// q.Entities, with the index of the row and, per group of q, the row
	// that was latest at the entity row's time (as GetAsOf would answer it)
	// restricted to the requested features. rows is only valid during the
	// call. An unknown group is a NotFound error before any call of fn; an
	// error of fn stops the read and is returned.
	ReadHistory(ctx context.Context, q store.HistoryQuery, fn func(i int, rows []store.HistoryRow) error) error
}

// RunHistory runs the contract of ReadHistory; newStore is as for Run.
func RunHistory(t *testing.T, newStore func(t *testing.T) HistoryStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s HistoryStore)
	}{
		{"PointInTime", testHistoryPointInTime},
		{"Groups", testHistoryGroups},
		{"Values", testHistoryValues},
		{"UnknownGroup", testHistoryUnknownGroup},
		{"Chunks", testHistoryChunks},
		{"Streamed", testHistoryStreamed},
		{"StopsOnError", testHistoryStopsOnError},
		{"TimePrecision", testHistoryTimePrecision},
		{"GroupRecreated", testHistoryGroupRecreated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// historyResult is one call of the ReadHistory callback, copied.
type historyResult struct {
	I    int
	Rows []store.HistoryRow
}

// histQuery is a store.HistoryQuery with its entity rows in a slice.
type histQuery struct {
	Groups   []store.HistoryGroup
	Entities []store.PointInTime
	Chunk    int
}

func (h histQuery) q() store.HistoryQuery {
	return store.HistoryQuery{Groups: h.Groups, Entities: store.EntitySlice(h.Entities), Chunk: h.Chunk}
}

// testChunk is the statement size of the tests that cross chunk
// boundaries: small, so that they need few rows.
const testChunk = 16

func readHistory(t *testing.T, s HistoryStore, q histQuery) []historyResult {
	t.Helper()
	return readQuery(t, s, q.q())
}

func readQuery(t *testing.T, s HistoryStore, q store.HistoryQuery) []historyResult {
	t.Helper()
	var out []historyResult
	err := s.ReadHistory(t.Context(), q, func(i int, rows []store.HistoryRow) error {
		cp := make([]store.HistoryRow, len(rows))
		for g, r := range rows {
			cp[g] = store.HistoryRow{Found: r.Found, EventTime: r.EventTime, Values: append([]any(nil), r.Values...)}
		}
		out = append(out, historyResult{I: i, Rows: cp})
		return nil
	})
	if err != nil {
		t.Fatalf("ReadHistory: %v", err)
	}
	return out
}

func pit(id string, when time.Time) store.PointInTime {
	return store.PointInTime{EntityID: id, Time: when}
}

func found(event time.Time, values ...any) store.HistoryRow {
	return store.HistoryRow{Found: true, EventTime: event, Values: values}
}

func notFound(n int) store.HistoryRow { return store.HistoryRow{Values: make([]any, n)} }

func wantHistory(t *testing.T, want [][]store.HistoryRow, got []historyResult) {
	t.Helper()
	w := make([]historyResult, len(want))
	for i, rows := range want {
		w[i] = historyResult{I: i, Rows: rows}
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("ReadHistory (-want +got):\n%s", diff)
	}
}

// testHistoryPointInTime pins down which row answers: the newest at or
// before the time (an equal event time included), the later write of two
// with one event time, nothing before the first row or for an unknown
// entity; duplicates and order as requested.
func testHistoryPointInTime(t *testing.T, s HistoryStore) {
	putGroup(t, s, movies("movies"), base)
	write(t, s,
		movie("movies", "m1", at(10), at(10), "v10"),
		movie("movies", "m1", at(20), at(21), "v20-first"),
		movie("movies", "m1", at(30), at(30), "v30"),
		movie("movies", "m2", at(15), at(15), "m2-v15"),
	)
	// A late write of the same event time wins over the earlier one; an
	// older event time written last does not replace a newer one.
	write(t, s, movie("movies", "m1", at(20), at(22), "v20-second"), movie("movies", "m2", at(5), at(40), "m2-v5"))

	q := histQuery{
		Groups: []store.HistoryGroup{{Name: "movies", Features: []string{"title", "budget"}}},
		Entities: []store.PointInTime{
			pit("m1", at(35)), pit("m1", at(9)), pit("m1", at(10)), pit("m1", at(15)),
			pit("m1", at(20)), pit("m1", at(29)), pit("m2", at(10)), pit("m2", at(15)),
			pit("unknown", at(30)), pit("m1", at(15)), pit("m1", at(30)),
		},
	}
	v := func(event time.Time, write time.Time, title string) []store.HistoryRow {
		return []store.HistoryRow{found(event, title, write.UnixMicro())}
	}
	want := [][]store.HistoryRow{
		v(at(30), at(30), "v30"),
		{notFound(2)},
		v(at(10), at(10), "v10"),
		v(at(10), at(10), "v10"),
		v(at(20), at(22), "v20-second"),
		v(at(20), at(22), "v20-second"),
		v(at(5), at(40), "m2-v5"),
		v(at(15), at(15), "m2-v15"),
		{notFound(2)},
		v(at(10), at(10), "v10"),
		v(at(30), at(30), "v30"),
	}
	wantHistory(t, want, readHistory(t, s, q))

	// Each answer is the one GetAsOf gives.
	for i, e := range q.Entities {
		r := asOf(t, s, "movies", e.EntityID, e.Time)
		if got := want[i][0]; (r == nil) != !got.Found || r != nil && r.Values["title"] != got.Values[0] {
			t.Errorf("entity row %d: GetAsOf = %+v, ReadHistory = %+v", i, r, got)
		}
	}

	// No entity rows: no calls, no error.
	if got := readHistory(t, s, histQuery{Groups: q.Groups}); len(got) != 0 {
		t.Errorf("ReadHistory without entity rows called fn %d times", len(got))
	}
}

// testHistoryGroups reads several groups at once: each group is answered on
// its own, with its own features, and a group may be asked with features
// its rows do not have (null).
func testHistoryGroups(t *testing.T, s HistoryStore) {
	putGroup(t, s, movies("a"), base)
	putGroup(t, s, movies("b"), base)
	write(t, s,
		movie("a", "m1", at(10), at(10), "a10"),
		movie("b", "m1", at(20), at(20), "b20"),
		movie("b", "m2", at(5), at(5), "b5"),
	)
	// A row written before a feature was added to the group lacks it.
	write(t, s, feature.Row{Group: "a", EntityID: "m2", EventTime: at(1), WriteTime: at(1), Values: feature.Values{"title": "partial"}})

	q := histQuery{
		Groups: []store.HistoryGroup{
			{Name: "b", Features: []string{"title"}},
			{Name: "a", Features: []string{"rating", "title", "adult"}},
		},
		Entities: []store.PointInTime{pit("m1", at(15)), pit("m1", at(25)), pit("m2", at(3)), pit("m2", at(6))},
	}
	wantHistory(t, [][]store.HistoryRow{
		{notFound(1), found(at(10), 7.25, "a10", false)},
		{found(at(20), "b20"), found(at(10), 7.25, "a10", false)},
		{notFound(1), found(at(1), nil, "partial", nil)},
		{found(at(5), "b5"), found(at(1), nil, "partial", nil)},
	}, readHistory(t, s, q))
}

// testHistoryValues checks that values come back with their exact types.
func testHistoryValues(t *testing.T, s HistoryStore) {
	g := feature.Group{Name: "values", EntityKey: "id", Features: []feature.Spec{
		{Name: "i", Type: feature.Int64}, {Name: "f", Type: feature.Float64}, {Name: "b", Type: feature.Bool},
		{Name: "s", Type: feature.String}, {Name: "n", Type: feature.String},
	}}
	putGroup(t, s, g, base)
	rows := []struct {
		id     string
		values feature.Values
	}{
		{"max", feature.Values{"i": int64(math.MaxInt64), "f": 3.0, "b": true, "s": "기생충 \"quoted\" \\ \n 🎬", "n": nil}},
		{"min", feature.Values{"i": int64(math.MinInt64), "f": -2.5e-10, "b": false, "s": "", "n": nil}},
		{"big", feature.Values{"i": int64(1<<53 + 1), "f": math.MaxFloat64, "b": false, "s": "null", "n": nil}},
	}
	q := histQuery{Groups: []store.HistoryGroup{{Name: "values", Features: []string{"i", "f", "b", "s", "n"}}}}
	var want [][]store.HistoryRow
	for _, r := range rows {
		write(t, s, feature.Row{Group: "values", EntityID: r.id, EventTime: at(1), WriteTime: at(1), Values: r.values})
		q.Entities = append(q.Entities, pit(r.id, at(1)))
		v := r.values
		want = append(want, []store.HistoryRow{found(at(1), v["i"], v["f"], v["b"], v["s"], v["n"])})
	}
	wantHistory(t, want, readHistory(t, s, q))
}

func testHistoryUnknownGroup(t *testing.T, s HistoryStore) {
	putGroup(t, s, movies("movies"), base)
	calls := 0
	err := s.ReadHistory(t.Context(), histQuery{
		Groups:   []store.HistoryGroup{{Name: "movies", Features: []string{"title"}}, {Name: "nope", Features: []string{"x"}}},
		Entities: []store.PointInTime{pit("m1", at(1))},
	}.q(), func(int, []store.HistoryRow) error { calls++; return nil })
	wantCode(t, "ReadHistory(nope)", err, feature.CodeNotFound)
	if calls != 0 {
		t.Errorf("ReadHistory(nope) called fn %d times", calls)
	}
}

// testHistoryChunks reads more entity rows than one statement takes (a
// small statement size stands for store.HistoryChunk): every
// row is answered once, in order, across chunk boundaries.
func testHistoryChunks(t *testing.T, s HistoryStore) {
	putGroup(t, s, movies("movies"), base)
	const entities = 50
	var rows []feature.Row
	for e := range entities {
		for v := range 3 {
			rows = append(rows, movie("movies", fmt.Sprintf("m%02d", e), at(10*(v+1)), at(10*(v+1)), fmt.Sprintf("m%02d-v%d", e, v)))
		}
	}
	write(t, s, rows...)
	n := 5*testChunk + 7
	q := histQuery{Groups: []store.HistoryGroup{{Name: "movies", Features: []string{"title"}}}, Chunk: testChunk}
	want := make([][]store.HistoryRow, n)
	for i := range n {
		e, sec := (i*7)%(entities+1), (i*13)%45 // entity 50 has no rows; times 0..44
		q.Entities = append(q.Entities, pit(fmt.Sprintf("m%02d", e), at(sec)))
		want[i] = []store.HistoryRow{notFound(1)}
		if v := sec/10 - 1; e < entities && v >= 0 {
			v = min(v, 2)
			want[i] = []store.HistoryRow{found(at(10*(v+1)), fmt.Sprintf("m%02d-v%d", e, v))}
		}
	}
	wantHistory(t, want, readHistory(t, s, q))
}

// testHistoryStreamed feeds the entity rows in uneven chunks, as a stream
// of an upload would: each chunk is asked for only after the previous one
// was answered, the indexes run on across chunks, and an error of the
// source ends the read with that error.
func testHistoryStreamed(t *testing.T, s HistoryStore) {
	putGroup(t, s, movies("movies"), base)
	write(t, s, movie("movies", "m1", at(10), at(10), "a"))
	sizes := []int{3, 2*testChunk + 5, 1}
	answered, call := 0, 0
	src := func() ([]store.PointInTime, error) {
		if call > 0 && answered != sumInts(sizes[:call]) {
			t.Errorf("chunk %d asked for after %d rows were answered, want %d", call, answered, sumInts(sizes[:call]))
		}
		if call == len(sizes) {
			return nil, nil
		}
		rows := make([]store.PointInTime, sizes[call])
		for i := range rows {
			rows[i] = pit("m1", at(5+10*(call%2))) // before the row, then after it
		}
		call++
		return rows, nil
	}
	err := s.ReadHistory(t.Context(), store.HistoryQuery{Groups: []store.HistoryGroup{{Name: "movies", Features: []string{"title"}}}, Entities: src, Chunk: testChunk},
		func(i int, rows []store.HistoryRow) error {
			if i != answered {
				t.Fatalf("row %d answered as %d", answered, i)
			}
			chunk := 0
			for i >= sumInts(sizes[:chunk+1]) {
				chunk++
			}
			if rows[0].Found != (chunk%2 == 1) {
				t.Errorf("row %d (chunk %d): found %v", i, chunk, rows[0].Found)
			}
			answered++
			return nil
		})
	if err != nil || answered != sumInts(sizes) {
		t.Fatalf("ReadHistory = %v after %d rows, want %d rows", err, answered, sumInts(sizes))
	}

	bad := errors.New("line 7: not a time")
	calls := 0
	err = s.ReadHistory(t.Context(), store.HistoryQuery{Groups: []store.HistoryGroup{{Name: "movies", Features: []string{"title"}}},
		Entities: func() ([]store.PointInTime, error) {
			if calls++; calls == 1 {
				return []store.PointInTime{pit("m1", at(20))}, nil
			}
			return nil, bad
		}}, func(int, []store.HistoryRow) error { return nil })
	if !errors.Is(err, bad) {
		t.Errorf("ReadHistory with a failing source = %v, want its error", err)
	}
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func testHistoryStopsOnError(t *testing.T, s HistoryStore) {
	putGroup(t, s, movies("movies"), base)
	write(t, s, movie("movies", "m1", at(1), at(1), "a"))
	q := histQuery{Groups: []store.HistoryGroup{{Name: "movies", Features: []string{"title"}}}, Chunk: testChunk}
	for range testChunk + 10 {
		q.Entities = append(q.Entities, pit("m1", at(2)))
	}
	stop := errors.New("client went away")
	calls := 0
	err := s.ReadHistory(t.Context(), q.q(), func(i int, _ []store.HistoryRow) error {
		calls++
		if i == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Errorf("ReadHistory = %v, want the callback's error", err)
	}
	if calls != 4 {
		t.Errorf("fn called %d times, want 4 (it stops at the error)", calls)
	}
	// The store is still usable.
	if got := readHistory(t, s, histQuery{Groups: q.Groups, Entities: q.Entities[:1]}); len(got) != 1 || !got[0].Rows[0].Found {
		t.Errorf("ReadHistory after a stopped read = %+v", got)
	}
}

// testHistoryTimePrecision: entity row times are truncated to microseconds
// like every stored time.
func testHistoryTimePrecision(t *testing.T, s HistoryStore) {
	putGroup(t, s, movies("movies"), base)
	event := base.Add(1500 * time.Nanosecond) // stored as base+1µs
	write(t, s, movie("movies", "m1", event, event, "a"))
	q := histQuery{
		Groups: []store.HistoryGroup{{Name: "movies", Features: []string{"title"}}},
		Entities: []store.PointInTime{
			pit("m1", base.Add(999*time.Nanosecond)),  // base: before the row
			pit("m1", base.Add(1001*time.Nanosecond)), // base+1µs: the row
		},
	}
	wantHistory(t, [][]store.HistoryRow{
		{notFound(1)},
		{found(base.Add(time.Microsecond), "a")},
	}, readHistory(t, s, q))
}

// testHistoryGroupRecreated: a deleted group's history is gone, also for
// times before it was deleted, once the group is registered again.
func testHistoryGroupRecreated(t *testing.T, s HistoryStore) {
	putGroup(t, s, movies("movies"), base)
	write(t, s, movie("movies", "m1", at(10), at(10), "old"))
	if err := s.DeleteGroup(t.Context(), "movies"); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	putGroup(t, s, movies("movies"), at(50))
	write(t, s, movie("movies", "m1", at(60), at(60), "new"))
	q := histQuery{
		Groups:   []store.HistoryGroup{{Name: "movies", Features: []string{"title"}}},
		Entities: []store.PointInTime{pit("m1", at(20)), pit("m1", at(70))},
	}
	wantHistory(t, [][]store.HistoryRow{{notFound(1)}, {found(at(60), "new")}}, readHistory(t, s, q))
}
