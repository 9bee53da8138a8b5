-- History retention, the prune watermark, and maintained counts for /v1/stats.

-- history_retention_seconds: NULL is the service default, 0 keeps all history.
-- history_expired_before: the prune watermark. History before it may have
-- been pruned, so as-of reads of earlier times are refused. It only moves
-- forward, and is committed before the rows it allows to be deleted.
ALTER TABLE feature_groups
    ADD COLUMN history_retention_seconds bigint CHECK (history_retention_seconds >= 0),
    ADD COLUMN history_expired_before    timestamptz;

-- Counts as deltas: every write statement appends one row per group it
-- touched (history rows added, entities added, newest event time), the
-- pruner appends negative row deltas, and the maintenance loop folds them
-- into one row per group. Appending instead of updating one counter row
-- keeps concurrent writers of a group from queueing on its counter.
CREATE TABLE feature_group_counts (
    group_name        text COLLATE "C" NOT NULL REFERENCES feature_groups (name) ON DELETE CASCADE,
    entities          bigint      NOT NULL,
    history_rows      bigint      NOT NULL,
    newest_event_time timestamptz
);
CREATE INDEX feature_group_counts_group_idx ON feature_group_counts (group_name);

INSERT INTO feature_group_counts (group_name, entities, history_rows, newest_event_time)
SELECT g.name,
       (SELECT count(*) FROM feature_latest l WHERE l.group_name = g.name),
       (SELECT count(*) FROM feature_rows r WHERE r.group_name = g.name),
       (SELECT max(event_time) FROM feature_latest l WHERE l.group_name = g.name)
FROM feature_groups g;

-- Vacuum-friendly latest rows: updates are HOT (fillfactor 80, no indexed
-- column changes), and autovacuum visits the table after 2% of it changed
-- instead of the default 20%, so dead versions are reclaimed before the
-- table bloats. The history is append-mostly with batched deletes by the
-- pruner.
ALTER TABLE feature_latest SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE feature_rows SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_insert_scale_factor = 0.05);
