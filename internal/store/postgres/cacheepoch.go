package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// seenEvery is how often a server using a cache refreshes its seen_at.
const seenEvery = "10 seconds"

// CacheEpoch returns the generation and identity recorded for the cache of
// prefix, creating the record if there is none, and records (at most every
// 10 seconds) that a server with entries living ttl uses it. It implements
// cache.EpochStore.
func (s *Store) CacheEpoch(ctx context.Context, prefix string, ttl time.Duration) (int64, string, error) {
	var (
		gen      int64
		identity string
		fresh    bool
	)
	err := s.pool.QueryRow(ctx, `
		SELECT generation, identity, seen_at > now() - interval '`+seenEvery+`' AND ttl_ms >= $2
		FROM cache_epochs WHERE key_prefix = $1`, prefix, ttl.Milliseconds()).Scan(&gen, &identity, &fresh)
	switch {
	case err == nil && fresh:
		return gen, identity, nil
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return 0, "", dbError("read cache epoch", err)
	}
	err = s.pool.QueryRow(ctx, `
		INSERT INTO cache_epochs (key_prefix, ttl_ms, seen_at) VALUES ($1, $2, now())
		ON CONFLICT (key_prefix) DO UPDATE
		SET seen_at = now(), ttl_ms = greatest(cache_epochs.ttl_ms, excluded.ttl_ms)
		RETURNING generation, identity`, prefix, ttl.Milliseconds()).Scan(&gen, &identity)
	if err != nil {
		return 0, "", dbError("record cache epoch", err)
	}
	return gen, identity, nil
}

// AdvanceCacheEpoch records identity to for the cache of prefix and bumps
// its generation, if the recorded identity is still from; it returns the
// record as it is then.
func (s *Store) AdvanceCacheEpoch(ctx context.Context, prefix, from, to string) (int64, string, error) {
	var (
		gen      int64
		identity string
	)
	err := s.pool.QueryRow(ctx, `
		WITH advanced AS (
		    UPDATE cache_epochs SET identity = $3, generation = generation + 1
		    WHERE key_prefix = $1 AND identity = $2
		    RETURNING generation, identity
		)
		SELECT generation, identity FROM advanced
		UNION ALL
		SELECT generation, identity FROM cache_epochs
		WHERE key_prefix = $1 AND NOT EXISTS (SELECT 1 FROM advanced)`, prefix, from, to).Scan(&gen, &identity)
	if err != nil {
		return 0, "", dbError("advance cache epoch", err)
	}
	return gen, identity, nil
}

// BumpCacheGeneration bumps the generation of the cache of prefix (of
// every cache if prefix is ""), which makes every server using it clear it.
func (s *Store) BumpCacheGeneration(ctx context.Context, prefix string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE cache_epochs SET generation = generation + 1 WHERE key_prefix = $1 OR $1 = ''`, prefix)
	if err != nil {
		return dbError("bump cache generation", err)
	}
	return nil
}

// ActiveCaches returns the key prefixes of the caches that may still hold
// entries: a server used them within their entries' lifetime.
func (s *Store) ActiveCaches(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT key_prefix FROM cache_epochs
		WHERE seen_at + ttl_ms * interval '1 millisecond' > now()
		ORDER BY key_prefix`)
	if err != nil {
		return nil, dbError("read active caches", err)
	}
	prefixes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbError("read active caches", err)
	}
	return prefixes, nil
}
