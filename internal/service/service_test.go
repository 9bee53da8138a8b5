package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/tmdb"
)

func TestWriteClock(t *testing.T) {
	t.Parallel()
	var c writeClock
	base := time.Date(2025, 1, 1, 0, 0, 0, 123456789, time.FixedZone("X", 3600))
	steps := []struct {
		now  time.Time
		want time.Time
	}{
		{base, base.UTC().Truncate(time.Microsecond)},
		{base, base.UTC().Truncate(time.Microsecond).Add(time.Microsecond)},                     // same instant: one tick later
		{base.Add(-time.Hour), base.UTC().Truncate(time.Microsecond).Add(2 * time.Microsecond)}, // clock went back
		{base.Add(time.Second), base.Add(time.Second).UTC().Truncate(time.Microsecond)},
	}
	for i, s := range steps {
		got := c.next(s.now)
		if !got.Equal(s.want) || got.Location() != time.UTC {
			t.Errorf("step %d: next(%v) = %v, want %v in UTC", i, s.now, got, s.want)
		}
	}
}

func TestEntityID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   any
		want string
		ok   bool
	}{
		{"abc", "abc", true},
		{"", "", false},
		{"a\nb", "", false},
		{json.Number("42"), "42", true},
		{json.Number("-7"), "-7", true},
		{json.Number("9223372036854775807"), "9223372036854775807", true},
		{json.Number("1e3"), "1000", true},
		{json.Number("2.5"), "", false},
		{float64(550), "550", true},
		{1.5, "", false},
		{int64(13), "13", true},
		{7, "7", true},
		{true, "", false},
		{nil, "", false},
		{map[string]any{}, "", false},
	}
	for _, tc := range tests {
		got, ok := EntityID(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("EntityID(%#v) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestNewUpgradesBuiltins: New replaces a stored built-in definition that
// differs from this version's, and leaves an up-to-date one alone.
func TestNewUpgradesBuiltins(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		stale := tmdb.Groups()[0]
		stale.Features = stale.Features[:3]
		stale.Description = "an older version"
		if _, err := st.PutGroup(ctx, stale, t0.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		c := newClock()
		newService(t, st, c, Options{})
		for _, want := range tmdb.Groups() {
			got, err := st.GetGroup(ctx, want.Name)
			if err != nil {
				t.Fatal(err)
			}
			version := 1
			if want.Name == stale.Name {
				version = 2
			}
			if !sameSchema(got, want) || got.SchemaVersion != version {
				t.Errorf("%s: schema version %d, same schema %v; want version %d and this version's schema", want.Name, got.SchemaVersion, sameSchema(got, want), version)
			}
		}
		c.Advance(time.Hour)
		s := newService(t, st, c, Options{})
		if g, _ := s.GetGroup(ctx, stale.Name); g.SchemaVersion != 2 {
			t.Errorf("a second start re-registered an up-to-date group: schema version %d", g.SchemaVersion)
		}
		if !s.IsBuiltin(tmdb.GroupAudience) || s.IsBuiltin("user_stats") {
			t.Error("IsBuiltin does not match the TMDB groups")
		}
	})
}

// TestCorpusSurvivesRestart: a new service over a store that already holds
// movies reads nothing at start-up, yet scores a new movie against all of
// them.
func TestCorpusSurvivesRestart(t *testing.T) {
	t.Parallel()
	raws := realMovies(t)
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newClock()
		first := newService(t, st, c, Options{})
		if res, err := first.Ingest(ctx, raws); err != nil || res.Accepted != len(raws) {
			t.Fatalf("ingest: %+v, %v", res, err)
		}
		second := newService(t, st, c, Options{})
		if n := second.CorpusSize(); n != len(raws) {
			t.Fatalf("corpus after restart: %d movies, want %d", n, len(raws))
		}
		c.Advance(time.Minute)
		if _, err := second.Ingest(ctx, []json.RawMessage{movie(990000001, 3.5, 2)}); err != nil {
			t.Fatal(err)
		}
		corpus := map[int64]movieStat{}
		for _, raw := range append(slices.Clip(raws), movie(990000001, 3.5, 2)) { // raws is shared by the parallel subtests
			m, _ := tmdb.ParseMovie(raw)
			corpus[m.ID] = movieStat{m.VoteAverage, m.Popularity}
		}
		got, err := second.GetEntity(ctx, tmdb.GroupStatistical, "990000001", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkRelative(t, "after a restart", bruteForce(corpus, 3.5, 2), got.Features)
		if got.Features["rating_percentile"] == 100.0 || got.Features["rating_zscore"] == 0.0 {
			t.Errorf("scored against itself: %v", got.Features)
		}
	})
}

// TestRefresh: a group created or deleted through another replica is seen
// after Refresh.
func TestRefresh(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newClock()
		a := newService(t, st, c, Options{})
		b := newService(t, st, c, Options{})
		g := feature.Group{Name: "user_stats", EntityKey: "user_id", Features: []feature.Spec{{Name: "clicks", Type: feature.Int64}}}
		if _, created, err := a.PutGroup(ctx, g); err != nil || !created {
			t.Fatalf("PutGroup: created %v, %v", created, err)
		}
		if _, err := b.GetGroup(ctx, g.Name); feature.ErrorCode(err) != feature.CodeNotFound {
			t.Fatalf("replica b saw the group before a refresh: %v", err)
		}
		b.Refresh(ctx)
		if _, err := b.GetGroup(ctx, g.Name); err != nil {
			t.Fatalf("replica b after refresh: %v", err)
		}
		if len(b.ListGroups(ctx)) != 7 {
			t.Errorf("replica b lists %d groups, want 7", len(b.ListGroups(ctx)))
		}
		if err := a.DeleteGroup(ctx, g.Name); err != nil {
			t.Fatal(err)
		}
		b.Refresh(ctx)
		if _, err := b.GetGroup(ctx, g.Name); feature.ErrorCode(err) != feature.CodeNotFound {
			t.Errorf("replica b still has the deleted group: %v", err)
		}
	})
}

