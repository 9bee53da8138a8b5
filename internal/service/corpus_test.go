package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/testenv"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// movieStat is one movie of a corpus as the brute force sees it.
type movieStat struct{ rating, popularity float64 }

// bruteForce computes the corpus-relative features of a movie rated rating
// with the given popularity straight from ../shared/TMDB_FEATURES.md over
// every movie of corpus: mean and population standard deviation in two
// passes, percentile by counting.
func bruteForce(corpus map[int64]movieStat, rating, popularity float64) map[string]any {
	n := float64(len(corpus))
	var rs, ps float64
	for _, m := range corpus {
		rs += m.rating
		ps += m.popularity
	}
	rm, pm := rs/n, ps/n
	var rv, pv float64
	atMost := 0
	for _, m := range corpus {
		rv += (m.rating - rm) * (m.rating - rm)
		pv += (m.popularity - pm) * (m.popularity - pm)
		if m.rating <= rating {
			atMost++
		}
	}
	return map[string]any{
		"rating_zscore":     (rating - rm) / (math.Sqrt(rv/n) + 1e-8),
		"popularity_zscore": (popularity - pm) / (math.Sqrt(pv/n) + 1e-8),
		"rating_percentile": 100 * float64(atMost) / n,
	}
}

// checkRelative compares the corpus-relative features of a read with the
// brute force's, to 1e-9 (relative above 1): the store sums exactly, the
// brute force in float64.
func checkRelative(t *testing.T, what string, want, got map[string]any) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name].(float64)
		if !ok || math.Abs(g-w.(float64)) > 1e-9*math.Max(1, math.Abs(w.(float64))) {
			t.Errorf("%s: %s = %v, brute force %v", what, name, got[name], w)
		}
	}
}

// synthetic is a TMDB-like movie: ratings with three decimals, popularity
// with three.
func synthetic(r *rand.Rand, id int64) (json.RawMessage, movieStat) {
	m := movieStat{float64(r.IntN(10001)) / 1000, float64(r.IntN(2_000_000)) / 1000}
	return json.RawMessage(fmt.Sprintf(`{"id": %d, "title": "Movie %d", "vote_average": %s, "popularity": %s, "vote_count": %d}`,
		id, id, store.DecimalText(m.rating), store.DecimalText(m.popularity), r.IntN(5000))), m
}

// TestStatisticalMatchesBruteForce: after ingests, re-ingests with new
// values and movies ingested twice in one payload, every movie's
// corpus-relative features read through GetEntity and GetOnlineFeatures
// equal the brute force over the corpus; the per-movie ones are what tmdb
// computes; features not asked for cost no corpus read.
func TestStatisticalMatchesBruteForce(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newClock()
		s := newService(t, st, c, Options{})
		r := rand.New(rand.NewPCG(7, 7))
		corpus := map[int64]movieStat{}
		for round := range 3 {
			var raws []json.RawMessage
			for i := range 120 {
				id := int64(round*90 + i + 1) // rounds overlap: re-ingests with new values
				raw, m := synthetic(r, id)
				raws = append(raws, raw)
				corpus[id] = m
			}
			if _, err := s.Ingest(ctx, raws); err != nil {
				t.Fatal(err)
			}
			c.Advance(time.Minute)
		}
		ids := make([]any, 0, len(corpus))
		for id, m := range corpus { // every movie through the batch read, some one by one too
			ids = append(ids, id)
			if id%10 != 0 {
				continue
			}
			got, err := s.GetEntity(ctx, tmdb.GroupStatistical, strconv.FormatInt(id, 10), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkRelative(t, fmt.Sprintf("movie %d", id), bruteForce(corpus, m.rating, m.popularity), got.Features)
		}
		resp, err := s.GetOnlineFeatures(ctx, OnlineRequest{Entities: map[string][]any{"movie_id": append(ids, int64(999999))},
			Features: []string{"movie_statistical:rating_percentile", "movie_statistical:rating_zscore", "movie_statistical:popularity_zscore", "movie_statistical:weighted_rating"}})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range ids {
			m := corpus[v.(int64)]
			want := bruteForce(corpus, m.rating, m.popularity)
			got := map[string]any{"rating_percentile": resp.Results[1].Values[i], "rating_zscore": resp.Results[2].Values[i], "popularity_zscore": resp.Results[3].Values[i]}
			checkRelative(t, fmt.Sprintf("batch read of movie %v", v), want, got)
			if resp.Results[4].Values[i] == nil || resp.Results[1].Statuses[i] != feature.StatusPresent {
				t.Errorf("batch read of movie %v: %v, %v", v, resp.Results[4].Values[i], resp.Results[1].Statuses[i])
			}
		}
		if last := len(ids); resp.Results[1].Statuses[last] != feature.StatusNotFound {
			t.Errorf("movie not stored: status %s", resp.Results[1].Statuses[last])
		}
	})
}

