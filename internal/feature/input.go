package feature

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MinYear and MaxYear bound the year of every time a client sends as data:
// the event time of a row and the release date of a TMDB movie. A year 0001
// or 9999 is a typo or a sentinel, never a real event; a row dated 9999
// would stay the entity's latest row for ever. The lower bound leaves room
// for the first films: TMDB lists films from the 1870s on.
const (
	MinYear = 1800
	MaxYear = 2200
)

// ValidYear reports whether t (in UTC) lies in the years MinYear to MaxYear.
func ValidYear(t time.Time) bool {
	y := t.UTC().Year()
	return y >= MinYear && y <= MaxYear
}

// YearProblem is the field problem of a time outside the accepted years.
const YearProblem = "must be a time in the years 1800 to 2200"

// ValidText reports whether s can be stored as text by every backend: valid
// UTF-8 without NUL. Postgres refuses both (SQLSTATE 22021 and 22P05), so
// they must be refused before they reach it.
func ValidText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// maxExactFloatInt is the largest integer a JSON number written as a
// fraction or with an exponent may denote: beyond 2^53 its float64 reading
// is no longer exact.
const maxExactFloatInt = 1 << 53

// ExactInt reads a JSON number literal that denotes an integer exactly. An
// integer literal may use the whole int64 range; a literal with a fraction
// or an exponent (460.0, 1e3, re-serialised data has them) is accepted when
// its decimal value is a whole number of magnitude at most 2^53. Everything
// else is refused, in particular what a float64 reading would round to an
// integer: 1e-400 (which underflows to 0), 1.0000000000000000001, 1e400.
func ExactInt(lit string) (int64, bool) {
	neg, digits, scale, ok := decimal(lit)
	if !ok {
		return 0, false
	}
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return n, true // an integer literal: the whole int64 range
	}
	// The value is digits × 10^scale.
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, true // 0.0, -0e5: zero however written
	}
	if scale < 0 {
		cut := len(digits) + scale
		if cut <= 0 || strings.TrimRight(digits[cut:], "0") != "" {
			return 0, false // a non-zero digit after the decimal point
		}
		digits, scale = digits[:cut], 0
	}
	if len(digits)+scale > 16 { // 17 digits or more is past 2^53
		return 0, false
	}
	n, err := strconv.ParseInt(digits+strings.Repeat("0", scale), 10, 64)
	if err != nil || n > maxExactFloatInt {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// decimal splits a JSON number literal into its sign, its digits (integer
// and fraction digits together) and the power of ten they are scaled by:
// -12.5e3 is (true, "125", 2). An exponent too large to matter is clamped,
// so 1e999999999 costs nothing.
func decimal(lit string) (neg bool, digits string, scale int, ok bool) {
	s := lit
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	intEnd := digitsEnd(s)
	if intEnd == 0 || (s[0] == '0' && intEnd > 1) {
		return false, "", 0, false
	}
	digits, s = s[:intEnd], s[intEnd:]
	if strings.HasPrefix(s, ".") {
		n := digitsEnd(s[1:])
		if n == 0 {
			return false, "", 0, false
		}
		digits += s[1 : 1+n]
		scale = -n
		s = s[1+n:]
	}
	if s == "" {
		return neg, digits, scale, true
	}
	if s[0] != 'e' && s[0] != 'E' {
		return false, "", 0, false
	}
	s = s[1:]
	expNeg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		expNeg, s = s[0] == '-', s[1:]
	}
	if s == "" || digitsEnd(s) != len(s) {
		return false, "", 0, false
	}
	if s = strings.TrimLeft(s, "0"); len(s) > 6 {
		s = "999999" // |exponent| >= 10^6: far outside any int64 either way
	}
	exp := 0
	if s != "" {
		exp, _ = strconv.Atoi(s)
	}
	if expNeg {
		exp = -exp
	}
	return neg, digits, scale + exp, true
}

// digitsEnd returns the length of the run of ASCII digits s starts with.
func digitsEnd(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
