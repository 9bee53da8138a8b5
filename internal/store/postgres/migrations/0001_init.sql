-- Feature registry, row history and the latest row of every entity.
-- Identifiers use the "C" collation so ordering is by bytes, as in Go and SQLite,
-- whatever the database's default collation is.

CREATE TABLE feature_groups (
    name           text COLLATE "C" PRIMARY KEY,
    entity_key     text        NOT NULL,
    features       jsonb       NOT NULL,
    ttl_seconds    bigint      NOT NULL,
    description    text        NOT NULL DEFAULT '',
    tags           jsonb       NOT NULL DEFAULT '{}',
    schema_version integer     NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

-- Every row ever written; append-only. feature_values is a JSON object whose
-- numbers carry their type in their spelling (see internal/store/rowjson).
CREATE TABLE feature_rows (
    group_name     text COLLATE "C" NOT NULL REFERENCES feature_groups (name) ON DELETE CASCADE,
    entity_id      text COLLATE "C" NOT NULL,
    event_time     timestamptz NOT NULL,
    write_time     timestamptz NOT NULL,
    feature_values jsonb       NOT NULL
);

-- As-of lookups: the first entry at or below (entity, as_of) in this order.
CREATE INDEX feature_rows_as_of_idx
    ON feature_rows (group_name, entity_id, event_time DESC, write_time DESC);

-- The newest row of every entity, kept in step with feature_rows in the same
-- statement. Updates touch no indexed column, so room on the page (fillfactor)
-- lets them be HOT updates.
CREATE TABLE feature_latest (
    group_name     text COLLATE "C" NOT NULL REFERENCES feature_groups (name) ON DELETE CASCADE,
    entity_id      text COLLATE "C" NOT NULL,
    event_time     timestamptz NOT NULL,
    write_time     timestamptz NOT NULL,
    feature_values jsonb       NOT NULL,
    PRIMARY KEY (group_name, entity_id)
) WITH (fillfactor = 80);
