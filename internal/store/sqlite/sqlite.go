// Package sqlite is the embedded feature store: the same groups, history and
// latest rows as the postgres package, in one SQLite database file
// (modernc.org/sqlite, pure Go), for running without Postgres.
//
// The database runs in WAL mode with synchronous=FULL, so a write that
// WriteRows acknowledged survives the process being killed. All writes go
// through one connection (and BEGIN IMMEDIATE, against other processes), so
// concurrent writers queue instead of failing with SQLITE_BUSY; reads use a
// separate pool of read-only connections and never wait for writers.
//
// Times are stored as microseconds since the Unix epoch: WriteRows truncates
// event and write times to microseconds and every comparison uses the
// truncated times.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/migrations"
	"github.com/featurestore/featurestore/internal/store/rowjson"
)

// writerCacheSize is the writer's page cache: 64 MiB (SQLite's default is
// 2 MiB). A WriteRows transaction of 1,000 movies dirties several MiB of
// pages; with the default cache they were spilled to the WAL before the
// commit and written again by it (a quarter of the write's CPU in pwrite
// and WAL checksums). The cache holds pages only, never an acknowledgement:
// the commit still writes and syncs the WAL (synchronous=FULL).
//
// temp_store(MEMORY), set with it, keeps the statement journals (the
// undo of one statement inside the transaction, needed by the statements
// that fire triggers and check foreign keys) in memory instead of a
// temporary file; they are never part of crash recovery.
const writerCacheSize = "cache_size(-65536)"

// FileName is the name of the database file inside the store's directory.
const FileName = "featurestore.db"

// Options configure a Store.
type Options struct {
	// Now is the clock for migration records and latency measurements;
	// nil means time.Now.
	Now func() time.Time
	// MaxReadConns bounds the read pool; 0 means the larger of 4 and the
	// number of CPUs.
	MaxReadConns int
	// BusyTimeout is how long a connection waits for a lock held by another
	// process; 0 means 10 seconds.
	BusyTimeout time.Duration
	// Logger receives start-up events; nil discards them.
	Logger *zap.Logger
}

// Store is a store.Store in a SQLite database file.
type Store struct {
	path   string
	writer *sql.DB // exactly one connection: writes are serialised here
	reader *sql.DB // query_only connections
	now    func() time.Time
	log    *zap.Logger
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.HealthChecker = (*Store)(nil)
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Open opens (creating it if needed) the database dir/featurestore.db,
// creating dir too, and applies pending migrations.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxReadConns <= 0 {
		opts.MaxReadConns = max(4, runtime.NumCPU())
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, feature.Unavailable("sqlite store directory unavailable", fmt.Errorf("sqlite: create %s: %w", dir, err))
	}
	abs, err := filepath.Abs(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s := &Store{path: abs, now: opts.Now, log: opts.Logger}
	busy := fmt.Sprintf("busy_timeout(%d)", opts.BusyTimeout.Milliseconds())
	s.writer, err = sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {busy, "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)",
			writerCacheSize, "temp_store(MEMORY)"},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)
	if err := s.migrate(ctx); err != nil {
		_ = s.writer.Close()
		return nil, err
	}
	s.reader, err = sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {busy, "foreign_keys(1)", "query_only(1)"},
	}))
	if err != nil {
		_ = s.writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	s.reader.SetMaxOpenConns(opts.MaxReadConns)
	s.reader.SetMaxIdleConns(opts.MaxReadConns)
	s.log.Info("sqlite store open", zap.String("path", abs))
	return s, nil
}

