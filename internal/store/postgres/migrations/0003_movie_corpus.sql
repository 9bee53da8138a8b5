-- The movie corpus that the corpus-relative statistical features
-- (rating_zscore, popularity_zscore, rating_percentile) are computed from at
-- read time: the movies whose latest movie_basic row has a numeric
-- vote_average and popularity. Triggers on feature_latest keep it in the same
-- transaction as every write, whoever the writer is (any replica, the CLI),
-- at O(1) per movie written. Sums are exact (numeric over the decimal text
-- the rows hold), so the mean and standard deviation do not drift however
-- many times a movie is re-ingested.
--
-- The registry also notifies the replicas of every change (LISTEN
-- featurestore_registry, payload: the schema), at commit.

CREATE TABLE movie_corpus (
    id                int     PRIMARY KEY CHECK (id = 1),
    movies            bigint  NOT NULL,
    rating_sum        numeric NOT NULL,
    rating_squares    numeric NOT NULL,
    popularity_sum    numeric NOT NULL,
    popularity_squares numeric NOT NULL
);

-- The rating distribution, in two levels: how many movies have each
-- distinct vote_average, and how many fall in each bucket of width 0.1
-- (bucket = floor(rating × 10), 0 to 100). "How many movies are rated at most
-- r" is the sum of the buckets below r's (at most 100 rows) plus the ratings
-- of r's bucket up to r (at most 100 distinct values for TMDB's
-- three-decimal ratings): bounded whatever the number of movies.
CREATE TABLE movie_rating_counts (
    rating numeric PRIMARY KEY,
    bucket int     NOT NULL,
    movies bigint  NOT NULL
);
CREATE INDEX movie_rating_counts_bucket_idx ON movie_rating_counts (bucket, rating) INCLUDE (movies);

CREATE TABLE movie_rating_buckets (
    bucket int    PRIMARY KEY,
    movies bigint NOT NULL
);

-- Build the aggregates from the movies already stored (a database upgraded
-- from a version without them).
WITH m AS (
    SELECT (feature_values ->> 'vote_average')::numeric AS r, (feature_values ->> 'popularity')::numeric AS p
    FROM feature_latest
    WHERE group_name = 'movie_basic'
      AND jsonb_typeof(feature_values -> 'vote_average') = 'number'
      AND jsonb_typeof(feature_values -> 'popularity') = 'number'
), counts AS (
    INSERT INTO movie_rating_counts (rating, bucket, movies) SELECT r, floor(r * 10)::int, count(*) FROM m GROUP BY r
), buckets AS (
    INSERT INTO movie_rating_buckets (bucket, movies) SELECT floor(r * 10)::int, count(*) FROM m GROUP BY 1
)
INSERT INTO movie_corpus
SELECT 1, count(*), coalesce(sum(r), 0), coalesce(sum(r * r), 0), coalesce(sum(p), 0), coalesce(sum(p * p), 0) FROM m;

-- One statement-level trigger per operation: each write statement applies
-- the net change of all the movie_basic rows it replaced (old_rows) and wrote
-- (new_rows) with one update of the aggregate row, then one upsert per
-- distinct rating, in rating order, and one per bucket, in bucket order. The aggregate row is thus locked once per
-- statement, after every feature_latest row the statement locks, and before
-- any rating row, so that concurrent writers cannot deadlock on them. A
-- statement that changes no movie touches neither.
CREATE FUNCTION movie_corpus_apply() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    olds jsonb[];
    news jsonb[];
    ds   int[];
    rs   numeric[];
    ps   numeric[];
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT array_agg(feature_values) INTO olds FROM old_rows WHERE group_name = 'movie_basic';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT array_agg(feature_values) INTO news FROM new_rows WHERE group_name = 'movie_basic';
    END IF;
    SELECT array_agg(x.d), array_agg((x.v ->> 'vote_average')::numeric), array_agg((x.v ->> 'popularity')::numeric)
    INTO ds, rs, ps
    FROM (SELECT -1 AS d, v FROM unnest(olds) AS v UNION ALL SELECT 1, v FROM unnest(news) AS v) x
    WHERE jsonb_typeof(x.v -> 'vote_average') = 'number' AND jsonb_typeof(x.v -> 'popularity') = 'number';
    IF ds IS NULL THEN
        RETURN NULL; -- no movie changed
    END IF;
    UPDATE movie_corpus c SET movies = c.movies + n.movies,
        rating_sum = c.rating_sum + n.rs, rating_squares = c.rating_squares + n.rq,
        popularity_sum = c.popularity_sum + n.ps, popularity_squares = c.popularity_squares + n.pq
    FROM (SELECT sum(d) AS movies, sum(d * r) AS rs, sum(d * r * r) AS rq, sum(d * p) AS ps, sum(d * p * p) AS pq
          FROM unnest(ds, rs, ps) AS x(d, r, p)) n
    WHERE c.id = 1;
    INSERT INTO movie_rating_counts AS c (rating, bucket, movies)
    SELECT r, floor(r * 10)::int, sum(d) FROM unnest(ds, rs) AS x(d, r) GROUP BY r HAVING sum(d) <> 0 ORDER BY r
    ON CONFLICT (rating) DO UPDATE SET movies = c.movies + excluded.movies;
    INSERT INTO movie_rating_buckets AS b (bucket, movies)
    SELECT floor(r * 10)::int, sum(d) FROM unnest(ds, rs) AS x(d, r) GROUP BY 1 HAVING sum(d) <> 0 ORDER BY 1
    ON CONFLICT (bucket) DO UPDATE SET movies = b.movies + excluded.movies;
    RETURN NULL;
END
$$;

CREATE TRIGGER movie_corpus_insert AFTER INSERT ON feature_latest
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION movie_corpus_apply();
CREATE TRIGGER movie_corpus_update AFTER UPDATE ON feature_latest
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION movie_corpus_apply();
CREATE TRIGGER movie_corpus_delete AFTER DELETE ON feature_latest
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION movie_corpus_apply();

CREATE FUNCTION registry_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('featurestore_registry', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER feature_groups_notify AFTER INSERT OR UPDATE OR DELETE ON feature_groups
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify();
