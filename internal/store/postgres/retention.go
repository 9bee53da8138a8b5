package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/store"
)

// maintenanceLockKey names the transaction-scoped advisory lock that makes history
// pruning and the folding of counts run in one process of the cluster at a
// time; it is keyed by the schema, like the migration lock.
const maintenanceLockKey = `hashtextextended('featurestore.maintenance.' || coalesce(current_schema(), ''), 0)`

// pruneBatchSQL deletes up to $4 superseded history rows of group $1 whose
// event time is at or before the horizon $2, among entities from $3 up to
// (not including) $5 in entity order, and appends the negative row delta to
// feature_group_counts. A row is superseded when a newer row of its entity
// (by event then write time) also has an event time at or before the
// horizon: that newer row answers every as-of read at or after the horizon,
// so the older one can go. The newest row at or before the horizon and
// every later row stay, and so the latest row always stays. The entity range
// keeps each batch to the rows of a bounded number of entities: without an
// upper bound the planner sorts the whole rest of the group for every batch.
// It returns how many rows it deleted and the greatest entity id among them.
const pruneBatchSQL = `
WITH victims AS (
    SELECT ctid, entity_id FROM (
        SELECT ctid, entity_id,
               row_number() OVER (PARTITION BY entity_id ORDER BY event_time DESC, write_time DESC) AS rn
        FROM feature_rows
        WHERE group_name = $1 AND entity_id >= $3 AND entity_id < $5 AND event_time <= $2
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

// pruneBoundSQL is the end of the next batch's entity range: the entity
// $4 places after $3 (an index range of feature_latest's primary key), or
// NULL when fewer remain. Every entity with history has a latest row.
const pruneBoundSQL = `
SELECT entity_id FROM feature_latest
WHERE group_name = $1 AND entity_id >= $2
ORDER BY entity_id
OFFSET $3 LIMIT 1`

// noUpperBound sorts after every entity id (ids are UTF-8 without control
// characters, and compare by bytes).
const noUpperBound = "\U0010FFFF\U0010FFFF"

// PruneHistory deletes, group by group, the history rows that no as-of read
// at or after the group's horizon needs, in batches of batch rows (each its
// own short transaction, so vacuum and concurrent writers are never held up
// by one long delete), and folds the count deltas. Before deleting anything
// of a group it moves the group's watermark to the horizon (never back), so
// an as-of read of an earlier time is refused from then on rather than
// answered from a partly pruned history.
//
// Every transaction of a pass first takes the cluster's maintenance lock
// with pg_try_advisory_xact_lock: when another process holds it, the pass
// stops with Skipped set (that process is doing the work). The lock is
// transaction-scoped, so it is never left behind on a pooled connection
// (it works through pgbouncer in transaction mode). It stops between
// batches when ctx ends.
func (s *Store) PruneHistory(ctx context.Context, horizons []store.Horizon, batch int) (store.PruneResult, error) {
	var res store.PruneResult
	if batch <= 0 {
		batch = 1000
	}
	for _, h := range horizons {
		n, skipped, err := s.pruneGroup(ctx, h, batch)
		res.Rows += n
		if err != nil || skipped {
			res.Skipped = skipped
			return res, err
		}
	}
	skipped, err := s.locked(ctx, "fold counts", func(tx pgx.Tx) error { return foldCounts(ctx, tx) })
	res.Skipped = skipped
	if err != nil || res.Rows < vacuumAfter {
		return res, err
	}
	// Make the deleted rows' space reusable now rather than when autovacuum
	// gets to it, so the next writes fill it instead of growing the table.
	// (Plain VACUUM: no exclusive lock; it cannot run in a transaction, so
	// it runs after the locked part, by the process that deleted.)
	if _, err := s.pool.Exec(ctx, `VACUUM (ANALYZE) feature_rows`); err != nil {
		return res, dbError("vacuum history", err)
	}
	return res, nil
}

// vacuumAfter is how many pruned rows make PruneHistory vacuum the history.
const vacuumAfter = 10_000

// errBusy ends a locked transaction whose lock another process holds.
var errBusy = errors.New("maintenance lock held by another process")

// locked runs fn in a transaction holding the maintenance lock; skipped
// when another process holds it.
func (s *Store) locked(ctx context.Context, op string, fn func(pgx.Tx) error) (skipped bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(`+maintenanceLockKey+`)`).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errBusy
		}
		return fn(tx)
	})
	switch {
	case errors.Is(err, errBusy):
		return true, nil
	case err != nil:
		return false, dbError(op, err)
	}
	return false, nil
}

func (s *Store) pruneGroup(ctx context.Context, h store.Horizon, batch int) (total int64, skipped bool, err error) {
	before := h.Before.Truncate(time.Microsecond)
	skipped, err = s.locked(ctx, "prune history: watermark", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			UPDATE feature_groups SET history_expired_before = $2
			WHERE name = $1 AND (history_expired_before IS NULL OR history_expired_before < $2)`, h.Group, before)
		return err
	})
	from := ""
	for !skipped && err == nil {
		var (
			n    int64
			last string
			upto *string
		)
		skipped, err = s.locked(ctx, "prune history", func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, pruneBoundSQL, h.Group, from, batch).Scan(&upto); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			end := noUpperBound
			if upto != nil {
				end = *upto
			}
			return tx.QueryRow(ctx, pruneBatchSQL, h.Group, before, from, batch, end).Scan(&n, &last)
		})
		total += n
		switch {
		case n == int64(batch):
			from = last // the range may hold more: go on from the last entity touched
		case upto == nil:
			return total, skipped, err
		default:
			from = *upto
		}
	}
	return total, skipped, err
}

// foldCounts replaces each group's count deltas by their sum, so Stats
// sums a handful of rows. The groups are locked (KEY SHARE) first, so a
// concurrent DeleteGroup waits for the fold instead of deadlocking with it;
// deltas appended concurrently are not in the fold's snapshot and stay.
func foldCounts(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM feature_groups FOR KEY SHARE`); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `
		WITH d AS (DELETE FROM feature_group_counts RETURNING *)
		INSERT INTO feature_group_counts (group_name, entities, history_rows, newest_event_time)
		SELECT group_name, sum(entities), sum(history_rows), max(newest_event_time)
		FROM d GROUP BY group_name`)
	return err
}