// dsn makes a file: URI, so that no character of the path is taken for the
// start of the query.
func dsn(path string, q url.Values) string {
	return (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes both connection pools; the WAL is checkpointed when the last
// connection closes.
func (s *Store) Close() error {
	return errors.Join(s.reader.Close(), s.writer.Close())
}

// dbError classifies an error from the database: I/O, a full disk, a lock
// held too long by another process or a closed store is
// feature.Unavailable; an ended context is canceled or timeout
// (store.DependencyError); any other SQLite error (a bug in a query) stays
// uncoded, which is an internal error.
func dbError(op string, err error) error {
	err = fmt.Errorf("sqlite: %s: %w", op, err)
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB:
			return feature.Unavailable("sqlite store is unavailable", err)
		}
		return err
	}
	return store.DependencyError("sqlite store", err)
}

// loadMigrations returns the embedded migrations in version order.
func loadMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFiles, "migrations")
}

// migrate applies pending migrations in one IMMEDIATE transaction, which
// also keeps two processes opening the same file from racing.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("sqlite: load migrations: %w", err)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return dbError("migrate: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS schema_migrations (
		    version    INTEGER PRIMARY KEY,
		    name       TEXT    NOT NULL,
		    applied_at INTEGER NOT NULL
		) STRICT`); err != nil {
		return dbError("migrate: create schema_migrations", err)
	}
	applied, err := appliedVersions(ctx, tx)
	if err != nil {
		return dbError("migrate: read schema_migrations", err)
	}
	for _, m := range migrations.Pending(ms, applied) {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return dbError("migrate: apply "+m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, s.now().UnixMicro()); err != nil {
			return dbError("migrate: record "+m.Name, err)
		}
		s.log.Info("applied migration", zap.Int("version", m.Version), zap.String("name", m.Name))
	}
	if err := tx.Commit(); err != nil {
		return dbError("migrate: commit", err)
	}
	return nil
}

func appliedVersions(ctx context.Context, tx *sql.Tx) ([]int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		versions = append(versions, v)
	}
	return versions, rows.Err()
}

func micros(t time.Time) int64 { return t.Truncate(time.Microsecond).UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// scanGroup reads a feature_groups row selected as rowjson.GroupColumns.
func scanGroup(row rowjson.Scanner) (feature.Group, error) {
	return rowjson.ScanGroup(row, fromMicros)
}

// ListGroups returns every group, ordered by name.
func (s *Store) ListGroups(ctx context.Context) ([]feature.Group, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT `+rowjson.GroupColumns+` FROM feature_groups ORDER BY name`)
	if err != nil {
		return nil, dbError("list groups", err)
	}
	defer rows.Close()
	groups, err := rowjson.ScanGroups(rows, fromMicros)
	if err != nil {
		return nil, dbError("list groups", err)
	}
	return groups, nil
}

// GetGroup returns one group or a NotFound error.
func (s *Store) GetGroup(ctx context.Context, name string) (feature.Group, error) {
	g, err := scanGroup(s.reader.QueryRowContext(ctx, `SELECT `+rowjson.GroupColumns+` FROM feature_groups WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return feature.Group{}, store.GroupNotFound(name)
	}
	if err != nil {
		return feature.Group{}, dbError("get group", err)
	}
	return g, nil
}

// PutGroup creates or replaces a group (see store.Store). The definition is
// validated first; times are stored with microsecond precision. With an
// idempotent write in ctx, its record is written in the same transaction.
func (s *Store) PutGroup(ctx context.Context, g feature.Group, now time.Time) (feature.Group, error) {
	if err := g.Validate(); err != nil {
		return feature.Group{}, err
	}
	args, err := rowjson.GroupArgs(g)
	if err != nil {
		return feature.Group{}, err
	}
	var out feature.Group
	err = s.inTx(ctx, "put group", func(tx *sql.Tx) error {
		var err error
		out, err = scanGroup(tx.QueryRowContext(ctx, `
			INSERT INTO feature_groups (`+rowjson.GroupColumns+`)
			VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?8, ?8, ?7)
			ON CONFLICT (name) DO UPDATE SET
			    entity_key     = excluded.entity_key,
			    features       = excluded.features,
			    ttl_seconds    = excluded.ttl_seconds,
			    description    = excluded.description,
			    tags           = excluded.tags,
			    history_retention_seconds = excluded.history_retention_seconds,
			    schema_version = feature_groups.schema_version + 1,
			    updated_at     = excluded.updated_at
			RETURNING `+rowjson.GroupColumns,
			append(args, micros(now))...))
		if err != nil {
			return dbError("put group", err)
		}
		store.RecordAnswer(ctx, out)
		return insertIdempotency(ctx, tx)
	})
	if err != nil {
		return feature.Group{}, err
	}
	return out, nil
}

// DeleteGroup removes a group; its history and latest rows go with it
// (ON DELETE CASCADE) in the same transaction. A group that feature services
// reference is not deleted: the Conflict error names the services, found in
// the same IMMEDIATE transaction as the delete (and the references' ON
// DELETE RESTRICT would refuse it anyway).
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	return s.inTx(ctx, "delete group", func(tx *sql.Tx) error {
		users, err := servicesUsing(ctx, tx, name)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return store.GroupInUse(name, users)
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM feature_groups WHERE name = ?`, name)
		if err != nil {
			return dbError("delete group", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return dbError("delete group", err)
		} else if n == 0 {
			return store.GroupNotFound(name)
		}
		store.RecordAnswer(ctx, nil)
		return insertIdempotency(ctx, tx)
	})
}

