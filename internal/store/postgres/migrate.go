package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded schema change, numbered by its file name prefix.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	out := make([]migration, 0, len(names))
	for _, n := range names {
		base := path.Base(n)
		prefix, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(prefix)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number", base)
		}
		if len(out) > 0 && out[len(out)-1].version == v {
			return nil, fmt.Errorf("migration %s: duplicate version %d", base, v)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(base, ".sql"), sql: string(b)})
	}
	return out, nil
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
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return dbError("migrate: read schema_migrations", err)
	}
	for _, m := range ms {
		if slices.Contains(applied, int32(m.version)) {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return dbError("migrate: apply "+m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, now()); err != nil {
			return dbError("migrate: record "+m.name, err)
		}
		log.Info("applied migration", zap.Int("version", m.version), zap.String("name", m.name))
	}
	if err := tx.Commit(ctx); err != nil {
		return dbError("migrate: commit", err)
	}
	return nil
}
