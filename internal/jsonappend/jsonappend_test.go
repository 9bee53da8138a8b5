package jsonappend_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/jsonappend"
)

// stdlib is what encoding/json writes for v as the API encodes (HTML
// characters unescaped), without the encoder's newline; ok is false when
// encoding/json refuses v.
func stdlib(t testing.TB, v any) (string, bool) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", false
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), true
}

// same checks that Value writes what encoding/json writes for v, and
// fails exactly where encoding/json does.
func same(t *testing.T, v any) {
	t.Helper()
	want, wantOK := stdlib(t, v)
	got, err := jsonappend.Value([]byte("prefix"), v)
	if !wantOK {
		if err == nil {
			t.Errorf("%#v: encoding/json refuses it, jsonappend wrote %s", v, got)
		}
		return
	}
	if err != nil {
		t.Errorf("%#v: %v; encoding/json writes %s", v, err, want)
		return
	}
	if string(got) != "prefix"+want {
		t.Errorf("%#v:\n got %s\nwant prefix%s", v, got, want)
	}
}

func sameTime(t *testing.T, tm time.Time) {
	t.Helper()
	want, wantOK := stdlib(t, tm)
	got, err := jsonappend.Time(nil, tm)
	switch {
	case !wantOK && err == nil:
		t.Errorf("%v: encoding/json refuses it, jsonappend wrote %s", tm, got)
	case wantOK && err != nil:
		t.Errorf("%v: %v; encoding/json writes %s", tm, err, want)
	case wantOK && string(got) != want:
		t.Errorf("%v:\n got %s\nwant %s", tm, got, want)
	}
}

func TestValueMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	values := []any{
		nil, true, false,
		int64(0), int64(-1), int64(math.MaxInt64), int64(math.MinInt64), 42, -7,
		0.0, math.Copysign(0, -1), 1.0, -1.5, 0.1, 1.0 / 3, 1e20, 1e21, 1e-6, 1e-7, 123456789e-15,
		1.7976931348623157e308, 5e-324, -2.5e-8, 9007199254740993.0, 12345678.9,
		math.NaN(), math.Inf(1), math.Inf(-1),
		"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "tab\tnl\nreturn\rbs\bff\f",
		"\x00\x01\x1f\x7f", "é ü 日本語 🎬", "line\u2028para\u2029end", "bad \xff\xfe utf8 \xc3", "\xed\xa0\x80",
		"\ufffd", "a\u0085b",
		json.Number("12"), json.Number("-0.5e+10"), json.Number(""), json.Number("01"), json.Number("1."), json.Number("x"),
	}
	for _, v := range values {
		same(t, v)
	}
	// Other types are left to encoding/json, by an error.
	for _, v := range []any{[]int{1}, map[string]any{}, float32(1.5), int32(1)} {
		if _, err := jsonappend.Value(nil, v); !errors.Is(err, jsonappend.ErrUnsupported) {
			t.Errorf("%#v: got error %v, want ErrUnsupported", v, err)
		}
	}
}

func TestTimeMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	plus := time.FixedZone("", 5*3600+30*60)
	minus := time.FixedZone("X", -(3*3600 + 15*60 + 20)) // seconds in the offset
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	for _, tm := range []time.Time{
		{},
		time.Unix(0, 0).UTC(),
		time.Date(2025, 6, 5, 2, 24, 12, 0, time.UTC),
		time.Date(2025, 6, 5, 2, 24, 12, 123456789, time.UTC),
		time.Date(2025, 6, 5, 2, 24, 12, 120000000, time.UTC),
		time.Date(2025, 6, 5, 2, 24, 12, 1, plus),
		time.Date(2025, 6, 5, 2, 24, 12, 500, minus),
		time.Date(2025, 1, 5, 2, 24, 12, 0, ny),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now(), // with a monotonic reading
	} {
		sameTime(t, tm)
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "a", "<>&", "\u2028\u2029", "\xff", "\"\\\x00\x1f", "日本 🎬", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { same(t, s) })
}

func FuzzFloat(f *testing.F) {
	for _, x := range []float64{0, math.Copysign(0, -1), 1e21, 1e-7, 1e20, 0.1, -3.25, 5e-324, math.MaxFloat64, math.NaN()} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x float64) { same(t, x) })
}

func FuzzInt(f *testing.F) {
	for _, x := range []int64{0, -1, math.MaxInt64, math.MinInt64} {
		f.Add(x)
	}
	f.Fuzz(func(t *testing.T, x int64) { same(t, x) })
}

func FuzzNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "1.5e+3", "01", "1.", ".5", "-", "1e", "12345678901234567890", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { same(t, json.Number(s)) })
}

// FuzzTime: any instant in any fixed zone (offsets up to ±26h, which
// encoding/json refuses past ±24h).
func FuzzTime(f *testing.F) {
	f.Add(int64(0), int64(0), int32(0))
	f.Add(int64(1749090252), int64(123456789), int32(19800))
	f.Add(int64(1749090252), int64(100), int32(-11720))
	f.Add(int64(253402300800), int64(0), int32(0))
	f.Add(int64(-62135596801), int64(999999999), int32(3600))
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int32) {
		zone := time.FixedZone("", int(offset%(26*3600)))
		sameTime(t, time.Unix(sec, nsec).In(zone))
	})
}
