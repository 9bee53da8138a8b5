package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/export"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/store/sqlite"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// systemOfRecord is what a backend's system of record provides beyond
// store.Store.
type systemOfRecord interface {
	HistoryReader
	ServiceRegistry
}

// forEachSOR runs fn in a parallel subtest per backend with the cached
// store (as the server uses it) and its system of record.
func forEachSOR(t *testing.T, fn func(t *testing.T, st store.Store, sor systemOfRecord)) {
	t.Helper()
	for _, name := range []string{"embedded", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st, sor := openSOR(t, name)
			fn(t, st, sor)
		})
	}
}

// openSOR opens a fresh system of record of the named mode and the cache
// in front of it, as the helpers' backends do.
func openSOR(tb testing.TB, mode string) (store.Store, systemOfRecord) {
	tb.Helper()
	if mode == "embedded" {
		lite, err := sqlite.Open(context.Background(), tb.TempDir(), sqlite.Options{})
		if err != nil {
			tb.Fatalf("open sqlite: %v", err)
		}
		st := cache.Wrap(lite, cache.NewMemory(cache.MemoryOptions{}), cache.WrapOptions{})
		tb.Cleanup(func() { st.Close() })
		return st, lite
	}
	pg, err := postgres.Open(context.Background(), testenv.PostgresSchemaURL(tb, "fs_t"), postgres.Options{MaxConns: 8})
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	ropts, err := cache.RedisOptionsFromURL(testenv.RedisURL(tb))
	if err != nil {
		pg.Close()
		tb.Fatal(err)
	}
	client := redis.NewClient(ropts)
	tb.Cleanup(func() { client.Close() })
	rc := cache.NewRedis(client, cache.RedisOptions{Prefix: fmt.Sprintf("fs_t_%016x", rand.Uint64())})
	tb.Cleanup(func() { _ = rc.Clear(context.Background()) })
	st := cache.Wrap(pg, rc, cache.WrapOptions{})
	tb.Cleanup(func() { st.Close() })
	return st, pg
}

// newHistoryService is newService with the system of record's training-set
// reads and feature services.
func newHistoryService(t *testing.T, st store.Store, sor systemOfRecord, c *testClock, opts Options) *Service {
	t.Helper()
	opts.History, opts.FeatureServices = sor, sor
	return newService(t, st, c, opts)
}

// tableSink is a HistoricalSink that keeps what it is given.
type tableSink struct {
	cols   []export.Column
	rows   [][]any
	begun  bool
	failAt int // Write fails for this row (1-based); 0: never
}

func (s *tableSink) Begin(cols []export.Column) error {
	if s.begun {
		return errors.New("Begin called twice")
	}
	s.begun, s.cols = true, cols
	return nil
}

var errSinkFull = errors.New("sink full")

func (s *tableSink) Write(row []any) error {
	if !s.begun {
		return errors.New("Write before Begin")
	}
	if s.failAt == len(s.rows)+1 {
		return errSinkFull
	}
	s.rows = append(s.rows, slices.Clone(row))
	return nil
}

func (s *tableSink) colNames() []string {
	var out []string
	for _, c := range s.cols {
		out = append(out, c.Name)
	}
	return out
}

func historical(t *testing.T, s *Service, req HistoricalRequest) (*tableSink, HistoricalResult) {
	t.Helper()
	sink := &tableSink{}
	res, err := s.GetHistoricalFeatures(context.Background(), req, sink)
	if err != nil {
		t.Fatalf("GetHistoricalFeatures: %v", err)
	}
	return sink, res
}

// version is one stored row of one group, as the reference sees it.
type version struct {
	event  time.Time
	values feature.Values
}

// history records every row the service stored for the movies, read back
// after each write: the reference the training set is checked against.
type history map[feature.Key][]version

