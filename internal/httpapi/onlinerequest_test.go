package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/featurestore/featurestore/internal/service"
	"github.com/featurestore/featurestore/internal/strictjson"
)

// sameAsEncodingJSON checks that whatever decodeOnlineRequest accepts,
// strictjson.Check passes (the fast path is the only check of what it
// accepts) and encoding/json decodes exactly as it did (nil and empty told
// apart); it reports whether it accepted the document.
func sameAsEncodingJSON(t *testing.T, body []byte) bool {
	t.Helper()
	var fast service.OnlineRequest
	if !decodeOnlineRequest(body, &fast) {
		return false
	}
	if err := strictjson.Check(body, reflect.TypeFor[*service.OnlineRequest]()); err != nil {
		t.Fatalf("%s: the fast decoder accepted what strictjson refuses: %v", body, err)
	}
	var slow service.OnlineRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&slow); err != nil {
		t.Fatalf("%s: the fast decoder accepted what encoding/json refuses: %v", body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("%s: the fast decoder accepted data after the document", body)
	}
	if diff := cmp.Diff(slow, fast); diff != "" {
		t.Fatalf("%s: the fast decoder differs from encoding/json (-json +fast):\n%s", body, diff)
	}
	return true
}

// TestDecodeOnlineRequest: the usual requests take the fast path and
// decode as encoding/json would; what it does not know is left to
// encoding/json (whose errors the API reports, as before).
func TestDecodeOnlineRequest(t *testing.T) {
	t.Parallel()
	fast := []string{
		`{"entities":{"movie_id":[550,"13",-1.5e3,true,null]},"features":["movie_basic:title","g:f"]}`,
		` { "entities" : { "movie_id" : [ ] } , "features" : [ ] , "full_feature_names" : true } `,
		`{"entities":{"movie_id":null},"features":null,"feature_service":null,"request_context":null}`,
		`{"entities":null,"feature_service":"svc","request_context":{},"full_feature_names":null,"include_feature_view_version_metadata":true}`,
		`{"entities":{},"features":["日本:é <&>"],"full_feature_names":false,"include_feature_view_version_metadata":false}`,
		`{}`,
		`{"entities":{"m":[0,-0,10,1.25e+10,2E-3,-0.5,7e0]}}`,
	}
	for _, body := range fast {
		if !sameAsEncodingJSON(t, []byte(body)) {
			t.Errorf("%s: not decoded by the fast path", body)
		}
	}
	slow := []string{
		`null`,
		`{"entities":{"movie_id":[[1]]},"features":["a:b"]}`,
		`{"entities":{"movie_id":[{"a":1}]}}`,
		`{"features":["a\u0041:b"]}`,
		`{"features":[1]}`,
		`{"features":"a:b"}`,
		`{"entities":[]}`,
		`{"full_feature_names":"yes"}`,
		`{"request_context":{"a":1}}`,
		`{"nope":1}`,
		`{"feature_service":1}`,
		// what strictjson refuses, the fast path leaves to it
		`{"features":["a:b"],"features":["c:d"]}`,
		`{"entities":{"movie_id":[1],"movie_id":[2]}}`,
		`{"Features":["a:b"]}`,
		"{\"features\":[\"a\xff:b\"]}",
		"{\"entities\":{\"m\\u0000\":[1]}}",
		`{"entities":{"m":[01]}}`,
		`{"entities":{"m":[-]}}`,
		`{"entities":{"m":[1.]}}`,
		`{"entities":{"m":[.5]}}`,
		`{"entities":{"m":[1e]}}`,
		`{"entities":{"m":[1-2]}}`,
		`{"entities":{"m":[+1]}}`,
		`{"entities":{"m":[1]}} x`,
		`{"entities":{"m":[1]}}{}`,
	}
	for _, body := range slow {
		if sameAsEncodingJSON(t, []byte(body)) {
			t.Errorf("%s: decoded by the fast path, want it left to encoding/json", body)
		}
	}
}

// FuzzDecodeOnlineRequest: whatever the fast decoder accepts, encoding/json
// decodes to the same request. Seeds are in
// testdata/fuzz/FuzzDecodeOnlineRequest.
func FuzzDecodeOnlineRequest(f *testing.F) {
	f.Add([]byte(`{"entities":{"movie_id":[550,"13"]},"features":["movie_basic:title"],"full_feature_names":true}`))
	f.Fuzz(func(t *testing.T, body []byte) { sameAsEncodingJSON(t, body) })
}
