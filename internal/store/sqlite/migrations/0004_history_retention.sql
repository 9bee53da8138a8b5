-- History retention, the prune watermark, and maintained counts for /v1/stats.

-- history_retention_seconds: NULL is the service default, 0 keeps all history.
-- history_expired_before: the prune watermark (microseconds). History before
-- it may have been pruned, so as-of reads of earlier times are refused.
ALTER TABLE feature_groups ADD COLUMN history_retention_seconds INTEGER CHECK (history_retention_seconds >= 0);
ALTER TABLE feature_groups ADD COLUMN history_expired_before INTEGER;

-- One row per group, updated in the write transaction (SQLite has one
-- writer, so the counter row is never contended).
CREATE TABLE feature_group_counts (
    group_name        TEXT    PRIMARY KEY REFERENCES feature_groups (name) ON DELETE CASCADE,
    entities          INTEGER NOT NULL,
    history_rows      INTEGER NOT NULL,
    newest_event_time INTEGER
) STRICT;

INSERT INTO feature_group_counts (group_name, entities, history_rows, newest_event_time)
SELECT g.name,
       (SELECT count(*) FROM feature_latest l WHERE l.group_name = g.name),
       (SELECT count(*) FROM feature_rows r WHERE r.group_name = g.name),
       (SELECT max(event_time) FROM feature_latest l WHERE l.group_name = g.name)
FROM feature_groups g;
