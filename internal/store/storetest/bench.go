package storetest

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
)

// BenchGetLatest benchmarks GetLatest on s, an empty store: random batches
// of 100 keys out of 10,000 entities.
func BenchGetLatest(b *testing.B, s store.Store) {
	ids := seedBench(b, s, 10_000)
	rng := rand.New(rand.NewPCG(1, 1)) // #nosec G404 -- deterministic benchmark keys, not a secret
	batches := make([][]feature.Key, 64)
	for i := range batches {
		for range 100 {
			batches[i] = append(batches[i], feature.Key{Group: "movies", EntityID: ids[rng.IntN(len(ids))]})
		}
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := s.GetLatest(ctx, batches[i%len(batches)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchWriteRows benchmarks WriteRows on s, an empty store: batches of 1,000
// rows over 10,000 existing entities.
func BenchWriteRows(b *testing.B, s store.Store) {
	ids := seedBench(b, s, 10_000)
	ctx := context.Background()
	rows := make([]feature.Row, 1000)
	i := 0
	for b.Loop() {
		now := time.Now()
		for j := range rows {
			rows[j] = feature.Row{Group: "movies", EntityID: ids[(i*1000+j)%len(ids)], EventTime: now, WriteTime: now,
				Values: feature.Values{"budget": int64(j), "rating": 1.5, "adult": true, "title": "x"}}
		}
		if err := s.WriteRows(ctx, rows); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// seedBench registers the group "movies" in s and writes one row for each
// of n entities, in batches of 1,000, returning the entity ids.
func seedBench(b *testing.B, s store.Store, n int) []string {
	b.Helper()
	ctx := context.Background()
	if _, err := s.PutGroup(ctx, feature.Group{Name: "movies", EntityKey: "movie_id", Features: []feature.Spec{
		{Name: "budget", Type: feature.Int64}, {Name: "rating", Type: feature.Float64},
		{Name: "adult", Type: feature.Bool}, {Name: "title", Type: feature.String},
	}}, time.Now()); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	rows := make([]feature.Row, 0, 1000)
	now := time.Now()
	for i := range ids {
		ids[i] = strconv.Itoa(100000 + i)
		rows = append(rows, feature.Row{Group: "movies", EntityID: ids[i], EventTime: now, WriteTime: now, Values: feature.Values{
			"budget": int64(i) * 1000, "rating": 6.5, "adult": false, "title": "Movie " + ids[i]}})
		if len(rows) == cap(rows) || i == len(ids)-1 {
			if err := s.WriteRows(ctx, rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	return ids
}
