package postgres

import (
	"cmp"
	"context"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store/rowjson"
)

// Postgres type OIDs of the write statements' array elements.
const (
	oidText        = 25
	oidTimestamptz = 1184
)

// microsToY2K is the Unix time of 2000-01-01 UTC, the epoch of Postgres
// timestamps, in microseconds.
const microsToY2K = 946684800 * 1000000

// writeArgs are the parameters of writeRowsSQL and insertRowsSQL, already in
// Postgres's binary array format: $1 groups, $2 entity ids, $3 event times,
// $4 write times, $5 the values' JSON (all one element per row, sorted by
// group and entity id) and $6 the distinct groups, sorted. Encoding them
// here, into buffers sized once, spares pgx encoding arrays of thousands of
// elements element by element into a buffer it regrows from 256 bytes on
// every query, and the values a string each.
type writeArgs struct {
	params       [][]byte
	distinct     []string // the distinct groups, sorted
	distinctKeys bool     // no (group, entity) key repeats
}

// binaryParams is the format code of every parameter: binary.
var binaryParams = []int16{1}

// encodeWrite encodes rows as the statements' parameters, sorted by group
// and entity id (a repeated key's rows in their given order). An invalid
// row fails as the first invalid one in the given order.
func encodeWrite(rows []feature.Row) (writeArgs, error) {
	order := make([]int, len(rows))
	textBytes := 0
	for i, r := range rows {
		order[i] = i
		textBytes += len(r.Group) + len(r.EntityID)
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(strings.Compare(rows[a].Group, rows[b].Group), strings.Compare(rows[a].EntityID, rows[b].EntityID))
	})
	n := len(rows)
	const header = 20
	groups := beginArray(make([]byte, 0, header+4*n+textBytes), oidText, n)
	ids := beginArray(make([]byte, 0, header+4*n+textBytes), oidText, n)
	events := beginArray(make([]byte, 0, header+12*n), oidTimestamptz, n)
	writes := beginArray(make([]byte, 0, header+12*n), oidTimestamptz, n)
	values := beginArray(make([]byte, 0, header+n*256), oidText, n)
	a := writeArgs{distinctKeys: true}
	var enc rowjson.RowEncoder
	for k, i := range order {
		r := rows[i]
		groups = appendText(groups, r.Group)
		ids = appendText(ids, r.EntityID)
		events = appendTimestamptz(events, r.EventTime)
		writes = appendTimestamptz(writes, r.WriteTime)
		at := len(values)
		var err error
		if values, err = enc.Encode(append(values, 0, 0, 0, 0), i, r); err != nil {
			return writeArgs{}, firstInvalid(rows)
		}
		binary.BigEndian.PutUint32(values[at:], uint32(len(values)-at-4)) // #nosec G115 -- one encoded row, far below Postgres's 1 GB field limit (which the server would refuse first)
		if k > 0 {
			prev := rows[order[k-1]]
			if prev.Group == r.Group && prev.EntityID == r.EntityID {
				a.distinctKeys = false
			}
		}
		if k == 0 || rows[order[k-1]].Group != r.Group {
			a.distinct = append(a.distinct, r.Group)
		}
	}
	distinct := beginArray(nil, oidText, len(a.distinct))
	for _, g := range a.distinct {
		distinct = appendText(distinct, g)
	}
	a.params = [][]byte{groups, ids, events, writes, values, distinct}
	return a, nil
}

// firstInvalid returns the error of the first row, in the given order, that
// cannot be stored.
func firstInvalid(rows []feature.Row) error {
	var buf []byte
	for i, r := range rows {
		var err error
		if buf, err = rowjson.EncodeRow(buf[:0], i, r); err != nil {
			return err
		}
	}
	return nil
}

// beginArray appends the header of a one-dimensional array of n elements
// without nulls, indexed from 1.
func beginArray(buf []byte, elem uint32, n int) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 1) // dimensions
	buf = binary.BigEndian.AppendUint32(buf, 0) // no nulls
	buf = binary.BigEndian.AppendUint32(buf, elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(n)) // #nosec G115 -- an array length: the rows of one batch, bounded by the body limit
	return binary.BigEndian.AppendUint32(buf, 1)        // lower bound
}

func appendText(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(s))) // #nosec G115 -- a group name or entity id, bounded by the input limits
	return append(buf, s...)
}

// appendTimestamptz appends t truncated to microseconds, as Postgres stores
// it (and as pgx encodes a time.Time).
func appendTimestamptz(buf []byte, t time.Time) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 8)
	micros := t.Unix()*1000000 + int64(t.Nanosecond())/1000 - microsToY2K
	return binary.BigEndian.AppendUint64(buf, uint64(micros)) // #nosec G115 -- Postgres's int64 in two's complement: the wrap of a time before 2000 is intended
}

// execWrite runs a write statement with encoded parameters on conn, in one
// round trip (parse, bind, execute: the statement's text travels with its
// parameters, and its plan is made for them).
func execWrite(ctx context.Context, conn *pgx.Conn, sql string, a writeArgs) error {
	_, err := conn.PgConn().ExecParams(ctx, sql, a.params, nil, binaryParams, nil).Close()
	return err
}
