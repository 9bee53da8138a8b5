package store

import (
	"strconv"
	"strings"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// HistoryQuery is a point-in-time read over many entity rows at once: for
// each entity row and each group, the group's row that was latest at the
// entity row's time (the newest row with EventTime <= Time, ties broken by
// the later WriteTime), as GetAsOf answers for one key.
//
// The backends implementing it (ReadHistory) answer with set-based queries
// over the history's as-of index, never one round trip per row, and call
// back in the order of Entities.
type HistoryQuery struct {
	Groups []HistoryGroup
	// Entities returns the entity rows, a chunk at a time and in order,
	// until it returns none; an error it returns ends the read and is
	// returned as is. The same entity may appear many times. A backend
	// asks for the next chunk only once it has answered the previous one,
	// so the rows can be read from a stream as they are answered.
	Entities func() ([]PointInTime, error)
	// Chunk is the most entity rows one statement reads; 0 means
	// HistoryChunk.
	Chunk int
}

// EntitySlice returns a HistoryQuery.Entities function that yields rows
// once.
func EntitySlice(rows []PointInTime) func() ([]PointInTime, error) {
	return func() ([]PointInTime, error) {
		out := rows
		rows = nil
		return out, nil
	}
}

// EachChunk calls fn with the entity rows of q in pieces of at most
// q.Chunk rows, and the index of each piece's first row, until Entities
// returns none or fn or Entities fails.
func (q HistoryQuery) EachChunk(fn func(lo int, rows []PointInTime) error) error {
	size := q.Chunk
	if size <= 0 {
		size = HistoryChunk
	}
	lo := 0
	for {
		rows, err := q.Entities()
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		for len(rows) > 0 {
			part := rows[:min(size, len(rows))]
			if err := fn(lo, part); err != nil {
				return err
			}
			lo += len(part)
			rows = rows[len(part):]
		}
	}
}

// HistoryGroup is one group of a HistoryQuery and the features to return.
type HistoryGroup struct {
	Name string
	// Features are the names of the features to return, in this order; a
	// backend reads only these values of each row.
	Features []string
}

// PointInTime is one entity row: an entity and the time to read it as of.
// Time is truncated to microseconds, like every stored time.
type PointInTime struct {
	EntityID string
	Time     time.Time
}

// HistoryRow is what a HistoryQuery found for one entity row in one group.
type HistoryRow struct {
	// Found is false when the entity had no row at or before the time.
	Found     bool
	EventTime time.Time
	// Values are the row's values of HistoryGroup.Features, in that order:
	// nil, int64, float64, bool or string, as written (nil also for a
	// feature the row does not have).
	Values []any
}

// HistoryChunk is how many entity rows a backend reads per statement: a
// large query is answered in statements of at most this many rows, all in
// one read-only snapshot, so neither the parameters nor the sort of one
// statement grow with the request.
const HistoryChunk = 10000

// FeatureServiceNotFound is the NotFound error for an unknown feature
// service.
func FeatureServiceNotFound(name string) error {
	return feature.NotFound("feature service "+strconv.Quote(name)+" not found",
		feature.FieldError{Field: "feature_service", Problem: "unknown feature service " + strconv.Quote(name)})
}

// GroupInUse is the Conflict error for deleting a group that feature
// services reference, naming them.
func GroupInUse(group string, services []string) error {
	quoted := make([]string, len(services))
	for i, s := range services {
		quoted[i] = strconv.Quote(s)
	}
	return feature.Conflict("feature group "+strconv.Quote(group)+" is used by feature service "+strings.Join(quoted, ", "),
		feature.FieldError{Field: "group", Problem: "used by feature service " + strings.Join(quoted, ", ") + "; change or delete it first"})
}
