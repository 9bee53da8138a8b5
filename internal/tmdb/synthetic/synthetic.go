// Package synthetic generates TMDB-like corpora of any size from the real
// records of a TMDB crawler file, for measurements (tools/scalebench,
// tools/perfdata, tools/ingestbench): each real record is repeated with a new id and
// deterministically varied rating, popularity, vote count and title, so every
// size has a realistic spread of ratings and popularities and the same
// corpus comes out of every run.
package synthetic

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// RecordsFile is the crawler file of real records the measurements derive
// their corpus from, relative to the repository's root.
const RecordsFile = "testdata/tmdb/bulk_collection_20250605_022412.json"

// FirstID is the id of movie 0 of a generated corpus; movie i has
// FirstID+i. It is far above the ids of the real records.
const FirstID = 10_000_000

// Load reads the real records of a crawler file ({"movies":[...]}).
func Load(path string) ([]map[string]any, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- the corpus file named by the caller
	if err != nil {
		return nil, err
	}
	var f struct {
		Movies []map[string]any `json:"movies"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Movies) == 0 {
		return nil, fmt.Errorf("%s: no movies", path)
	}
	return f.Movies, nil
}

// Movie is the i-th movie (i >= 0) of a corpus generated from base: the
// record base[i%len(base)] with the id FirstID+i and its numbers varied by a
// generator seeded with i.
func Movie(base []map[string]any, i int) map[string]any {
	src := base[i%len(base)]
	m := make(map[string]any, len(src))
	for k, v := range src {
		m[k] = v
	}
	rng := rand.New(rand.NewPCG(uint64(i), 0x5ca1eb)) // #nosec G115 G404 -- i is a non-negative index; reproducible synthetic data, not a secret
	delete(m, "movie_id")
	m["id"] = FirstID + i
	va, _ := src["vote_average"].(float64)
	m["vote_average"] = math.Round(math.Max(0, math.Min(10, va+rng.NormFloat64()))*1000) / 1000
	pop, _ := src["popularity"].(float64)
	m["popularity"] = math.Round(pop*math.Exp(rng.NormFloat64())*1000) / 1000
	vc, _ := src["vote_count"].(float64)
	m["vote_count"] = int(vc * rng.Float64() * 2)
	if t, ok := src["title"].(string); ok {
		m["title"] = fmt.Sprintf("%s %d", t, i/len(base))
	}
	return m
}

// Movies returns movies lo..hi-1 of the corpus generated from base.
func Movies(base []map[string]any, lo, hi int) []map[string]any {
	out := make([]map[string]any, 0, max(0, hi-lo))
	for i := lo; i < hi; i++ {
		out = append(out, Movie(base, i))
	}
	return out
}

// Rows returns the rows an ingest of movies lo..hi-1 of the corpus writes
// at eventTime (event and write time): each movie encoded as a request
// carries it, parsed and turned into its six stored groups as the service
// does, in the order the service computes them.
func Rows(base []map[string]any, lo, hi int, eventTime time.Time) ([]feature.Row, error) {
	rows := make([]feature.Row, 0, 6*max(0, hi-lo))
	for i := lo; i < hi; i++ {
		raw, err := json.Marshal(Movie(base, i))
		if err != nil {
			return nil, err
		}
		m, problems := tmdb.ParseMovie(raw)
		if len(problems) > 0 {
			return nil, fmt.Errorf("movie %d: %v", i, problems)
		}
		id := strconv.FormatInt(m.ID, 10)
		for group, values := range tmdb.StoredFeatures(m, eventTime) {
			rows = append(rows, feature.Row{Group: group, EntityID: id, EventTime: eventTime, WriteTime: eventTime, Values: values})
		}
	}
	return rows, nil
}

// LoadRows is Rows of movies 0..n-1 of the corpus derived from the crawler
// file at path.
func LoadRows(path string, n int, eventTime time.Time) ([]feature.Row, error) {
	base, err := Load(path)
	if err != nil {
		return nil, err
	}
	return Rows(base, 0, n, eventTime)
}
