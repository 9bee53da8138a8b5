package export

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/parquet-go/parquet-go"
)

var cols = []Column{
	{Name: "movie_id", Type: Int64, NotNull: true},
	{Name: "event_timestamp", Type: Timestamp, NotNull: true},
	{Name: "movie_basic__popularity", Type: Float64},
	{Name: "movie_basic__adult", Type: Bool},
	{Name: "movie_text__title", Type: String},
	{Name: "movie_basic__vote_count", Type: Int64},
}

var t1 = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// table has every type, nulls, extremes and strings that need quoting in
// CSV and escaping in JSON.
func table(n int) [][]any {
	rows := [][]any{
		{int64(550), t1, 61.416, false, "Fight Club", int64(29000)},
		{int64(550), t1.Add(123456 * time.Microsecond), nil, nil, nil, nil},
		{int64(math.MaxInt64), t1.Add(-time.Hour), math.MaxFloat64, true, "기생충, \"Parasite\"\nline 2 \\ \u2028", int64(math.MinInt64)},
		{int64(-1), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), 3.0, true, "", int64(0)},
		{int64(7), t1, 1e-7, false, "<&>", int64(1)},
		{int64(8), t1, 1234567.5, false, "null", int64(2)},
	}
	for i := len(rows); i < n; i++ {
		rows = append(rows, []any{int64(i), t1.Add(time.Duration(i) * time.Second), float64(i) / 4, i%2 == 0, fmt.Sprintf("title %d", i), int64(i * 3)})
	}
	return rows
}

