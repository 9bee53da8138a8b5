package httpapi

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/service"
)

// fuzzGroup is the schema rows are normalised against.
var fuzzGroup = feature.Group{Name: "g", EntityKey: "id", Features: []feature.Spec{
	{Name: "i", Type: feature.Int64}, {Name: "f", Type: feature.Float64}, {Name: "b", Type: feature.Bool}, {Name: "s", Type: feature.String}}}

// decodeAs runs the request decoder on body into a new T.
func decodeAs[T any](body []byte, root string) (T, error) {
	var v T
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	return v, decode(r, &v, root)
}

// checkCoded: a decoding failure is a coded client error naming a field.
func checkCoded(t *testing.T, err error) {
	t.Helper()
	var fe *feature.Error
	if !errors.As(err, &fe) || (fe.Code != feature.CodeInvalid && fe.Code != feature.CodeTooLarge) || len(fe.Fields) == 0 {
		t.Fatalf("error %v is not invalid/too_large with a field", err)
	}
	for _, f := range fe.Fields {
		if f.Field == "" || f.Problem == "" {
			t.Fatalf("empty field error in %v", err)
		}
	}
}

// checkText: every string that came through the decoder is text a store
// can keep (valid UTF-8, no NUL).
func checkText(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		t.Fatalf("decoded %q, which no store can keep", s)
	}
}

// FuzzDecodeRequests runs the three request body decoders (a group
// definition, rows, a Feast batch read) and the feature value decoding on
// one input: none panics; each refusal is a coded client error naming a
// field; what is accepted holds only storable text and, for rows, values of
// exactly the schema's types. Seeds are in testdata/fuzz/FuzzDecodeRequests.
func FuzzDecodeRequests(f *testing.F) {
	f.Add([]byte(`{"entity_key":"id","ttl_seconds":60,"description":"d","tags":{"t":"v"},"features":[{"name":"x","type":"int64"}]}`))
	f.Add([]byte(`[{"entity_id":"e1","event_time":"2025-01-01T00:00:00Z","values":{"i":1,"f":2.5,"b":true,"s":"x"}}]`))
	f.Add([]byte(`{"entities":{"movie_id":[1,"2"]},"features":["movie_basic:popularity"],"full_feature_names":true}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if g, err := decodeAs[groupRequest](body, ""); err != nil {
			checkCoded(t, err)
		} else {
			checkText(t, g.EntityKey)
			checkText(t, g.Description)
			for k, v := range g.Tags {
				checkText(t, k)
				checkText(t, v)
			}
			grp := feature.Group{Name: "g", EntityKey: g.EntityKey, Features: g.Features, TTL: g.TTL, Description: g.Description, Tags: g.Tags}
			if err := grp.Validate(); err != nil {
				checkCoded(t, err)
			}
			if err := grp.CheckSize(feature.Limits{}); err != nil {
				checkCoded(t, err)
			}
		}
		if rows, err := decodeAs[[]service.RowInput](body, "rows"); err != nil {
			checkCoded(t, err)
		} else {
			for _, r := range rows {
				if s, ok := r.EntityID.(string); ok {
					checkText(t, s)
				}
				values, problems := feature.NormalizeValues(fuzzGroup, r.Values, "rows[0].")
				if len(problems) > 0 {
					continue
				}
				for name, v := range values {
					spec, _ := fuzzGroup.Feature(name)
					checkType(t, spec.Type, v)
				}
			}
		}
		if req, err := decodeAs[service.OnlineRequest](body, ""); err != nil {
			checkCoded(t, err)
		} else {
			for k := range req.Entities {
				checkText(t, k)
			}
		}
	})
}

func checkType(t *testing.T, typ feature.ValueType, v any) {
	t.Helper()
	ok := v == nil
	switch typ {
	case feature.Int64:
		_, ok = v.(int64)
	case feature.Float64:
		_, ok = v.(float64)
	case feature.Bool:
		_, ok = v.(bool)
	case feature.String:
		var s string
		s, ok = v.(string)
		if ok {
			checkText(t, s)
		}
	}
	if !ok && v != nil {
		t.Fatalf("value %#v (%T) for a %s feature", v, v, typ)
	}
}

// FuzzPlainError: the rewrite of net/http's own error answers never
// panics, only touches answers of net/http's exact shape, and always
// produces a complete HTTP response with a JSON body and a 4xx status.
// Seeds are in testdata/fuzz/FuzzPlainError.
func FuzzPlainError(f *testing.F) {
	f.Add([]byte("HTTP/1.1 400 Bad Request: invalid URI\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: invalid URI"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: x\r\n\r\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := plainError(b)
		if !ok {
			if out != nil {
				t.Fatal("output without a rewrite")
			}
			return
		}
		if !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) {
			t.Fatalf("rewrote %q, which is not an HTTP/1.1 answer", b)
		}
		resp, err := http.ReadResponse(bufioReader(out), nil)
		if err != nil || resp.StatusCode < 400 || resp.StatusCode > 499 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("rewrite %q: %v %v", out, resp, err)
		}
	})
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
