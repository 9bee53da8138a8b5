package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/featurestore/featurestore/internal/store"
)

// MovieCorpus returns the movie corpus aggregate (see store.MovieCorpus):
// the sums the triggers keep and, per rating asked for, the buckets below it
// plus the distinct ratings of its bucket up to it, in one statement.
func (s *Store) MovieCorpus(ctx context.Context, q store.MovieCorpusQuery) (store.MovieCorpus, error) {
	if q.AsOf != nil {
		return s.movieCorpusAsOf(ctx, q.Ratings, *q.AsOf)
	}
	// Ratings travel as the text the rows hold, so SQLite parses them
	// exactly as it parsed the stored ones; one statement reads one
	// snapshot.
	texts := make([]string, len(q.Ratings))
	for i, r := range q.Ratings {
		texts[i] = store.DecimalText(r)
	}
	arg, err := json.Marshal(texts)
	if err != nil {
		return store.MovieCorpus{}, fmt.Errorf("sqlite: encode ratings: %w", err)
	}
	var (
		c      store.MovieCorpus
		atMost string
	)
	if err := s.reader.QueryRowContext(ctx, `
		SELECT c.movies, c.rating_sum, c.rating_squares, c.popularity_sum, c.popularity_squares,
		       (SELECT json_group_array(n) FROM (
		            SELECT (SELECT coalesce(sum(movies), 0) FROM movie_rating_buckets
		                    WHERE bucket < CAST(CAST(k.value AS REAL) * 10 AS INTEGER))
		                 + (SELECT coalesce(sum(movies), 0) FROM movie_rating_counts
		                    WHERE bucket = CAST(CAST(k.value AS REAL) * 10 AS INTEGER) AND rating <= CAST(k.value AS REAL)) AS n
		            FROM json_each(?) AS k ORDER BY k.key))
		FROM movie_corpus c WHERE c.id = 1`, string(arg),
	).Scan(&c.Movies, &c.RatingSum, &c.RatingSquares, &c.PopularitySum, &c.PopularitySquares, &atMost); err != nil {
		return store.MovieCorpus{}, dbError("movie corpus", err)
	}
	if err := json.Unmarshal([]byte(atMost), &c.AtMost); err != nil {
		return store.MovieCorpus{}, fmt.Errorf("sqlite: movie corpus: decode counts: %w", err)
	}
	return c, nil
}

// movieCorpusAsOf rebuilds the corpus as of asOf from the history: each
// movie's newest movie_basic row with event_time <= asOf. It reads every
// movie's history up to asOf: O(N) per call.
func (s *Store) movieCorpusAsOf(ctx context.Context, ratings []float64, asOf time.Time) (store.MovieCorpus, error) {
	rows, err := s.reader.QueryContext(ctx, `
		SELECT r, p FROM (
		    SELECT feature_values -> '$.vote_average' AS r, feature_values -> '$.popularity' AS p,
		           json_type(feature_values, '$.vote_average') AS rt, json_type(feature_values, '$.popularity') AS pt,
		           row_number() OVER (PARTITION BY entity_id ORDER BY event_time DESC, write_time DESC) AS n
		    FROM feature_rows WHERE group_name = 'movie_basic' AND event_time <= ?)
		WHERE n = 1 AND rt IN ('integer', 'real') AND pt IN ('integer', 'real')`, micros(asOf))
	if err != nil {
		return store.MovieCorpus{}, dbError("movie corpus as of", err)
	}
	defer rows.Close()
	var (
		n                  int64
		rs, rsq, ps, psq   = new(big.Rat), new(big.Rat), new(big.Rat), new(big.Rat)
		atMost             = make([]int64, len(ratings))
		rText, pText       string
		rExact, pExact, sq = new(big.Rat), new(big.Rat), new(big.Rat)
	)
	for rows.Next() {
		if err := rows.Scan(&rText, &pText); err != nil {
			return store.MovieCorpus{}, dbError("movie corpus as of", err)
		}
		if _, ok := rExact.SetString(rText); !ok {
			return store.MovieCorpus{}, fmt.Errorf("sqlite: movie corpus as of: vote_average %q", rText)
		}
		if _, ok := pExact.SetString(pText); !ok {
			return store.MovieCorpus{}, fmt.Errorf("sqlite: movie corpus as of: popularity %q", pText)
		}
		n++
		rs.Add(rs, rExact)
		rsq.Add(rsq, sq.Mul(rExact, rExact))
		ps.Add(ps, pExact)
		psq.Add(psq, sq.Mul(pExact, pExact))
		rating, err := strconv.ParseFloat(rText, 64)
		if err != nil {
			return store.MovieCorpus{}, fmt.Errorf("sqlite: movie corpus as of: vote_average %q", rText)
		}
		for i, q := range ratings {
			if rating <= q {
				atMost[i]++
			}
		}
	}
	if err := rows.Err(); err != nil {
		return store.MovieCorpus{}, dbError("movie corpus as of", err)
	}
	return store.MovieCorpus{Movies: n, RatingSum: decimalText(rs), RatingSquares: decimalText(rsq),
		PopularitySum: decimalText(ps), PopularitySquares: decimalText(psq), AtMost: atMost}, nil
}
