package service

import (
	"encoding/json"
	"testing"
	"time"
)

// TestEntityIDOfTypedKey: movie_id takes JSON integers only; other keys
// take strings and integers alike. Pure: runs under -short.
func TestEntityIDOfTypedKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		key  string
		v    any
		want string // "" means refused
	}{
		{"movie_id", json.Number("550"), "550"},
		{"movie_id", json.Number("-3"), "-3"},
		{"movie_id", json.Number("0"), "0"},
		{"movie_id", json.Number("-0"), "0"},
		{"movie_id", json.Number("0550"), "550"},
		{"movie_id", json.Number("-0550"), "-550"},
		{"movie_id", json.Number("+550"), "550"},
		{"movie_id", int64(550), "550"},
		{"movie_id", "550", ""},
		{"movie_id", json.Number("550.0"), ""},
		{"movie_id", json.Number("5.5e2"), ""},
		{"movie_id", json.Number("99999999999999999999"), ""},
		{"movie_id", true, ""},
		{"movie_id", nil, ""},
		{"user_id", "550", "550"},
		{"user_id", json.Number("550"), "550"},
		{"user_id", "", ""},
		{"user_id", json.Number("2.5"), ""},
	} {
		got, problem := entityID(c.key, c.v)
		if got != c.want || (c.want == "") != (problem != "") {
			t.Errorf("entityID(%s, %#v) = %q, %q; want %q", c.key, c.v, got, problem, c.want)
		}
	}
	for id, ok := range map[string]bool{"550": true, "-1": true, "0": true, "0550": false, "+550": false, "abc": false, "5.0": false, "-0": false, "00": false, "-0550": false} {
		if got := pathEntityID("movie_id", id) == ""; got != ok {
			t.Errorf("pathEntityID(movie_id, %q) accepted %v, want %v", id, got, ok)
		}
	}
	if problem := pathEntityID("user_id", "0550"); problem != "" {
		t.Errorf("pathEntityID(user_id, 0550) = %q, want accepted", problem)
	}
}

// TestFrameTime: the event time forms a Feast client sends.
func TestFrameTime(t *testing.T) {
	t.Parallel()
	want := time.Date(2022, 5, 13, 10, 59, 42, 0, time.UTC)
	for _, s := range []string{"2022-05-13T10:59:42Z", "2022-05-13T12:59:42+02:00", "2022-05-13 10:59:42",
		"2022-05-13 10:59:42+00:00", "2022-05-13T10:59:42", "2022-05-13 10:59:42.000000"} {
		got, problem := frameTime(s)
		if problem != "" || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("frameTime(%q) = %v, %q; want %v", s, got, problem, want)
		}
	}
	for _, v := range []any{"yesterday", "2022-05-13", json.Number("1652439582"), nil} {
		if _, problem := frameTime(v); problem == "" {
			t.Errorf("frameTime(%#v) accepted", v)
		}
	}
}