// TestRecomputeWritesNothing: the deprecated recompute reports the corpus
// size, records its outcome with the injected clock and writes no row.
func TestRecomputeWritesNothing(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newClock()
		s := newService(t, st, c, Options{})
		if got := s.RecomputeStatus(); got.State != "idle" {
			t.Errorf("initial status %+v, want idle", got)
		}
		if n, err := s.Recompute(ctx, nil); err != nil || n != 0 {
			t.Errorf("recompute of an empty store: %d, %v", n, err)
		}
		const n = 30
		raws := make([]json.RawMessage, n)
		for i := range raws {
			raws[i] = movie(int64(i+1), float64(i%11), float64(i))
		}
		if res, err := s.Ingest(ctx, raws); err != nil || res.Accepted != n {
			t.Fatalf("ingest: accepted %d, %v", res.Accepted, err)
		}
		before := historyRows(t, s)
		c.Advance(time.Minute)
		var calls [][2]int
		got, err := s.Recompute(ctx, func(done, total int) { calls = append(calls, [2]int{done, total}) })
		if err != nil || got != n {
			t.Fatalf("Recompute: %d, %v; want %d", got, err, n)
		}
		if diff := cmp.Diff([][2]int{{n, n}}, calls); diff != "" {
			t.Errorf("progress calls (-want +got):\n%s", diff)
		}
		if err := s.StartRecompute(ctx); err != nil {
			t.Fatal(err)
		}
		status := s.RecomputeStatus()
		start := t0.Add(time.Minute)
		if status.State != "succeeded" || status.Done != n || status.Total != n || status.Error != "" ||
			status.StartedAt == nil || !status.StartedAt.Equal(start) || status.FinishedAt == nil || !status.FinishedAt.Equal(start) {
			t.Errorf("status %+v, want succeeded %d/%d started and finished at %v", status, n, n, start)
		}
		if after := historyRows(t, s); after != before {
			t.Errorf("recompute wrote history rows: %d before, %d after", before, after)
		}
	})
}

// historyRows counts the history rows of every group.
func historyRows(t *testing.T, s *Service) int64 {
	t.Helper()
	st, err := s.st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, g := range st.Groups {
		n += g.Rows
	}
	return n
}

