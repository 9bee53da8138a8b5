package service

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// CorpusReader reads the movie corpus aggregate that the system of record
// keeps up to date with every write (see docs/statistics.md). The postgres
// and sqlite stores satisfy it; the cache does not, so the service is given
// the system of record itself.
type CorpusReader interface {
	MovieCorpus(ctx context.Context, q store.MovieCorpusQuery) (store.MovieCorpus, error)
}

// RegistryListener pushes registry changes made by any writer: it calls
// changed after each, until ctx ends. The postgres store satisfies it
// (LISTEN/NOTIFY); the embedded store has a single writer and needs none.
type RegistryListener interface {
	ListenRegistry(ctx context.Context, changed func())
}

// needsCorpus reports whether any of specs is corpus-relative.
func needsCorpus(specs []feature.Spec) bool {
	for _, sp := range specs {
		if slices.Contains(tmdb.CorpusRelative, sp.Name) {
			return true
		}
	}
	return false
}

// basicNumbers returns the vote_average and popularity a movie_basic row
// holds, or ok false if it holds no number for either.
func basicNumbers(r *feature.Row) (voteAverage, popularity float64, ok bool) {
	if r == nil {
		return 0, 0, false
	}
	va, ok1 := r.Values["vote_average"].(float64)
	pop, ok2 := r.Values["popularity"].(float64)
	return va, pop, ok1 && ok2
}

// withRelative returns stat with each row replaced by a copy that holds the
// corpus-relative features of its movie, computed from the movie's
// movie_basic row (basic[i] for stat[i]) and the corpus that the system of
// record holds (as of asOf, or now), read in one round trip. Rows are
// copied, never modified: the cache may share them. A movie without a
// numeric vote_average and popularity gets nulls. If the system of record
// cannot be reached, every row gets nulls and the rest of the read is
// served (from the cache).
func (s *Service) withRelative(ctx context.Context, stat, basic []*feature.Row, asOf *time.Time) ([]*feature.Row, error) {
	out := slices.Clone(stat)
	var (
		ratings []float64
		at      []int // index in stat of each rating
	)
	for i, r := range stat {
		if r == nil {
			continue
		}
		if va, _, ok := basicNumbers(basic[i]); ok {
			ratings = append(ratings, va)
			at = append(at, i)
		}
	}
	var (
		c     store.MovieCorpus
		stats tmdb.CorpusStats
		err   error
	)
	if len(ratings) > 0 {
		c, err = s.corpus.MovieCorpus(ctx, store.MovieCorpusQuery{Ratings: ratings, AsOf: asOf})
		if err == nil {
			stats, err = tmdb.NewCorpusStats(c.Movies, c.RatingSum, c.RatingSquares, c.PopularitySum, c.PopularitySquares)
		}
		switch {
		case err != nil && feature.ErrorCode(err) == feature.CodeUnavailable:
			s.log.Warn("movie corpus unavailable: corpus-relative features are null", zap.Error(err))
			ratings, at = nil, nil
		case err != nil:
			return nil, fmt.Errorf("read movie corpus: %w", err)
		case len(c.AtMost) != len(ratings):
			return nil, fmt.Errorf("read movie corpus: %d counts for %d ratings", len(c.AtMost), len(ratings))
		}
	}
	for i, r := range stat {
		if r == nil {
			continue
		}
		cp := *r
		cp.Values = maps.Clone(r.Values)
		for _, name := range tmdb.CorpusRelative {
			cp.Values[name] = nil
		}
		out[i] = &cp
	}
	for j, i := range at {
		va, pop, _ := basicNumbers(basic[i])
		maps.Copy(out[i].Values, stats.Relative(va, pop, c.AtMost[j]))
	}
	return out, nil
}

// corpusMovies is the number of movies in the corpus.
func (s *Service) corpusMovies(ctx context.Context) (int, error) {
	c, err := s.corpus.MovieCorpus(ctx, store.MovieCorpusQuery{})
	if err != nil {
		return 0, err
	}
	return int(c.Movies), nil
}
