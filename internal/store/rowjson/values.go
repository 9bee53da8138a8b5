// Package rowjson is the JSON that the SQL backends (internal/store/postgres
// and internal/store/sqlite) keep in their columns: a row's feature values and
// a group's features and tags, and the layout of the feature_groups row that
// holds the latter. Both engines store the very same text, so a database can
// move between them unchanged; SQL stays in each engine's package.
//
// Feature values are a JSON object in which the spelling of each number
// carries its type: an int64 is an integer literal ("42"), a float64 is plain
// decimal notation that always has a fractional part ("42.0", "0.000001",
// never "42" or "1e-06"). Postgres jsonb keeps numbers as exact numerics and
// preserves their fractional digits ("42.0" stays "42.0"), and SQLite keeps
// the text as written, so values read back with their exact type and value —
// int64 beyond 2^53 included — without consulting the group's schema. The
// rules jsonb needs (no NUL, valid UTF-8, plain decimal floats) apply to both
// engines, so that both accept the same rows.
package rowjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/featurestore/featurestore/internal/feature"
)

// EncodeRow checks that r can be stored and found again and appends the JSON
// of its values to buf. i is r's index in its batch: the feature.Invalid error
// names the field at fault as rows[i].entity_id or rows[i].values.<feature>.
func EncodeRow(buf []byte, i int, r feature.Row) ([]byte, error) {
	var e RowEncoder
	return e.Encode(buf, i, r)
}

// RowEncoder is EncodeRow for the rows of a batch: the rows of a group
// mostly have the same features, so it keeps, per group, the last row's
// feature names, sorted, with their JSON keys, and a row with the same
// names (as many, each present) skips collecting, sorting, checking and
// quoting them again. The bytes and errors are EncodeRow's. The zero value
// is ready; it is not safe for concurrent use.
type RowEncoder struct {
	groups map[string]*keptNames
}

// keptNames are the feature names of a group's last row.
type keptNames struct {
	names []string // sorted
	keys  []byte   // the JSON key of each, `"name":`, one after the other
	ends  []int    // where each name's key ends in keys
}

// Encode is EncodeRow.
func (e *RowEncoder) Encode(buf []byte, i int, r feature.Row) ([]byte, error) {
	if !feature.ValidEntityID(r.EntityID) || !utf8.ValidString(r.EntityID) {
		return nil, feature.Invalid("invalid row", feature.FieldError{Field: fmt.Sprintf("rows[%d].entity_id", i),
			Problem: "must be 1 to 256 bytes of UTF-8 without control characters"})
	}
	kept := e.groups[r.Group]
	if kept != nil {
		if out, ok := kept.sameNames(buf, r.Values); ok {
			return out, nil
		}
	}
	out, kept, fe := newNames(buf, r.Values, kept)
	if fe != nil {
		delete(e.groups, r.Group) // its memory was reused
		return nil, feature.Invalid("invalid feature value",
			feature.FieldError{Field: fmt.Sprintf("rows[%d].values.%s", i, fe.Field), Problem: fe.Problem})
	}
	if e.groups == nil {
		e.groups = make(map[string]*keptNames)
	}
	e.groups[r.Group] = kept
	return out, nil
}

// sameNames appends the JSON of v if its names are the kept ones and its
// values valid; ok is false, and buf's contents past its length undefined,
// if not.
func (k *keptNames) sameNames(buf []byte, v feature.Values) (out []byte, ok bool) {
	if len(k.names) != len(v) {
		return buf, false
	}
	buf = append(buf, '{')
	start := 0
	for j, name := range k.names {
		x, present := v[name]
		if !present {
			return buf, false // as many names, not the same: v has another
		}
		if j > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, k.keys[start:k.ends[j]]...)
		start = k.ends[j]
		var fe *feature.FieldError
		if buf, fe = appendValue(buf, name, x); fe != nil {
			// v may have a name sorted before this one that is not kept and
			// is invalid: newNames finds the first fault as EncodeRow does
			return buf, false
		}
	}
	return append(buf, '}'), true
}

// newNames appends the JSON of v, sorting and checking its names, and
// returns them kept (in reuse's memory, if not nil) if they all are valid.
func newNames(buf []byte, v feature.Values, reuse *keptNames) ([]byte, *keptNames, *feature.FieldError) {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	kept := reuse
	if kept == nil {
		kept = &keptNames{}
	}
	kept.keys, kept.ends = kept.keys[:0], kept.ends[:0]
	buf = append(buf, '{')
	for i, k := range names {
		if i > 0 {
			buf = append(buf, ',')
		}
		at := len(buf)
		var problem string
		if buf, problem = appendString(buf, k); problem != "" {
			return nil, nil, &feature.FieldError{Field: k, Problem: "feature name " + problem}
		}
		buf = append(buf, ':')
		kept.keys = append(kept.keys, buf[at:]...)
		kept.ends = append(kept.ends, len(kept.keys))
		var fe *feature.FieldError
		if buf, fe = appendValue(buf, k, v[k]); fe != nil {
			return nil, nil, fe
		}
	}
	kept.names = names
	return append(buf, '}'), kept, nil
}