func TestLimits(t *testing.T) {
	t.Parallel()
	st := openEmbedded(t)
	ctx := context.Background()
	s := newService(t, st, newClock(), Options{MaxBatchRecords: 2, MaxEntities: 2})
	if _, err := s.Ingest(ctx, []json.RawMessage{movie(1, 1, 1), movie(2, 1, 1), movie(3, 1, 1)}); feature.ErrorCode(err) != feature.CodeTooLarge {
		t.Errorf("ingest of 3 records with a limit of 2: %v, want too_large", err)
	}
	if res, err := s.Ingest(ctx, []json.RawMessage{movie(1, 1, 1), movie(2, 1, 1)}); err != nil || res.Accepted != 2 {
		t.Errorf("ingest at the limit: %+v, %v", res, err)
	}
	if _, _, err := s.PutGroup(ctx, feature.Group{Name: "limited", EntityKey: "k", Features: []feature.Spec{{Name: "v", Type: feature.Int64}}}); err != nil {
		t.Fatal(err)
	}
	rows := []RowInput{{EntityID: "a", Values: map[string]any{}}, {EntityID: "b", Values: map[string]any{}}, {EntityID: "c", Values: map[string]any{}}}
	if _, err := s.WriteRows(ctx, "limited", rows); feature.ErrorCode(err) != feature.CodeTooLarge {
		t.Errorf("write of 3 rows with a limit of 2: %v, want too_large", err)
	}
	req := OnlineRequest{Entities: map[string][]any{"movie_id": {1, 2, 3}}, Features: []string{"movie_basic:popularity"}}
	if _, err := s.GetOnlineFeatures(ctx, req); feature.ErrorCode(err) != feature.CodeTooLarge {
		t.Errorf("read of 3 entities with a limit of 2: %v, want too_large", err)
	}
	req.Entities["movie_id"] = []any{1, 2}
	if _, err := s.GetOnlineFeatures(ctx, req); err != nil {
		t.Errorf("read at the limit: %v", err)
	}
}

// recorder is an Observer that remembers what it was told.
type recorder struct {
	mu        sync.Mutex
	requests  map[string]int    // "operation group"
	errors    map[string]int    // "operation code"
	statuses  map[string][4]int // group: present, not found, null, outside max age
	written   map[string]int
	ingested  [2]int
	forgotten []string
	timed     map[feature.Operation]int // operation: durations observed
}

func newRecorder() *recorder {
	return &recorder{requests: map[string]int{}, errors: map[string]int{}, statuses: map[string][4]int{}, written: map[string]int{}, timed: map[feature.Operation]int{}}
}

func (r *recorder) ObserveRequest(op feature.Operation, group string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[string(op)+" "+group]++
	r.timed[op]++
}

func (r *recorder) CountRequest(op feature.Operation, group string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests[string(op)+" "+group]++
}

func (r *recorder) Error(op feature.Operation, code feature.Code) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors[string(op)+" "+string(code)]++
}

func (r *recorder) FeaturesWritten(group string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.written[group] += n
}

func (r *recorder) FeatureStatuses(group string, present, notFound, null, old int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.statuses[group]
	r.statuses[group] = [4]int{s[0] + present, s[1] + notFound, s[2] + null, s[3] + old}
}

func (r *recorder) Ingested(accepted, rejected int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ingested[0] += accepted
	r.ingested[1] += rejected
}

func (r *recorder) SetNewestEvent(string, time.Time) {}
func (r *recorder) SetStorageBytes(string, int64)    {}

func (r *recorder) ForgetGroup(group string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgotten = append(r.forgotten, group)
}

func (r *recorder) Recomputed(int, time.Duration, error) {}

