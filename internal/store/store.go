// Package store defines the contract every storage backend of the feature
// store keeps: the Postgres system of record, the embedded SQLite store, and
// the read-through/write-through cache that wraps either. The shared contract
// test suite in storetest runs against all of them.
package store

import (
	"context"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// Store is the storage contract of the feature store.
//
// Errors: a missing group is a feature.NotFound error; a failure of the
// database is coded by what happened (PostgresError, DependencyError:
// canceled, timeout, unavailable) wrapping the cause, never a half-done
// write.
type Store interface {
	// ListGroups returns every registered group, ordered by name.
	ListGroups(ctx context.Context) ([]feature.Group, error)
	// GetGroup returns one group or a NotFound error.
	GetGroup(ctx context.Context, name string) (feature.Group, error)
	// PutGroup creates or replaces a group definition. On create it sets
	// CreatedAt=UpdatedAt=now and SchemaVersion=1; on replace it keeps
	// CreatedAt, sets UpdatedAt=now and increments SchemaVersion. It returns
	// the stored definition.
	PutGroup(ctx context.Context, g feature.Group, now time.Time) (feature.Group, error)
	// DeleteGroup removes a group and every row of it, atomically. NotFound
	// if the group does not exist.
	DeleteGroup(ctx context.Context, name string) error

	// WriteRows durably writes rows, all or nothing, in one transaction: once
	// it returns nil every row is committed. Each row is appended to the
	// group's history and becomes the entity's latest row if it is Newer
	// than the current latest (a late-arriving older event never replaces a
	// newer one). Rows of unregistered groups are a NotFound error and
	// nothing is written. Callers set EventTime and WriteTime.
	WriteRows(ctx context.Context, rows []feature.Row) error
	// GetLatest returns the latest row of each key, in the order of keys,
	// with nil where the entity has no row. Backends answer a whole batch in
	// one round trip.
	GetLatest(ctx context.Context, keys []feature.Key) ([]*feature.Row, error)
	// GetAsOf returns the row that was latest at asOf: the newest row with
	// EventTime <= asOf (ties broken by the later WriteTime), or nil.
	GetAsOf(ctx context.Context, key feature.Key, asOf time.Time) (*feature.Row, error)
	// ScanLatest calls fn with the latest row of every entity of a group, in
	// entity id order, stopping at the first error fn returns.
	ScanLatest(ctx context.Context, group string, fn func(feature.Row) error) error

	// Stats reports row counts, freshness and storage size.
	Stats(ctx context.Context) (Stats, error)
	// Close releases connections. It is safe to call once.
	Close() error
}

// Horizon is where one group's retained history begins: rows that a newer
// row with an event time at or before Before supersedes may be pruned, and
// as-of reads before Before are refused (feature.CodeHistoryExpired).
type Horizon struct {
	Group  string
	Before time.Time
}

// PruneResult reports one pruning pass.
type PruneResult struct {
	// Rows is the number of history rows deleted.
	Rows int64
	// Skipped is set when another process holds the cluster's maintenance
	// lock and did the work instead.
	Skipped bool
}

// Stats describes what a backend holds.
type Stats struct {
	Backend      string       `json:"backend"`
	StorageBytes int64        `json:"storage_bytes"`
	Groups       []GroupStats `json:"groups"`
}

// GroupStats describes one group's rows.
type GroupStats struct {
	Group string `json:"group"`
	// Entities is the number of entities with a latest row.
	Entities int64 `json:"entities"`
	// Rows is the number of history rows (maintained counts, not a scan).
	Rows int64 `json:"rows"`
	// NewestEventTime is the newest event time of any row (zero if none).
	NewestEventTime time.Time `json:"newest_event_time"`
}

// HealthStatus is the health of a dependency or of the whole service, as
// /health reports it.
type HealthStatus string

// The health statuses. A dependency (a Component) is HealthUp or HealthDown;
// the service as a whole is also HealthDegraded when only a dependency it can
// do without is down.
const (
	HealthUp       HealthStatus = "UP"
	HealthDegraded HealthStatus = "DEGRADED"
	HealthDown     HealthStatus = "DOWN"
)

// Component is the health of one dependency, as /health reports it.
type Component struct {
	// Status is HealthUp or HealthDown.
	Status HealthStatus `json:"status"`
	// Details are backend facts: version, latencies, sizes, pool stats.
	Details map[string]any `json:"details,omitempty"`
	// Error says why the component is down.
	Error string `json:"error,omitempty"`
}

// HealthChecker is implemented by backends and caches that can report their
// health; Health must honour ctx's deadline.
type HealthChecker interface {
	Health(ctx context.Context) Component
}
