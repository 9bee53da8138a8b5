// Package jsonappend appends JSON values to a byte slice, byte for byte as
// encoding/json encodes them with SetEscapeHTML(false), without reflection
// or intermediate allocations: the hot read responses are written with it.
// The fuzz tests hold it to encoding/json's output.
package jsonappend

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrUnsupported is returned for a value encoding/json would refuse (a NaN
// or infinite float, a time outside years 0-9999, an invalid json.Number)
// or one this package does not encode (any type not listed in Value).
// The caller falls back to encoding/json, which answers as it always did.
var ErrUnsupported = errors.New("jsonappend: value not supported")

const hex = "0123456789abcdef"

// safe[c] reports whether the ASCII byte c is written as itself in a JSON
// string (encoding/json's safeSet: printable, not a quote or backslash).
var safe = func() (s [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		s[c] = c != '"' && c != '\\'
	}
	return s
}()

// String appends s as a JSON string: invalid UTF-8 becomes \ufffd, U+2028
// and U+2029 are escaped, and <, > and & are not (SetEscapeHTML(false)).
func String(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = escapeASCII(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func escapeASCII(b []byte, c byte) []byte {
	switch c {
	case '\\', '"':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
}

// Float appends f as encoding/json writes a float64: the shortest
// representation that reads back as f, in exponent form below 1e-6 and
// from 1e21 up (as JavaScript does), with a two-digit exponent at least.
func Float(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, ErrUnsupported
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// strconv writes e-07; JSON numbers as encoding/json writes them
		// have e-7.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// Time appends t as its MarshalJSON does: a quoted RFC 3339 time with
// nanoseconds as needed.
func Time(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return b, ErrUnsupported
	}
	return append(b, '"'), nil
}

// Number appends a json.Number as encoding/json does ("" is 0).
func Number(b []byte, n json.Number) ([]byte, error) {
	if n == "" {
		return append(b, '0'), nil
	}
	if !validNumber(string(n)) {
		return b, ErrUnsupported
	}
	return append(b, n...), nil
}

// Value appends a scalar: nil, bool, int64, int, float64, string or
// json.Number. Any other type is ErrUnsupported.
func Value(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case float64:
		return Float(b, x)
	case string:
		return String(b, x), nil
	case json.Number:
		return Number(b, x)
	}
	return b, ErrUnsupported
}

// validNumber reports whether s is a JSON number.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i == len(s):
		return false
	case s[i] == '0':
		i++
	case '1' <= s[i] && s[i] <= '9':
		i = digits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		j := digits(s, i+1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := digits(s, i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(s)
}

func digits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}
