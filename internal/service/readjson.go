package service

import (
	"slices"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/jsonappend"
)

// The read responses are the hot path: they append their JSON themselves,
// byte for byte what encoding/json writes for them (the tests compare the
// two), without reflection, and with each distinct timestamp of a batch
// formatted once. An error means a value encoding/json would refuse or
// that jsonappend does not know; the caller then encodes with
// encoding/json, which answers as it always did.

// AppendJSON appends the response's JSON (no trailing newline) to b.
func (resp OnlineResponse) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"metadata":{"feature_names":`...)
	b = appendStrings(b, resp.Metadata.FeatureNames)
	if len(resp.Metadata.FeatureViewMetadata) > 0 {
		b = append(b, `,"feature_view_metadata":[`...)
		for i, m := range resp.Metadata.FeatureViewMetadata {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = jsonappend.String(b, m.Name)
			b = append(b, `,"version":`...)
			b, _ = jsonappend.Value(b, m.Version) // an int: never fails
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `},"results":`...)
	if resp.Results == nil {
		return append(b, "null}"...), nil
	}
	b = append(b, '[')
	var buf [8]writtenTime
	ts := columnTimes{last: buf[:0]} // on the stack for a small batch
	for i, col := range resp.Results {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = col.appendJSON(b, &ts); err != nil {
			return b, err
		}
	}
	return append(b, "]}"...), nil
}

// columnTimes writes the timestamp and status columns of a response. The
// columns of one group share their timestamp slice, and mostly their
// status slice (assembleOnline), so a column whose slice was written before
// is a copy of those bytes; otherwise timestamps formats it, reusing the
// previous column's equal times.
type columnTimes struct {
	last timestamps
	// The slices written, the first few (enough for a response's groups;
	// past them, a slice is written again): arrays, so that they stay on
	// the stack.
	done      [8]written[time.Time]
	nDone     int
	statuses  [8]written[string]
	nStatuses int
}

// written is a column (its first element and length) and where its JSON
// is in the output: [start, end).
type written[T any] struct {
	first      *T
	n          int
	start, end int
}

// writtenBefore returns the output range of col if it was written before.
func writtenBefore[T any](done []written[T], col []T) (start, end int, ok bool) {
	if len(col) == 0 {
		return 0, 0, false
	}
	for _, w := range done {
		if w.first == &col[0] && w.n == len(col) {
			return w.start, w.end, true
		}
	}
	return 0, 0, false
}

func (ct *columnTimes) appendColumn(b []byte, col []time.Time) ([]byte, error) {
	if start, end, ok := writtenBefore(ct.done[:ct.nDone], col); ok {
		return append(b, b[start:end]...), nil
	}
	start := len(b)
	b, err := ct.last.appendColumn(b, col)
	if err == nil && len(col) > 0 && ct.nDone < len(ct.done) {
		ct.done[ct.nDone] = written[time.Time]{&col[0], len(col), start, len(b)}
		ct.nDone++
	}
	return b, err
}

func (ct *columnTimes) appendStatuses(b []byte, col []string) []byte {
	if start, end, ok := writtenBefore(ct.statuses[:ct.nStatuses], col); ok {
		return append(b, b[start:end]...)
	}
	start := len(b)
	if col == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range col {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStatus(b, s)
		}
		b = append(b, ']')
	}
	if len(col) > 0 && ct.nStatuses < len(ct.statuses) {
		ct.statuses[ct.nStatuses] = written[string]{&col[0], len(col), start, len(b)}
		ct.nStatuses++
	}
	return b
}

func (col OnlineColumn) appendJSON(b []byte, ts *columnTimes) ([]byte, error) {
	b = append(b, `{"values":`...)
	b, err := appendValues(b, col.Values)
	if err != nil {
		return b, err
	}
	b = append(b, `,"statuses":`...)
	b = ts.appendStatuses(b, col.Statuses)
	b = append(b, `,"event_timestamps":`...)
	if b, err = ts.appendColumn(b, col.EventTimestamps); err != nil {
		return b, err
	}
	return append(b, '}'), nil
}

// timestamps remembers where in the output the previous column's i-th
// timestamp was written: the columns of one group share their rows' event
// times, so most timestamps are copies of the one just above them.
type timestamps []writtenTime

// writtenTime is a time and where its JSON is in the output: [start, end).
type writtenTime struct {
	t          time.Time
	start, end int
}

func (ts *timestamps) appendColumn(b []byte, col []time.Time) ([]byte, error) {
	if col == nil {
		return append(b, "null"...), nil
	}
	if len(*ts) != len(col) {
		if cap(*ts) >= len(col) {
			*ts = (*ts)[:len(col)]
		} else {
			*ts = make(timestamps, len(col))
		}
		for i := range *ts {
			(*ts)[i].start = -1
		}
	}
	b = append(b, '[')
	for i, t := range col {
		if i > 0 {
			b = append(b, ',')
		}
		start := len(b)
		// Equal as values (wall clock, monotonic reading and location):
		// the same time in the same zone, so the same text.
		if w := (*ts)[i]; w.start >= 0 && t == w.t {
			b = append(b, b[w.start:w.end]...)
		} else {
			var err error
			if b, err = appendTime(b, t); err != nil {
				return b, err
			}
		}
		(*ts)[i] = writtenTime{t, start, len(b)}
	}
	return append(b, ']'), nil
}

// epochJSON is the entity column's timestamp.
var epochJSON = `"1970-01-01T00:00:00Z"`

func appendTime(b []byte, t time.Time) ([]byte, error) {
	if t == epoch {
		return append(b, epochJSON...), nil
	}
	return jsonappend.Time(b, t)
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonappend.String(b, s)
	}
	return append(b, ']')
}

func appendValues(b []byte, vs []any) ([]byte, error) {
	if vs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = jsonappend.Value(b, v); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// AppendJSON appends the result's JSON (no trailing newline) to b.
func (res EntityResult) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"feature_group":`...)
	b = jsonappend.String(b, res.Group)
	b = append(b, `,"entity_key":`...)
	b = jsonappend.String(b, res.EntityKey)
	b = append(b, `,"entity_id":`...)
	b = jsonappend.String(b, res.EntityID)
	var err error
	if res.AsOf != nil {
		b = append(b, `,"as_of":`...)
		if b, err = jsonappend.Time(b, *res.AsOf); err != nil {
			return b, err
		}
	}
	b = append(b, `,"event_time":`...)
	if b, err = jsonappend.Time(b, res.EventTime); err != nil {
		return b, err
	}
	b = append(b, `,"write_time":`...)
	if b, err = jsonappend.Time(b, res.WriteTime); err != nil {
		return b, err
	}
	b = append(b, `,"features":`...)
	if b, err = appendMap(b, res.Features, jsonappend.Value); err != nil {
		return b, err
	}
	b = append(b, `,"statuses":`...)
	b, _ = appendMap(b, res.Statuses, func(b []byte, s string) ([]byte, error) { return jsonappend.String(b, s), nil })
	return append(b, '}'), nil
}

