package httpapi

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/featurestore/featurestore/internal/service"
)

// decodeOnlineRequest decodes the usual get-online-features request in one
// pass without reflection, and reports false for anything it does not
// know, leaving req to strictjson.Check and encoding/json instead. It is the
// only check of what it accepts, so it accepts only what strictjson.Check
// passes: one well-formed document, valid UTF-8, no duplicate keys, no
// case-folded keys (its keys match exactly), strings without escapes (so no
// NUL and no surrogates), numbers of JSON's grammar. What it accepts it
// decodes exactly as encoding/json (with UseNumber) would; whatever would be
// an error there (an unknown field, a wrong type) it leaves to the full
// path, which reports it as it always did.
func decodeOnlineRequest(data []byte, req *service.OnlineRequest) bool {
	if !utf8.Valid(data) {
		return false
	}
	p := fastParser{b: data, doc: string(data)}
	var out service.OnlineRequest
	var seen uint8 // the top-level keys read so far, one bit each
	once := func(bit uint8) bool {
		dup := seen&bit != 0
		seen |= bit
		return !dup
	}
	ok := p.object(func(key string) bool {
		switch key {
		case "entities":
			return once(1) && p.entities(&out.Entities)
		case "features":
			return once(2) && p.strings(&out.Features)
		case "feature_service":
			if !once(4) {
				return false
			}
			if p.null() {
				out.FeatureService = nil
				return true
			}
			s, ok := p.str()
			out.FeatureService = &s
			return ok
		case "full_feature_names":
			return once(8) && p.boolean(&out.FullFeatureNames)
		case "include_feature_view_version_metadata":
			return once(16) && p.boolean(&out.IncludeFeatureViewVersionMetadata)
		case "request_context":
			if !once(32) {
				return false
			}
			if p.null() {
				return true
			}
			// Only an empty object: a non-empty one is refused by
			// the service after a full decode.
			if !p.empty('{', '}') {
				return false
			}
			out.RequestContext = map[string]any{}
			return true
		}
		return false
	})
	if !ok {
		return false
	}
	if p.ws(); p.i != len(p.b) {
		return false
	}
	*req = out
	return true
}

// fastParser reads the JSON subset decodeOnlineRequest knows.
type fastParser struct {
	b   []byte
	doc string // b as a string: one copy, of which every decoded string is a part
	i   int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (p *fastParser) peek() byte {
	p.ws()
	if p.i == len(p.b) {
		return 0
	}
	return p.b[p.i]
}

// lit consumes the literal s if it comes next.
func (p *fastParser) lit(s string) bool {
	if p.peek() != s[0] || len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *fastParser) null() bool { return p.lit("null") }

// empty consumes an empty object or array.
func (p *fastParser) empty(open, close byte) bool {
	if p.peek() != open {
		return false
	}
	p.i++
	if p.peek() != close {
		return false
	}
	p.i++
	return true
}

// boolean decodes true or false into v; null leaves v as it is (as
// encoding/json does).
func (p *fastParser) boolean(v *bool) bool {
	switch {
	case p.lit("true"):
		*v = true
	case p.lit("false"):
		*v = false
	case p.null():
	default:
		return false
	}
	return true
}

// str reads a string without escapes.
func (p *fastParser) str() (string, bool) {
	if p.peek() != '"' {
		return "", false
	}
	start := p.i + 1
	for j := start; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			p.i = j + 1
			return p.doc[start:j], true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// number reads a number of JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *fastParser) number() (json.Number, bool) {
	p.ws()
	start := p.i
	p.skip('-')
	switch {
	case p.skip('0'):
	case p.digits() == 0:
		return "", false
	}
	if p.skip('.') && p.digits() == 0 {
		return "", false
	}
	if p.skip('e') || p.skip('E') {
		if !p.skip('+') {
			p.skip('-')
		}
		if p.digits() == 0 {
			return "", false
		}
	}
	return json.Number(p.doc[start:p.i]), true
}

// skip consumes c if it comes next (no white space before it).
func (p *fastParser) skip(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// digits consumes a run of decimal digits and says how many.
func (p *fastParser) digits() int {
	start := p.i
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// object reads an object, calling field for each key with the parser at
// its value.
func (p *fastParser) object(field func(key string) bool) bool {
	if p.peek() != '{' {
		return false
	}
	p.i++
	if p.peek() == '}' {
		p.i++
		return true
	}
	for {
		key, ok := p.str()
		if !ok || p.peek() != ':' {
			return false
		}
		p.i++
		if !field(key) {
			return false
		}
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return true
		default:
			return false
		}
	}
}

// strings decodes an array of strings, or null (nil).
func (p *fastParser) strings(v *[]string) bool {
	if p.null() {
		*v = nil
		return true
	}
	out := make([]string, 0, 8)
	more, ok := p.open()
	for more && ok {
		s, isStr := p.str()
		if !isStr {
			return false
		}
		out = append(out, s)
		more, ok = p.next()
	}
	*v = out
	return ok
}

// entities decodes an object of arrays of scalars, or null.
func (p *fastParser) entities(v *map[string][]any) bool {
	if p.null() {
		return true
	}
	m := make(map[string][]any, 1)
	ok := p.object(func(key string) bool {
		if _, dup := m[key]; dup {
			return false
		}
		if p.null() {
			m[key] = nil
			return true
		}
		p.ws()
		vals := make([]any, 0, p.countScalars())
		more, ok := p.open()
		for more && ok {
			x, isScalar := p.scalar()
			if !isScalar {
				return false
			}
			vals = append(vals, x)
			more, ok = p.next()
		}
		m[key] = vals
		return ok
	})
	*v = m
	return ok
}

// countScalars returns the number of elements of the array at p.i if it
// holds scalars only (one allocation for the entities, not one per
// doubling), else 0. It reads ahead without consuming anything.
func (p *fastParser) countScalars() int {
	if p.i >= len(p.b) || p.b[p.i] != '[' {
		return 0
	}
	n := 1
	for i := p.i + 1; i < len(p.b); i++ {
		switch p.b[i] {
		case '"':
			for i++; i < len(p.b) && p.b[i] != '"'; i++ {
				if p.b[i] == '\\' {
					i++
				}
			}
		case ',':
			n++
		case ']':
			return n
		case '[', '{':
			return 0
		}
	}
	return 0
}

// open consumes the '[' of an array: more reports an element to read.
func (p *fastParser) open() (more, ok bool) {
	if p.peek() != '[' {
		return false, false
	}
	p.i++
	if p.peek() == ']' {
		p.i++
		return false, true
	}
	return true, true
}

// next consumes what follows an array element: more reports another.
func (p *fastParser) next() (more, ok bool) {
	switch p.peek() {
	case ',':
		p.i++
		return true, true
	case ']':
		p.i++
		return false, true
	}
	return false, false
}

// scalar decodes a string, number, boolean or null as encoding/json
// decodes it into an interface with UseNumber.
func (p *fastParser) scalar() (any, bool) {
	switch c := p.peek(); {
	case c == '"':
		return p.str()
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case p.lit("true"):
		return true, true
	case p.lit("false"):
		return false, true
	case p.null():
		return nil, true
	}
	return nil, false
}
