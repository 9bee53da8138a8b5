package tmdb

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// objectMembers returns the members of a JSON object as json.Unmarshal into
// a map[string]json.RawMessage would (each value's bytes as they stand, the
// last one when a key repeats), without its reflection and copies: raw is
// checked with json.Valid first, so the walk below only has to find where
// tokens end. ok is false when raw is not one valid JSON object.
// The values alias raw.
func objectMembers(raw []byte) (map[string]json.RawMessage, bool) {
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, false
	}
	obj := make(map[string]json.RawMessage, 16)
	i := skipSpace(raw, 1)
	if raw[i] == '}' {
		return obj, true
	}
	for {
		end := stringEnd(raw, i)
		key, ok := unquote(raw[i:end])
		if !ok {
			return nil, false
		}
		i = skipSpace(raw, skipSpace(raw, end)+1) // past the ':'
		end = valueEnd(raw, i)
		obj[key] = raw[i:end]
		i = skipSpace(raw, end)
		if raw[i] == '}' {
			return obj, true
		}
		i = skipSpace(raw, i+1) // past the ','
	}
}

// arrayElements calls fn with the bytes of each element of v, a valid JSON
// array (a value objectMembers returned), in order, until fn returns false.
func arrayElements(v []byte, fn func(el []byte) bool) {
	i := skipSpace(v, 1)
	if v[i] == ']' {
		return
	}
	for {
		end := valueEnd(v, i)
		if !fn(v[i:end]) {
			return
		}
		i = skipSpace(v, end)
		if v[i] == ']' {
			return
		}
		i = skipSpace(v, i+1) // past the ','
	}
}

// unquote returns the string a JSON string token v spells, as json.Unmarshal
// would (invalid UTF-8 becomes U+FFFD): the bytes themselves when they hold
// no escape and are valid UTF-8, else through json.Unmarshal.
func unquote(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string token starting at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i], in valid
// JSON.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return j
		}
		j++
	}
	return j
}