// TestObserver: the measurements match what happened, and the group label
// only ever carries registered group names.
func TestObserver(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newClock()
		obs := newRecorder()
		s := newService(t, st, c, Options{Observer: obs})

		res, err := s.Ingest(ctx, []json.RawMessage{movie(1, 7, 3), json.RawMessage(`{"id": 2}`), json.RawMessage(`{"id": 3, "title": "No date"}`)})
		if err != nil || res.Accepted != 2 {
			t.Fatalf("ingest: %+v, %v", res, err)
		}
		if obs.ingested != [2]int{2, 1} {
			t.Errorf("ingested %v, want 2 accepted 1 rejected", obs.ingested)
		}
		for _, g := range tmdb.Groups() {
			want := 2 * len(g.Features)
			if g.Name == tmdb.GroupStatistical { // the corpus-relative features are computed by reads, not written
				want = 2 * (len(g.Features) - len(tmdb.CorpusRelative))
			}
			if obs.written[g.Name] != want {
				t.Errorf("features written to %s: %d, want %d", g.Name, obs.written[g.Name], want)
			}
		}

		// Movie 3 has no release date: all 13 temporal values are null.
		if _, err := s.GetEntity(ctx, tmdb.GroupTemporal, "3", nil, nil); err != nil {
			t.Fatal(err)
		}
		req := OnlineRequest{Entities: map[string][]any{"movie_id": {json.Number("1"), json.Number("3"), json.Number("4")}},
			Features: []string{"movie_temporal:release_year", "movie_basic:popularity", "movie_basic:vote_count"}}
		if _, err := s.GetOnlineFeatures(ctx, req); err != nil {
			t.Fatal(err)
		}
		// The batch read over two groups counts a request for each group but
		// observes one duration.
		if obs.requests["get_online_features movie_temporal"] != 1 || obs.requests["get_online_features movie_basic"] != 1 ||
			obs.timed[feature.OpGetOnlineFeatures] != 1 {
			t.Errorf("get_online_features: requests %v, durations %d; want one request per group and one duration",
				obs.requests, obs.timed[feature.OpGetOnlineFeatures])
		}
		c.Advance(8 * 24 * time.Hour)
		if _, err := s.GetEntity(ctx, tmdb.GroupBasic, "1", []string{"popularity", "adult"}, nil); err != nil {
			t.Fatal(err)
		}
		want := map[string][4]int{
			tmdb.GroupTemporal: {0, 1, 13 + 2, 0},
			tmdb.GroupBasic:    {4, 2, 0, 2},
		}
		if diff := cmp.Diff(want, obs.statuses); diff != "" {
			t.Errorf("feature statuses (-want +got):\n%s", diff)
		}

		// Errors are counted by code; unknown group names never become labels.
		for i := range 3 {
			name := fmt.Sprintf("no_such_group_%d", i)
			if _, err := s.GetEntity(ctx, name, "1", nil, nil); feature.ErrorCode(err) != feature.CodeNotFound {
				t.Fatalf("unknown group: %v", err)
			}
			if _, err := s.WriteRows(ctx, name, []RowInput{{EntityID: "x", Values: map[string]any{}}}); feature.ErrorCode(err) != feature.CodeNotFound {
				t.Fatalf("unknown group: %v", err)
			}
		}
		if _, err := s.GetEntity(ctx, tmdb.GroupBasic, "404", nil, nil); feature.ErrorCode(err) != feature.CodeNotFound {
			t.Fatalf("unknown entity: %v", err)
		}
		for key := range obs.requests {
			_, group, _ := strings.Cut(key, " ")
			if _, ok := s.groups()[group]; group != "" && !ok {
				t.Errorf("request observed with unregistered group label %q", group)
			}
		}
		if obs.errors["get_entity not_found"] != 4 || obs.errors["write_rows not_found"] != 3 {
			t.Errorf("errors %v, want 4 get_entity and 3 write_rows not_found", obs.errors)
		}
		if obs.requests["get_entity movie_basic"] != 2 || obs.requests["get_entity "] != 3 {
			t.Errorf("requests %v", obs.requests)
		}

		g := feature.Group{Name: "temp", EntityKey: "k", Features: []feature.Spec{{Name: "x", Type: feature.Float64}}}
		if _, _, err := s.PutGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteGroup(ctx, "temp"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"temp"}, obs.forgotten); diff != "" {
			t.Errorf("forgotten groups (-want +got):\n%s", diff)
		}
	})
}

// TestIngestValues: what Ingest writes is exactly tmdb's stored features of
// each record at the event time, for every group; a read completes
// movie_statistical with the corpus-relative features.
func TestIngestValues(t *testing.T) {
	t.Parallel()
	raws := realMovies(t)[:10]
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newClock()
		s := newService(t, st, c, Options{})
		res, err := s.Ingest(ctx, raws)
		if err != nil {
			t.Fatal(err)
		}
		if !res.EventTime.Equal(t0) || res.FeaturesWritten != 10*68 {
			t.Errorf("event time %v, features written %d; want %v and %d", res.EventTime, res.FeaturesWritten, t0, 10*68)
		}
		corpus := tmdb.NewCorpus()
		var movies []tmdb.Movie
		for _, raw := range raws {
			m, problems := tmdb.ParseMovie(raw)
			if problems != nil {
				t.Fatal(problems)
			}
			corpus.Set(m.ID, m.VoteAverage, m.Popularity)
			movies = append(movies, m)
		}
		approx := cmp.Comparer(func(a, b float64) bool { return a == b || math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) })
		for _, m := range movies {
			id := strconv.FormatInt(m.ID, 10)
			for group, want := range tmdb.StoredFeatures(m, t0) {
				got := latest(t, s, group, id)
				if got == nil {
					t.Fatalf("%s/%d not written", group, m.ID)
				}
				if diff := cmp.Diff(want, got.Values, approx); diff != "" || !got.EventTime.Equal(t0) {
					t.Errorf("%s/%d at %v (-want +got):\n%s", group, m.ID, got.EventTime, diff)
				}
			}
			got, err := s.GetEntity(ctx, tmdb.GroupStatistical, id, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := tmdb.Features(m, t0, corpus)[tmdb.GroupStatistical]
			if diff := cmp.Diff(map[string]any(want), got.Features, approx); diff != "" {
				t.Errorf("read of %s/%d (-want +got):\n%s", tmdb.GroupStatistical, m.ID, diff)
			}
		}
	})
}
