package strictjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type spec struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type group struct {
	EntityKey string            `json:"entity_key"`
	Features  []spec            `json:"features"`
	Tags      map[string]string `json:"tags"`
	Values    map[string]any    `json:"values"`
	At        *time.Time        `json:"at"`
	Ignored   string            `json:"-"`
	NoTag     int
	embedded
}

type embedded struct {
	Inner string `json:"inner"`
}

func TestCheck(t *testing.T) {
	t.Parallel()
	gt := reflect.TypeFor[group]()
	for _, c := range []struct {
		name, doc string
		t         reflect.Type
		problem   string // "" = accepted
		path      string
		syntax    bool
	}{
		{"plain", `{"entity_key":"id","features":[{"name":"a","type":"int64"}],"tags":{"Team":"x"}}`, gt, "", "", false},
		{"escapes and unicode", `{"entity_key":"\u00e9t\u00e9 \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t","tags":{"é":"✓"}}`, gt, "", "", false},
		{"time and untyped values", `{"at":"2025-01-01T00:00:00Z","values":{"Age":1,"AGE":2}}`, gt, "", "", false},
		{"embedded field", `{"inner":"x","NoTag":1}`, gt, "", "", false},
		{"scalars", ` [1, -0.5e+10, true, false, null, "s"] `, nil, "", "", false},

		{"duplicate key", `{"entity_key":"a","entity_key":"b"}`, gt, `duplicate key "entity_key"`, "", false},
		{"duplicate key spelled with an escape", `{"tags":{"a":"1","\u0061":"2"}}`, gt, `duplicate key "a"`, "tags", false},
		{"duplicate key with an escape in the middle", `{"a\u0062c":1,"abc":2}`, nil, `duplicate key "abc"`, "", false},
		{"duplicate non-ASCII key", `{"\u00e9t\u00e9x":1,"étéx":2}`, nil, `duplicate key "étéx"`, "", false},
		{"duplicate key untyped and nested", `[{"x":{"k":1,"k":2}}]`, nil, `duplicate key "k"`, "[0].x", false},
		{"duplicate among many keys", `{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1,"g":1,"h":1,"i":1,"j":1,"k":1,"l":1,"m":1,"n":1,"o":1,"p":1,"q":1,"r":1,"a":2}`, nil, `duplicate key "a"`, "", false},
		{"case-folded field", `{"Entity_Key":"id"}`, gt, `field names are case-sensitive (did you mean "entity_key"?)`, "", false},
		{"case-folded nested field", `{"features":[{"NAME":"a"}]}`, gt, `did you mean "name"?`, "features[0]", false},
		{"kelvin sign folds to k", "{\"entity_\u212aey\":\"id\"}", gt, "field names are case-sensitive", "", false},
		{"case-folded untagged field", `{"notag":1}`, gt, `did you mean "NoTag"?`, "", false},
		{"NUL escape", `{"tags":{"t":"a\u0000b"}}`, gt, "NUL character", "tags.t", false},
		{"NUL escape in a key", `{"a\u0000":1}`, nil, "NUL character", "", false},
		{"invalid UTF-8", "{\"entity_key\":\"\xff\"}", gt, "invalid UTF-8", "entity_key", false},
		{"UTF-8 encoded surrogate", "[\"\xed\xa0\x80\"]", nil, "invalid UTF-8", "[0]", false},
		{"lone high surrogate", `["\ud800"]`, nil, "lone UTF-16 surrogate", "[0]", false},
		{"high surrogate then a letter", `["\ud800\u0041"]`, nil, "lone UTF-16 surrogate", "[0]", false},
		{"lone low surrogate", `["\udc00"]`, nil, "lone UTF-16 surrogate", "[0]", false},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), nil, "nested deeper than 64 levels", strings.Repeat("[0]", MaxDepth), false},
		{"deep enough", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), nil, "", "", false},

		{"empty", "  ", nil, "empty document", "", true},
		{"trailing data", `{} {}`, nil, "data after the JSON document", "", true},
		{"truncated", `{"a":`, nil, "unexpected end", "a", true},
		{"raw control character", "[\"a\tb\"]", nil, "control character", "[0]", true},
		{"bad escape", `["\x"]`, nil, `invalid escape`, "[0]", true},
		{"leading zero", `[01]`, nil, "after an array element", "", true},
		{"bare word", `[nul]`, nil, "invalid literal", "[0]", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Check([]byte(c.doc), c.t)
			if c.problem == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepted, want %q", c.problem)
			}
			if !strings.Contains(e.Problem, c.problem) || e.Path != c.path || e.Syntax != c.syntax {
				t.Errorf("got problem %q at %q (syntax %v), want %q at %q (syntax %v)", e.Problem, e.Path, e.Syntax, c.problem, c.path, c.syntax)
			}
		})
	}
}

// TestCheckAgreesWithEncodingJSON: what Check accepts encoding/json decodes
// to the same keys and strings (nothing replaced, nothing dropped).
func TestCheckAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	doc := `{"k\u00e9y":"v\ud83d\ude00","n":[1,2,{"x":"\n"}]}`
	if err := Check([]byte(doc), nil); err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	if v["kéy"] != "v😀" {
		t.Errorf("decoded %v", v)
	}
}

// FuzzCheck differentially against encoding/json: a document Check accepts
// is valid JSON that decodes without any U+FFFD it did not spell; a
// document encoding/json calls invalid is refused as malformed; when Check
// refuses valid JSON the reason is one of its strict rules, never syntax.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1,"a":2}`, `["\ud800"]`, `{"Entity_Key":"x"}`, "[\"\xff\"]", `[1e-400]`, `{"tags":{"t":"\u0000"}}`, `[[[[]]]]`} {
		f.Add([]byte(s))
	}
	gt := reflect.TypeFor[group]()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []reflect.Type{nil, gt} {
			err := Check(data, typ)
			valid := json.Valid(data)
			var e *Error
			switch {
			case err == nil && !valid:
				t.Fatalf("accepted invalid JSON %q", data)
			case err != nil && !errors.As(err, &e):
				t.Fatalf("error %v is not an *Error", err)
			case err != nil && valid && e.Syntax:
				t.Fatalf("valid JSON %q refused as malformed: %v", data, err)
			case err != nil && !valid && !e.Syntax && !strings.Contains(e.Problem, "nested deeper"):
				// a strict rule fired first on what is malformed later: fine,
				// as long as the offset is inside the document
				if e.Offset < 0 || e.Offset > len(data) {
					t.Fatalf("offset %d outside %d bytes", e.Offset, len(data))
				}
			case err == nil:
				var v any
				dec := json.NewDecoder(strings.NewReader(string(data)))
				dec.UseNumber()
				if err := dec.Decode(&v); err != nil {
					t.Fatalf("accepted %q, which encoding/json refuses: %v", data, err)
				}
				if strings.ContainsRune(string(mustMarshal(t, v)), '\uFFFD') && !strings.Contains(string(data), "\uFFFD") && !strings.Contains(strings.ToLower(string(data)), `\ufffd`) {
					t.Fatalf("accepted %q, which decodes with a replacement character", data)
				}
			}
		}
	})
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
