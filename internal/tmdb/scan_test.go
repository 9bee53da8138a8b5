package tmdb

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"testing"
)

// FuzzObjectMembers: objectMembers, arrayElements and unquote agree with
// encoding/json, which ParseMovie used before them: the same members (last
// value of a repeated key), the same array elements, the same strings, and
// the same inputs refused.
func FuzzObjectMembers(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : [1, 2 ,3] , "b":{"c":"}"}}`, `{"a":1,"a":2}`,
		`{"t\u00e9":"x\"y","\ud800":"\xff"}`, `{"g":[ ]}`, `{"g":[1,"2",[3],{"4":5},null,true]}`,
		`{"a":"b\\"}`, `[1]`, `{"a":}`, `{"a":1,}`, `{"a":-1.5e3,"b":false,"c":null}`, "{\"x\":\"\xe2\x82\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := objectMembers(raw)
		var want map[string]json.RawMessage
		wantOK := len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &want) == nil
		if ok != wantOK {
			t.Fatalf("objectMembers(%q) ok = %v, json.Unmarshal ok = %v", raw, ok, wantOK)
		}
		if !ok {
			return
		}
		if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("objectMembers(%q) = %q, json.Unmarshal = %q", raw, got, want)
		}
		for _, v := range got {
			checkUnquote(t, v)
			if v[0] == '[' {
				checkArray(t, v)
			}
		}
	})
}

func checkUnquote(t *testing.T, v []byte) {
	t.Helper()
	s, ok := unquote(v)
	var want string
	wantOK := v[0] == '"' && json.Unmarshal(v, &want) == nil
	if ok != wantOK || s != want {
		t.Fatalf("unquote(%q) = %q, %v; json.Unmarshal = %q, %v", v, s, ok, want, wantOK)
	}
}

func checkArray(t *testing.T, v []byte) {
	t.Helper()
	var got []json.RawMessage
	arrayElements(v, func(el []byte) bool {
		got = append(got, el)
		return true
	})
	var want []json.RawMessage
	if err := json.Unmarshal(v, &want); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("arrayElements(%q) = %q, json.Unmarshal = %q", v, got, want)
	}
}
