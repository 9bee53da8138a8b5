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
// any input: it never panics, it reads every flat object of scalars the way
// encoding/json does (numbers typed by their spelling), and it refuses an
// object with a duplicate key, which encoding/json reads as its last value.
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
		if duplicateKey(b) {
			if err == nil {
				t.Fatalf("DecodeValues(%q) = %v, want an error: a key occurs twice", b, got)
			}
			return // encoding/json keeps the last value; DecodeValues refuses the row
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

// duplicateKey reports whether b, one JSON object, has a key twice at its top
// level (compared unquoted, so "a" and "\u0061" are the same key).
func duplicateKey(b []byte) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return false
		}
		k, _ := t.(string)
		if seen[k] {
			return true
		}
		seen[k] = true
		var skip json.RawMessage
		if d.Decode(&skip) != nil {
			return false
		}
	}
	return false
}

func TestDecodeValuesRefusesDuplicateKeys(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{"a":1,"a":1}`, `{"a":1,"b":2,"\u0061":"x"}`, `{"":9227000000000000000,"":""}`} {
		if v, err := DecodeValues([]byte(in)); err == nil {
			t.Errorf("DecodeValues(%s) = %v, want an error", in, v)
		}
	}
	_, err := DecodeValues([]byte(`{"a":1,"b":2,"\u0061":"x"}`))
	if err == nil || !strings.Contains(err.Error(), `duplicate key "a"`) {
		t.Errorf("error %v, want it to name the duplicate key", err)
	}
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