// appendValue appends the JSON of feature k's value x. It rejects types
// other than nil, int64, float64, bool and string, non-finite floats, and
// strings jsonb cannot hold (invalid UTF-8, NUL).
func appendValue(buf []byte, k string, x any) ([]byte, *feature.FieldError) {
	switch x := x.(type) {
	case nil:
		buf = append(buf, "null"...)
	case int64:
		buf = strconv.AppendInt(buf, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, &feature.FieldError{Field: k, Problem: "must be a finite number"}
		}
		n := len(buf)
		buf = strconv.AppendFloat(buf, x, 'f', -1, 64)
		if bytes.IndexByte(buf[n:], '.') < 0 {
			buf = append(buf, ".0"...)
		}
	case bool:
		buf = strconv.AppendBool(buf, x)
	case string:
		var problem string
		if buf, problem = appendString(buf, x); problem != "" {
			return nil, &feature.FieldError{Field: k, Problem: problem}
		}
	default:
		return nil, &feature.FieldError{Field: k, Problem: fmt.Sprintf("unsupported value type %T", x)}
	}
	return buf, nil
}

// appendString appends s as a JSON string, or reports why it cannot be stored.
func appendString(buf []byte, s string) ([]byte, string) {
	if !utf8.ValidString(s) {
		return buf, "must be valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return buf, "must not contain NUL characters"
	}
	if plainString(s) {
		buf = append(buf, '"')
		buf = append(buf, s...)
		return append(buf, '"'), ""
	}
	b, err := json.Marshal(s)
	if err != nil {
		return buf, err.Error()
	}
	return append(buf, b...), ""
}

// plainString reports whether json.Marshal spells s (valid UTF-8) as s
// itself between quotes: no byte it escapes (control characters, '"',
// '\\', and '<', '>', '&', which it escapes for HTML) and neither U+2028
// nor U+2029. Most feature strings are; they skip json.Marshal's
// reflection and allocation, and the bytes written are the same.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9):
			return false
		}
	}
	return true
}

// DecodeValues parses what EncodeRow wrote, also as jsonb gives it back (a
// flat object of scalars, with whitespace). It is on the read hot path, so
// it scans the object itself instead of going through encoding/json, which
// it uses only to unquote strings that contain escapes. A key that occurs
// twice is an error: EncodeRow writes each feature once and jsonb keeps one
// of duplicates, so a stored row with a duplicate was not written by us, and
// picking one of its values (encoding/json takes the last) would hide that.
func DecodeValues(b []byte) (feature.Values, error) {
	d := valueDecoder{b: b}
	v, err := d.object()
	if err != nil {
		return nil, fmt.Errorf("decode feature values at byte %d: %w", d.i, err)
	}
	return v, nil
}

type valueDecoder struct {
	b []byte
	i int
}

func (d *valueDecoder) space() {
	for d.i < len(d.b) && (d.b[d.i] == ' ' || d.b[d.i] == '\t' || d.b[d.i] == '\n' || d.b[d.i] == '\r') {
		d.i++
	}
}

// consume skips whitespace and then c, reporting whether c was there.
func (d *valueDecoder) consume(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *valueDecoder) object() (feature.Values, error) {
	if !d.consume('{') {
		return nil, errors.New(`want "{"`)
	}
	m := make(feature.Values, bytes.Count(d.b, []byte{':'}))
	if d.consume('}') {
		return m, d.end()
	}
	for {
		d.space()
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if !d.consume(':') {
			return nil, errors.New(`want ":" after a key`)
		}
		d.space()
		n := len(m)
		if m[k], err = d.value(); err != nil {
			return nil, err
		}
		if len(m) == n { // costs nothing, unlike a lookup before the insert
			return nil, fmt.Errorf("duplicate key %q", k)
		}
		if d.consume(',') {
			continue
		}
		if d.consume('}') {
			return m, d.end()
		}
		return nil, errors.New(`want "," or "}"`)
	}
}

func (d *valueDecoder) end() error {
	d.space()
	if d.i != len(d.b) {
		return errors.New("trailing data")
	}
	return nil
}

func (d *valueDecoder) value() (any, error) {
	if d.i >= len(d.b) {
		return nil, errors.New("want a value")
	}
	switch c := d.b[d.i]; {
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		start, float := d.i, false
	scan:
		for ; d.i < len(d.b); d.i++ {
			switch d.b[d.i] {
			case '.', 'e', 'E':
				float = true
			case '-', '+', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			default:
				break scan
			}
		}
		if float {
			return strconv.ParseFloat(string(d.b[start:d.i]), 64)
		}
		return strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	}
	return nil, fmt.Errorf("unexpected %q", d.b[d.i])
}

func (d *valueDecoder) literal(s string) error {
	if !bytes.HasPrefix(d.b[d.i:], []byte(s)) {
		return errors.New("want " + s)
	}
	d.i += len(s)
	return nil
}

// str reads a JSON string at d.i: valid UTF-8 without escapes is copied out
// as is, anything else is unquoted by encoding/json.
func (d *valueDecoder) str() (string, error) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", errors.New("want a string")
	}
	open := d.i
	for i := open + 1; i < len(d.b); i++ {
		switch c := d.b[i]; {
		case c == '"':
			if !utf8.Valid(d.b[open+1 : i]) {
				return d.escaped(open) // encoding/json replaces invalid bytes with U+FFFD
			}
			d.i = i + 1
			return string(d.b[open+1 : i]), nil
		case c == '\\':
			return d.escaped(open)
		case c < 0x20:
			return "", errors.New("control character in string")
		}
	}
	return "", errors.New("unterminated string")
}

func (d *valueDecoder) escaped(open int) (string, error) {
	for i := open + 1; i < len(d.b); i++ {
		switch d.b[i] {
		case '\\':
			i++
		case '"':
			var s string
			if err := json.Unmarshal(d.b[open:i+1], &s); err != nil {
				return "", err
			}
			d.i = i + 1
			return s, nil
		}
	}
	return "", errors.New("unterminated string")
}
