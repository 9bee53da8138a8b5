package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/featurestore/featurestore/internal/store"
)

// pruneBatchSQL deletes up to ?4 superseded history rows of group ?1 whose
// event time is at or before the horizon ?2, among entities >= ?3 in entity
// order: rows that a newer row of their entity, also at or before the
// horizon, supersedes (see the postgres package), and below ?5 when it is
// not NULL (the entity range of the batch, as in the postgres package). The
// newest row at or before the horizon, every later row and so the latest row
// stay.
const pruneBatchSQL = `
DELETE FROM feature_rows WHERE rowid IN (
    SELECT rid FROM (
        SELECT rowid AS rid, entity_id,
               row_number() OVER (PARTITION BY entity_id ORDER BY event_time DESC, write_time DESC) AS rn
        FROM feature_rows
        WHERE group_name = ?1 AND entity_id >= ?3 AND (?5 IS NULL OR entity_id < ?5) AND event_time <= ?2
    )
    WHERE rn > 1
    ORDER BY entity_id
    LIMIT ?4
)
RETURNING entity_id`

// PruneHistory deletes, group by group, the history rows that no as-of read
// at or after the group's horizon needs, in batches of batch rows, each its
// own transaction with its count update, so writers wait for one batch at
// most. The group's watermark moves to the horizon (never back) before
// anything is deleted. The store's directory is locked to one process, so
// there is no other pruner to exclude: Skipped is never set.
func (s *Store) PruneHistory(ctx context.Context, horizons []store.Horizon, batch int) (store.PruneResult, error) {
	var res store.PruneResult
	if batch <= 0 {
		batch = 1000
	}
	for _, h := range horizons {
		before := micros(h.Before)
		if _, err := s.writer.ExecContext(ctx, `
			UPDATE feature_groups SET history_expired_before = ?2
			WHERE name = ?1 AND (history_expired_before IS NULL OR history_expired_before < ?2)`, h.Group, before); err != nil {
			return res, dbError("prune history: watermark", err)
		}
		from := ""
		for {
			n, last, upto, err := s.pruneBatch(ctx, h.Group, before, from, batch)
			res.Rows += n
			if err != nil {
				return res, err
			}
			if n == int64(batch) {
				from = last
				continue
			}
			if !upto.Valid {
				break
			}
			from = upto.String
		}
	}
	return res, nil
}

// pruneBatch deletes one batch in its own transaction: the entity range
// starts at from and ends before upto, the entity batch places after from
// (NULL when fewer remain).
func (s *Store) pruneBatch(ctx context.Context, group string, before int64, from string, batch int) (n int64, last string, upto sql.NullString, err error) {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, "", upto, dbError("prune history: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	err = tx.QueryRowContext(ctx, `
		SELECT entity_id FROM feature_latest WHERE group_name = ?1 AND entity_id >= ?2
		ORDER BY entity_id LIMIT 1 OFFSET ?3`, group, from, batch).Scan(&upto)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, "", upto, dbError("prune history: range", err)
	}
	rows, err := tx.QueryContext(ctx, pruneBatchSQL, group, before, from, batch, upto)
	if err != nil {
		return 0, "", upto, dbError("prune history", err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			_ = rows.Close()
			return 0, "", upto, dbError("prune history", err)
		}
		n++
		last = max(last, id)
	}
	if err := rows.Close(); err != nil {
		return 0, "", upto, dbError("prune history", err)
	}
	if err := rows.Err(); err != nil {
		return 0, "", upto, dbError("prune history", err)
	}
	if n > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE feature_group_counts SET history_rows = history_rows - ?2 WHERE group_name = ?1`, group, n); err != nil {
			return 0, "", upto, dbError("prune history: counts", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, "", upto, dbError("prune history: commit", err)
	}
	return n, last, upto, nil
}
