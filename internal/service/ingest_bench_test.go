package service

import (
	"encoding/json"
	"testing"

	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb"
	syn "github.com/featurestore/featurestore/internal/tmdb/synthetic"
)

// BenchmarkPrepareIngest is the Go side of a POST /v1/movies of 1,000
// movies of the synthetic corpus before the store's write: the body's
// decoding, each record's validation and the rows of its six groups.
func BenchmarkPrepareIngest(b *testing.B) {
	base, err := syn.Load(testenv.TMDBFile(b))
	if err != nil {
		b.Fatal(err)
	}
	body, err := json.Marshal(syn.Movies(base, 0, 1000))
	if err != nil {
		b.Fatal(err)
	}
	s := newService(b, openEmbedded(b), newClock(), Options{})
	b.ReportAllocs()
	cpu := testenv.CPUTime(b)
	for b.Loop() {
		raws, err := tmdb.Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		p, err := s.PrepareIngest(raws)
		if err != nil || len(p.rows) != 6000 {
			b.Fatalf("%d rows, %v", len(p.rows), err)
		}
	}
	b.ReportMetric(float64(testenv.CPUTime(b)-cpu)/float64(b.N), "cpu-ns/op")
}