// inTx runs fn in an IMMEDIATE transaction on the writer and commits it.
func (s *Store) inTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return dbError(op+": begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return dbError(op+": commit", err)
	}
	return nil
}

// insertIdempotency writes the record of the idempotent write ctx carries
// (none: nothing to do), replacing an expired record of its key; an
// unexpired one fails with store.ErrIdempotencyKeyInUse.
func insertIdempotency(ctx context.Context, tx *sql.Tx) error {
	iw := store.IdempotentWriteFrom(ctx)
	if iw == nil {
		return nil
	}
	rec := iw.Record()
	res, err := tx.ExecContext(ctx, `
		INSERT INTO idempotency_keys (key, fingerprint, status, body, created_at)
		VALUES (?1, ?2, ?3, ?4, ?5)
		ON CONFLICT (key) DO UPDATE SET
		    fingerprint = excluded.fingerprint,
		    status      = excluded.status,
		    body        = excluded.body,
		    created_at  = excluded.created_at
		WHERE idempotency_keys.created_at < ?6`,
		rec.Key, rec.Fingerprint, rec.Status, rec.Body, micros(rec.CreatedAt), micros(iw.ExpiredBefore))
	if err != nil {
		return dbError("record idempotency key", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbError("record idempotency key", err)
	} else if n == 0 {
		return store.ErrIdempotencyKeyInUse
	}
	return nil
}

// GetIdempotencyRecord returns the record of an Idempotency-Key.
func (s *Store) GetIdempotencyRecord(ctx context.Context, key string) (store.IdempotencyRecord, bool, error) {
	rec := store.IdempotencyRecord{Key: key}
	var created int64
	err := s.reader.QueryRowContext(ctx, `SELECT fingerprint, status, body, created_at FROM idempotency_keys WHERE key = ?`, key).
		Scan(&rec.Fingerprint, &rec.Status, &rec.Body, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return store.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return store.IdempotencyRecord{}, false, dbError("get idempotency key", err)
	}
	rec.CreatedAt = fromMicros(created)
	return rec, true, nil
}

// DeleteIdempotencyRecords deletes the records created before t.
func (s *Store) DeleteIdempotencyRecords(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < ?`, micros(t))
	if err != nil {
		return 0, dbError("expire idempotency keys", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, dbError("expire idempotency keys", err)
	}
	return n, nil
}

// WriteRows writes rows all or nothing in one IMMEDIATE transaction (see
// store.Store): each row is appended to the history and upserted into
// feature_latest, replacing the current latest only when it is newer. A row
// that repeats the current latest (same event time, same values) is skipped:
// it would change no as-of answer. The group's counts in
// feature_group_counts are updated in the same transaction. Event and write
// times are truncated to microseconds.
func (s *Store) WriteRows(ctx context.Context, rows []feature.Row) error {
	if len(rows) == 0 {
		return nil
	}
	values := make([]string, len(rows))
	var (
		buf []byte
		err error
		enc rowjson.RowEncoder
	)
	for i, r := range rows {
		if buf, err = enc.Encode(buf[:0], i, r); err != nil {
			return err
		}
		values[i] = string(buf)
	}

	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return dbError("write rows: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit
	if err := checkGroups(ctx, tx, rows); err != nil {
		return err
	}
	w, err := prepareWriter(ctx, tx)
	if err != nil {
		return err
	}
	defer w.close()
	// The row statements run without ctx's cancellation, which the driver
	// watches with a goroutine per statement (a few percent of a bulk
	// write); ctx is checked before each row instead, so a request that is
	// cancelled stops within one row's statements and rolls back.
	rowCtx := context.WithoutCancel(ctx)
	if distinctKeys(rows) {
		err = w.writeChunks(ctx, rowCtx, tx, rows, values)
	} else {
		err = w.writeEach(ctx, rowCtx, rows, values)
	}
	if err != nil {
		return err
	}
	if err := w.saveCounts(ctx); err != nil {
		return err
	}
	if err := insertIdempotency(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return dbError("write rows: commit", err)
	}
	return nil
}

// chunkRows is how many rows one multi-row statement of writeChunks writes
// (5 parameters a row, far below SQLite's limit of 32,766).
const chunkRows = 100

// distinctKeys reports whether no two rows have the same group and entity.
func distinctKeys(rows []feature.Row) bool {
	seen := make(map[feature.Key]struct{}, len(rows))
	for _, r := range rows {
		k := feature.Key{Group: r.Group, EntityID: r.EntityID}
		if _, dup := seen[k]; dup {
			return false
		}
		seen[k] = struct{}{}
	}
	return true
}

// writeEach writes rows one by one with w.write.
func (w *rowWriter) writeEach(ctx, rowCtx context.Context, rows []feature.Row, values []string) error {
	for i, r := range rows {
		if err := ctx.Err(); err != nil {
			return dbError("write rows", err)
		}
		if err := w.write(rowCtx, r, values[i]); err != nil {
			return err
		}
	}
	return nil
}

// writeChunks writes rows whose keys are all distinct, chunkRows at a time,
// with the result write would give row by row: one multi-row insert into
// feature_latest that does nothing on a conflict and returns the keys it
// inserted, then one multi-row insert of those rows into the history (an
// entity that had no latest row cannot repeat it), then w.write for the
// rows of entities that had one. Rows of distinct keys touch distinct
// latest rows, so the order they are written in changes nothing; a batch
// that repeats a key is written by writeEach instead. Most of a bulk ingest
// is new entities, whose twelve row statements per movie become two per
// chunk.
func (w *rowWriter) writeChunks(ctx, rowCtx context.Context, tx *sql.Tx, rows []feature.Row, values []string) error {
	for lo := 0; lo < len(rows); lo += chunkRows {
		if err := ctx.Err(); err != nil {
			return dbError("write rows", err)
		}
		chunk := rows[lo:min(lo+chunkRows, len(rows))]
		args := make([]any, 0, 5*len(chunk))
		for i, r := range chunk {
			args = append(args, r.Group, r.EntityID, micros(r.EventTime), micros(r.WriteTime), values[lo+i])
		}
		inserted, err := w.insertLatestChunk(rowCtx, tx, len(chunk), args)
		if err != nil {
			return err
		}
		var histArgs []any
		for i, r := range chunk {
			if _, ok := inserted[feature.Key{Group: r.Group, EntityID: r.EntityID}]; !ok {
				if err := w.write(rowCtx, r, values[lo+i]); err != nil {
					return err
				}
				continue
			}
			histArgs = append(histArgs, args[5*i:5*i+5]...)
			w.count(r, true)
		}
		if len(histArgs) > 0 {
			st, err := w.chunkStmt(rowCtx, tx, &w.historyChunk, historyChunkSQL, len(histArgs)/5)
			if err != nil {
				return err
			}
			_, err = st.ExecContext(rowCtx, histArgs...)
			closeUnlessFull(st, len(histArgs)/5)
			if err != nil {
				return dbError("write rows: history", err)
			}
		}
	}
	return nil
}

const (
	latestChunkSQL = `INSERT INTO feature_latest (group_name, entity_id, event_time, write_time, feature_values) VALUES %s
		ON CONFLICT (group_name, entity_id) DO NOTHING
		RETURNING group_name, entity_id`
	historyChunkSQL = `INSERT INTO feature_rows (group_name, entity_id, event_time, write_time, feature_values) VALUES %s`
)

// chunkStmt returns the statement q (a multi-row insert, %s standing for
// its rows) for n rows: for chunkRows rows the one *full prepared the first
// time in this transaction, else one prepared for this call, which
// closeUnlessFull closes.
func (w *rowWriter) chunkStmt(ctx context.Context, tx *sql.Tx, full **sql.Stmt, q string, n int) (*sql.Stmt, error) {
	if n == chunkRows && *full != nil {
		return *full, nil
	}
	st, err := tx.PrepareContext(ctx, fmt.Sprintf(q, placeholders(n)))
	if err != nil {
		return nil, dbError("write rows: prepare", err)
	}
	if n == chunkRows {
		*full = st
	}
	return st, nil
}

func closeUnlessFull(st *sql.Stmt, n int) {
	if n != chunkRows {
		_ = st.Close()
	}
}

// insertLatestChunk inserts n rows (args: 5 per row) into feature_latest,
// each unless its entity has a latest row already, and returns the keys it
// inserted.
func (w *rowWriter) insertLatestChunk(ctx context.Context, tx *sql.Tx, n int, args []any) (map[feature.Key]struct{}, error) {
	st, err := w.chunkStmt(ctx, tx, &w.latestChunk, latestChunkSQL, n)
	if err != nil {
		return nil, err
	}
	defer closeUnlessFull(st, n)
	res, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, dbError("write rows: latest", err)
	}
	defer res.Close()
	inserted := make(map[feature.Key]struct{}, n)
	for res.Next() {
		var k feature.Key
		if err := res.Scan(&k.Group, &k.EntityID); err != nil {
			return nil, dbError("write rows: latest", err)
		}
		inserted[k] = struct{}{}
	}
	if err := res.Err(); err != nil {
		return nil, dbError("write rows: latest", err)
	}
	return inserted, nil
}

// placeholders returns n rows of five parameters: "(?,?,?,?,?),(?,?,?,?,?)".
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("(?,?,?,?,?),", n), ",")
}

// rowWriter holds the prepared statements of one WriteRows transaction and
// the count deltas it accumulates per group.
type rowWriter struct {
	history, insertLatest, updateLatest, counts *sql.Stmt
	// The multi-row inserts of writeChunks for a full chunk, prepared on
	// first use.
	latestChunk, historyChunk *sql.Stmt
	deltas                    map[string]*countDelta
}

type countDelta struct {
	entities, rows int64
	newest         int64
}

func prepareWriter(ctx context.Context, tx *sql.Tx) (*rowWriter, error) {
	w := &rowWriter{deltas: map[string]*countDelta{}}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&w.history, `
			INSERT INTO feature_rows (group_name, entity_id, event_time, write_time, feature_values)
			SELECT ?1, ?2, ?3, ?4, ?5
			WHERE NOT EXISTS (SELECT 1 FROM feature_latest
			                  WHERE group_name = ?1 AND entity_id = ?2 AND event_time = ?3 AND feature_values = ?5)`},
		{&w.insertLatest, `
			INSERT INTO feature_latest (group_name, entity_id, event_time, write_time, feature_values)
			VALUES (?1, ?2, ?3, ?4, ?5)
			ON CONFLICT (group_name, entity_id) DO NOTHING`},
		{&w.updateLatest, `
			UPDATE feature_latest SET event_time = ?3, write_time = ?4, feature_values = ?5
			WHERE group_name = ?1 AND entity_id = ?2 AND (?3, ?4) > (event_time, write_time)`},
		{&w.counts, `
			INSERT INTO feature_group_counts (group_name, entities, history_rows, newest_event_time)
			VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (group_name) DO UPDATE SET
			    entities          = entities + excluded.entities,
			    history_rows      = history_rows + excluded.history_rows,
			    newest_event_time = max(coalesce(newest_event_time, excluded.newest_event_time), excluded.newest_event_time)`},
	} {
		stmt, err := tx.PrepareContext(ctx, p.sql)
		if err != nil {
			w.close()
			return nil, dbError("write rows: prepare", err)
		}
		*p.stmt = stmt
	}
	return w, nil
}

func (w *rowWriter) close() {
	for _, st := range []*sql.Stmt{w.history, w.insertLatest, w.updateLatest, w.counts, w.latestChunk, w.historyChunk} {
		if st != nil {
			_ = st.Close()
		}
	}
}

// write appends r to the history unless it repeats the latest row, and
// makes it the latest if it is newer.
func (w *rowWriter) write(ctx context.Context, r feature.Row, values string) error {
	args := []any{r.Group, r.EntityID, micros(r.EventTime), micros(r.WriteTime), values}
	res, err := w.history.ExecContext(ctx, args...)
	if err != nil {
		return dbError("write rows: history", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbError("write rows: history", err)
	} else if n == 0 {
		return nil // a repeat of the latest row: nothing to do
	}
	if res, err = w.insertLatest.ExecContext(ctx, args...); err != nil {
		return dbError("write rows: latest", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbError("write rows: latest", err)
	}
	w.count(r, n == 1)
	if n == 1 {
		return nil
	}
	if _, err := w.updateLatest.ExecContext(ctx, args...); err != nil {
		return dbError("write rows: latest", err)
	}
	return nil
}

// count adds a history row of r, and an entity when it is r's group's
// first, to the deltas.
func (w *rowWriter) count(r feature.Row, newEntity bool) {
	d := w.deltas[r.Group]
	if d == nil {
		d = &countDelta{newest: micros(r.EventTime)}
		w.deltas[r.Group] = d
	}
	d.rows++
	d.newest = max(d.newest, micros(r.EventTime))
	if newEntity {
		d.entities++
	}
}

// saveCounts adds the accumulated deltas to each group's counts.
func (w *rowWriter) saveCounts(ctx context.Context) error {
	for g, d := range w.deltas {
		if _, err := w.counts.ExecContext(ctx, g, d.entities, d.rows, d.newest); err != nil {
			return dbError("write rows: counts", err)
		}
	}
	return nil
}

// checkGroups returns NotFound naming every unregistered group of rows.
func checkGroups(ctx context.Context, tx *sql.Tx, rows []feature.Row) error {
	var groups []string
	for _, r := range rows {
		if !slices.Contains(groups, r.Group) {
			groups = append(groups, r.Group)
		}
	}
	var missing []string
	for _, g := range groups {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM feature_groups WHERE name = ?)`, g).Scan(&exists); err != nil {
			return dbError("write rows: check groups", err)
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

// GetLatest answers the whole batch with one query: the keys travel as one
// JSON array of [group, entity] pairs that json_each numbers, each joined to
// its group (to tell an unknown group from a missing entity) and its latest
// row by primary key.
func (s *Store) GetLatest(ctx context.Context, keys []feature.Key) ([]*feature.Row, error) {
	out := make([]*feature.Row, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	pairs := make([][2]string, len(keys))
	for i, k := range keys {
		pairs[i] = [2]string{k.Group, k.EntityID}
	}
	arg, err := json.Marshal(pairs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encode keys: %w", err)
	}
	rows, err := s.reader.QueryContext(ctx, `
		SELECT k.key, g.name IS NOT NULL, l.event_time, l.write_time, l.feature_values
		FROM json_each(?) AS k
		LEFT JOIN feature_groups g ON g.name = k.value ->> 0
		LEFT JOIN feature_latest l ON l.group_name = k.value ->> 0 AND l.entity_id = k.value ->> 1`,
		string(arg))
	if err != nil {
		return nil, dbError("get latest", err)
	}
	defer rows.Close()
	var missing []string
	for rows.Next() {
		var (
			i            int
			known        bool
			event, write sql.NullInt64
			values       sql.RawBytes
		)
		if err := rows.Scan(&i, &known, &event, &write, &values); err != nil {
			return nil, dbError("get latest", err)
		}
		if !known {
			missing = append(missing, keys[i].Group)
			continue
		}
		if !event.Valid {
			continue
		}
		if out[i], err = newRow(keys[i], event.Int64, write.Int64, values); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("get latest", err)
	}
	if len(missing) > 0 {
		return nil, store.GroupNotFound(missing...)
	}
	return out, nil
}

func newRow(k feature.Key, event, write int64, values []byte) (*feature.Row, error) {
	v, err := rowjson.DecodeValues(values)
	if err != nil {
		return nil, fmt.Errorf("sqlite: row %s/%s: %w", k.Group, k.EntityID, err)
	}
	return &feature.Row{Group: k.Group, EntityID: k.EntityID, EventTime: fromMicros(event), WriteTime: fromMicros(write), Values: v}, nil
}

// GetAsOf returns the newest row with EventTime <= asOf (truncated to
// microseconds), read from the as-of index; NotFound for an unknown group,
// HistoryExpired when asOf is before the group's prune watermark.
func (s *Store) GetAsOf(ctx context.Context, key feature.Key, asOf time.Time) (*feature.Row, error) {
	var (
		expired, event, write sql.NullInt64
		values                []byte
	)
	at := micros(asOf)
	err := s.reader.QueryRowContext(ctx, `
		SELECT g.history_expired_before, r.event_time, r.write_time, r.feature_values
		FROM feature_groups g
		LEFT JOIN (
		    SELECT event_time, write_time, feature_values FROM feature_rows
		    WHERE group_name = ?1 AND entity_id = ?2 AND event_time <= ?3
		    ORDER BY event_time DESC, write_time DESC
		    LIMIT 1
		) r ON true
		WHERE g.name = ?1`,
		key.Group, key.EntityID, at).Scan(&expired, &event, &write, &values)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.GroupNotFound(key.Group)
	}
	if err != nil {
		return nil, dbError("get as of", err)
	}
	if expired.Valid && at < expired.Int64 {
		return nil, store.HistoryExpired(key.Group, fromMicros(at), fromMicros(expired.Int64))
	}
	if !event.Valid {
		return nil, nil
	}
	return newRow(key, event.Int64, write.Int64, values)
}

// ScanLatest reads the group's latest rows in pages in entity id order (byte
// order), so fn runs without holding a connection or a read transaction
// open. Rows written during the scan may or may not be seen.
func (s *Store) ScanLatest(ctx context.Context, group string, fn func(feature.Row) error) error {
	var exists bool
	if err := s.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM feature_groups WHERE name = ?)`, group).Scan(&exists); err != nil {
		return dbError("scan latest", err)
	}
	if !exists {
		return store.GroupNotFound(group)
	}
	return store.ScanPages(func(after string, limit int) ([]feature.Row, error) {
		return s.scanPage(ctx, group, after, limit)
	}, fn)
}

func (s *Store) scanPage(ctx context.Context, group, after string, limit int) ([]feature.Row, error) {
	rows, err := s.reader.QueryContext(ctx, `
		SELECT entity_id, event_time, write_time, feature_values FROM feature_latest
		WHERE group_name = ? AND entity_id > ?
		ORDER BY entity_id
		LIMIT ?`, group, after, limit)
	if err != nil {
		return nil, dbError("scan latest", err)
	}
	defer rows.Close()
	var page []feature.Row
	for rows.Next() {
		var (
			id           string
			event, write int64
			values       sql.RawBytes
		)
		if err := rows.Scan(&id, &event, &write, &values); err != nil {
			return nil, dbError("scan latest", err)
		}
		r, err := newRow(feature.Key{Group: group, EntityID: id}, event, write, values)
		if err != nil {
			return nil, err
		}
		page = append(page, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("scan latest", err)
	}
	return page, nil
}

// Stats reads the entities, history rows and newest event time of each
// group from feature_group_counts, kept by every write and prune (one row
// per group, never a scan of the history); StorageBytes is the size of the
// database file and its WAL.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	st := store.Stats{Backend: "sqlite", Groups: []store.GroupStats{}}
	rows, err := s.reader.QueryContext(ctx, `
		SELECT g.name, coalesce(c.entities, 0), coalesce(c.history_rows, 0), c.newest_event_time
		FROM feature_groups g
		LEFT JOIN feature_group_counts c ON c.group_name = g.name
		ORDER BY g.name`)
	if err != nil {
		return store.Stats{}, dbError("stats", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			gs     store.GroupStats
			newest sql.NullInt64
		)
		if err := rows.Scan(&gs.Group, &gs.Entities, &gs.Rows, &newest); err != nil {
			return store.Stats{}, dbError("stats", err)
		}
		if newest.Valid {
			gs.NewestEventTime = fromMicros(newest.Int64)
		}
		st.Groups = append(st.Groups, gs)
	}
	if err := rows.Err(); err != nil {
		return store.Stats{}, dbError("stats", err)
	}
	db, wal, err := s.fileSizes()
	if err != nil {
		return store.Stats{}, dbError("stats: file size", err)
	}
	st.StorageBytes = db + wal
	return st, nil
}

// fileSizes returns the sizes of the database file and its WAL (0 when
// there is none).
func (s *Store) fileSizes() (db, wal int64, err error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return 0, 0, err
	}
	if wi, err := os.Stat(s.path + "-wal"); err == nil {
		wal = wi.Size()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, err
	}
	return fi.Size(), wal, nil
}

// Health runs a query and reports the SQLite version, the file's path and
// sizes, the query latency and the pools' connection counts.
func (s *Store) Health(ctx context.Context) store.Component {
	start := s.now()
	var version string
	if err := s.reader.QueryRowContext(ctx, `SELECT sqlite_version()`).Scan(&version); err != nil {
		return store.Component{Status: store.HealthDown, Error: dbError("health", err).Error(), Details: map[string]any{"path": s.path}}
	}
	latency := s.now().Sub(start)
	db, wal, err := s.fileSizes()
	if err != nil {
		return store.Component{Status: store.HealthDown, Error: dbError("health", err).Error(), Details: map[string]any{"path": s.path}}
	}
	r, w := s.reader.Stats(), s.writer.Stats()
	return store.Component{Status: store.HealthUp, Details: map[string]any{
		"version":             version,
		"path":                s.path,
		"database_size_bytes": db,
		"wal_size_bytes":      wal,
		"query_latency_ms":    float64(latency.Microseconds()) / 1000,
		"read_connections":    map[string]any{"open": r.OpenConnections, "in_use": r.InUse, "idle": r.Idle, "max": r.MaxOpenConnections, "wait_count": r.WaitCount},
		"write_connection":    map[string]any{"in_use": w.InUse, "wait_count": w.WaitCount, "wait_duration_ms": float64(w.WaitDuration.Microseconds()) / 1000},
	}}
}