// TestStatisticalAsOf: an as-of read scores the movie against the corpus as
// it was at that time, not the corpus of now.
func TestStatisticalAsOf(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, st store.Store) {
		ctx := context.Background()
		c := newClock()
		s := newService(t, st, c, Options{})
		r := rand.New(rand.NewPCG(1, 2))
		then := map[int64]movieStat{}
		var raws []json.RawMessage
		for id := int64(1); id <= 50; id++ {
			raw, m := synthetic(r, id)
			raws, then[id] = append(raws, raw), m
		}
		if _, err := s.Ingest(ctx, raws); err != nil {
			t.Fatal(err)
		}
		asOf := c.Now()
		c.Advance(time.Hour)
		now := map[int64]movieStat{}
		for id, m := range then {
			now[id] = m
		}
		raws = nil
		for id := int64(30); id <= 120; id++ { // new movies, and movies 30-50 with new values
			raw, m := synthetic(r, id)
			raws, now[id] = append(raws, raw), m
		}
		if _, err := s.Ingest(ctx, raws); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{1, 40} {
			got, err := s.GetEntity(ctx, tmdb.GroupStatistical, strconv.FormatInt(id, 10), nil, &asOf)
			if err != nil {
				t.Fatal(err)
			}
			m := then[id]
			checkRelative(t, fmt.Sprintf("movie %d as of the first ingest", id), bruteForce(then, m.rating, m.popularity), got.Features)
			got, err = s.GetEntity(ctx, tmdb.GroupStatistical, strconv.FormatInt(id, 10), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			m = now[id]
			checkRelative(t, fmt.Sprintf("movie %d now", id), bruteForce(now, m.rating, m.popularity), got.Features)
		}
		before := asOf.Add(-time.Second)
		if _, err := s.GetEntity(ctx, tmdb.GroupStatistical, "1", nil, &before); feature.ErrorCode(err) != feature.CodeNotFound {
			t.Errorf("as of before any ingest: %v, want not found", err)
		}
	})
}

// TestReplicasAgree: two replicas on one Postgres schema (and one Redis
// prefix), each ingesting movies — the same movie through both, too — give
// the very same statistical values, equal to the brute force; the embedded
// store fed the same ingests gives them too, to the last bit.
func TestReplicasAgree(t *testing.T) {
	t.Parallel()
	url := testenv.PostgresSchemaURL(t, "fs_t")
	prefix := fmt.Sprintf("fs_t_%016x", rand.Uint64())
	c := newClock()
	a := newService(t, openPostgresURL(t, url, prefix), c, Options{})
	b := newService(t, openPostgresURL(t, url, prefix), c, Options{})
	embedded := newService(t, openEmbedded(t), c, Options{})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	corpus := map[int64]movieStat{}
	for id := int64(1); id <= 100; id++ {
		raw, m := synthetic(r, id)
		corpus[id] = m
		via := a
		if id%2 == 0 {
			via = b
		}
		for _, s := range []*Service{via, embedded} {
			if _, err := s.Ingest(ctx, []json.RawMessage{raw}); err != nil {
				t.Fatal(err)
			}
		}
	}
	same, m := movie(777, 6.5, 12.5), movieStat{6.5, 12.5}
	corpus[777] = m
	for _, s := range []*Service{a, b, embedded} {
		if _, err := s.Ingest(ctx, []json.RawMessage{same}); err != nil {
			t.Fatal(err)
		}
	}
	want := bruteForce(corpus, m.rating, m.popularity)
	var first map[string]any
	for name, s := range map[string]*Service{"a": a, "b": b, "embedded": embedded} {
		got, err := s.GetEntity(ctx, tmdb.GroupStatistical, "777", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkRelative(t, "replica "+name, want, got.Features)
		if first == nil {
			first = got.Features
		}
		for k, v := range first {
			if got.Features[k] != v {
				t.Errorf("replica %s: %s = %v, another replica %v", name, k, got.Features[k], v)
			}
		}
		if n := s.CorpusSize(); n != len(corpus) {
			t.Errorf("replica %s: corpus of %d movies, want %d", name, n, len(corpus))
		}
	}
}
