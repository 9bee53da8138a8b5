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

-- The rating distribution: how many movies have each distinct vote_average.
-- "How many movies are rated at most r" is a range sum over distinct ratings
-- (at most 10,001 for TMDB's three-decimal ratings), never over movies.
CREATE TABLE movie_rating_counts (
    rating numeric PRIMARY KEY,
    movies bigint  NOT NULL
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
    INSERT INTO movie_rating_counts (rating, movies) SELECT r, count(*) FROM m GROUP BY r
)
INSERT INTO movie_corpus
SELECT 1, count(*), coalesce(sum(r), 0), coalesce(sum(r * r), 0), coalesce(sum(p), 0), coalesce(sum(p * p), 0) FROM m;

CREATE FUNCTION movie_corpus_apply() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    r numeric;
    p numeric;
BEGIN
    IF TG_OP <> 'INSERT'
       AND jsonb_typeof(OLD.feature_values -> 'vote_average') = 'number'
       AND jsonb_typeof(OLD.feature_values -> 'popularity') = 'number' THEN
        r := (OLD.feature_values ->> 'vote_average')::numeric;
        p := (OLD.feature_values ->> 'popularity')::numeric;
        UPDATE movie_corpus SET movies = movies - 1,
            rating_sum = rating_sum - r, rating_squares = rating_squares - r * r,
            popularity_sum = popularity_sum - p, popularity_squares = popularity_squares - p * p
        WHERE id = 1;
        UPDATE movie_rating_counts SET movies = movies - 1 WHERE rating = r;
    END IF;
    IF TG_OP <> 'DELETE'
       AND jsonb_typeof(NEW.feature_values -> 'vote_average') = 'number'
       AND jsonb_typeof(NEW.feature_values -> 'popularity') = 'number' THEN
        r := (NEW.feature_values ->> 'vote_average')::numeric;
        p := (NEW.feature_values ->> 'popularity')::numeric;
        UPDATE movie_corpus SET movies = movies + 1,
            rating_sum = rating_sum + r, rating_squares = rating_squares + r * r,
            popularity_sum = popularity_sum + p, popularity_squares = popularity_squares + p * p
        WHERE id = 1;
        INSERT INTO movie_rating_counts AS c (rating, movies) VALUES (r, 1)
        ON CONFLICT (rating) DO UPDATE SET movies = c.movies + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER movie_corpus_insert AFTER INSERT ON feature_latest
    FOR EACH ROW WHEN (NEW.group_name = 'movie_basic') EXECUTE FUNCTION movie_corpus_apply();
CREATE TRIGGER movie_corpus_update AFTER UPDATE ON feature_latest
    FOR EACH ROW WHEN (NEW.group_name = 'movie_basic' OR OLD.group_name = 'movie_basic') EXECUTE FUNCTION movie_corpus_apply();
CREATE TRIGGER movie_corpus_delete AFTER DELETE ON feature_latest
    FOR EACH ROW WHEN (OLD.group_name = 'movie_basic') EXECUTE FUNCTION movie_corpus_apply();

CREATE FUNCTION registry_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('featurestore_registry', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE TRIGGER feature_groups_notify AFTER INSERT OR UPDATE OR DELETE ON feature_groups
    FOR EACH STATEMENT EXECUTE FUNCTION registry_notify();