func write(t *testing.T, f Format, rows [][]any, opts Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := New(f, &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Begin(cols); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	for i, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatalf("Write row %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

func TestCSVRoundTrip(t *testing.T) {
	rows := table(2500)
	flushes := 0
	b := write(t, CSV, rows, Options{FlushEvery: 1000, Flush: func() error { flushes++; return nil }})
	records, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("read CSV back: %v", err)
	}
	want := [][]string{{"movie_id", "event_timestamp", "movie_basic__popularity", "movie_basic__adult", "movie_text__title", "movie_basic__vote_count"}}
	for _, r := range rows {
		want = append(want, []string{
			fmt.Sprint(r[0]), r[1].(time.Time).Format(time.RFC3339Nano), csvFloat(r[2]), csvString(r[3]), csvString(r[4]), csvString(r[5]),
		})
	}
	if diff := cmp.Diff(want[:7], records[:7]); diff != "" {
		t.Errorf("CSV (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, records); diff != "" {
		t.Errorf("CSV differs beyond the first rows")
	}
	if !strings.HasPrefix(string(b), "movie_id,event_timestamp,movie_basic__popularity,") {
		t.Errorf("header line = %q", strings.SplitN(string(b), "\n", 2)[0])
	}
	if strings.Contains(string(b), "2025-06-01T00:00:00.123456Z") == false {
		t.Errorf("fractional timestamp not written with microseconds")
	}
	if flushes != 3 { // after rows 1000 and 2000, and on Close
		t.Errorf("Flush called %d times, want 3", flushes)
	}
}

func csvFloat(v any) string {
	switch v {
	case nil:
		return ""
	case math.MaxFloat64:
		return "1.7976931348623157e+308"
	case 3.0:
		return "3"
	case 1e-7:
		return "1e-7"
	case 1234567.5:
		return "1234567.5"
	}
	return fmt.Sprint(v)
}

func csvString(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func TestJSONLinesRoundTrip(t *testing.T) {
	rows := table(1200)
	flushes := 0
	b := write(t, JSONLines, rows, Options{FlushEvery: 500, Flush: func() error { flushes++; return nil }})
	sc := bufio.NewScanner(bytes.NewReader(b))
	i := 0
	for sc.Scan() {
		line := sc.Bytes()
		// Keys come in column order.
		var keys []string
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.UseNumber()
		if _, err := dec.Token(); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		got := map[string]any{}
		for dec.More() {
			k, _ := dec.Token()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("line %d: %v: %s", i, err, line)
			}
			keys = append(keys, k.(string))
			got[k.(string)] = v
		}
		if i == 0 {
			want := []string{"movie_id", "event_timestamp", "movie_basic__popularity", "movie_basic__adult", "movie_text__title", "movie_basic__vote_count"}
			if diff := cmp.Diff(want, keys); diff != "" {
				t.Errorf("key order (-want +got):\n%s", diff)
			}
		}
		want := map[string]any{}
		for c, v := range rows[i] {
			want[cols[c].Name] = jsonOf(v)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", i, diff)
		}
		i++
	}
	if i != len(rows) {
		t.Errorf("%d lines, want %d", i, len(rows))
	}
	if flushes != 3 {
		t.Errorf("Flush called %d times, want 3", flushes)
	}
}

// jsonOf is what a JSON decoder with UseNumber gives back for v.
func jsonOf(v any) any {
	switch x := v.(type) {
	case int64:
		return json.Number(fmt.Sprint(x))
	case float64:
		b, _ := json.Marshal(x)
		return json.Number(b)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

func TestParquetRoundTrip(t *testing.T) {
	rows := table(700)
	flushes := 0
	b := write(t, Parquet, rows, Options{RowGroupRows: 300, Flush: func() error { flushes++; return nil }})
	f, err := parquet.OpenFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("open parquet: %v", err)
	}
	if n := len(f.RowGroups()); n != 3 {
		t.Errorf("%d row groups, want 3 (300, 300, 100 rows)", n)
	}
	if flushes != 3 { // two full row groups, then Close
		t.Errorf("Flush called %d times, want 3", flushes)
	}
	fields := f.Schema().Fields()
	var names []string
	for i, fd := range fields {
		names = append(names, fd.Name())
		if fd.Optional() == cols[i].NotNull {
			t.Errorf("column %s optional=%v, want %v", fd.Name(), fd.Optional(), !cols[i].NotNull)
		}
	}
	if diff := cmp.Diff([]string{"movie_id", "event_timestamp", "movie_basic__popularity", "movie_basic__adult", "movie_text__title", "movie_basic__vote_count"}, names); diff != "" {
		t.Errorf("column order (-want +got):\n%s", diff)
	}
	for i, want := range []string{"INT(64,true)", "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", "", "", "STRING", "INT(64,true)"} {
		got := ""
		if lt := fields[i].Type().LogicalType(); lt != nil {
			got = lt.String()
		}
		if got != want {
			t.Errorf("column %s: logical type %q, want %q", fields[i].Name(), got, want)
		}
	}
	for i, want := range []string{"INT64", "INT64", "DOUBLE", "BOOLEAN", "BYTE_ARRAY", "INT64"} {
		if got := fields[i].Type().Kind().String(); got != want {
			t.Errorf("column %s: physical type %q, want %q", fields[i].Name(), got, want)
		}
	}

	r := parquet.NewReader(f)
	defer r.Close()
	got := make([]parquet.Row, 0, len(rows))
	buf := make([]parquet.Row, 64)
	for {
		n, err := r.ReadRows(buf)
		for _, row := range buf[:n] {
			got = append(got, row.Clone())
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("ReadRows: %v", err)
		}
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, want %d", len(got), len(rows))
	}
	for i, row := range got {
		if diff := cmp.Diff(rows[i], fromParquet(row)); diff != "" {
			t.Errorf("row %d (-want +got):\n%s", i, diff)
		}
	}
}

// fromParquet converts a row read back to the values written.
func fromParquet(row parquet.Row) []any {
	out := make([]any, len(row))
	for i, v := range row {
		if v.IsNull() {
			continue
		}
		switch cols[i].Type {
		case Int64:
			out[i] = v.Int64()
		case Timestamp:
			out[i] = time.UnixMicro(v.Int64()).UTC()
		case Float64:
			out[i] = v.Double()
		case Bool:
			out[i] = v.Boolean()
		case String:
			out[i] = string(v.ByteArray())
		}
	}
	return out
}

func TestWriterRejects(t *testing.T) {
	for _, f := range Formats() {
		t.Run(string(f), func(t *testing.T) {
			w, err := New(f, io.Discard, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Write([]any{int64(1)}); err == nil {
				t.Error("Write before Begin succeeded")
			}
			if err := w.Begin([]Column{{Name: "a", Type: Int64}, {Name: "a", Type: String}}); err == nil {
				t.Error("Begin with a repeated column name succeeded")
			}
			if err := w.Begin(cols); err != nil {
				t.Fatal(err)
			}
			bad := [][]any{
				{"550", t1, nil, nil, nil, nil},           // string in an int64 column
				{int64(1), nil, nil, nil, nil, nil},       // null in a NotNull column
				{int64(1), t1, int64(3), nil, nil, nil},   // int64 in a float64 column
				{int64(1), t1, nil, nil, nil, "1"},        // string in an int64 column
				{int64(1), t1.Unix(), nil, nil, nil, nil}, // int64 in a timestamp column
			}
			for i, row := range bad {
				if err := w.Write(row); err == nil {
					t.Errorf("bad row %d accepted", i)
				}
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept string
		want   Format
		ok     bool
	}{
		{"", CSV, true},
		{"*/*", CSV, true},
		{"text/csv", CSV, true},
		{"application/jsonl", JSONLines, true},
		{"application/x-ndjson", JSONLines, true},
		{"application/vnd.apache.parquet", Parquet, true},
		{"text/csv;q=0.5, application/vnd.apache.parquet", Parquet, true},
		{"application/x-ndjson;q=0.9, text/csv;q=0.1, */*;q=0.01", JSONLines, true},
		{"application/json", "", false},
		{"image/png, application/x-parquet;q=0", "", false},
	}
	for _, tt := range tests {
		got, ok := Negotiate(tt.accept)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Negotiate(%q) = %q, %v; want %q, %v", tt.accept, got, ok, tt.want, tt.ok)
		}
	}
	for _, f := range Formats() {
		p, err := ParseFormat(string(f))
		if err != nil || p != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, p, err)
		}
		if got, ok := Negotiate(f.ContentType()); !ok || got != f {
			t.Errorf("Negotiate(%q) = %q, %v; want %q", f.ContentType(), got, ok, f)
		}
	}
	if _, err := ParseFormat("xlsx"); err == nil {
		t.Error("ParseFormat(xlsx) succeeded")
	}
}
