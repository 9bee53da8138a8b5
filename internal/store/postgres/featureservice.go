package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/rowjson"
)

func scanService(row pgx.Row) (feature.FeatureService, error) {
	return rowjson.ScanService(row, time.Time.UTC)
}

// ListFeatureServices returns every feature service, ordered by name.
func (s *Store) ListFeatureServices(ctx context.Context) ([]feature.FeatureService, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+rowjson.ServiceColumns+` FROM feature_services ORDER BY name`)
	if err != nil {
		return nil, dbError("list feature services", err)
	}
	defer rows.Close()
	out, err := rowjson.ScanServices(rows, time.Time.UTC)
	if err != nil {
		return nil, dbError("list feature services", err)
	}
	return out, nil
}

// GetFeatureService returns one feature service or a NotFound error.
func (s *Store) GetFeatureService(ctx context.Context, name string) (feature.FeatureService, error) {
	fs, err := scanService(s.pool.QueryRow(ctx, `SELECT `+rowjson.ServiceColumns+` FROM feature_services WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return feature.FeatureService{}, store.FeatureServiceNotFound(name)
	}
	if err != nil {
		return feature.FeatureService{}, dbError("get feature service", err)
	}
	return fs, nil
}

// PutFeatureService creates or replaces a feature service, versioned like a
// group: on create SchemaVersion=1 and CreatedAt=UpdatedAt=now; on replace
// CreatedAt is kept, UpdatedAt=now and SchemaVersion increments. The
// definition and its references to groups are written in one transaction;
// a reference to an unregistered group is a NotFound error naming it and
// nothing is written. Whether each referenced feature exists is the
// caller's check (a group's features live in its definition).
func (s *Store) PutFeatureService(ctx context.Context, fs feature.FeatureService, now time.Time) (feature.FeatureService, error) {
	if err := fs.Validate(); err != nil {
		return feature.FeatureService{}, err
	}
	args, err := rowjson.ServiceArgs(fs)
	if err != nil {
		return feature.FeatureService{}, err
	}
	groups := fs.Groups()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return feature.FeatureService{}, dbError("put feature service: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	out, err := scanService(tx.QueryRow(ctx, `
		INSERT INTO feature_services AS f (`+rowjson.ServiceColumns+`)
		VALUES ($1, $2, $3, $4, 1, $5, $5)
		ON CONFLICT (name) DO UPDATE SET
		    features       = excluded.features,
		    description    = excluded.description,
		    tags           = excluded.tags,
		    schema_version = f.schema_version + 1,
		    updated_at     = excluded.updated_at
		RETURNING `+rowjson.ServiceColumns,
		append(args, now.Truncate(time.Microsecond))...))
	if err != nil {
		return feature.FeatureService{}, dbError("put feature service", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM feature_service_groups WHERE service_name = $1 AND NOT group_name = ANY ($2::text[])`,
		fs.Name, groups); err != nil {
		return feature.FeatureService{}, dbError("put feature service: references", err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO feature_service_groups (service_name, group_name)
		SELECT $1, g FROM unnest($2::text[]) AS g
		ON CONFLICT DO NOTHING`, fs.Name, groups)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // a referenced group is not registered
		_ = tx.Rollback(ctx)
		return feature.FeatureService{}, s.missingGroups(ctx, groups)
	}
	if err != nil {
		return feature.FeatureService{}, dbError("put feature service: references", err)
	}
	if iw := store.IdempotentWriteFrom(ctx); iw != nil {
		store.RecordAnswer(ctx, out)
		if err := insertIdempotency(ctx, tx, iw); err != nil {
			return feature.FeatureService{}, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return feature.FeatureService{}, store.PostgresCommitError("put feature service: commit", err)
	}
	return out, nil
}

// DeleteFeatureService removes a feature service; NotFound if there is none.
// The record of an idempotent write in ctx is written in the same
// transaction.
func (s *Store) DeleteFeatureService(ctx context.Context, name string) error {
	del := func(q execer) error {
		tag, err := q.Exec(ctx, `DELETE FROM feature_services WHERE name = $1`, name)
		if err != nil {
			return dbError("delete feature service", err)
		}
		if tag.RowsAffected() == 0 {
			return store.FeatureServiceNotFound(name)
		}
		return nil
	}
	iw := store.IdempotentWriteFrom(ctx)
	if iw == nil {
		return del(s.pool)
	}
	return s.inTx(ctx, "delete feature service", func(tx pgx.Tx) error {
		if err := del(tx); err != nil {
			return err
		}
		store.RecordAnswer(ctx, nil)
		return insertIdempotency(ctx, tx, iw)
	})
}

// servicesUsing names the feature services that reference a group.
func (s *Store) servicesUsing(ctx context.Context, group string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT service_name FROM feature_service_groups WHERE group_name = $1 ORDER BY service_name`, group)
	if err != nil {
		return nil, dbError("find feature services using a group", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, dbError("find feature services using a group", err)
	}
	return names, nil
}
