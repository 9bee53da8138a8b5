// Package strictjson checks a JSON document for what encoding/json accepts
// without a word, before it is decoded:
//
//   - invalid UTF-8, which encoding/json replaces by U+FFFD, so that two
//     different raw ids would become one;
//   - escaped lone surrogates (\ud800), replaced the same way;
//   - NUL characters (\u0000), which Postgres cannot store in text or jsonb;
//   - duplicate keys in an object, of which encoding/json keeps the last;
//   - keys that match a struct field only when case is ignored
//     ("Entity_Key" for entity_key), which encoding/json folds;
//   - nesting deeper than MaxDepth.
//
// It also rejects malformed JSON and data after the document. The check is
// one pass over the bytes; keys are compared without allocating unless they
// contain escapes.
package strictjson

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of objects and arrays. The API's documents
// nest a few levels deep, TMDB payloads a few more.
const MaxDepth = 64

// Error is a violation: where it is (byte offset and the path of keys and
// indexes leading to it, "" at the top level) and what is wrong.
type Error struct {
	Offset  int
	Path    string
	Problem string
	// Syntax is set when the document is not JSON at all; otherwise it is
	// JSON that encoding/json would accept but this package refuses.
	Syntax bool
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("at byte %d: %s", e.Offset, e.Problem)
	}
	return fmt.Sprintf("%s (at byte %d): %s", e.Path, e.Offset, e.Problem)
}

// Check validates data, a whole JSON document. t is the Go type it will be
// decoded into (nil when it is decoded loosely): objects that land in a
// struct must name its fields exactly as their json tags do.
func Check(data []byte, t reflect.Type) error {
	var pathBuf [8]segment
	c := checker{data: data, path: pathBuf[:0]} // the path on the stack while shallow
	c.ws()
	if c.i == len(data) {
		return c.malformed("empty document")
	}
	if err := c.value(t, 0); err != nil {
		return err
	}
	c.ws()
	if c.i != len(data) {
		return c.malformed("data after the JSON document")
	}
	return nil
}

// segment is one step of the path to the current value.
type segment struct {
	key   string
	index int // -1 for a key
}

type checker struct {
	data []byte
	i    int
	path []segment
}

// fail reports JSON that encoding/json accepts but this package refuses.
func (c *checker) fail(problem string) error {
	return &Error{Offset: c.i, Path: c.pathString(), Problem: problem}
}

// malformed reports a document that is not JSON.
func (c *checker) malformed(problem string) error {
	return &Error{Offset: c.i, Path: c.pathString(), Problem: problem, Syntax: true}
}

