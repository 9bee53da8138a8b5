package postgres

import (
	"context"
	"time"

	"github.com/featurestore/featurestore/internal/store"
)

// movieCorpusSQL reads the aggregate the triggers keep and, for each rating
// x of $1, how many movies are rated at most x: the buckets below x's plus
// the distinct ratings of x's bucket up to x, two bounded index range sums
// per rating asked for.
const movieCorpusSQL = `
SELECT c.movies, c.rating_sum::text, c.rating_squares::text, c.popularity_sum::text, c.popularity_squares::text,
       ARRAY(SELECT ((SELECT coalesce(sum(b.movies), 0) FROM movie_rating_buckets b WHERE b.bucket < floor(q.x * 10)::int)
                   + (SELECT coalesce(sum(n.movies), 0) FROM movie_rating_counts n
                      WHERE n.bucket = floor(q.x * 10)::int AND n.rating <= q.x))::bigint
             FROM unnest($1::numeric[]) WITH ORDINALITY AS q(x, ord) ORDER BY q.ord)
FROM movie_corpus c WHERE c.id = 1`

// movieCorpusAsOfSQL rebuilds the corpus as of $2 from the history: each
// movie's newest movie_basic row with event_time <= $2 (the row GetAsOf
// returns), read in the as-of index's order. It reads every movie's history
// up to $2: O(N) per call, which only as-of reads of the corpus-relative
// features pay.
const movieCorpusAsOfSQL = `
WITH latest AS (
    SELECT DISTINCT ON (entity_id) feature_values AS v
    FROM feature_rows
    WHERE group_name = 'movie_basic' AND event_time <= $2
    ORDER BY entity_id, event_time DESC, write_time DESC
), m AS (
    SELECT (v ->> 'vote_average')::numeric AS r, (v ->> 'popularity')::numeric AS p FROM latest
    WHERE jsonb_typeof(v -> 'vote_average') = 'number' AND jsonb_typeof(v -> 'popularity') = 'number'
)
SELECT count(*), coalesce(sum(r), 0)::text, coalesce(sum(r * r), 0)::text,
       coalesce(sum(p), 0)::text, coalesce(sum(p * p), 0)::text,
       ARRAY(SELECT (SELECT count(*) FROM m WHERE m.r <= q.x)
             FROM unnest($1::numeric[]) WITH ORDINALITY AS q(x, ord) ORDER BY q.ord)
FROM m`

// MovieCorpus returns the movie corpus aggregate (see store.MovieCorpus) in
// one round trip: the current one from the primary, like the latest rows it
// goes with; the one as of a time from the read pool, like the as-of rows
// (GetAsOf) it goes with.
func (s *Store) MovieCorpus(ctx context.Context, q store.MovieCorpusQuery) (store.MovieCorpus, error) {
	ratings := make([]string, len(q.Ratings))
	for i, r := range q.Ratings {
		ratings[i] = store.DecimalText(r)
	}
	var c store.MovieCorpus
	pool, query, args := s.pool, movieCorpusSQL, []any{ratings}
	if q.AsOf != nil {
		pool, query, args = s.reader, movieCorpusAsOfSQL, []any{ratings, q.AsOf.Truncate(time.Microsecond)}
	}
	err := pool.QueryRow(ctx, query, args...).Scan(&c.Movies, &c.RatingSum, &c.RatingSquares,
		&c.PopularitySum, &c.PopularitySquares, &c.AtMost)
	if err != nil {
		return store.MovieCorpus{}, dbError("movie corpus", err)
	}
	return c, nil
}
