package postgres

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store/migrations"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// loadMigrations returns the embedded migrations in version order.
func loadMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFiles, "migrations")
}

// Migrate applies the embedded migrations that the database (the first
// schema on the connection's search_path) has not seen yet. It is what Open
// runs at start-up, exported for the `featurestore migrate` command.
func Migrate(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return feature.Invalid("invalid postgres url: " + err.Error())
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return dbError("connect", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrate(ctx, conn, time.Now, zap.NewNop())
}

// migrate runs every pending migration in one transaction, under a
// transaction-scoped advisory lock keyed by the schema, so that replicas
// starting together apply each migration once: the others wait for the lock
// and then find nothing left to do.
func migrate(ctx context.Context, conn *pgx.Conn, now func() time.Time, log *zap.Logger) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return dbError("migrate: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit

	// --postgres-statement-timeout bounds the service's queries, not its
	// migrations: rewriting a large table, or waiting for another replica's
	// migration, may take longer, and a cancelled migration fails start-up.
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
		return dbError("migrate: lift statement_timeout", err)
	}
	if _, err := tx.Exec(ctx,
		`SELECT pg_advisory_xact_lock(hashtextextended('featurestore.migrate.' || coalesce(current_schema(), ''), 0))`); err != nil {
		return dbError("migrate: lock", err)
	}
	if _, err := tx.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
		    version    integer PRIMARY KEY,
		    name       text NOT NULL,
		    applied_at timestamptz NOT NULL
		)`); err != nil {
		return dbError("migrate: create schema_migrations", err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return dbError("migrate: read schema_migrations", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return dbError("migrate: read schema_migrations", err)
	}
	for _, m := range migrations.Pending(ms, applied) {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return dbError("migrate: apply "+m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.Version, m.Name, now()); err != nil {
			return dbError("migrate: record "+m.Name, err)
		}
		log.Info("applied migration", zap.Int("version", m.Version), zap.String("name", m.Name))
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError("migrate: commit", err)
	}
	return nil
}
