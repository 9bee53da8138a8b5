package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/featurestore/featurestore/internal/store"
)

// maintenanceLockKey names the session advisory lock that makes history
// pruning and the folding of counts run in one process of the cluster at a
// time; it is keyed by the schema, like the migration lock.
const maintenanceLockKey = `hashtextextended('featurestore.maintenance.' || coalesce(current_schema(), ''), 0)`

// pruneBatchSQL deletes up to $4 superseded history rows of group $1 whose
// event time is at or before the horizon $2, among entities >= $3 in entity
// order, and appends the negative row delta to feature_group_counts. A row
// is superseded when a newer row of its entity (by event then write time)
// also has an event time at or before the horizon: that newer row answers
// every as-of read at or after the horizon, so the older one can go. The
// newest row at or before the horizon and every later row stay, and so the
// latest row always stays. The ranking walks the as-of index in its order
// and LIMIT stops it early: a batch costs the rows it visits, not the table.
// It returns how many rows it deleted and the greatest entity id among them
// (the next batch's start).
const pruneBatchSQL = `
WITH victims AS (
    SELECT ctid, entity_id FROM (
        SELECT ctid, entity_id,
               row_number() OVER (PARTITION BY entity_id ORDER BY event_time DESC, write_time DESC) AS rn
        FROM feature_rows
        WHERE group_name = $1 AND entity_id >= $3 AND event_time <= $2
    ) ranked
    WHERE rn > 1
    ORDER BY entity_id
    LIMIT $4
), deleted AS (
    DELETE FROM feature_rows WHERE ctid = ANY (ARRAY(SELECT ctid FROM victims))
    RETURNING entity_id
), counted AS (
    INSERT INTO feature_group_counts (group_name, entities, history_rows)
    SELECT $1, 0, -count(*) FROM deleted HAVING count(*) > 0
)
SELECT count(*), coalesce(max(entity_id), '') FROM deleted`

// PruneHistory deletes, group by group, the history rows that no as-of read
// at or after the group's horizon needs, in batches of batch rows (each its
// own short transaction, so vacuum and concurrent writers are never held up
// by one long delete), and folds the count deltas. Before deleting anything
// of a group it moves the group's watermark to the horizon (never back), so
// an as-of read of an earlier time is refused from then on rather than
// answered from a partly pruned history.
//
// It runs under a session advisory lock: when another process of the
// cluster holds it, PruneHistory returns at once with Skipped set. It
// stops between batches when ctx ends.
func (s *Store) PruneHistory(ctx context.Context, horizons []store.Horizon, batch int) (store.PruneResult, error) {
	var res store.PruneResult
	if batch <= 0 {
		batch = 1000
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, dbError("prune history: connect", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+maintenanceLockKey+`)`).Scan(&locked); err != nil {
		return res, dbError("prune history: lock", err)
	}
	if !locked {
		res.Skipped = true
		return res, nil
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+maintenanceLockKey+`)`); err != nil {
			// The lock is the session's: a connection that cannot unlock is
			// closed, which releases it.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	for _, h := range horizons {
		n, err := pruneGroup(ctx, conn, h, batch)
		res.Rows += n
		if err != nil {
			return res, err
		}
	}
	return res, foldCounts(ctx, conn)
}

func pruneGroup(ctx context.Context, conn *pgxpool.Conn, h store.Horizon, batch int) (int64, error) {
	before := h.Before.Truncate(time.Microsecond)
	_, err := conn.Exec(ctx, `
		UPDATE feature_groups SET history_expired_before = $2
		WHERE name = $1 AND (history_expired_before IS NULL OR history_expired_before < $2)`, h.Group, before)
	if err != nil {
		return 0, dbError("prune history: watermark", err)
	}
	var (
		total int64
		from  string
	)
	for {
		var (
			n    int64
			last string
		)
		if err := conn.QueryRow(ctx, pruneBatchSQL, h.Group, before, from, batch).Scan(&n, &last); err != nil {
			return total, dbError("prune history", err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
		from = last
	}
}

// foldCounts replaces each group's count deltas by their sum, so Stats
// sums a handful of rows. The groups are locked (KEY SHARE) first, so a
// concurrent DeleteGroup waits for the fold instead of deadlocking with it;
// deltas appended concurrently are not in the fold's snapshot and stay.
func foldCounts(ctx context.Context, conn *pgxpool.Conn) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1 FROM feature_groups FOR KEY SHARE`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			WITH d AS (DELETE FROM feature_group_counts RETURNING *)
			INSERT INTO feature_group_counts (group_name, entities, history_rows, newest_event_time)
			SELECT group_name, sum(entities), sum(history_rows), max(newest_event_time)
			FROM d GROUP BY group_name`)
		return err
	})
	if err != nil {
		return dbError("fold counts", err)
	}
	return nil
}