// record appends the latest row of every movie in every built-in group
// when it is new since the last record.
func (h history) record(t *testing.T, s *Service, ids []string) {
	t.Helper()
	var keys []feature.Key
	for _, g := range tmdb.Groups() {
		for _, id := range ids {
			keys = append(keys, feature.Key{Group: g.Name, EntityID: id})
		}
	}
	rows, err := s.st.GetLatest(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		if r == nil {
			continue
		}
		vs := h[keys[i]]
		if len(vs) == 0 || !vs[len(vs)-1].event.Equal(r.EventTime) {
			h[keys[i]] = append(vs, version{r.EventTime, r.Values})
		}
	}
}

// at is the brute-force point-in-time answer: the newest version at or
// before when, if it is not older than ttl.
func (h history) at(k feature.Key, when time.Time, ttl time.Duration) feature.Values {
	var best *version
	for i, v := range h[k] {
		if !v.event.After(when) && (best == nil || v.event.After(best.event)) {
			best = &h[k][i]
		}
	}
	if best == nil || ttl > 0 && when.Sub(best.event) > ttl {
		return nil
	}
	return best.values
}

// changed returns raw with its popularity and vote count changed by k, so
// that each version of a movie has values of its own.
func changed(t *testing.T, raw json.RawMessage, k int) json.RawMessage {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	pop, _ := m["popularity"].(json.Number).Float64()
	votes, _ := m["vote_count"].(json.Number).Int64()
	m["popularity"] = pop*1.5 + float64(k)
	m["vote_count"] = votes + int64(100*k)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHistoricalMatchesReference writes the real TMDB records in several
// versions at known times (with a recompute between) and checks every
// value of a training set over all the built-in features against a
// brute-force point-in-time join of what was stored, in both modes.
func TestHistoricalMatchesReference(t *testing.T) {
	t.Parallel()
	raws := realMovies(t)
	forEachSOR(t, func(t *testing.T, st store.Store, sor systemOfRecord) {
		ctx := context.Background()
		c := newClock()
		s := newHistoryService(t, st, sor, c, Options{})
		ids := make([]string, len(raws))
		for i, raw := range raws {
			m, problems := tmdb.ParseMovie(raw)
			if problems != nil {
				t.Fatal(problems)
			}
			ids[i] = strconv.FormatInt(m.ID, 10)
		}
		h := history{}
		ingest := func(batch []json.RawMessage) time.Time {
			t.Helper()
			res, err := s.Ingest(ctx, batch)
			if err != nil || res.Accepted != len(batch) {
				t.Fatalf("ingest: %+v, %v", res, err)
			}
			h.record(t, s, ids)
			return res.EventTime
		}
		var versionTimes []time.Time
		versionTimes = append(versionTimes, ingest(raws)) // v0: every movie
		c.Advance(36 * time.Hour)
		var v1 []json.RawMessage
		for i := 0; i < len(raws); i += 2 {
			v1 = append(v1, changed(t, raws[i], 1))
		}
		versionTimes = append(versionTimes, ingest(v1)) // v1: every other movie
		c.Advance(time.Hour)
		if _, err := s.Recompute(ctx, nil); err != nil { // new statistical rows for all
			t.Fatal(err)
		}
		h.record(t, s, ids)
		versionTimes = append(versionTimes, c.Now())
		c.Advance(5 * 24 * time.Hour)
		versionTimes = append(versionTimes, ingest(changedAll(t, raws[:30], 2))) // v2
		c.Advance(10 * 24 * time.Hour)
		versionTimes = append(versionTimes, ingest(changedAll(t, raws[10:20], 3))) // v3

		req, want := referenceRequest(t, h, append(ids, "1", "999999999"), versionTimes)
		sink, res := historical(t, s, req)
		if diff := cmp.Diff(want.cols, sink.colNames()); diff != "" {
			t.Fatalf("columns (-want +got):\n%s", diff)
		}
		if res.Rows != len(want.rows) || len(sink.rows) != len(want.rows) {
			t.Fatalf("%d rows (result %d), want %d", len(sink.rows), res.Rows, len(want.rows))
		}
		mismatches, nonNull := 0, 0
		for i := range want.rows {
			for j := range want.rows[i] {
				if want.rows[i][j] != nil {
					nonNull++
				}
				if !cmp.Equal(want.rows[i][j], sink.rows[i][j]) {
					if mismatches++; mismatches <= 10 {
						t.Errorf("row %d (%v at %v), column %s: got %#v, want %#v", i, sink.rows[i][0], sink.rows[i][1],
							want.cols[j], sink.rows[i][j], want.rows[i][j])
					}
				}
			}
		}
		if mismatches > 0 {
			t.Fatalf("%d of %d values differ from the reference", mismatches, len(want.rows)*len(want.cols))
		}
		// The reference is not trivially null: most values are there.
		if nonNull < len(want.rows)*len(want.cols)/3 {
			t.Errorf("only %d of %d reference values are not null", nonNull, len(want.rows)*len(want.cols))
		}
		t.Logf("%d rows × %d columns match the reference (%d non-null)", len(want.rows), len(want.cols), nonNull)
	})
}

func changedAll(t *testing.T, raws []json.RawMessage, k int) []json.RawMessage {
	out := make([]json.RawMessage, len(raws))
	for i, raw := range raws {
		out[i] = changed(t, raw, k)
	}
	return out
}

// referenceTable is the expected training set.
type referenceTable struct {
	cols []string
	rows [][]any
}

// referenceRequest asks for every built-in feature at times around each
// version (before the first, equal, between, at the TTL's edge and past
// it), for every id, in a shuffled order with duplicates, and computes the
// expected table from h.
func referenceRequest(t *testing.T, h history, ids []string, versions []time.Time) (HistoricalRequest, referenceTable) {
	t.Helper()
	ttl := 7 * 24 * time.Hour
	var times []time.Time
	for _, v := range versions {
		times = append(times, v.Add(-time.Second), v, v.Add(time.Hour), v.Add(ttl), v.Add(ttl+time.Microsecond))
	}
	type entityRow struct {
		id   string
		when time.Time
	}
	var rows []entityRow
	for _, id := range ids {
		for _, when := range times {
			rows = append(rows, entityRow{id, when})
		}
	}
	rng := rand.New(rand.NewPCG(11, 42))
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	rows = append(rows, rows[:50]...) // duplicates

	req := HistoricalRequest{Entities: map[string][]any{"movie_id": nil, "event_timestamp": nil}, FullFeatureNames: true}
	want := referenceTable{cols: []string{"movie_id", "event_timestamp"}}
	var specs []struct {
		group string
		spec  feature.Spec
	}
	for _, g := range tmdb.Groups() {
		for _, f := range g.Features {
			req.Features = append(req.Features, g.Name+":"+f.Name)
			want.cols = append(want.cols, g.Name+"__"+f.Name)
			specs = append(specs, struct {
				group string
				spec  feature.Spec
			}{g.Name, f})
		}
	}
	for _, r := range rows {
		id, _ := strconv.ParseInt(r.id, 10, 64)
		req.Entities["movie_id"] = append(req.Entities["movie_id"], json.Number(r.id))
		req.Entities["event_timestamp"] = append(req.Entities["event_timestamp"], r.when.Format(time.RFC3339Nano))
		row := []any{id, r.when}
		for _, sp := range specs {
			var v any
			if values := h.at(feature.Key{Group: sp.group, EntityID: r.id}, r.when, ttl); values != nil {
				v = values[sp.spec.Name]
			}
			row = append(row, v)
		}
		want.rows = append(want.rows, row)
	}
	return req, want
}

// TestHistoricalEdgeCases pins down the point-in-time rules on a group
// written at known times: equal timestamps, before the first row, the TTL's
// edge, duplicates, unknown entities, nulls, and a group deleted and
// re-created.
func TestHistoricalEdgeCases(t *testing.T) {
	t.Parallel()
	forEachSOR(t, func(t *testing.T, st store.Store, sor systemOfRecord) {
		ctx := context.Background()
		c := newClock()
		s := newHistoryService(t, st, sor, c, Options{})
		putUserGroup(t, s)
		T := t0.Add(-48 * time.Hour)
		write := func(id string, at time.Time, age any) {
			t.Helper()
			if _, err := s.WriteRows(ctx, "user_profile", []RowInput{{EntityID: id, EventTime: &at,
				Values: map[string]any{"age": age, "score": 0.5, "premium": true, "country": "KR"}}}); err != nil {
				t.Fatal(err)
			}
		}
		write("u1", T, int64(30))
		write("u1", T.Add(30*time.Minute), int64(31))
		write("u1", T.Add(2*time.Hour), int64(32))
		write("u2", T, nil)

		req := HistoricalRequest{Features: []string{"user_profile:age", "user_profile:country"}}
		rows := []struct {
			id   string
			when time.Time
			age  any
		}{
			{"u1", T.Add(-time.Second), nil},                               // before the first row
			{"u1", T, int64(30)},                                           // equal to an event time
			{"u1", T.Add(time.Hour), int64(31)},                            // the newest before
			{"u1", T.Add(90 * time.Minute), int64(31)},                     // exactly the TTL old: still in
			{"u1", T.Add(90*time.Minute + time.Microsecond), nil},          // past the TTL
			{"u1", T.Add(2 * time.Hour), int64(32)},                        // equal again
			{"u3", T.Add(time.Hour), nil},                                  // unknown entity
			{"u2", T.Add(time.Minute), nil},                                // a null value of a row that is there
			{"u1", T, int64(30)},                                           // a duplicate
			{"u1", T.Add(time.Hour).Add(500 * time.Nanosecond), int64(31)}, // sub-microsecond time
		}
		req.Entities = map[string][]any{"user_id": nil, "event_timestamp": nil}
		var want [][]any
		for _, r := range rows {
			req.Entities["user_id"] = append(req.Entities["user_id"], r.id)
			req.Entities["event_timestamp"] = append(req.Entities["event_timestamp"], r.when.Format(time.RFC3339Nano))
			country := any("KR")
			if r.age == nil && r.id != "u2" {
				country = nil
			}
			want = append(want, []any{r.id, r.when.Truncate(time.Microsecond), r.age, country})
		}
		sink, res := historical(t, s, req)
		if diff := cmp.Diff([]export.Column{{Name: "user_id", Type: export.String, NotNull: true},
			{Name: "event_timestamp", Type: export.Timestamp, NotNull: true},
			{Name: "age", Type: export.Int64}, {Name: "country", Type: export.String}}, sink.cols); diff != "" {
			t.Errorf("columns (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, sink.rows); diff != "" {
			t.Errorf("rows (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]HistoricalGroupResult{{Group: "user_profile", Found: 7, NotFound: 2, OutsideTTL: 1}}, res.Groups); diff != "" {
			t.Errorf("group counts (-want +got):\n%s", diff)
		}

		// Deleted and re-created: the old history is gone for every time.
		if err := s.DeleteGroup(ctx, "user_profile"); err != nil {
			t.Fatal(err)
		}
		putUserGroup(t, s)
		write("u1", T.Add(10*time.Hour), int64(40))
		sink, _ = historical(t, s, HistoricalRequest{Features: []string{"user_profile:age"}, Entities: map[string][]any{
			"user_id": {"u1", "u1"}, "event_timestamp": {T.Add(time.Hour).Format(time.RFC3339), T.Add(11 * time.Hour).Format(time.RFC3339)}}})
		if diff := cmp.Diff([][]any{{"u1", T.Add(time.Hour), nil}, {"u1", T.Add(11 * time.Hour), int64(40)}}, sink.rows); diff != "" {
			t.Errorf("after re-creating the group (-want +got):\n%s", diff)
		}
	})
}

func putUserGroup(t *testing.T, s *Service) {
	t.Helper()
	g := feature.Group{Name: "user_profile", EntityKey: "user_id", TTL: feature.Duration(time.Hour), Features: []feature.Spec{
		{Name: "age", Type: feature.Int64}, {Name: "score", Type: feature.Float64},
		{Name: "premium", Type: feature.Bool}, {Name: "country", Type: feature.String}}}
	if _, _, err := s.PutGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
}

// TestHistoricalRequestErrors: every bad request is refused with its code
// and the field at fault before anything is written.
func TestHistoricalRequestErrors(t *testing.T) {
	t.Parallel()
	lite, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	c := newClock()
	// A month of history for the groups that set no retention (the
	// built-in movie_* groups); user_forever keeps all of it.
	s := newService(t, lite, c, Options{MaxHistoricalRows: 3, HistoryRetention: 30 * 24 * time.Hour})
	putUserGroup(t, s)
	forever := feature.Duration(0)
	if _, _, err := s.PutGroup(context.Background(), feature.Group{Name: "user_forever", EntityKey: "movie_id",
		Features: []feature.Spec{{Name: "x", Type: feature.Int64}}, HistoryRetention: &forever}); err != nil {
		t.Fatal(err)
	}
	ts := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = "2025-06-01T00:00:00Z"
		}
		return out
	}
	ok := map[string][]any{"movie_id": {json.Number("550")}, "event_timestamp": ts(1)}
	tests := []struct {
		name  string
		req   HistoricalRequest
		code  feature.Code
		field string
	}{
		{"no features", HistoricalRequest{Entities: ok}, feature.CodeInvalid, "features"},
		{"features and service", HistoricalRequest{Entities: ok, Features: []string{"movie_basic:popularity"}, FeatureService: "x"}, feature.CodeInvalid, "feature_service"},
		{"unknown service", HistoricalRequest{Entities: ok, FeatureService: "nope"}, feature.CodeNotFound, "feature_service"},
		{"unknown feature", HistoricalRequest{Entities: ok, Features: []string{"movie_basic:popularity", "movie_basic:nope"}}, feature.CodeNotFound, "features[1]"},
		{"unknown group", HistoricalRequest{Entities: ok, Features: []string{"nope:x"}}, feature.CodeNotFound, "features[0]"},
		{"not a reference", HistoricalRequest{Entities: ok, Features: []string{"popularity"}}, feature.CodeInvalid, "features[0]"},
		{"other entity key", HistoricalRequest{Entities: ok, Features: []string{"user_profile:age"}}, feature.CodeInvalid, "features[0]"},
		{"no timestamp column", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1")}}, Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "entities"},
		{"three columns", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1")}, "event_timestamp": ts(1), "label": {true}},
			Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "entities"},
		{"lengths differ", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1")}, "event_timestamp": ts(2)},
			Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "entities.event_timestamp"},
		{"no rows", HistoricalRequest{Entities: map[string][]any{"movie_id": {}, "event_timestamp": {}},
			Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "entities.movie_id"},
		{"too many rows", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1"), json.Number("2"), json.Number("3"), json.Number("4")}, "event_timestamp": ts(4)},
			Features: []string{"movie_basic:popularity"}}, feature.CodeTooLarge, "entities.movie_id"},
		{"mixed id types", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1"), "2"}, "event_timestamp": ts(2)},
			Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "entities.movie_id[1]"},
		{"fractional id", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1.5")}, "event_timestamp": ts(1)},
			Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "entities.movie_id[0]"},
		{"no time zone", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1")}, "event_timestamp": {"2025-06-01T00:00:00"}},
			Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "entities.event_timestamp[0]"},
		{"number as time", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1")}, "event_timestamp": {json.Number("1717200000")}},
			Features: []string{"movie_basic:popularity"}}, feature.CodeInvalid, "entities.event_timestamp[0]"},
		{"column collision", HistoricalRequest{Entities: ok, Features: []string{"movie_basic:popularity", "movie_basic:popularity"}, FullFeatureNames: true},
			feature.CodeInvalid, "features[1]"},
		{"short names collide", HistoricalRequest{Entities: map[string][]any{"user_id": {"u"}, "event_timestamp": ts(1)},
			Features: []string{"user_profile:age", "user_profile:score"}, FullFeatureNames: false}, "", ""}, // no collision: ok
		{"older than the retention", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1"), json.Number("2")},
			"event_timestamp": {"2025-06-01T00:00:00Z", "2025-04-01T00:00:00Z"}}, Features: []string{"movie_text:title_length"}},
			feature.CodeInvalid, "entities.event_timestamp[1]"},
		{"retention of another group", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1")},
			"event_timestamp": {"2025-04-01T00:00:00Z"}}, Features: []string{"user_forever:x"}}, "", ""},
		{"retention of the group, not the default", HistoricalRequest{Entities: map[string][]any{"movie_id": {json.Number("1")},
			"event_timestamp": {"2025-04-01T00:00:00Z"}}, Features: []string{"user_forever:x", "movie_basic:popularity"}},
			feature.CodeInvalid, "entities.event_timestamp[0]"},
	}
	for _, tt := range tests {
		sink := &tableSink{}
		_, err := s.GetHistoricalFeatures(context.Background(), tt.req, sink)
		if tt.code == "" {
			if err != nil {
				t.Errorf("%s: %v, want success", tt.name, err)
			}
			continue
		}
		if got := feature.ErrorCode(err); got != tt.code {
			t.Errorf("%s: error %v (code %q), want code %q", tt.name, err, got, tt.code)
			continue
		}
		var fe *feature.Error
		if errors.As(err, &fe); len(fe.Fields) == 0 || fe.Fields[0].Field != tt.field {
			t.Errorf("%s: fields %+v, want the first to be %s", tt.name, fe.Fields, tt.field)
		}
		if sink.begun {
			t.Errorf("%s: the sink was begun before the error", tt.name)
		}
	}
}

