package crawl

import (
	"encoding/json"
	"testing"

	"github.com/featurestore/featurestore/internal/crawl/tmdbtest"
)

// FuzzDecodePage: any body decodes to a page or an error, never a panic;
// a decoded page is the page asked for and its results are the body's.
func FuzzDecodePage(f *testing.F) {
	movies, _ := json.Marshal(tmdbtest.Movies()[:3])
	f.Add([]byte(`{"page":1,"results":`+string(movies)+`,"total_pages":3,"total_results":60}`), 1)
	f.Add([]byte(`{"page":1,"results":[],"total_pages":0,"total_results":0}`), 1)
	f.Add([]byte(`{"page":2,"results":[{"id":1}`), 2)
	f.Add([]byte(`{"page":1,"results":"x","total_pages":1}`), 1)
	f.Add([]byte(`{"page":1,"results":[1],"movies":[],"total_pages":1}`), 1)
	f.Fuzz(func(t *testing.T, body []byte, want int) {
		p, err := decodePage(body, want)
		if err != nil {
			return
		}
		var head struct {
			Results []json.RawMessage `json:"results"`
		}
		if json.Unmarshal(body, &head) != nil || len(head.Results) != len(p.Results) || p.Number != want {
			t.Fatalf("decoded page %d with %d results from %q", p.Number, len(p.Results), body)
		}
	})
}

// FuzzDetailsRecord: any details body gives a JSON object without "genres",
// or an error.
func FuzzDetailsRecord(f *testing.F) {
	f.Add([]byte(`{"id":1,"title":"A","genres":[{"id":18,"name":"Drama"}]}`))
	f.Add([]byte(`{"id":1,"genres":null}`))
	f.Add([]byte(`{"id":1,"genres":[{"id":"x"}],"genre_ids":[1]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := detailsRecord(body)
		if err != nil {
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(out, &obj); err != nil || obj == nil {
			t.Fatalf("detailsRecord(%q) = %q: not an object (%v)", body, out, err)
		}
		if _, ok := obj["genres"]; ok {
			t.Fatalf("detailsRecord(%q) kept genres: %q", body, out)
		}
	})
}
