-- The system of record's account of each online cache (by key prefix), which
-- every server and command using the cache goes by (see internal/cache,
-- EpochStore): a cache stamped with another generation, or found on Redis
-- masters other than identity, is cleared before it is read.
CREATE TABLE cache_epochs (
    key_prefix text COLLATE "C" PRIMARY KEY,
    -- Bumped by every writer that could not keep the cache up to date.
    generation bigint      NOT NULL DEFAULT 1,
    -- "run_id/master_replid" of each Redis master the content was built on.
    identity   text        NOT NULL DEFAULT '',
    -- How long the servers' cached rows live, and when a server was last
    -- seen using the cache: until seen_at + ttl_ms it may hold entries.
    ttl_ms     bigint      NOT NULL DEFAULT 0,
    seen_at    timestamptz NOT NULL DEFAULT now()
);