func (c *checker) pathString() string {
	var b strings.Builder
	for _, s := range c.path {
		if s.index >= 0 {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

func (c *checker) ws() {
	for c.i < len(c.data) {
		switch c.data[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *checker) value(t reflect.Type, depth int) error {
	if c.i >= len(c.data) {
		return c.malformed("unexpected end of the document")
	}
	switch b := c.data[c.i]; {
	case b == '{':
		if depth >= MaxDepth {
			return c.fail(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
		}
		return c.object(t, depth+1)
	case b == '[':
		if depth >= MaxDepth {
			return c.fail(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
		}
		return c.array(t, depth+1)
	case b == '"':
		_, err := c.str(false)
		return err
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	}
	return c.malformed(fmt.Sprintf("invalid character %q looking for a value", rune(c.data[c.i])))
}

func (c *checker) literal(word string) error {
	if !strings.HasPrefix(string(c.data[c.i:min(len(c.data), c.i+len(word))]), word) {
		return c.malformed("invalid literal (want " + word + ")")
	}
	c.i += len(word)
	return nil
}

func (c *checker) number() error {
	start := c.i
	if c.data[c.i] == '-' {
		c.i++
	}
	switch {
	case c.i < len(c.data) && c.data[c.i] == '0':
		c.i++
	case c.i < len(c.data) && c.data[c.i] >= '1' && c.data[c.i] <= '9':
		c.digits()
	default:
		c.i = start
		return c.malformed("invalid number")
	}
	if c.i < len(c.data) && c.data[c.i] == '.' {
		c.i++
		if c.digits() == 0 {
			return c.malformed("invalid number: no digit after the decimal point")
		}
	}
	if c.i < len(c.data) && (c.data[c.i] == 'e' || c.data[c.i] == 'E') {
		c.i++
		if c.i < len(c.data) && (c.data[c.i] == '+' || c.data[c.i] == '-') {
			c.i++
		}
		if c.digits() == 0 {
			return c.malformed("invalid number: no digit in the exponent")
		}
	}
	return nil
}

func (c *checker) digits() int {
	n := 0
	for c.i < len(c.data) && c.data[c.i] >= '0' && c.data[c.i] <= '9' {
		c.i++
		n++
	}
	return n
}

func (c *checker) array(t reflect.Type, depth int) error {
	c.i++ // [
	elem := elemType(t)
	c.ws()
	if c.i < len(c.data) && c.data[c.i] == ']' {
		c.i++
		return nil
	}
	for n := 0; ; n++ {
		c.path = append(c.path, segment{index: n})
		c.ws()
		if err := c.value(elem, depth); err != nil {
			return err
		}
		c.path = c.path[:len(c.path)-1]
		c.ws()
		if c.i >= len(c.data) {
			return c.malformed("unexpected end of the document in an array")
		}
		switch c.data[c.i] {
		case ',':
			c.i++
		case ']':
			c.i++
			return nil
		default:
			return c.malformed(fmt.Sprintf("invalid character %q after an array element", rune(c.data[c.i])))
		}
	}
}

func (c *checker) object(t reflect.Type, depth int) error {
	c.i++ // {
	fields := structFields(t)
	var keyBuf [16]string
	keys := keyBuf[:0] // the keys seen so far, to find duplicates (on the stack while few)
	var seen map[string]struct{}
	c.ws()
	if c.i < len(c.data) && c.data[c.i] == '}' {
		c.i++
		return nil
	}
	for {
		c.ws()
		if c.i >= len(c.data) || c.data[c.i] != '"' {
			return c.malformed("object key must be a string")
		}
		keyAt := c.i
		key, err := c.str(true)
		if err != nil {
			return err
		}
		var dup bool
		if keys, dup = duplicate(key, keys, &seen); dup {
			c.i = keyAt
			return c.fail("duplicate key " + strconv.Quote(key))
		}
		vt := elemType(t)
		if fields != nil {
			vt = nil
			if f, ok := fields.exact[key]; ok {
				vt = f
			} else if name, ok := fields.folded(key); ok {
				c.i = keyAt
				return c.fail(fmt.Sprintf("unknown field %s: field names are case-sensitive (did you mean %s?)", strconv.Quote(key), strconv.Quote(name)))
			}
		}
		c.ws()
		if c.i >= len(c.data) || c.data[c.i] != ':' {
			return c.malformed("expected ':' after an object key")
		}
		c.i++
		c.ws()
		c.path = append(c.path, segment{key: key, index: -1})
		if err := c.value(vt, depth); err != nil {
			return err
		}
		c.path = c.path[:len(c.path)-1]
		c.ws()
		if c.i >= len(c.data) {
			return c.malformed("unexpected end of the document in an object")
		}
		switch c.data[c.i] {
		case ',':
			c.i++
		case '}':
			c.i++
			return nil
		default:
			return c.malformed(fmt.Sprintf("invalid character %q after an object value", rune(c.data[c.i])))
		}
	}
}

// duplicate records key and reports whether it was already there: a slice
// for the small objects that are the rule, a map past 16 keys.
func duplicate(key string, keys []string, seen *map[string]struct{}) ([]string, bool) {
	if *seen != nil {
		if _, ok := (*seen)[key]; ok {
			return keys, true
		}
		(*seen)[key] = struct{}{}
		return keys, false
	}
	for _, k := range keys {
		if k == key {
			return keys, true
		}
	}
	keys = append(keys, key)
	if len(keys) > 16 {
		*seen = make(map[string]struct{}, 2*len(keys))
		for _, k := range keys {
			(*seen)[k] = struct{}{}
		}
	}
	return keys, false
}

// str checks the string at c.i (its opening quote) and returns its decoded
// value when want is set. Runs of plain bytes are copied whole: only
// escapes are decoded one by one.
func (c *checker) str(want bool) (string, error) {
	c.i++          // opening quote
	from := c.i    // start of the raw bytes not yet copied to buf
	var buf []byte // the decoded value, once an escape makes it differ from the raw bytes
	escaped := false
	for c.i < len(c.data) {
		switch b := c.data[c.i]; {
		case b == '"':
			raw := c.data[from:c.i]
			c.i++
			switch {
			case !want:
				return "", nil
			case !escaped:
				return string(raw), nil
			}
			return string(append(buf, raw...)), nil
		case b == '\\':
			if want {
				buf = append(buf, c.data[from:c.i]...)
			}
			escaped = true
			r, err := c.escape()
			if err != nil {
				return "", err
			}
			if want {
				buf = utf8.AppendRune(buf, r)
			}
			from = c.i
		case b < 0x20:
			return "", c.malformed("control character in a string (it must be escaped)")
		case b < utf8.RuneSelf:
			c.i++
		default:
			r, size := utf8.DecodeRune(c.data[c.i:])
			if r == utf8.RuneError && size == 1 {
				return "", c.fail("invalid UTF-8 in a string")
			}
			c.i += size
		}
	}
	return "", c.malformed("unexpected end of the document in a string")
}

// controlEscapes are the one-letter escapes of control characters.
var controlEscapes = map[byte]rune{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// escape reads the escape sequence at c.i and returns the rune it stands for.
func (c *checker) escape() (rune, error) {
	if c.i+1 >= len(c.data) {
		return 0, c.malformed("unexpected end of the document in an escape")
	}
	switch e := c.data[c.i+1]; e {
	case '"', '\\', '/':
		c.i += 2
		return rune(e), nil
	case 'b', 'f', 'n', 'r', 't':
		c.i += 2
		return controlEscapes[e], nil
	case 'u':
	default:
		return 0, c.malformed(fmt.Sprintf("invalid escape \\%c", e))
	}
	r, ok := c.hex4(c.i + 2)
	if !ok {
		return 0, c.malformed("invalid \\u escape")
	}
	switch {
	case r == 0:
		return 0, c.fail("NUL character (\\u0000) in a string")
	case utf16.IsSurrogate(r) && r < 0xdc00: // a high surrogate: its low half must follow
		lo, ok := c.hex4(c.i + 8)
		if !ok || c.data[c.i+6] != '\\' || c.data[c.i+7] != 'u' || lo < 0xdc00 || lo > 0xdfff {
			return 0, c.fail("lone UTF-16 surrogate escape in a string")
		}
		c.i += 12
		return utf16.DecodeRune(r, lo), nil
	case utf16.IsSurrogate(r):
		return 0, c.fail("lone UTF-16 surrogate escape in a string")
	}
	c.i += 6
	return r, nil
}

// hex4 reads four hex digits at at.
func (c *checker) hex4(at int) (rune, bool) {
	if at < 0 || at+4 > len(c.data) {
		return 0, false
	}
	var r rune
	for _, b := range c.data[at : at+4] {
		switch {
		case b >= '0' && b <= '9':
			b -= '0'
		case b >= 'a' && b <= 'f':
			b -= 'a' - 10
		case b >= 'A' && b <= 'F':
			b -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(b)
	}
	return r, true
}

// fieldSet is the json names of a struct's fields.
type fieldSet struct {
	exact map[string]reflect.Type
}

// folded returns the field whose name equals key when case is ignored, as
// encoding/json would match it.
func (f *fieldSet) folded(key string) (string, bool) {
	for name := range f.exact {
		if strings.EqualFold(name, key) {
			return name, true
		}
	}
	return "", false
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	fieldSets           sync.Map // reflect.Type -> *fieldSet
)

// decodesItself reports whether t (or *t) decodes its own JSON, so that
// its inside is not a Go structure to check.
func decodesItself(t reflect.Type) bool {
	if t.Implements(unmarshalerType) || t.Implements(textUnmarshalerType) {
		return true
	}
	p := reflect.PointerTo(t)
	return p.Implements(unmarshalerType) || p.Implements(textUnmarshalerType)
}

// deref strips pointers; nil for nil, interfaces and self-decoding types.
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() == reflect.Interface || decodesItself(t) {
		return nil
	}
	return t
}

// elemType is the type of the elements of an array or map of type t.
func elemType(t reflect.Type) reflect.Type {
	t = deref(t)
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return t.Elem()
	}
	return nil
}

// structFields returns the fields of t when it is a struct, else nil.
func structFields(t reflect.Type) *fieldSet {
	t = deref(t)
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	if f, ok := fieldSets.Load(t); ok {
		return f.(*fieldSet)
	}
	f := &fieldSet{exact: map[string]reflect.Type{}}
	addFields(f, t)
	fieldSets.Store(t, f)
	return f
}

// addFields adds t's fields by their json names, promoting those of
// embedded structs as encoding/json does.
func addFields(f *fieldSet, t reflect.Type) {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if sf.Anonymous && name == "" {
			if et := deref(sf.Type); et != nil && et.Kind() == reflect.Struct {
				addFields(f, et)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, dup := f.exact[name]; !dup {
			f.exact[name] = sf.Type
		}
	}
}