// appendMap appends m as a JSON object with its keys sorted, as
// encoding/json does.
func appendMap[V any](b []byte, m map[string]V, value func([]byte, V) ([]byte, error)) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	var buf [64]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonappend.String(b, k)
		b = append(b, ':')
		var err error
		if b, err = value(b, m[k]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// AppendJSON appends the view's JSON (no trailing newline) to b: the bytes
// of its Result's AppendJSON, written from the lists without maps or
// sorting.
func (v EntityView) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"feature_group":`...)
	b = jsonappend.String(b, v.Group)
	b = append(b, `,"entity_key":`...)
	b = jsonappend.String(b, v.EntityKey)
	b = append(b, `,"entity_id":`...)
	b = jsonappend.String(b, v.EntityID)
	var err error
	if v.AsOf != nil {
		b = append(b, `,"as_of":`...)
		if b, err = jsonappend.Time(b, *v.AsOf); err != nil {
			return b, err
		}
	}
	b = append(b, `,"event_time":`...)
	if b, err = jsonappend.Time(b, v.EventTime); err != nil {
		return b, err
	}
	b = append(b, `,"write_time":`...)
	if b, err = jsonappend.Time(b, v.WriteTime); err != nil {
		return b, err
	}
	b = append(b, `,"features":{`...)
	for i := range v.Names {
		if i > 0 {
			b = append(b, ',')
		}
		b = v.appendKey(b, i)
		if b, err = jsonappend.Value(b, v.Values[i]); err != nil {
			return b, err
		}
	}
	b = append(b, `},"statuses":{`...)
	for i := range v.Names {
		if i > 0 {
			b = append(b, ',')
		}
		b = v.appendKey(b, i)
		b = appendStatus(b, v.Statuses[i])
	}
	return append(b, "}}"...), nil
}

// appendKey appends Names[i] as an object key, "name": (pre-encoded by
// GetEntityView).
func (v EntityView) appendKey(b []byte, i int) []byte {
	if len(v.keysJSON) == len(v.Names) {
		return append(b, v.keysJSON[i]...)
	}
	return append(jsonappend.String(b, v.Names[i]), ':')
}

// appendStatus appends a status string: the four Feast statuses are
// written as they are (they need no escaping).
func appendStatus(b []byte, s string) []byte {
	switch s {
	case feature.StatusPresent, feature.StatusNotFound, feature.StatusNullValue, feature.StatusOutsideMaxAge:
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	return jsonappend.String(b, s)
}
