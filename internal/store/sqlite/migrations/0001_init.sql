-- Feature registry, row history and the latest row of every entity.
-- Times are INTEGER microseconds since the Unix epoch (UTC); text compares by
-- bytes (BINARY), as in Go and in the Postgres schema's "C" collation.

CREATE TABLE feature_groups (
    name           TEXT    PRIMARY KEY,
    entity_key     TEXT    NOT NULL,
    features       TEXT    NOT NULL, -- JSON array of feature.Spec
    ttl_seconds    INTEGER NOT NULL,
    description    TEXT    NOT NULL DEFAULT '',
    tags           TEXT    NOT NULL DEFAULT '{}', -- JSON object
    schema_version INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;

-- Every row ever written; append-only. feature_values is a JSON object whose
-- numbers carry their type in their spelling (see internal/store/rowjson).
CREATE TABLE feature_rows (
    group_name     TEXT    NOT NULL REFERENCES feature_groups (name) ON DELETE CASCADE,
    entity_id      TEXT    NOT NULL,
    event_time     INTEGER NOT NULL,
    write_time     INTEGER NOT NULL,
    feature_values TEXT    NOT NULL
) STRICT;

-- As-of lookups: the first entry at or below (entity, as_of) in this order.
CREATE INDEX feature_rows_as_of_idx
    ON feature_rows (group_name, entity_id, event_time DESC, write_time DESC);

-- The newest row of every entity, kept in step with feature_rows in the same
-- transaction.
CREATE TABLE feature_latest (
    group_name     TEXT    NOT NULL REFERENCES feature_groups (name) ON DELETE CASCADE,
    entity_id      TEXT    NOT NULL,
    event_time     INTEGER NOT NULL,
    write_time     INTEGER NOT NULL,
    feature_values TEXT    NOT NULL,
    PRIMARY KEY (group_name, entity_id)
) STRICT;
