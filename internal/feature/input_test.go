package feature

import (
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestExactInt(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		lit  string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", 0, true},
		{"42", 42, true},
		{"-9223372036854775808", -9223372036854775808, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"460.0", 460, true},
		{"1e3", 1000, true},
		{"1E+3", 1000, true},
		{"-2.50e1", -25, true},
		{"12500e-2", 125, true},
		{"0.0", 0, true},
		{"0e999999999999", 0, true},
		{"9007199254740992.0", 1 << 53, true},
		// Refused: what a float64 reading would make an integer.
		{"1e-400", 0, false}, // underflows to 0
		{"1.0000000000000000001", 0, false},
		{"0.5", 0, false},
		{"1e-1", 0, false},
		{"125e-2", 0, false},
		{"1e400", 0, false},
		{"1e999999999999", 0, false},
		{"9007199254740993.0", 0, false}, // past 2^53
		{"9223372036854775808", 0, false},
		// Not JSON numbers at all.
		{"", 0, false},
		{"-", 0, false},
		{"01", 0, false},
		{"1.", 0, false},
		{".5", 0, false},
		{"1e", 0, false},
		{"1e+", 0, false},
		{"+1", 0, false},
		{"0x10", 0, false},
		{"NaN", 0, false},
		{"1_000", 0, false},
	} {
		got, ok := ExactInt(c.lit)
		if got != c.want || ok != c.ok {
			t.Errorf("ExactInt(%q) = %d, %v; want %d, %v", c.lit, got, ok, c.want, c.ok)
		}
	}
}

// TestNormalizeValueRefusesSubnormalInt: the finding "1e-400 is accepted as
// an int64 0".
func TestNormalizeValueRefusesSubnormalInt(t *testing.T) {
	t.Parallel()
	for _, lit := range []string{"1e-400", "4.9e-324", "1.0000000000000000001"} {
		if v, problem := NormalizeValue(Int64, json.Number(lit)); problem == "" {
			t.Errorf("int64 %s accepted as %v", lit, v)
		}
	}
	if v, problem := NormalizeValue(Int64, json.Number("1e3")); problem != "" || v != int64(1000) {
		t.Errorf("int64 1e3 = %v, %q", v, problem)
	}
}

func TestDurationRefusesInexactSeconds(t *testing.T) {
	t.Parallel()
	for _, lit := range []string{"1e-400", "1.5", "1e30", `"60"`} {
		var d Duration
		if err := json.Unmarshal([]byte(lit), &d); err == nil {
			t.Errorf("ttl %s accepted as %v", lit, time.Duration(d))
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte("3.6e3"), &d); err != nil || time.Duration(d) != time.Hour {
		t.Errorf("ttl 3.6e3 = %v, %v", time.Duration(d), err)
	}
}

func TestValidYear(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{time.Date(1800, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2200, 12, 31, 23, 59, 59, 0, time.UTC), true},
		{time.Date(1799, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{time.Date(2201, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), false},
		// Judged in UTC: 1800-01-01T00:30+01:00 is still 1799.
		{time.Date(1800, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600)), false},
	} {
		if got := ValidYear(c.t); got != c.want {
			t.Errorf("ValidYear(%v) = %v, want %v", c.t, got, c.want)
		}
	}
}

func TestValidEntityIDRefusesInvalidUTF8(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"\xff", "a\x00b", "ok\xc3"} {
		if ValidEntityID(id) {
			t.Errorf("ValidEntityID(%q) = true", id)
		}
	}
	if !ValidEntityID("été") {
		t.Error("ValidEntityID(été) = false")
	}
}

func TestCheckSize(t *testing.T) {
	t.Parallel()
	l := Limits{MaxFeatures: 2, MaxTags: 1, MaxTagBytes: 4, MaxDescriptionBytes: 8}
	g := Group{Name: "g", EntityKey: "id", Description: strings.Repeat("d", 9),
		Features: []Spec{{Name: "a", Type: Int64}, {Name: "b", Type: Int64, Description: strings.Repeat("x", 9)}, {Name: "c", Type: Int64}},
		Tags:     map[string]string{"team": "recs!", "b": "c"}}
	err := g.CheckSize(l)
	fe, ok := err.(*Error)
	if !ok || fe.Code != CodeTooLarge {
		t.Fatalf("CheckSize = %v, want too_large", err)
	}
	var got []string
	for _, f := range fe.Fields {
		got = append(got, f.Field)
	}
	want := "features description features[1].description tags tags.team"
	if strings.Join(got, " ") != want {
		t.Errorf("fields %v, want %s", got, want)
	}
	small := Group{Name: "g", EntityKey: "id", Features: []Spec{{Name: "a", Type: Int64}}, Tags: map[string]string{"t": "v"}}
	if err := small.CheckSize(l); err != nil {
		t.Errorf("within limits: %v", err)
	}
	if err := small.CheckSize(Limits{}); err != nil {
		t.Errorf("default limits: %v", err)
	}
}

func TestValidateRefusesInvalidText(t *testing.T) {
	t.Parallel()
	g := Group{Name: "g", EntityKey: "id", Features: []Spec{{Name: "a", Type: Int64}}, Description: "nul\x00", Tags: map[string]string{"t": "\xff"}}
	err := g.Validate()
	fe, ok := err.(*Error)
	if !ok || fe.Code != CodeInvalid || len(fe.Fields) != 2 {
		t.Fatalf("Validate = %v, want invalid description and tags", err)
	}
}

// FuzzExactInt: ExactInt agrees with exact rational arithmetic on every
// literal it accepts, and accepts every JSON integer literal in range.
func FuzzExactInt(f *testing.F) {
	for _, s := range []string{"0", "1e3", "460.0", "1e-400", "-12.5e1", "9007199254740992", "1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		n, ok := ExactInt(lit)
		if !ok {
			if len(lit) < 30 && json.Valid([]byte(lit)) && !strings.ContainsAny(lit, "eE") && strings.Trim(lit, "-0123456789") == "" {
				var r big.Int
				if _, isInt := r.SetString(lit, 10); isInt && r.IsInt64() {
					t.Fatalf("integer literal %q refused", lit)
				}
			}
			return
		}
		if !json.Valid([]byte(lit)) {
			t.Fatalf("%q is not a JSON number but was accepted as %d", lit, n)
		}
		var r big.Rat
		if len(lit) > 40 || strings.ContainsAny(lit, "eE") && len(lit) > 12 {
			return // big.Rat would expand a huge exponent; the cheap path is what is tested
		}
		if _, isNum := r.SetString(lit); !isNum || !r.IsInt() || r.Num().Int64() != n {
			t.Fatalf("ExactInt(%q) = %d, but its value is %s", lit, n, r.RatString())
		}
	})
}
