-- The movie corpus that the corpus-relative statistical features
-- (rating_zscore, popularity_zscore, rating_percentile) are computed from at
-- read time: the movies whose latest movie_basic row has a numeric
-- vote_average and popularity, kept by triggers on feature_latest in the same
-- transaction as every write, at O(1) per movie written. The sums are exact
-- decimals kept as text by fs_exact_add (a Go function the store registers;
-- see exact.go), so both engines hold the very same sums.

CREATE TABLE movie_corpus (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    movies             INTEGER NOT NULL,
    rating_sum         TEXT    NOT NULL,
    rating_squares     TEXT    NOT NULL,
    popularity_sum     TEXT    NOT NULL,
    popularity_squares TEXT    NOT NULL
) STRICT;

INSERT INTO movie_corpus VALUES (1, 0, '0', '0', '0', '0');

-- The rating distribution in two levels, as in Postgres: per distinct
-- vote_average, and per bucket CAST(rating × 10 AS INTEGER) (monotonic in the
-- rating, which is all the range sums need).
CREATE TABLE movie_rating_counts (
    rating REAL    PRIMARY KEY,
    bucket INTEGER NOT NULL,
    movies INTEGER NOT NULL
) STRICT;
CREATE INDEX movie_rating_counts_bucket_idx ON movie_rating_counts (bucket, rating, movies);

CREATE TABLE movie_rating_buckets (
    bucket INTEGER PRIMARY KEY,
    movies INTEGER NOT NULL
) STRICT;

-- Movies stored before this migration are taken out of feature_latest and put
-- back once the triggers exist, so that the triggers count them.
CREATE TEMP TABLE movie_basic_backfill AS SELECT * FROM feature_latest WHERE group_name = 'movie_basic';
DELETE FROM feature_latest WHERE group_name = 'movie_basic';

CREATE TRIGGER movie_corpus_remove AFTER UPDATE ON feature_latest
WHEN OLD.group_name = 'movie_basic'
 AND json_type(OLD.feature_values, '$.vote_average') IN ('integer', 'real')
 AND json_type(OLD.feature_values, '$.popularity') IN ('integer', 'real')
BEGIN
    UPDATE movie_corpus SET movies = movies - 1,
        rating_sum         = fs_exact_add(rating_sum, OLD.feature_values -> '$.vote_average', -1, 1),
        rating_squares     = fs_exact_add(rating_squares, OLD.feature_values -> '$.vote_average', -1, 2),
        popularity_sum     = fs_exact_add(popularity_sum, OLD.feature_values -> '$.popularity', -1, 1),
        popularity_squares = fs_exact_add(popularity_squares, OLD.feature_values -> '$.popularity', -1, 2)
    WHERE id = 1;
    UPDATE movie_rating_counts SET movies = movies - 1 WHERE rating = OLD.feature_values ->> '$.vote_average';
    UPDATE movie_rating_buckets SET movies = movies - 1
    WHERE bucket = CAST((OLD.feature_values ->> '$.vote_average') * 10 AS INTEGER);
END;

CREATE TRIGGER movie_corpus_delete AFTER DELETE ON feature_latest
WHEN OLD.group_name = 'movie_basic'
 AND json_type(OLD.feature_values, '$.vote_average') IN ('integer', 'real')
 AND json_type(OLD.feature_values, '$.popularity') IN ('integer', 'real')
BEGIN
    UPDATE movie_corpus SET movies = movies - 1,
        rating_sum         = fs_exact_add(rating_sum, OLD.feature_values -> '$.vote_average', -1, 1),
        rating_squares     = fs_exact_add(rating_squares, OLD.feature_values -> '$.vote_average', -1, 2),
        popularity_sum     = fs_exact_add(popularity_sum, OLD.feature_values -> '$.popularity', -1, 1),
        popularity_squares = fs_exact_add(popularity_squares, OLD.feature_values -> '$.popularity', -1, 2)
    WHERE id = 1;
    UPDATE movie_rating_counts SET movies = movies - 1 WHERE rating = OLD.feature_values ->> '$.vote_average';
    UPDATE movie_rating_buckets SET movies = movies - 1
    WHERE bucket = CAST((OLD.feature_values ->> '$.vote_average') * 10 AS INTEGER);
END;

CREATE TRIGGER movie_corpus_add_insert AFTER INSERT ON feature_latest
WHEN NEW.group_name = 'movie_basic'
 AND json_type(NEW.feature_values, '$.vote_average') IN ('integer', 'real')
 AND json_type(NEW.feature_values, '$.popularity') IN ('integer', 'real')
BEGIN
    UPDATE movie_corpus SET movies = movies + 1,
        rating_sum         = fs_exact_add(rating_sum, NEW.feature_values -> '$.vote_average', 1, 1),
        rating_squares     = fs_exact_add(rating_squares, NEW.feature_values -> '$.vote_average', 1, 2),
        popularity_sum     = fs_exact_add(popularity_sum, NEW.feature_values -> '$.popularity', 1, 1),
        popularity_squares = fs_exact_add(popularity_squares, NEW.feature_values -> '$.popularity', 1, 2)
    WHERE id = 1;
    INSERT INTO movie_rating_counts (rating, bucket, movies)
    VALUES (NEW.feature_values ->> '$.vote_average', CAST((NEW.feature_values ->> '$.vote_average') * 10 AS INTEGER), 1)
    ON CONFLICT (rating) DO UPDATE SET movies = movies + 1;
    INSERT INTO movie_rating_buckets (bucket, movies)
    VALUES (CAST((NEW.feature_values ->> '$.vote_average') * 10 AS INTEGER), 1)
    ON CONFLICT (bucket) DO UPDATE SET movies = movies + 1;
END;

CREATE TRIGGER movie_corpus_add_update AFTER UPDATE ON feature_latest
WHEN NEW.group_name = 'movie_basic'
 AND json_type(NEW.feature_values, '$.vote_average') IN ('integer', 'real')
 AND json_type(NEW.feature_values, '$.popularity') IN ('integer', 'real')
BEGIN
    UPDATE movie_corpus SET movies = movies + 1,
        rating_sum         = fs_exact_add(rating_sum, NEW.feature_values -> '$.vote_average', 1, 1),
        rating_squares     = fs_exact_add(rating_squares, NEW.feature_values -> '$.vote_average', 1, 2),
        popularity_sum     = fs_exact_add(popularity_sum, NEW.feature_values -> '$.popularity', 1, 1),
        popularity_squares = fs_exact_add(popularity_squares, NEW.feature_values -> '$.popularity', 1, 2)
    WHERE id = 1;
    INSERT INTO movie_rating_counts (rating, bucket, movies)
    VALUES (NEW.feature_values ->> '$.vote_average', CAST((NEW.feature_values ->> '$.vote_average') * 10 AS INTEGER), 1)
    ON CONFLICT (rating) DO UPDATE SET movies = movies + 1;
    INSERT INTO movie_rating_buckets (bucket, movies)
    VALUES (CAST((NEW.feature_values ->> '$.vote_average') * 10 AS INTEGER), 1)
    ON CONFLICT (bucket) DO UPDATE SET movies = movies + 1;
END;

INSERT INTO feature_latest SELECT * FROM temp.movie_basic_backfill;
DROP TABLE temp.movie_basic_backfill;
