package rowjson

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/featurestore/featurestore/internal/feature"
)

// FuzzValuesRoundTrip checks the encoding without a database: every int64 and
// finite float64 decodes to the same type and bits.
func FuzzValuesRoundTrip(f *testing.F) {
	for _, seed := range []struct {
		i int64
		f float64
		s string
	}{
		{0, 0, ""}, {math.MaxInt64, math.MaxFloat64, "기생충"}, {math.MinInt64, math.SmallestNonzeroFloat64, `"\`},
		{1<<53 + 1, 3, "\u2028"}, {-1, 1e21, "<&>"}, {42, -2.5e-10, "null"},
	} {
		f.Add(seed.i, seed.f, seed.s)
	}
	f.Fuzz(func(t *testing.T, i int64, x float64, s string) {
		in := feature.Values{"i": i, "f": x, "s": s, "n": nil, "b": true}
		b, fe := encodeValues(nil, in)
		if fe != nil {
			if math.IsNaN(x) || math.IsInf(x, 0) || fe.Field == "s" {
				return // rejected as documented
			}
			t.Fatalf("encode %v: %+v", in, fe)
		}
		out, err := DecodeValues(b)
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if out["i"] != i || out["s"] != s || out["n"] != nil || out["b"] != true || len(out) != len(in) {
			t.Fatalf("round trip of %v through %s = %v", in, b, out)
		}
		if got, ok := out["f"].(float64); !ok || got != x {
			t.Fatalf("float %v through %s = %#v", x, b, out["f"])
		}
	})
}

// FuzzDecodeValues checks the hand-written decoder against encoding/json on
// any input: it never panics, and it reads every flat object of scalars the
// way encoding/json does (numbers typed by their spelling).
func FuzzDecodeValues(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a": 1, "b": 2.50, "c": "x\"y\\u00e9\n", "d": null, "e": true, "f": false}`,
		`{"k":-9223372036854775808,"f":1e300,"s":"영화","t":"\ud83c\udfac"}`, ` { "a" : [1] } `, `{"a":1,}`, `{"a":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeValues(b)
		var want map[string]any
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if d.Decode(&want) != nil || d.InputOffset() != int64(len(bytes.TrimRight(b, " \t\r\n"))) || want == nil {
			return // not one JSON object: nothing to compare with
		}
		for k, v := range want {
			switch x := v.(type) {
			case map[string]any, []any:
				return // not flat
			case json.Number:
				var perr error
				if strings.ContainsAny(string(x), ".eE") {
					want[k], perr = strconv.ParseFloat(string(x), 64)
				} else {
					want[k], perr = strconv.ParseInt(string(x), 10, 64)
				}
				if perr != nil {
					return // out of range: an error either way
				}
			}
		}
		if err != nil {
			t.Fatalf("DecodeValues(%q): %v; encoding/json reads %v", b, err, want)
		}
		if len(got) != len(want) {
			t.Fatalf("DecodeValues(%q) = %v, want %v", b, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("DecodeValues(%q)[%q] = %#v, want %#v", b, k, got[k], v)
			}
		}
	})
}

// FuzzAppendStringLikeMarshal checks that the strings appendString writes
// without encoding/json are spelled exactly as json.Marshal spells them, so
// stored values (compared as text to skip repeated rows) do not change.
func FuzzAppendStringLikeMarshal(f *testing.F) {
	for _, s := range []string{"", "plain", "기생충", `"\`, "<&>", "\u2028x\u2029", "\x7f", "tab\there", "\xe2\x80", "é\u2027"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, problem := appendString(nil, s)
		if problem != "" {
			return // invalid UTF-8 or NUL: refused, as documented
		}
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("json.Marshal(%q): %v", s, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, json.Marshal = %s", s, got, want)
		}
	})
}
