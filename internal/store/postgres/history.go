package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/rowjson"
)

// ReadHistory answers a point-in-time query (see store.HistoryQuery) and
// calls fn with each entity row's index and what each group had for it, in
// the order of q.Entities. rows is reused between calls.
//
// The whole query reads one snapshot (a read-only REPEATABLE READ
// transaction) of the read pool: the streaming replica when
// Options.ReadURL is set, which answers as of what it has replayed. Entity rows travel in chunks of at most store.HistoryChunk
// as two arrays; each chunk is one statement with one lateral subquery per group,
// each an index probe of feature_rows_as_of_idx per entity row, and its
// result streams to fn in request order as Postgres produces it. Unknown
// groups are a NotFound error before fn is first called.
func (s *Store) ReadHistory(ctx context.Context, q store.HistoryQuery, fn func(i int, rows []store.HistoryRow) error) error {
	tx, err := s.reader.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return dbError("read history: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if err := checkHistoryGroups(ctx, tx, q.Groups); err != nil {
		return err
	}
	sql, groupArgs := historySQL(q.Groups)
	r := newHistoryReader(q, fn)
	var (
		ids   []string
		times []time.Time
	)
	err = q.EachChunk(func(lo int, chunk []store.PointInTime) error {
		ids, times = ids[:0], times[:0]
		for _, e := range chunk {
			ids = append(ids, e.EntityID)
			times = append(times, e.Time.Truncate(time.Microsecond))
		}
		rows, err := tx.Query(ctx, sql, append([]any{ids, times}, groupArgs...)...)
		if err != nil {
			return dbError("read history", err)
		}
		defer rows.Close()
		return r.readChunk(rows, lo)
	})
	if err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// checkHistoryGroups returns NotFound naming every unregistered group.
func checkHistoryGroups(ctx context.Context, tx pgx.Tx, groups []store.HistoryGroup) error {
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.Name
	}
	rows, err := tx.Query(ctx, `
		SELECT n FROM unnest($1::text[]) AS n
		WHERE NOT EXISTS (SELECT 1 FROM feature_groups WHERE name = n) ORDER BY n`, names)
	if err != nil {
		return dbError("read history: check groups", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return dbError("read history: check groups", err)
	}
	if len(missing) > 0 {
		return store.GroupNotFound(missing...)
	}
	return nil
}

// historySQL builds the statement of a chunk: $1 the entity ids, $2 the
// times, then each group's name and feature names as parameters (returned
// as args). Each group is a lateral subquery returning the newest row at or
// before the entity row's time; only the requested values leave the server,
// as the JSON text of each.
func historySQL(groups []store.HistoryGroup) (string, []any) {
	var (
		sel, from strings.Builder
		args      []any
	)
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args)+2)
	}
	sel.WriteString("SELECT e.ord")
	for g, hg := range groups {
		alias := "r" + strconv.Itoa(g)
		fmt.Fprintf(&sel, ", %s.event_time", alias)
		for _, f := range hg.Features {
			fmt.Fprintf(&sel, ", (%s.feature_values -> %s::text)::text", alias, param(f))
		}
		fmt.Fprintf(&from, `
		LEFT JOIN LATERAL (
		    SELECT event_time, feature_values FROM feature_rows
		    WHERE group_name = %s AND entity_id = e.entity_id AND event_time <= e.ts
		    ORDER BY event_time DESC, write_time DESC
		    LIMIT 1
		) %s ON true`, param(hg.Name), alias)
	}
	// The probes run in index order (entity, time), which reads the index
	// and the history pages in order instead of at random (a third faster
	// on a table larger than shared_buffers); the result is then sorted
	// back into request order.
	return sel.String() + `
		FROM (
		    SELECT * FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS u(entity_id, ts, ord)
		    ORDER BY u.entity_id COLLATE "C", u.ts
		) e` +
		from.String() + `
		ORDER BY e.ord`, args
}

// historyReader turns result rows into calls of fn.
type historyReader struct {
	q    store.HistoryQuery
	fn   func(i int, rows []store.HistoryRow) error
	rows []store.HistoryRow
	dest []any
	ord  int64
	evt  []*time.Time
	raw  [][]byte
}

// newHistoryReader prepares the scan destinations of q's columns.
func newHistoryReader(q store.HistoryQuery, fn func(i int, rows []store.HistoryRow) error) *historyReader {
	r := &historyReader{q: q, fn: fn, rows: make([]store.HistoryRow, len(q.Groups)), evt: make([]*time.Time, len(q.Groups))}
	n := 0
	for g, hg := range q.Groups {
		r.rows[g].Values = make([]any, len(hg.Features))
		n += len(hg.Features)
	}
	r.raw = make([][]byte, n)
	r.dest = append(r.dest, &r.ord)
	k := 0
	for g, hg := range q.Groups {
		r.dest = append(r.dest, &r.evt[g])
		for range hg.Features {
			r.dest = append(r.dest, &r.raw[k])
			k++
		}
	}
	return r
}

// readChunk reads the result of the chunk starting at entity row lo.
func (r *historyReader) readChunk(rows pgx.Rows, lo int) error {
	for rows.Next() {
		if err := rows.Scan(r.dest...); err != nil {
			return dbError("read history", err)
		}
		if err := r.fill(); err != nil {
			return err
		}
		if err := r.fn(lo+int(r.ord-1), r.rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return dbError("read history", err)
	}
	return nil
}

// fill sets r.rows from the scanned columns.
func (r *historyReader) fill() error {
	k := 0
	for g, hg := range r.q.Groups {
		row := &r.rows[g]
		row.Found = r.evt[g] != nil
		row.EventTime = time.Time{}
		if row.Found {
			row.EventTime = r.evt[g].UTC()
		}
		for f := range hg.Features {
			raw := r.raw[k]
			k++
			row.Values[f] = nil
			if raw == nil {
				continue
			}
			v, err := rowjson.DecodeValue(raw)
			if err != nil {
				return fmt.Errorf("postgres: read history of group %s: %w", hg.Name, err)
			}
			row.Values[f] = v
		}
	}
	return nil
}
