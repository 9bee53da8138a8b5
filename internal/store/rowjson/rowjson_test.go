package rowjson

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
)

func TestEncodeRow(t *testing.T) {
	t.Parallel()
	row := func(id string, v feature.Values) feature.Row {
		return feature.Row{Group: "g", EntityID: id, Values: v}
	}
	b, err := EncodeRow([]byte("stale"), 0, row("m1", feature.Values{"b": 1.0, "a": int64(2), "c": nil}))
	if got, want := string(b), `stale{"a":2,"b":1.0,"c":null}`; err != nil || got != want {
		t.Errorf("EncodeRow = %q, %v; want %q", got, err, want)
	}
	for _, tc := range []struct {
		row   feature.Row
		field string
	}{
		{row("", nil), "rows[3].entity_id"},
		{row("a\xffb", nil), "rows[3].entity_id"},
		{row("a\nb", nil), "rows[3].entity_id"},
		{row("", feature.Values{"x": "\x00"}), "rows[3].entity_id"}, // the id is checked first
		{row("m1", feature.Values{"x": "a\x00b"}), "rows[3].values.x"},
		{row("m1", feature.Values{"x": "a\xffb"}), "rows[3].values.x"},
		{row("m1", feature.Values{"ok": int64(1), "x": time.Second}), "rows[3].values.x"},
		{row("m1", feature.Values{"a\xff": int64(1)}), "rows[3].values.a\xff"},
	} {
		_, err := EncodeRow(nil, 3, tc.row)
		var e *feature.Error
		if !errors.As(err, &e) || e.Code != feature.CodeInvalid || len(e.Fields) != 1 || e.Fields[0].Field != tc.field {
			t.Errorf("EncodeRow(%+v) = %v, want an invalid error for %s", tc.row, err, tc.field)
		}
	}
}

func TestGroupColumns(t *testing.T) {
	t.Parallel()
	for _, tags := range []map[string]string{nil, {}, {"owner": "ml"}} {
		in := feature.Group{Name: "g", Features: []feature.Spec{{Name: "x", Type: feature.Float64}}, Tags: tags}
		features, stored, err := EncodeGroup(in)
		if err != nil {
			t.Fatalf("EncodeGroup(%+v): %v", in, err)
		}
		if len(tags) == 0 && stored != "{}" {
			t.Errorf("EncodeGroup with tags %#v stores %q, want {}", tags, stored)
		}
		out := feature.Group{Name: "g"}
		if err := DecodeGroup(&out, []byte(features), []byte(stored)); err != nil {
			t.Fatalf("DecodeGroup(%s, %s): %v", features, stored, err)
		}
		if len(tags) == 0 {
			in.Tags = nil // stored {} reads back as no tags
		}
		if diff := cmp.Diff(in, out); diff != "" {
			t.Errorf("group through %s, %s (-want +got):\n%s", features, stored, diff)
		}
	}
	if err := DecodeGroup(&feature.Group{Name: "g"}, []byte(`[`), []byte(`{}`)); err == nil {
		t.Error("DecodeGroup of broken features JSON = nil, want an error")
	}
}

// TestRowEncoderLikeEncodeRow: a RowEncoder that encodes rows one after
// the other, keeping the names of the last, writes the bytes and errors
// EncodeRow writes for each row alone, whether the names repeat, change,
// or are as many but not the same, and with invalid values among them.
func TestRowEncoderLikeEncodeRow(t *testing.T) {
	t.Parallel()
	bad := "a\x00"
	rows := []feature.Values{
		{"b": int64(1), "c": "x"},
		{"b": int64(2), "c": "y"},           // the same names
		{"a": 1.5, "c": "z"},                // as many, another one
		{"a": 2.5, "c": bad},                // the same names, an invalid value
		{"a": 3.5, "c": "w"},                // kept after the invalid row
		{"b": int64(3), "c": "v"},           // back to the first names
		{"a": bad, "b": bad},                // b is kept but a, not kept, comes first: a is named
		{"b": bad, "c": "t"},                // kept names, the first invalid
		{"b": int64(4), "c": "u", "d": nil}, // more names
		{},
		{},
		{"é\xff": int64(1), "b": int64(2)}, // an invalid name
		{"é\xff": int64(1), "b": int64(2)},
	}
	var e RowEncoder
	buf := []byte("prefix")
	for i, v := range append(rows, rows...) {
		group := "g"
		if i >= len(rows) && i%2 == 1 {
			group = "h" // the second time, two groups in turn
		}
		r := feature.Row{Group: group, EntityID: "m1", Values: v}
		want, wantErr := EncodeRow([]byte("prefix"), i, r)
		got, err := e.Encode(buf[:len("prefix")], i, r)
		if string(got) != string(want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("row %d %v: Encode = %q, %v; EncodeRow = %q, %v", i, v, got, err, want, wantErr)
		}
		if err == nil {
			buf = got
		}
	}
}

// encodeValues is the JSON of v as EncodeRow writes it.
func encodeValues(buf []byte, v feature.Values) ([]byte, *feature.FieldError) {
	b, _, fe := newNames(buf, v, nil)
	return b, fe
}
