package service

import (
	"context"
	"math/big"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/tmdb"
)

// scanCorpus is the CorpusReader of last resort, for a store that keeps no
// corpus aggregate (a store.Store passed without Options.Corpus, as some
// tests do): it computes the same exact aggregate by scanning every movie's
// movie_basic row on each call, O(N) per read. New logs a warning when it
// falls back to it; production wiring (internal/app) passes the system of
// record instead.
type scanCorpus struct{ st store.Store }

func (c scanCorpus) MovieCorpus(ctx context.Context, q store.MovieCorpusQuery) (store.MovieCorpus, error) {
	var agg exactAggregate
	agg.atMost = make([]int64, len(q.Ratings))
	err := c.st.ScanLatest(ctx, tmdb.GroupBasic, func(r feature.Row) error {
		row := &r
		if q.AsOf != nil {
			var err error
			if row, err = c.st.GetAsOf(ctx, feature.Key{Group: r.Group, EntityID: r.EntityID}, *q.AsOf); err != nil {
				return err
			}
		}
		agg.add(row, q.Ratings)
		return nil
	})
	if err != nil {
		return store.MovieCorpus{}, err
	}
	return agg.result(), nil
}

// exactAggregate sums a corpus exactly, as the stores' triggers do.
type exactAggregate struct {
	movies         int64
	rs, rq, ps, pq big.Rat
	atMost         []int64
}

func (a *exactAggregate) add(r *feature.Row, ratings []float64) {
	va, pop, ok := basicNumbers(r)
	if !ok {
		return
	}
	rv, _ := new(big.Rat).SetString(store.DecimalText(va))
	pv, _ := new(big.Rat).SetString(store.DecimalText(pop))
	a.movies++
	a.rs.Add(&a.rs, rv)
	a.rq.Add(&a.rq, new(big.Rat).Mul(rv, rv))
	a.ps.Add(&a.ps, pv)
	a.pq.Add(&a.pq, new(big.Rat).Mul(pv, pv))
	for i, q := range ratings {
		if va <= q {
			a.atMost[i]++
		}
	}
}

func (a *exactAggregate) result() store.MovieCorpus {
	return store.MovieCorpus{Movies: a.movies, RatingSum: a.rs.RatString(), RatingSquares: a.rq.RatString(),
		PopularitySum: a.ps.RatString(), PopularitySquares: a.pq.RatString(), AtMost: a.atMost}
}