// TestHistoricalSinkError: an error of the sink stops the read and is
// returned; the rows before it were written.
func TestHistoricalSinkError(t *testing.T) {
	t.Parallel()
	lite, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	s := newService(t, lite, newClock(), Options{})
	ids := make([]any, 2000)
	for i := range ids {
		ids[i] = json.Number(strconv.Itoa(i))
	}
	req := HistoricalRequest{Features: []string{"movie_basic:popularity"}, Entities: map[string][]any{"movie_id": ids,
		"event_timestamp": slices.Repeat([]any{"2025-06-01T00:00:00Z"}, len(ids))}}
	sink := &tableSink{failAt: 1234}
	res, err := s.GetHistoricalFeatures(context.Background(), req, sink)
	if !errors.Is(err, errSinkFull) || len(sink.rows) != 1233 || res.Rows != 1234 {
		t.Errorf("GetHistoricalFeatures = %d rows written, result %d rows, %v; want 1233 rows and the sink's error", len(sink.rows), res.Rows, err)
	}
}

// readCSV reads a whole CSV of entity rows into columns.
func readCSV(in string) (map[string][]any, error) {
	c, err := NewEntityCSV(strings.NewReader(in))
	if err != nil {
		return nil, err
	}
	out := map[string][]any{c.Key(): {}, EventTimestampColumn: {}}
	for {
		id, ts, err := c.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out[c.Key()] = append(out[c.Key()], id)
		out[EventTimestampColumn] = append(out[EventTimestampColumn], ts)
	}
}

func TestEntityCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     map[string][]any
		field    string
	}{
		{"integer ids", "movie_id,event_timestamp\n550,2025-06-01T00:00:00Z\n0013, 2025-07-01 00:00:00+02:00 \nx1,t\n",
			map[string][]any{"movie_id": {json.Number("550"), json.Number("0013"), "x1"}, "event_timestamp": {"2025-06-01T00:00:00Z", "2025-07-01 00:00:00+02:00", "t"}}, ""},
		{"string ids, timestamp first, BOM, CRLF", "\ufeffevent_timestamp,user_id\r\n2025-06-01T00:00:00Z,u1\r\n2025-06-02T00:00:00Z,42\r\n",
			map[string][]any{"user_id": {"u1", "42"}, "event_timestamp": {"2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z"}}, ""},
		{"quoted", "movie_id,event_timestamp\n\"a,b\",2025-06-01T00:00:00Z\n",
			map[string][]any{"movie_id": {"a,b"}, "event_timestamp": {"2025-06-01T00:00:00Z"}}, ""},
		{"header only", "movie_id,event_timestamp\n", map[string][]any{"movie_id": {}, "event_timestamp": {}}, ""},
		{"empty", "", nil, "csv"},
		{"no timestamp column", "movie_id,when\n1,2025-06-01T00:00:00Z\n", nil, "csv line 1"},
		{"two timestamp columns", "event_timestamp,event_timestamp\n1,2\n", nil, "csv line 1"},
		{"three columns", "movie_id,event_timestamp,label\n1,2025-06-01T00:00:00Z,1\n", nil, "csv line 1"},
		{"ragged row", "movie_id,event_timestamp\n1,2025-06-01T00:00:00Z\n2\n", nil, "csv line 3"},
		{"bad quote", "movie_id,event_timestamp\n\"1,2025-06-01T00:00:00Z\n", nil, "csv line 2"},
	}
	for _, tt := range tests {
		got, err := readCSV(tt.in)
		if tt.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tt.name, diff)
			}
			continue
		}
		var fe *feature.Error
		if !errors.As(err, &fe) || fe.Code != feature.CodeInvalid || len(fe.Fields) == 0 || fe.Fields[0].Field != tt.field {
			t.Errorf("%s: error %v, want invalid on field %s", tt.name, err, tt.field)
		}
	}
}

