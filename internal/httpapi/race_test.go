package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNoStaleReads races writers of increasing event times against readers
// of the same few entities, through the rows API, GET entity and
// /get-online-features. Once a write is acknowledged, no read that starts
// afterwards may see an older row, and no reader may see a row older than
// one it has already seen; at the end every entity reads its newest row.
func TestNoStaleReads(t *testing.T) {
	t.Parallel()
	const (
		entities        = 3
		writers         = 4
		writesPerWriter = 40
		readers         = 3
	)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	forEachBackend(t, func(t *testing.T, e *env) {
		e.putGroup(t, "counters", `{"entity_key": "counter_id", "features": [{"name": "seq", "type": "int64"}]}`)
		var (
			next   [entities]atomic.Int64 // the last sequence number handed out per entity
			acked  [entities]atomic.Int64 // the newest acknowledged sequence number per entity
			failed atomic.Bool
		)
		fail := func(format string, args ...any) {
			if failed.CompareAndSwap(false, true) {
				t.Errorf(format, args...)
			}
		}
		id := func(ent int) string { return fmt.Sprintf("c%d", ent) }

		// read returns the entity's seq as served (0: not found) through
		// GET entity (online false) or /get-online-features.
		read := func(ent int, online bool) (int64, bool) {
			var rec *httptest.ResponseRecorder
			if online {
				rec = e.do("POST", "/get-online-features", fmt.Sprintf(`{"entities": {"counter_id": [%q]}, "features": ["counters:seq"]}`, id(ent)))
			} else {
				rec = e.do("GET", "/v1/feature-groups/counters/entities/"+id(ent), "")
			}
			raw, code := rec.Body.Bytes(), rec.Code
			switch {
			case !online && code == http.StatusNotFound:
				return 0, true
			case code != http.StatusOK:
				fail("read %s (online %v): status %d: %s", id(ent), online, code, raw)
				return 0, false
			}
			var seq *int64
			if online {
				var resp struct {
					Results []struct{ Values []json.RawMessage }
				}
				err := json.Unmarshal(raw, &resp)
				if err == nil && (len(resp.Results) != 2 || len(resp.Results[1].Values) != 1) {
					err = fmt.Errorf("not one column of one value")
				}
				if err == nil {
					err = json.Unmarshal(resp.Results[1].Values[0], &seq)
				}
				if err != nil {
					fail("online read %s: %v: %s", id(ent), err, raw)
					return 0, false
				}
			} else {
				var resp struct{ Features struct{ Seq *int64 } }
				if err := json.Unmarshal(raw, &resp); err != nil || resp.Features.Seq == nil {
					fail("entity read %s: %v: %s", id(ent), err, raw)
					return 0, false
				}
				seq = resp.Features.Seq
			}
			if seq == nil {
				return 0, true
			}
			return *seq, true
		}

		// observe reads an entity and checks it against the newest
		// acknowledged write (taken before the read starts) and against the
		// newest row this goroutine has seen.
		observe := func(ent int, online bool, seen *[entities]int64) {
			floor := max(acked[ent].Load(), seen[ent])
			got, ok := read(ent, online)
			if !ok {
				return
			}
			if got < floor {
				fail("stale read of %s (online %v): seq %d after %d was acknowledged or seen", id(ent), online, got, floor)
			}
			seen[ent] = max(seen[ent], got)
		}

		var writersWG, readersWG sync.WaitGroup
		done := make(chan struct{})
		for w := range writers {
			writersWG.Add(1)
			go func() {
				defer writersWG.Done()
				var seen [entities]int64
				for i := range writesPerWriter {
					if failed.Load() {
						return
					}
					ent := (w + i) % entities
					seq := next[ent].Add(1)
					rec := e.do("POST", "/v1/feature-groups/counters/rows", fmt.Sprintf(
						`[{"entity_id": %q, "event_time": %q, "values": {"seq": %d}}]`,
						id(ent), base.Add(time.Duration(seq)*time.Millisecond).Format(time.RFC3339Nano), seq))
					if rec.Code != http.StatusOK {
						fail("write %s seq %d: status %d: %s", id(ent), seq, rec.Code, rec.Body)
						return
					}
					for cur := acked[ent].Load(); cur < seq && !acked[ent].CompareAndSwap(cur, seq); cur = acked[ent].Load() {
					}
					seen[ent] = max(seen[ent], seq)
					observe(ent, i%2 == 0, &seen)
					observe(ent, i%2 == 1, &seen)
				}
			}()
		}
		for r := range readers {
			readersWG.Add(1)
			go func() {
				defer readersWG.Done()
				var seen [entities]int64
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					if failed.Load() {
						return
					}
					observe((r+i)%entities, i%2 == 0, &seen)
				}
			}()
		}
		writersWG.Wait()
		close(done)
		readersWG.Wait()

		for ent := range entities {
			want := next[ent].Load()
			for _, online := range []bool{false, true} {
				if got, _ := read(ent, online); got != want {
					t.Errorf("%s (online %v) finally reads seq %d, want the newest %d", id(ent), online, got, want)
				}
			}
		}
	})
}
