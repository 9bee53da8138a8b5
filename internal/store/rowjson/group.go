package rowjson

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// GroupColumns are the columns of both engines' feature_groups table, in the
// order ScanGroup reads them; GroupArgs gives the first six and the last.
const GroupColumns = `name, entity_key, features, ttl_seconds, description, tags, schema_version, created_at, updated_at, history_retention_seconds`

// Scanner is one result row: *sql.Row, *sql.Rows, pgx.Row and pgx.Rows are.
type Scanner interface {
	Scan(dest ...any) error
}

// Rows is a result set: *sql.Rows and pgx.Rows are. The caller closes it.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// GroupArgs returns the values of the columns a client defines, the first
// six and the last of GroupColumns: name, entity_key, features and tags as
// JSON, the TTL in whole seconds, description, and the history retention in
// whole seconds (nil: the service default). The engine adds schema_version
// and the times.
func GroupArgs(g feature.Group) ([]any, error) {
	features, tags, err := EncodeGroup(g)
	if err != nil {
		return nil, err
	}
	var retention *int64
	if g.HistoryRetention != nil {
		r := int64(time.Duration(*g.HistoryRetention) / time.Second)
		retention = &r
	}
	return []any{g.Name, g.EntityKey, features, int64(time.Duration(g.TTL) / time.Second), g.Description, tags, retention}, nil
}

// ScanGroup reads a row selected as GroupColumns. The engine's timestamps
// scan into a T (a time.Time, or microseconds since the epoch) that toTime
// turns into a UTC time.
func ScanGroup[T any](row Scanner, toTime func(T) time.Time) (feature.Group, error) {
	var (
		g                  feature.Group
		features, tags     []byte
		ttl                int64
		created, updatedAt T
		retention          *int64
	)
	if err := row.Scan(&g.Name, &g.EntityKey, &features, &ttl, &g.Description, &tags,
		&g.SchemaVersion, &created, &updatedAt, &retention); err != nil {
		return feature.Group{}, err
	}
	if err := DecodeGroup(&g, features, tags); err != nil {
		return feature.Group{}, err
	}
	g.TTL = feature.Duration(time.Duration(ttl) * time.Second)
	if retention != nil {
		r := feature.Duration(time.Duration(*retention) * time.Second)
		g.HistoryRetention = &r
	}
	g.CreatedAt, g.UpdatedAt = toTime(created), toTime(updatedAt)
	return g, nil
}

// EncodeGroup returns the JSON of a group's features and tags columns; no
// tags are stored as {}.
func EncodeGroup(g feature.Group) (features, tags string, err error) {
	f, err := json.Marshal(g.Features)
	if err != nil {
		return "", "", fmt.Errorf("encode features: %w", err)
	}
	if len(g.Tags) == 0 {
		return string(f), "{}", nil
	}
	t, err := json.Marshal(g.Tags)
	if err != nil {
		return "", "", fmt.Errorf("encode tags: %w", err)
	}
	return string(f), string(t), nil
}

// DecodeGroup sets g.Features and g.Tags from the JSON of the features and
// tags columns; stored {} tags become nil. g.Name names the group in errors.
func DecodeGroup(g *feature.Group, features, tags []byte) error {
	if err := json.Unmarshal(features, &g.Features); err != nil {
		return fmt.Errorf("decode features of group %s: %w", g.Name, err)
	}
	if err := json.Unmarshal(tags, &g.Tags); err != nil {
		return fmt.Errorf("decode tags of group %s: %w", g.Name, err)
	}
	if len(g.Tags) == 0 {
		g.Tags = nil
	}
	return nil
}

// ScanGroups reads every row of rows, selected as GroupColumns, with
// ScanGroup. No rows give an empty, non-nil slice.
func ScanGroups[T any](rows Rows, toTime func(T) time.Time) ([]feature.Group, error) {
	groups := []feature.Group{}
	for rows.Next() {
		g, err := ScanGroup(rows, toTime)
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return groups, nil
}