// TestHistoricalStreamed: entity rows streamed from CSV give the same
// training set as the same rows sent as columns, over several chunks; a
// bad row or the row limit in a later chunk stops a training set that has
// begun, one in the first chunk is refused before it begins. (Streaming is
// the service's; Postgres answers the many rows fastest, also under -race.)
func TestHistoricalStreamed(t *testing.T) {
	t.Parallel()
	st, sor := openSOR(t, "postgres")
	c := newClock()
	const limit = store.HistoryChunk + 20
	s := newHistoryService(t, st, sor, c, Options{MaxHistoricalRows: limit})
	putUserGroup(t, s)
	for i := range 50 {
		at := t0.Add(-time.Duration(i) * time.Minute)
		if _, err := s.WriteRows(context.Background(), "user_profile", []RowInput{{EntityID: fmt.Sprintf("u%d", i), EventTime: &at,
			Values: map[string]any{"age": int64(i), "country": "KR"}}}); err != nil {
			t.Fatal(err)
		}
	}
	var csvText strings.Builder
	csvText.WriteString("user_id,event_timestamp\n")
	cols := map[string][]any{"user_id": nil, "event_timestamp": nil}
	n := store.HistoryChunk + 17
	for i := range n {
		id, ts := fmt.Sprintf("u%d", i%60), t0.Add(-time.Duration(i%90)*time.Minute).Format(time.RFC3339)
		fmt.Fprintf(&csvText, "%s,%s\n", id, ts)
		cols["user_id"] = append(cols["user_id"], id)
		cols["event_timestamp"] = append(cols["event_timestamp"], ts)
	}
	features := []string{"user_profile:age", "user_profile:country"}
	byCols, _ := historical(t, s, HistoricalRequest{Entities: cols, Features: features})
	rows, err := NewEntityCSV(strings.NewReader(csvText.String()))
	if err != nil {
		t.Fatal(err)
	}
	byStream, res := historical(t, s, HistoricalRequest{EntityRows: rows, Features: features})
	if len(byStream.rows) != n || res.Rows != n {
		t.Fatalf("streamed: %d rows, result %d; want %d", len(byStream.rows), res.Rows, n)
	}
	if diff := cmp.Diff(byCols.rows, byStream.rows); diff != "" {
		t.Errorf("streamed rows differ from columns (-columns +stream):\n%s", diff)
	}

	stream := func(text string) (*tableSink, error) {
		rows, err := NewEntityCSV(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		sink := &tableSink{}
		_, err = s.GetHistoricalFeatures(context.Background(), HistoricalRequest{EntityRows: rows, Features: features}, sink)
		return sink, err
	}
	lines := strings.SplitAfter(csvText.String(), "\n")
	badLater := strings.Join(lines[:store.HistoryChunk+5], "") + "u1,yesterday\n" + strings.Join(lines[store.HistoryChunk+5:], "")
	sink, err := stream(badLater)
	wantErr(t, "bad row in the second chunk", err, feature.CodeInvalid, fmt.Sprintf("entities.event_timestamp[%d]", store.HistoryChunk+4))
	if len(sink.rows) != store.HistoryChunk {
		t.Errorf("bad row in the second chunk: %d rows written, want the first chunk's %d", len(sink.rows), store.HistoryChunk)
	}
	badFirst := strings.Join(lines[:3], "") + "u1,yesterday\n"
	sink, err = stream(badFirst)
	wantErr(t, "bad row in the first chunk", err, feature.CodeInvalid, "entities.event_timestamp[2]")
	if sink.begun {
		t.Error("a bad row in the first chunk began the training set")
	}
	sink, err = stream(csvText.String() + strings.Repeat("u1,2025-06-01T00:00:00Z\n", limit-n+1))
	wantErr(t, "one row over the limit", err, feature.CodeTooLarge, "entities.user_id")
	if len(sink.rows) != store.HistoryChunk {
		t.Errorf("over the limit: %d rows written, want %d", len(sink.rows), store.HistoryChunk)
	}
	if _, err := stream(csvText.String() + strings.Repeat("u1,2025-06-01T00:00:00Z\n", limit-n)); err != nil {
		t.Errorf("exactly the limit: %v", err)
	}
	_, err = stream("movie_id,event_timestamp\n1,2025-06-01T00:00:00Z\n")
	wantErr(t, "other entity key", err, feature.CodeInvalid, "features[0]")
	_, err = stream("user_id,event_timestamp\n")
	wantErr(t, "no rows", err, feature.CodeInvalid, "entities.user_id")
}

func TestParseTimestamp(t *testing.T) {
	t.Parallel()
	want := time.Date(2025, 6, 1, 0, 0, 0, 123456000, time.UTC)
	for _, in := range []string{"2025-06-01T00:00:00.123456Z", "2025-06-01 02:00:00.1234569+02:00", "2025-05-31T19:00:00.123456-05:00"} {
		if got, ok := ParseTimestamp(in); !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []any{"2025-06-01", "2025-06-01T00:00:00", "yesterday", "", json.Number("1717200000"), nil} {
		if got, ok := ParseTimestamp(in); ok {
			t.Errorf("ParseTimestamp(%#v) = %v, want a failure", in, got)
		}
	}
}

// TestReadOnly: a read-only service answers reads without loading the
// corpus, and refuses ingests and recomputes.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	st, sor := openSOR(t, "embedded")
	s := newHistoryService(t, st, sor, newClock(), Options{ReadOnly: true})
	if _, err := s.Ingest(context.Background(), realMovies(t)[:1]); !errors.Is(err, errReadOnly) {
		t.Errorf("Ingest on a read-only service = %v", err)
	}
	if _, err := s.Recompute(context.Background(), nil); !errors.Is(err, errReadOnly) {
		t.Errorf("Recompute on a read-only service = %v", err)
	}
	sink, _ := historical(t, s, HistoricalRequest{Features: []string{"movie_basic:popularity"},
		Entities: map[string][]any{"movie_id": {json.Number("1")}, "event_timestamp": {"2025-06-01T00:00:00Z"}}})
	if len(sink.rows) != 1 || sink.rows[0][2] != nil {
		t.Errorf("read-only historical read = %v", sink.rows)
	}
}
