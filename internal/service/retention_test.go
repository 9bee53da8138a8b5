package service

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/sqlite"
)

type pruneRecorder struct {
	mu      sync.Mutex
	rows    int64
	passes  int
	skipped int
	errs    int
}

func (r *pruneRecorder) HistoryPruned(rows int64, skipped bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows += rows
	r.passes++
	if skipped {
		r.skipped++
	}
	if err != nil {
		r.errs++
	}
}

// TestRetention: a group's own retention or the service default decides
// both which as-of reads are refused (by the clock, before any pruning) and
// what a pruning pass deletes; a group with retention 0 keeps everything.
func TestRetention(t *testing.T) {
	t.Parallel()
	lite, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.Options{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	st := cache.Wrap(lite, cache.NewMemory(cache.MemoryOptions{}), cache.WrapOptions{})
	t.Cleanup(func() { st.Close() })
	clock := newClock()
	s := newService(t, st, clock, Options{HistoryRetention: 2 * time.Hour})

	keep := feature.Duration(0)
	short := feature.Duration(30 * time.Minute)
	for _, g := range []feature.Group{
		{Name: "dflt", EntityKey: "user_id", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}},
		{Name: "forever", EntityKey: "user_id", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}, HistoryRetention: &keep},
		{Name: "short", EntityKey: "user_id", Features: []feature.Spec{{Name: "x", Type: feature.Int64}}, HistoryRetention: &short},
	} {
		if _, _, err := s.PutGroup(t.Context(), g); err != nil {
			t.Fatalf("PutGroup(%s): %v", g.Name, err)
		}
		var rows []RowInput
		for h := range 5 { // one row an hour, t0-4h ... t0
			et := t0.Add(time.Duration(h-4) * time.Hour)
			rows = append(rows, RowInput{EntityID: "u1", EventTime: &et, Values: map[string]any{"x": int64(h)}})
		}
		if _, err := s.WriteRows(t.Context(), g.Name, rows); err != nil {
			t.Fatalf("WriteRows(%s): %v", g.Name, err)
		}
	}
	asOf := func(group string, at time.Time) (any, error) {
		res, err := s.GetEntity(t.Context(), group, "u1", nil, &at)
		return res.Features["x"], err
	}
	check := func(stage string) {
		t.Helper()
		for _, c := range []struct {
			group string
			at    time.Time
			want  any // an int64, or the error code
		}{
			{"dflt", t0.Add(-150 * time.Minute), feature.CodeHistoryExpired},
			{"dflt", t0.Add(-90 * time.Minute), int64(2)},
			{"short", t0.Add(-40 * time.Minute), feature.CodeHistoryExpired},
			{"short", t0.Add(-20 * time.Minute), int64(3)},
			{"forever", t0.Add(-210 * time.Minute), int64(0)},
		} {
			got, err := asOf(c.group, c.at)
			if code, ok := c.want.(feature.Code); ok {
				if feature.ErrorCode(err) != code {
					t.Errorf("%s: as of %v in %s = %v, %v; want %s", stage, c.at, c.group, got, err, code)
				}
				continue
			}
			if err != nil || got != c.want {
				t.Errorf("%s: as of %v in %s = %v, %v; want %v", stage, c.at, c.group, got, err, c.want)
			}
		}
	}
	check("before pruning")

	obs := &pruneRecorder{}
	r := NewRetention(lite, s.Groups, RetentionOptions{Default: 2 * time.Hour, Now: clock.Now, Observer: obs, BatchSize: 1})
	res, err := r.Prune(t.Context())
	// dflt: horizon t0-2h, rows at -4h and -3h superseded by -2h; short:
	// horizon t0-30m, rows at -4h..-2h superseded by -1h.
	if err != nil || res.Rows != 2+3 {
		t.Fatalf("Prune = %+v, %v; want 5 rows", res, err)
	}
	if obs.rows != 5 || obs.passes != 1 || obs.errs != 0 {
		t.Errorf("observer saw %+v", obs)
	}
	check("after pruning")
	st2, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]int64{}
	for _, g := range st2.Groups {
		rows[g.Group] = g.Rows
	}
	if rows["dflt"] != 3 || rows["short"] != 2 || rows["forever"] != 5 {
		t.Errorf("history rows after pruning = %v, want dflt 3, short 2, forever 5", rows)
	}

	// Retention is evaluated on the service's clock: an hour later, the
	// default group refuses an hour more.
	clock.Advance(time.Hour)
	if _, err := asOf("dflt", t0.Add(-90*time.Minute)); feature.ErrorCode(err) != feature.CodeHistoryExpired {
		t.Errorf("an hour later, as of t0-90m = %v; want history_expired", err)
	}
}

// TestRetentionHorizons: only groups with a positive effective retention
// get a horizon.
func TestRetentionHorizons(t *testing.T) {
	t.Parallel()
	zero, day := feature.Duration(0), feature.Duration(24*time.Hour)
	groups := []feature.Group{{Name: "a"}, {Name: "b", HistoryRetention: &zero}, {Name: "c", HistoryRetention: &day}}
	now := t0
	for _, c := range []struct {
		def  time.Duration
		want []store.Horizon
	}{
		{0, []store.Horizon{{Group: "c", Before: now.Add(-24 * time.Hour)}}},
		{time.Hour, []store.Horizon{{Group: "a", Before: now.Add(-time.Hour)}, {Group: "c", Before: now.Add(-24 * time.Hour)}}},
	} {
		r := NewRetention(nil, func() []feature.Group { return groups }, RetentionOptions{Default: c.def})
		got := r.Horizons(now)
		if len(got) != len(c.want) {
			t.Fatalf("default %v: horizons %v, want %v", c.def, got, c.want)
		}
		for i := range got {
			if got[i].Group != c.want[i].Group || !got[i].Before.Equal(c.want[i].Before) {
				t.Errorf("default %v: horizon %d = %v, want %v", c.def, i, got[i], c.want[i])
			}
		}
	}
}
