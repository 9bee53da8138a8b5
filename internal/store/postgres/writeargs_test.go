package postgres

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store/rowjson"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb/synthetic"
)

// TestEncodeWriteLikePgx: the parameters WriteRows encodes itself are the
// bytes pgx's binary encoder writes for the same arrays (sorted by group and
// entity id), times truncated to microseconds as before, before 1970 and
// 2000 too.
func TestEncodeWriteLikePgx(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.UTC)
	times := []time.Time{t0, time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1999, 1, 1, 0, 0, 0, 1000, time.FixedZone("x", 3600)), time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)}
	rows := []feature.Row{
		{Group: "b", EntityID: "2", EventTime: times[0], WriteTime: times[1], Values: feature.Values{"x": int64(1), "s": "é\"\n"}},
		{Group: "a", EntityID: "9", EventTime: times[2], WriteTime: times[3], Values: feature.Values{"x": nil}},
		{Group: "b", EntityID: "10", EventTime: times[3], WriteTime: times[0], Values: feature.Values{"f": 1.5, "b": true}},
		{Group: "a", EntityID: "9", EventTime: times[1], WriteTime: times[2], Values: feature.Values{}},
	}
	a, err := encodeWrite(rows)
	if err != nil {
		t.Fatal(err)
	}
	order := []int{1, 3, 2, 0} // a/9 twice in their order, then b/10 before b/2 (bytes)
	var (
		groups, ids, values []string
		events, writes      []time.Time
	)
	for _, i := range order {
		r := rows[i]
		v, err := rowjson.EncodeRow(nil, i, r)
		if err != nil {
			t.Fatal(err)
		}
		groups, ids, values = append(groups, r.Group), append(ids, r.EntityID), append(values, string(v))
		events, writes = append(events, r.EventTime.Truncate(time.Microsecond)), append(writes, r.WriteTime.Truncate(time.Microsecond))
	}
	m := pgtype.NewMap()
	for i, want := range []struct {
		oid uint32
		v   any
	}{
		{pgtype.TextArrayOID, groups}, {pgtype.TextArrayOID, ids}, {pgtype.TimestamptzArrayOID, events},
		{pgtype.TimestamptzArrayOID, writes}, {pgtype.TextArrayOID, values}, {pgtype.TextArrayOID, []string{"a", "b"}},
	} {
		b, err := m.Encode(want.oid, pgtype.BinaryFormatCode, want.v, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.params[i], b) {
			t.Errorf("parameter $%d:\n got %x\nwant %x", i+1, a.params[i], b)
		}
	}
	if a.distinctKeys {
		t.Error("distinctKeys with a/9 twice")
	}
	if b, err := encodeWrite(rows[:3]); err != nil || !b.distinctKeys {
		t.Errorf("distinct keys: %v, %v", b.distinctKeys, err)
	}
}

// TestEncodeWriteFirstInvalid: with several invalid rows the error names
// the first in the given order, not in the sorted one.
func TestEncodeWriteFirstInvalid(t *testing.T) {
	now := time.Now()
	rows := []feature.Row{
		{Group: "b", EntityID: "1", EventTime: now, WriteTime: now, Values: feature.Values{"x": int64(1)}},
		{Group: "b", EntityID: "2", EventTime: now, WriteTime: now, Values: feature.Values{"x": "a\x00"}},
		{Group: "a", EntityID: "3", EventTime: now, WriteTime: now, Values: feature.Values{"y": "b\x00"}},
	}
	_, err := encodeWrite(rows)
	var fe *feature.Error
	if !errors.As(err, &fe) || len(fe.Fields) != 1 || fe.Fields[0].Field != "rows[1].values.x" {
		t.Errorf("error = %v, want the one of rows[1].values.x", err)
	}
}

// BenchmarkEncodeWrite encodes the parameters of an ingest batch of 1,000
// movies (6,000 rows of the synthetic corpus), as WriteRows does before
// its statement: the Go side of the Postgres write.
func BenchmarkEncodeWrite(b *testing.B) {
	rows, err := synthetic.LoadRows(testenv.TMDBFile(b), 1000, time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := testenv.CPUTime(b)
	for b.Loop() {
		if _, err := encodeWrite(rows); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(testenv.CPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}
