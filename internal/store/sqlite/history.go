package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/rowjson"
)

// ReadHistory answers a point-in-time query (see store.HistoryQuery) and
// calls fn with each entity row's index and what each group had for it, in
// the order of q.Entities. rows is reused between calls.
//
// The whole query reads one snapshot (a read transaction). Entity rows
// travel in chunks of at most store.HistoryChunk as a JSON array that json_each
// unpacks; each chunk is one statement that joins every group's newest row
// at or before the entity row's time, found by one probe of the as-of index
// per entity row and group. Unknown groups are a NotFound error before fn
// is first called.
func (s *Store) ReadHistory(ctx context.Context, q store.HistoryQuery, fn func(i int, rows []store.HistoryRow) error) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return dbError("read history: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	names := make([]string, len(q.Groups))
	for i, g := range q.Groups {
		names[i] = g.Name
	}
	if err := missingGroups(ctx, tx, names); err != nil {
		return err
	}
	query, groupArgs := historySQL(q.Groups)
	r := newHistoryReader(q, fn)
	var buf []byte
	err = q.EachChunk(func(lo int, chunk []store.PointInTime) error {
		var err error
		if buf, err = appendEntities(buf[:0], chunk); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, query, append([]any{string(buf)}, groupArgs...)...)
		if err != nil {
			return dbError("read history", err)
		}
		defer rows.Close()
		return r.readChunk(rows, lo)
	})
	if err != nil {
		return err
	}
	return tx.Commit()
}

// appendEntities appends the JSON array [[entity_id, micros], ...] of a chunk.
func appendEntities(buf []byte, chunk []store.PointInTime) ([]byte, error) {
	buf = append(buf, '[')
	for i, e := range chunk {
		if i > 0 {
			buf = append(buf, ',')
		}
		id, err := json.Marshal(e.EntityID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: encode entity id: %w", err)
		}
		buf = append(buf, '[')
		buf = append(buf, id...)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, micros(e.Time), 10)
		buf = append(buf, ']')
	}
	return append(buf, ']'), nil
}

// historySQL builds the statement of a chunk: ?1 the entity rows as JSON,
// then each group's name as a parameter (returned as args). The subquery of
// each group picks the rowid of the newest row at or before the entity
// row's time. Each row's values come back whole and are decoded once in Go:
// extracting each feature with SQLite's JSON operators would parse the row
// once per feature.
func historySQL(groups []store.HistoryGroup) (string, []any) {
	var (
		sel, from strings.Builder
		args      []any
	)
	param := func(v any) string {
		args = append(args, v)
		return "?" + strconv.Itoa(len(args)+1)
	}
	sel.WriteString("SELECT e.ord")
	for g := range groups {
		alias := "r" + strconv.Itoa(g)
		fmt.Fprintf(&sel, ", %s.event_time, %s.feature_values", alias, alias)
		fmt.Fprintf(&from, `
		LEFT JOIN feature_rows %s ON %s.rowid = (
		    SELECT rowid FROM feature_rows
		    WHERE group_name = %s AND entity_id = e.entity_id AND event_time <= e.ts
		    ORDER BY event_time DESC, write_time DESC
		    LIMIT 1)`, alias, alias, param(groups[g].Name))
	}
	// The probes run in index order (entity, time), which reads the pages
	// of the index and the history in order instead of at random; the
	// result is then sorted back into request order.
	return `
		WITH e AS MATERIALIZED (
		    SELECT key AS ord, value ->> 0 AS entity_id, value ->> 1 AS ts FROM json_each(?1)
		    ORDER BY entity_id, ts
		)
		` + sel.String() + `
		FROM e` + from.String() + `
		ORDER BY e.ord`, args
}

// historyReader turns result rows into calls of fn.
type historyReader struct {
	q    store.HistoryQuery
	fn   func(i int, rows []store.HistoryRow) error
	rows []store.HistoryRow
	dest []any
	ord  int
	evt  []sql.NullInt64
	raw  []sql.RawBytes
}

func newHistoryReader(q store.HistoryQuery, fn func(i int, rows []store.HistoryRow) error) *historyReader {
	r := &historyReader{q: q, fn: fn, rows: make([]store.HistoryRow, len(q.Groups)),
		evt: make([]sql.NullInt64, len(q.Groups)), raw: make([]sql.RawBytes, len(q.Groups))}
	r.dest = append(r.dest, &r.ord)
	for g, hg := range q.Groups {
		r.rows[g].Values = make([]any, len(hg.Features))
		r.dest = append(r.dest, &r.evt[g], &r.raw[g])
	}
	return r
}

// readChunk reads the result of the chunk starting at entity row lo.
func (r *historyReader) readChunk(rows *sql.Rows, lo int) error {
	for rows.Next() {
		if err := rows.Scan(r.dest...); err != nil {
			return dbError("read history", err)
		}
		if err := r.fill(); err != nil {
			return err
		}
		if err := r.fn(lo+r.ord, r.rows); err != nil {
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
	for g, hg := range r.q.Groups {
		row := &r.rows[g]
		row.Found = r.evt[g].Valid
		row.EventTime = time.Time{}
		clear(row.Values)
		if !row.Found {
			continue
		}
		row.EventTime = fromMicros(r.evt[g].Int64)
		values, err := rowjson.DecodeValues(r.raw[g])
		if err != nil {
			return fmt.Errorf("sqlite: read history of group %s: %w", hg.Name, err)
		}
		for f, name := range hg.Features {
			row.Values[f] = values[name]
		}
	}
	return nil
}
