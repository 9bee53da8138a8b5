package rowjson

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/feature"
)

// TestDecodeValue reads single values as a database's JSON operator
// extracts them from what EncodeRow wrote.
func TestDecodeValue(t *testing.T) {
	values := feature.Values{
		"i": int64(math.MinInt64), "f": 3.0, "g": -2.5e-10, "b": true, "c": false,
		"s": "기생충 \"q\" \\ \n", "n": nil, "e": "",
	}
	obj, fe := encodeValues(nil, values)
	if fe != nil {
		t.Fatal(fe)
	}
	decoded, err := DecodeValues(obj)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range values {
		raw, err := encodeValues(nil, feature.Values{k: decoded[k]})
		if err != nil {
			t.Fatal(err)
		}
		// raw is {"k":<value>}: extract the value's text.
		text := raw[len(k)+4 : len(raw)-1]
		got, derr := DecodeValue(append([]byte(" "), text...))
		if derr != nil {
			t.Errorf("DecodeValue(%s): %v", text, derr)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("DecodeValue(%s) (-want +got):\n%s", text, diff)
		}
	}
	for _, bad := range []string{"", "{}", "tru", `"open`, "1 2", "[1]"} {
		if v, err := DecodeValue([]byte(bad)); err == nil {
			t.Errorf("DecodeValue(%q) = %v, want an error", bad, v)
		}
	}
}

func TestServiceArgsRoundTrip(t *testing.T) {
	fs := feature.FeatureService{Name: "svc", Features: []string{"b:x", "a:y"}, Description: "d", Tags: map[string]string{"k": "v"}}
	args, err := ServiceArgs(fs)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 6, 5, 0, 0, 0, 0, time.UTC)
	row := fakeRow{args[0], []byte(args[1].(string)), args[2], []byte(args[3].(string)), 3, now, now}
	got, err := ScanService(row, func(t time.Time) time.Time { return t })
	if err != nil {
		t.Fatal(err)
	}
	want := fs
	want.SchemaVersion, want.CreatedAt, want.UpdatedAt = 3, now, now
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ScanService(ServiceArgs) (-want +got):\n%s", diff)
	}
}

// fakeRow is a test double of a database row: it copies its values into
// Scan's destinations.
type fakeRow []any

func (r fakeRow) Scan(dest ...any) error {
	for i, d := range dest {
		switch p := d.(type) {
		case *string:
			*p = r[i].(string)
		case *[]byte:
			*p = r[i].([]byte)
		case *int:
			*p = r[i].(int)
		case *time.Time:
			*p = r[i].(time.Time)
		}
	}
	return nil
}
