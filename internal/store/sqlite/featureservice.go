package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/rowjson"
)

func scanService(row rowjson.Scanner) (feature.FeatureService, error) {
	return rowjson.ScanService(row, fromMicros)
}

// ListFeatureServices returns every feature service, ordered by name.
func (s *Store) ListFeatureServices(ctx context.Context) ([]feature.FeatureService, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+rowjson.ServiceColumns+` FROM feature_services ORDER BY name`)
	if err != nil {
		return nil, dbError("list feature services", err)
	}
	defer rows.Close()
	out, err := rowjson.ScanServices(rows, fromMicros)
	if err != nil {
		return nil, dbError("list feature services", err)
	}
	return out, nil
}

// GetFeatureService returns one feature service or a NotFound error.
func (s *Store) GetFeatureService(ctx context.Context, name string) (feature.FeatureService, error) {
	fs, err := scanService(s.reader.QueryRowContext(ctx, `SELECT `+rowjson.ServiceColumns+` FROM feature_services WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return feature.FeatureService{}, store.FeatureServiceNotFound(name)
	}
	if err != nil {
		return feature.FeatureService{}, dbError("get feature service", err)
	}
	return fs, nil
}

// PutFeatureService creates or replaces a feature service, versioned like a
// group (see the postgres package), with its references to groups, in one
// IMMEDIATE transaction; a reference to an unregistered group is a NotFound
// error naming it and nothing is written.
func (s *Store) PutFeatureService(ctx context.Context, fs feature.FeatureService, now time.Time) (feature.FeatureService, error) {
	if err := fs.Validate(); err != nil {
		return feature.FeatureService{}, err
	}
	args, err := rowjson.ServiceArgs(fs)
	if err != nil {
		return feature.FeatureService{}, err
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return feature.FeatureService{}, dbError("put feature service: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	groups := fs.Groups()
	if err := missingGroups(ctx, tx, groups); err != nil {
		return feature.FeatureService{}, err
	}
	out, err := scanService(tx.QueryRowContext(ctx, `
		INSERT INTO feature_services (`+rowjson.ServiceColumns+`)
		VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
		ON CONFLICT (name) DO UPDATE SET
		    features       = excluded.features,
		    description    = excluded.description,
		    tags           = excluded.tags,
		    schema_version = feature_services.schema_version + 1,
		    updated_at     = excluded.updated_at
		RETURNING `+rowjson.ServiceColumns,
		append(args, micros(now))...))
	if err != nil {
		return feature.FeatureService{}, dbError("put feature service", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM feature_service_groups WHERE service_name = ?`, fs.Name); err != nil {
		return feature.FeatureService{}, dbError("put feature service: references", err)
	}
	for _, g := range groups {
		if _, err := tx.ExecContext(ctx, `INSERT INTO feature_service_groups (service_name, group_name) VALUES (?, ?)`, fs.Name, g); err != nil {
			return feature.FeatureService{}, dbError("put feature service: references", err)
		}
	}
	store.RecordAnswer(ctx, out)
	if err := insertIdempotency(ctx, tx); err != nil {
		return feature.FeatureService{}, err
	}
	if err := tx.Commit(); err != nil {
		return feature.FeatureService{}, dbError("put feature service: commit", err)
	}
	return out, nil
}

// missingGroups returns NotFound naming every unregistered group of names.
func missingGroups(ctx context.Context, q querier, names []string) error {
	var missing []string
	for _, g := range names {
		var exists bool
		if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM feature_groups WHERE name = ?)`, g).Scan(&exists); err != nil {
			return dbError("check groups", err)
		}
		if !exists {
			missing = append(missing, g)
		}
	}
	if len(missing) > 0 {
		return store.GroupNotFound(missing...)
	}
	return nil
}

// querier is a *sql.Tx or *sql.DB.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// DeleteFeatureService removes a feature service; NotFound if there is none.
func (s *Store) DeleteFeatureService(ctx context.Context, name string) error {
	return s.inTx(ctx, "delete feature service", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM feature_services WHERE name = ?`, name)
		if err != nil {
			return dbError("delete feature service", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("delete feature service", err)
		} else if n == 0 {
			return store.FeatureServiceNotFound(name)
		}
		store.RecordAnswer(ctx, nil)
		return insertIdempotency(ctx, tx)
	})
}

// servicesUsing names the feature services that reference a group.
func servicesUsing(ctx context.Context, q querier, group string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT service_name FROM feature_service_groups WHERE group_name = ? ORDER BY service_name`, group)
	if err != nil {
		return nil, dbError("find feature services using a group", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, dbError("find feature services using a group", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("find feature services using a group", err)
	}
	return names, nil
}
