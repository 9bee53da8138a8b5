package service_test

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/service"
)

// appender is a response that appends its own JSON.
type appender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// sameJSON checks that v.AppendJSON writes what encoding/json writes for v
// as the API encodes it (HTML characters unescaped), and that it fails
// wherever encoding/json does (the API then falls back to it).
func sameJSON(t *testing.T, v appender) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	stdErr := enc.Encode(v)
	got, err := v.AppendJSON([]byte("prefix"))
	switch {
	case stdErr != nil && err == nil:
		t.Errorf("encoding/json refuses %#v (%v), AppendJSON wrote %s", v, stdErr, got)
	case stdErr == nil && err != nil:
		t.Errorf("AppendJSON: %v; encoding/json writes %s", err, buf.Bytes())
	case stdErr == nil && string(got) != "prefix"+string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))):
		t.Errorf("AppendJSON differs from encoding/json:\n got %s\nwant prefix%s", got, buf.Bytes())
	}
}

var epoch = time.Unix(0, 0).UTC()

// onlineResponse is a response of an entity column and three feature
// columns, with the tricky values in several places: the same timestamps
// shared across columns, one changed in the middle, nil slices and values.
func onlineResponse(s string, f float64, i int64, tm time.Time, meta bool) service.OnlineResponse {
	var r service.OnlineResponse
	r.Metadata.FeatureNames = []string{"movie_id", s, "b__" + s, "n"}
	if meta {
		r.Metadata.FeatureViewMetadata = []service.FeatureViewMetadata{{Name: s, Version: 3}, {Name: "b", Version: 1}}
	}
	other := tm.Add(time.Nanosecond)
	r.Results = []service.OnlineColumn{
		{Values: []any{json.Number("550"), s, json.Number("-1")}, Statuses: []string{"PRESENT", "PRESENT", "PRESENT"},
			EventTimestamps: []time.Time{epoch, epoch, epoch}},
		{Values: []any{s, nil, ""}, Statuses: []string{"PRESENT", "NOT_FOUND", s}, EventTimestamps: []time.Time{tm, epoch, tm}},
		{Values: []any{f, i, true}, Statuses: []string{"PRESENT", "NULL_VALUE", "OUTSIDE_MAX_AGE"}, EventTimestamps: []time.Time{tm, tm, other}},
		{Values: []any{false, -f, nil}, Statuses: nil, EventTimestamps: []time.Time{other, tm, other}},
		{Values: nil, Statuses: []string{}, EventTimestamps: nil},
		{Values: []any{}, Statuses: []string{}, EventTimestamps: []time.Time{}},
	}
	return r
}

func entityResult(s string, f float64, i int64, tm time.Time, asOf bool) service.EntityResult {
	r := service.EntityResult{Group: "movie_basic", EntityKey: "movie_id", EntityID: s, EventTime: tm, WriteTime: tm.Add(time.Second),
		Features: map[string]any{"z": f, "a": i, s: s, "n": nil, "b": true, "A": false, "é": -f},
		Statuses: map[string]string{"z": "PRESENT", "a": "PRESENT", s: s, "n": "NULL_VALUE", "b": "PRESENT", "A": "PRESENT", "é": "x"}}
	if asOf {
		at := tm.Add(-time.Hour)
		r.AsOf = &at
	}
	return r
}

// tricky are values that encoding/json writes in its own way.
var tricky = []struct {
	s  string
	f  float64
	i  int64
	tm time.Time
}{
	{"plain", 1.5, 550, time.Date(2025, 6, 5, 2, 24, 12, 0, time.UTC)},
	{"<b>&amp;</b> \"q\" \\", 1e21, math.MaxInt64, time.Date(2025, 6, 5, 2, 24, 12, 123456789, time.UTC)},
	{"日本語 🎬 é\u2028\u2029", 1e-7, math.MinInt64, time.Date(2025, 6, 5, 2, 24, 12, 120000000, time.FixedZone("", 5*3600+1800))},
	{"ctl \x00\x01\t\n\r\b\f\x7f", math.Copysign(0, -1), 0, time.Date(1999, 1, 1, 0, 0, 0, 1, time.FixedZone("X", -3*3600-20))},
	{"bad \xff\xc3 utf8", 123456789.125, -1, time.Unix(0, 0).UTC()},
	{"", 0.1 + 0.2, 1 << 53, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, // a year encoding/json refuses
	{"nan", math.NaN(), 1, time.Date(2025, 6, 5, 2, 24, 12, 0, time.UTC)},  // a value encoding/json refuses
	{"now", 9007199254740993, 2, time.Now()},                               // a monotonic reading
}

func TestOnlineResponseJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, c := range tricky {
		sameJSON(t, onlineResponse(c.s, c.f, c.i, c.tm, false))
		sameJSON(t, onlineResponse(c.s, c.f, c.i, c.tm, true))
	}
	sameJSON(t, service.OnlineResponse{})
}

func TestEntityResultJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, c := range tricky {
		sameJSON(t, entityResult(c.s, c.f, c.i, c.tm, false))
		sameJSON(t, entityResult(c.s, c.f, c.i, c.tm, true))
	}
	sameJSON(t, service.EntityResult{})
}

// FuzzReadResponseJSON: the read responses' own encoding equals
// encoding/json's for any string, number and time in any fixed zone.
func FuzzReadResponseJSON(f *testing.F) {
	for _, c := range tricky {
		_, off := c.tm.Zone()
		f.Add(c.s, c.f, c.i, c.tm.Unix(), int64(c.tm.Nanosecond()), int32(off), true)
	}
	f.Fuzz(func(t *testing.T, s string, x float64, i, sec, nsec int64, offset int32, flag bool) {
		tm := time.Unix(sec, nsec).In(time.FixedZone("", int(offset%(26*3600))))
		sameJSON(t, onlineResponse(s, x, i, tm, flag))
		sameJSON(t, entityResult(s, x, i, tm, flag))
	})
}

// sharedColumns is onlineResponse with columns sharing their timestamp and
// status slices, as the columns of one group do in the service's answers:
// the same slice, a shorter one with the same first element, and one
// starting further in.
func sharedColumns(s string, f float64, i int64, tm time.Time, meta bool) service.OnlineResponse {
	r := onlineResponse(s, f, i, tm, meta)
	times := []time.Time{tm, epoch, tm.Add(time.Nanosecond)}
	statuses := []string{"PRESENT", "NOT_FOUND", s}
	r.Results[1].EventTimestamps, r.Results[1].Statuses = times, statuses
	r.Results[2].EventTimestamps, r.Results[2].Statuses = times, statuses
	r.Results[3].EventTimestamps, r.Results[3].Statuses = times[:2], statuses[:2]
	r.Results[4].EventTimestamps, r.Results[4].Statuses = times[1:], statuses[1:]
	r.Results[5].EventTimestamps, r.Results[5].Statuses = times, statuses
	return r
}

func TestSharedColumnsJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, c := range tricky {
		sameJSON(t, sharedColumns(c.s, c.f, c.i, c.tm, false))
		sameJSON(t, sharedColumns(c.s, c.f, c.i, c.tm, true))
	}
}

// entityView is entityResult as a view: its features in name order.
func entityView(r service.EntityResult) service.EntityView {
	v := service.EntityView{Group: r.Group, EntityKey: r.EntityKey, EntityID: r.EntityID, AsOf: r.AsOf,
		EventTime: r.EventTime, WriteTime: r.WriteTime}
	for n := range r.Features {
		v.Names = append(v.Names, n)
	}
	slices.Sort(v.Names)
	for _, n := range v.Names {
		v.Values, v.Statuses = append(v.Values, r.Features[n]), append(v.Statuses, r.Statuses[n])
	}
	return v
}

// The view writes the bytes of its Result, which encoding/json writes.
func TestEntityViewJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, c := range tricky {
		for _, asOf := range []bool{false, true} {
			r := entityResult(c.s, c.f, c.i, c.tm, asOf)
			v := entityView(r)
			sameJSON(t, v)
			want, wantErr := r.AppendJSON(nil)
			got, err := v.AppendJSON(nil)
			if (err == nil) != (wantErr == nil) || (err == nil && string(got) != string(want)) {
				t.Errorf("view %s (%v), result %s (%v)", got, err, want, wantErr)
			}
		}
	}
	sameJSON(t, service.EntityView{})
}
