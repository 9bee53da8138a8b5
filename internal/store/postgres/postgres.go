// Package postgres is the feature store's system of record: feature groups,
// the full history of feature rows and the latest row of every entity, in
// PostgreSQL through a pgx connection pool.
//
// Times are stored with microsecond precision: WriteRows truncates event and
// write times to microseconds (as Postgres would), and every comparison —
// which row is newer, which rows an as-of read sees — uses the truncated
// times.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/rowjson"
)

const (
	// defaultConnectTimeout bounds a connection attempt when the URL sets no
	// connect_timeout, so a dead server is an error rather than a hang.
	defaultConnectTimeout = 5 * time.Second
	// writeAttempts is how often WriteRows runs its statement when Postgres
	// aborts it for a deadlock or serialization failure.
	writeAttempts = 3
)

// Options configure a Store.
type Options struct {
	// Now is the clock for migration records and latency measurements;
	// nil means time.Now.
	Now func() time.Time
	// MaxConns bounds the connection pool; 0 keeps the URL's pool_max_conns
	// or pgxpool's default (the larger of 4 and the number of CPUs).
	MaxConns int32
	// Logger receives start-up events; nil discards them.
	Logger *zap.Logger
	// ReadURL, when set, is a streaming replica of the database at url:
	// as-of reads, training sets, scans and statistics go to it, writes,
	// latest reads and the registry to the primary. Its pool has MaxConns
	// connections too.
	ReadURL string
	// StatementTimeout, when positive, is set as the statement_timeout of
	// every connection (both pools): a statement running longer is cancelled
	// by the server (feature.CodeTimeout).
	StatementTimeout time.Duration
}

// Store is a store.Store backed by PostgreSQL.
type Store struct {
	pool *pgxpool.Pool
	// reader serves as-of reads, training sets, scans and statistics: the
	// replica's pool when Options.ReadURL is set, otherwise pool itself.
	reader *pgxpool.Pool
	now    func() time.Time
	log    *zap.Logger

	listenerPID atomic.Uint32 // backend of the last registry listener connection (for tests)
	upsertOnly  bool          // WriteRows always runs writeRowsSQL (for tests)
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.HealthChecker = (*Store)(nil)
)

// Open connects to the database at url (a postgres:// URL or key=value
// string; set search_path in it to use a schema other than public), applies
// pending migrations and returns the store. A connect_timeout of 5 seconds
// applies unless the URL sets one. A database that cannot be reached is a
// feature.Unavailable error.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	cfg, err := poolConfig(url, opts)
	if err != nil {
		return nil, feature.Invalid("invalid postgres url: " + err.Error())
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: create pool: %w", err)
	}
	s := &Store{pool: pool, reader: pool, now: opts.Now, log: opts.Logger}
	if opts.ReadURL != "" {
		rcfg, err := poolConfig(opts.ReadURL, opts)
		if err != nil {
			pool.Close()
			return nil, feature.Invalid("invalid postgres read url: " + err.Error())
		}
		if s.reader, err = pgxpool.NewWithConfig(ctx, rcfg); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres: create read pool: %w", err)
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		_ = s.Close()
		return nil, dbError("connect", err)
	}
	err = migrate(ctx, conn.Conn(), s.now, s.log)
	conn.Release()
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.log.Info("postgres store open",
		zap.String("host", cfg.ConnConfig.Host), zap.String("database", cfg.ConnConfig.Database),
		zap.Int32("max_conns", cfg.MaxConns), zap.Bool("read_replica", opts.ReadURL != ""),
		zap.Duration("statement_timeout", opts.StatementTimeout))
	return s, nil
}

// poolConfig parses a URL into a pool configuration with the options'
// pool size, statement timeout and the default connect timeout.
func poolConfig(url string, opts Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.StatementTimeout > 0 {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(max(1, opts.StatementTimeout.Milliseconds()), 10)
	}
	return cfg, nil
}

// Pool returns the connection pool, for metrics that read its statistics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// ReadPool returns the pool of the read replica, or nil without one.
func (s *Store) ReadPool() *pgxpool.Pool {
	if s.reader == s.pool {
		return nil
	}
	return s.reader
}

// Close closes the pools.
func (s *Store) Close() error {
	if s.reader != s.pool {
		s.reader.Close()
	}
	s.pool.Close()
	return nil
}

// dbError classifies an error from pgx (store.PostgresError): a canceled
// context, a deadline, an unreachable server and a read-only database each
// have their code; other server errors (a bug in a query) stay uncoded,
// which is an internal error.
func dbError(op string, err error) error {
	return store.PostgresError(op, err)
}

// scanGroup reads a feature_groups row selected as rowjson.GroupColumns.
func scanGroup(row pgx.Row) (feature.Group, error) {
	return rowjson.ScanGroup(row, time.Time.UTC)
}

// ListGroups returns every group, ordered by name.
func (s *Store) ListGroups(ctx context.Context) ([]feature.Group, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+rowjson.GroupColumns+` FROM feature_groups ORDER BY name`)
	if err != nil {
		return nil, dbError("list groups", err)
	}
	defer rows.Close()
	groups, err := rowjson.ScanGroups(rows, time.Time.UTC)
	if err != nil {
		return nil, dbError("list groups", err)
	}
	return groups, nil
}

// GetGroup returns one group or a NotFound error.
func (s *Store) GetGroup(ctx context.Context, name string) (feature.Group, error) {
	g, err := scanGroup(s.pool.QueryRow(ctx, `SELECT `+rowjson.GroupColumns+` FROM feature_groups WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return feature.Group{}, store.GroupNotFound(name)
	}
	if err != nil {
		return feature.Group{}, dbError("get group", err)
	}
	return g, nil
}

// putGroupSQL creates or replaces a group, returning the stored definition.
const putGroupSQL = `
	INSERT INTO feature_groups AS g (` + rowjson.GroupColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, 1, $8, $8, $7)
	ON CONFLICT (name) DO UPDATE SET
	    entity_key     = excluded.entity_key,
	    features       = excluded.features,
	    ttl_seconds    = excluded.ttl_seconds,
	    description    = excluded.description,
	    tags           = excluded.tags,
	    history_retention_seconds = excluded.history_retention_seconds,
	    schema_version = g.schema_version + 1,
	    updated_at     = excluded.updated_at
	RETURNING ` + rowjson.GroupColumns

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
	args = append(args, now.Truncate(time.Microsecond))
	iw := store.IdempotentWriteFrom(ctx)
	if iw == nil {
		out, err := scanGroup(s.pool.QueryRow(ctx, putGroupSQL, args...))
		if err != nil {
			return feature.Group{}, store.PostgresWriteError("put group", err)
		}
		return out, nil
	}
	var out feature.Group
	err = s.inTx(ctx, "put group", func(tx pgx.Tx) error {
		var err error
		if out, err = scanGroup(tx.QueryRow(ctx, putGroupSQL, args...)); err != nil {
			return dbError("put group", err)
		}
		store.RecordAnswer(ctx, out)
		return insertIdempotency(ctx, tx, iw)
	})
	return out, err
}

// DeleteGroup removes a group; its history and latest rows go with it
// (ON DELETE CASCADE) in the same statement, and the record of an
// idempotent write in ctx in the same transaction. A group that feature
// services reference is not deleted: the statement fails on their
// references (ON DELETE RESTRICT) and the Conflict error names the services.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	for range writeAttempts {
		inUse, err := s.deleteGroupOnce(ctx, name)
		if !inUse {
			return err
		}
		users, err := s.servicesUsing(ctx, name)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return store.GroupInUse(name, users)
		}
		// the services went away meanwhile: try again
	}
	return feature.Conflict("feature group " + strconv.Quote(name) + " is in use by feature services that keep changing; try again")
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// deleteGroupOnce deletes a group; inUse reports that feature services
// still reference it (nothing was deleted).
func (s *Store) deleteGroupOnce(ctx context.Context, name string) (inUse bool, err error) {
	del := func(q execer, classify func(string, error) error) error {
		tag, err := q.Exec(ctx, `DELETE FROM feature_groups WHERE name = $1`, name)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" && pgErr.TableName == "feature_service_groups" {
			inUse = true
			return err
		}
		if err != nil {
			return classify("delete group", err)
		}
		if tag.RowsAffected() == 0 {
			return store.GroupNotFound(name)
		}
		return nil
	}
	iw := store.IdempotentWriteFrom(ctx)
	if iw == nil {
		return inUse, del(s.pool, store.PostgresWriteError)
	}
	err = s.inTx(ctx, "delete group", func(tx pgx.Tx) error {
		if err := del(tx, dbError); err != nil {
			return err
		}
		store.RecordAnswer(ctx, nil)
		return insertIdempotency(ctx, tx, iw)
	})
	return inUse, err
}

// inTx runs fn in a transaction and commits it. A failure before the
// commit left nothing written (fn classifies it); a commit whose answer was
// lost may have been committed (store.PostgresCommitError).
func (s *Store) inTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return dbError(op+": begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return store.PostgresCommitError(op+": commit", err)
	}
	return nil
}

// insertIdempotency writes the record of iw, replacing an expired record
// of its key; an unexpired one fails with store.ErrIdempotencyKeyInUse
// (a concurrent insert of the key waits for the first to commit, then
// finds it).
func insertIdempotency(ctx context.Context, tx pgx.Tx, iw *store.IdempotentWrite) error {
	rec := iw.Record()
	tag, err := tx.Exec(ctx, `
		INSERT INTO idempotency_keys AS k (key, fingerprint, status, body, created_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (key) DO UPDATE SET
		    fingerprint = excluded.fingerprint,
		    status      = excluded.status,
		    body        = excluded.body,
		    created_at  = excluded.created_at
		WHERE k.created_at < $6`,
		rec.Key, rec.Fingerprint, rec.Status, rec.Body, rec.CreatedAt.Truncate(time.Microsecond), iw.ExpiredBefore)
	if err != nil {
		return dbError("record idempotency key", err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrIdempotencyKeyInUse
	}
	return nil
}

// GetIdempotencyRecord returns the record of an Idempotency-Key.
func (s *Store) GetIdempotencyRecord(ctx context.Context, key string) (store.IdempotencyRecord, bool, error) {
	rec := store.IdempotencyRecord{Key: key}
	err := s.pool.QueryRow(ctx, `SELECT fingerprint, status, body, created_at FROM idempotency_keys WHERE key = $1`, key).
		Scan(&rec.Fingerprint, &rec.Status, &rec.Body, &rec.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return store.IdempotencyRecord{}, false, dbError("get idempotency key", err)
	}
	rec.CreatedAt = rec.CreatedAt.UTC()
	return rec, true, nil
}

// DeleteIdempotencyRecords deletes the records created before t.
func (s *Store) DeleteIdempotencyRecords(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, t)
	if err != nil {
		return 0, dbError("expire idempotency keys", err)
	}
	return tag.RowsAffected(), nil
}

// writeInputSQL opens both write statements: the rows from their array
// parameters, read only once feature_groups_lock has locked (and checked)
// the groups written (see writeRowsSQL).
const writeInputSQL = `WITH input AS (
    SELECT group_name, entity_id, event_time, write_time, feature_values::jsonb AS feature_values
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::text[])
        AS t(group_name, entity_id, event_time, write_time, feature_values)
    WHERE (SELECT feature_groups_lock($6::text[]))
),`

// upsertLatestSQL ends the latest-row upsert of both write statements
// (replace the current latest only with a newer row; say which rows were
// inserted rather than updated) and opens their feature_group_counts
// insert, whose delta rows each statement computes from what it wrote.
const upsertLatestSQL = `    ON CONFLICT (group_name, entity_id) DO UPDATE SET
        event_time     = excluded.event_time,
        write_time     = excluded.write_time,
        feature_values = excluded.feature_values
    WHERE (excluded.event_time, excluded.write_time) > (l.event_time, l.write_time)
    RETURNING group_name, (xmax = 0) AS inserted
)
INSERT INTO feature_group_counts (group_name, entities, history_rows, newest_event_time)`

// writeRowsSQL appends a batch to the history and upserts each entity's
// newest row of the batch into feature_latest, replacing the current latest
// only when the new row is newer. It is one statement, hence one transaction
// and one round trip whatever the batch size. DISTINCT ON keeps one row per
// entity (ON CONFLICT may touch a row once per statement) and its ORDER BY
// makes concurrent batches lock latest rows in the same order.
//
// A row that repeats the current latest (same event time, same values) is
// neither appended nor upserted: it would change no as-of answer and would
// only add a dead version and a history row. The statement also appends one
// delta row per group to feature_group_counts (history rows added, entities
// added, newest event time), which Stats sums instead of counting tables.
// In a data-modifying WITH every part sees the snapshot from before the
// statement, so the duplicate check compares with the latest row as it was.
//
// Before any row is read, feature_groups_lock ($6: the distinct groups)
// locks the groups written, once each, and fails with foreign_key_violation
// if one is not registered: the check a foreign key made for every row,
// which cost about a third of a bulk write (an uncorrelated scalar subquery
// is an init plan, evaluated once, and as a filter gates the whole scan).
const writeRowsSQL = `
` + writeInputSQL + ` fresh AS (
    SELECT i.* FROM input i
    WHERE NOT EXISTS (
        SELECT 1 FROM feature_latest l
        WHERE l.group_name = i.group_name AND l.entity_id = i.entity_id
          AND l.event_time = i.event_time AND l.feature_values::text = i.feature_values::text)
), history AS (
    INSERT INTO feature_rows (group_name, entity_id, event_time, write_time, feature_values)
    SELECT group_name, entity_id, event_time, write_time, feature_values FROM fresh
    RETURNING group_name, event_time
), latest AS (
    INSERT INTO feature_latest AS l (group_name, entity_id, event_time, write_time, feature_values)
    SELECT DISTINCT ON (group_name, entity_id) group_name, entity_id, event_time, write_time, feature_values
    FROM fresh
    ORDER BY group_name, entity_id, event_time DESC, write_time DESC
` + upsertLatestSQL + `
SELECT group_name, sum(entities), sum(history_rows), max(newest)
FROM (
    SELECT group_name, 0 AS entities, count(*) AS history_rows, max(event_time) AS newest
    FROM history GROUP BY group_name
    UNION ALL
    SELECT group_name, count(*) FILTER (WHERE inserted), 0, NULL
    FROM latest GROUP BY group_name
) d
GROUP BY group_name`

// insertRowsSQL is writeRowsSQL for a batch whose (group, entity) keys are
// distinct, as every ingest's are, with one probe of feature_latest per row
// instead of two and, for entities without a latest row, no speculative
// insertion: the lateral probe (its LIMIT keeps it a per-row index probe
// however large the table, as in GetLatest) finds the current latest row,
// which both decides the repeat check and splits the batch into the
// entities that have no latest row (a plain INSERT) and those that have one
// (the upsert of writeRowsSQL). An entity whose first row a concurrent writer
// committed after this statement's snapshot fails the plain insert with
// unique_violation on feature_latest_pkey; WriteRows then runs the
// transaction again with writeRowsSQL. Counts come from the rows written
// (every fresh row is appended, every absent entity inserted) plus the
// upsert's inserts. The rows come sorted by (group, entity), so concurrent
// batches lock latest rows in the same order and index entries go in key
// order; no DISTINCT ON sort is needed.
const insertRowsSQL = `
` + writeInputSQL + ` fresh AS (
    SELECT i.*, l.event_time IS NULL AS absent
    FROM input i
    LEFT JOIN LATERAL (
        SELECT event_time, feature_values FROM feature_latest AS l
        WHERE l.group_name = i.group_name AND l.entity_id = i.entity_id
        LIMIT 1
    ) l ON true
    WHERE l.event_time IS NULL OR l.event_time <> i.event_time
       OR l.feature_values::text <> i.feature_values::text
), history AS (
    INSERT INTO feature_rows (group_name, entity_id, event_time, write_time, feature_values)
    SELECT group_name, entity_id, event_time, write_time, feature_values FROM fresh
), inserted AS (
    INSERT INTO feature_latest (group_name, entity_id, event_time, write_time, feature_values)
    SELECT group_name, entity_id, event_time, write_time, feature_values FROM fresh WHERE absent
), upserted AS (
    INSERT INTO feature_latest AS l (group_name, entity_id, event_time, write_time, feature_values)
    SELECT group_name, entity_id, event_time, write_time, feature_values FROM fresh WHERE NOT absent
` + upsertLatestSQL + `
SELECT f.group_name, f.entities + coalesce(u.entities, 0), f.history_rows, f.newest
FROM (
    SELECT group_name, count(*) FILTER (WHERE absent) AS entities, count(*) AS history_rows, max(event_time) AS newest
    FROM fresh GROUP BY group_name
) f
LEFT JOIN (SELECT group_name, count(*) AS entities FROM upserted WHERE inserted GROUP BY group_name) u
    USING (group_name)`

// WriteRows writes rows all or nothing (see store.Store). Event and write
// times are truncated to microseconds.
func (s *Store) WriteRows(ctx context.Context, rows []feature.Row) error {
	if len(rows) == 0 {
		return nil
	}
	a, err := encodeWrite(rows)
	if err != nil {
		return err
	}
	sql := writeRowsSQL
	if a.distinctKeys && !s.upsertOnly {
		sql = insertRowsSQL
	}
	iw := store.IdempotentWriteFrom(ctx)
	for attempt := 0; attempt < writeAttempts; attempt++ {
		if iw == nil {
			err = s.pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
				return execWrite(ctx, c.Conn(), sql, a)
			})
		} else {
			err = s.inTx(ctx, "write rows", func(tx pgx.Tx) error {
				if err := insertIdempotency(ctx, tx, iw); err != nil {
					return err
				}
				return execWrite(ctx, tx.Conn(), sql, a) // raw: classified below
			})
		}
		if sql == insertRowsSQL && latestInserted(err) {
			// a concurrent writer inserted one of the entities: upsert instead
			sql = writeRowsSQL
			attempt--
			continue
		}
		if !retryable(err) {
			break
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation: a group is not registered
		return s.missingGroups(ctx, a.distinct)
	}
	var coded *feature.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &coded):
		return err // already classified: the key in use, a failed commit, ...
	case iw != nil:
		return dbError("write rows", err) // in a transaction: a broken connection rolled it back
	}
	return store.PostgresWriteError("write rows", err)
}

// latestInserted reports insertRowsSQL's failure on an entity whose latest
// row another transaction inserted after the statement's snapshot.
func latestInserted(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "feature_latest_pkey"
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// missingGroups builds the NotFound error for a batch that referenced
// unregistered groups.
func (s *Store) missingGroups(ctx context.Context, groups []string) error {
	slices.Sort(groups)
	groups = slices.Compact(groups)
	rows, err := s.pool.Query(ctx, `
		SELECT n FROM unnest($1::text[]) AS n
		WHERE NOT EXISTS (SELECT 1 FROM feature_groups WHERE name = n) ORDER BY n`, groups)
	if err != nil {
		return dbError("write rows: find unknown groups", err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return dbError("write rows: find unknown groups", err)
	}
	return store.GroupNotFound(missing...)
}

// GetLatest answers the whole batch with one query: the keys travel as two
// arrays, unnest numbers them, and each is looked up in feature_groups (to
// tell an unknown group from a missing entity) and in feature_latest by
// primary key. The LIMIT keeps the lateral subquery from being flattened
// into a join, which the planner would otherwise run as a hash join over the
// whole table for tables up to a few ten thousand rows; as written it is
// always one index probe per key.
func (s *Store) GetLatest(ctx context.Context, keys []feature.Key) ([]*feature.Row, error) {
	out := make([]*feature.Row, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	groups := make([]string, len(keys))
	ids := make([]string, len(keys))
	for i, k := range keys {
		groups[i], ids[i] = k.Group, k.EntityID
	}
	rows, err := s.pool.Query(ctx, `
		SELECT k.ord, EXISTS (SELECT 1 FROM feature_groups g WHERE g.name = k.group_name),
		       l.event_time, l.write_time, l.feature_values
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(group_name, entity_id, ord)
		LEFT JOIN LATERAL (
		    SELECT event_time, write_time, feature_values FROM feature_latest
		    WHERE group_name = k.group_name AND entity_id = k.entity_id
		    LIMIT 1
		) l ON true`,
		groups, ids)
	if err != nil {
		return nil, dbError("get latest", err)
	}
	defer rows.Close()
	var missing []string
	for rows.Next() {
		var (
			ord          int64
			known        bool
			event, write *time.Time
			values       []byte
		)
		if err := rows.Scan(&ord, &known, &event, &write, &values); err != nil {
			return nil, dbError("get latest", err)
		}
		i := int(ord - 1)
		if !known {
			missing = append(missing, keys[i].Group)
			continue
		}
		if event == nil {
			continue
		}
		r, err := newRow(keys[i], *event, *write, values)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("get latest", err)
	}
	if len(missing) > 0 {
		return nil, store.GroupNotFound(missing...)
	}
	return out, nil
}

func newRow(k feature.Key, event, write time.Time, values []byte) (*feature.Row, error) {
	v, err := rowjson.DecodeValues(values)
	if err != nil {
		return nil, fmt.Errorf("postgres: row %s/%s: %w", k.Group, k.EntityID, err)
	}
	return &feature.Row{Group: k.Group, EntityID: k.EntityID, EventTime: event.UTC(), WriteTime: write.UTC(), Values: v}, nil
}

// GetAsOf returns the newest row with EventTime <= asOf (truncated to
// microseconds), read from the as-of index of the read pool; NotFound for
// an unknown group, HistoryExpired when asOf is before the group's prune
// watermark. The watermark and the row are read in one statement, hence
// from one snapshot: a replica that has not replayed a prune yet still has
// the rows it would delete.
func (s *Store) GetAsOf(ctx context.Context, key feature.Key, asOf time.Time) (*feature.Row, error) {
	var (
		expired, event, write *time.Time
		values                []byte
	)
	asOf = asOf.Truncate(time.Microsecond)
	err := s.reader.QueryRow(ctx, `
		SELECT g.history_expired_before, r.event_time, r.write_time, r.feature_values
		FROM feature_groups g
		LEFT JOIN LATERAL (
		    SELECT event_time, write_time, feature_values FROM feature_rows
		    WHERE group_name = g.name AND entity_id = $2 AND event_time <= $3
		    ORDER BY event_time DESC, write_time DESC
		    LIMIT 1
		) r ON true
		WHERE g.name = $1`,
		key.Group, key.EntityID, asOf).Scan(&expired, &event, &write, &values)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.GroupNotFound(key.Group)
	}
	if err != nil {
		return nil, dbError("get as of", err)
	}
	if expired != nil && asOf.Before(*expired) {
		return nil, store.HistoryExpired(key.Group, asOf, *expired)
	}
	if event == nil {
		return nil, nil
	}
	return newRow(key, *event, *write, values)
}

// ScanLatest reads the group's latest rows in pages in entity id order (byte
// order), so fn runs without holding a connection or a snapshot open. Rows
// written during the scan may or may not be seen.
func (s *Store) ScanLatest(ctx context.Context, group string, fn func(feature.Row) error) error {
	var exists bool
	if err := s.reader.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM feature_groups WHERE name = $1)`, group).Scan(&exists); err != nil {
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
	rows, err := s.reader.Query(ctx, `
		SELECT entity_id, event_time, write_time, feature_values FROM feature_latest
		WHERE group_name = $1 AND entity_id > $2
		ORDER BY entity_id
		LIMIT $3`, group, after, limit)
	if err != nil {
		return nil, dbError("scan latest", err)
	}
	defer rows.Close()
	var page []feature.Row
	for rows.Next() {
		var (
			id           string
			event, write time.Time
			values       []byte
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

// Stats reports, per group, the entities, history rows and newest event
// time summed from the maintained deltas of feature_group_counts (a few
// rows per group, never a scan of the history), and the on-disk size of the
// tables with their indexes and TOAST from pg_total_relation_size (a stat
// of the files, cheap). It reads from the read pool.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	st := store.Stats{Backend: "postgres", Groups: []store.GroupStats{}}
	rows, err := s.reader.Query(ctx, `
		SELECT g.name, coalesce(sum(c.entities), 0)::bigint, coalesce(sum(c.history_rows), 0)::bigint,
		       max(c.newest_event_time)
		FROM feature_groups g
		LEFT JOIN feature_group_counts c ON c.group_name = g.name
		GROUP BY g.name
		ORDER BY g.name`)
	if err != nil {
		return store.Stats{}, dbError("stats", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			gs     store.GroupStats
			newest *time.Time
		)
		if err := rows.Scan(&gs.Group, &gs.Entities, &gs.Rows, &newest); err != nil {
			return store.Stats{}, dbError("stats", err)
		}
		if newest != nil {
			gs.NewestEventTime = newest.UTC()
		}
		st.Groups = append(st.Groups, gs)
	}
	if err := rows.Err(); err != nil {
		return store.Stats{}, dbError("stats", err)
	}
	if err := s.reader.QueryRow(ctx, `
		SELECT pg_total_relation_size('feature_groups')
		     + pg_total_relation_size('feature_rows')
		     + pg_total_relation_size('feature_latest')
		     + pg_total_relation_size('feature_group_counts')`).Scan(&st.StorageBytes); err != nil {
		return store.Stats{}, dbError("stats: storage size", err)
	}
	return st, nil
}

// Health checks the database with SELECT 1 and reports the server version,
// query latency, database size, active connections and pool statistics.
func (s *Store) Health(ctx context.Context) store.Component {
	start := s.now()
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return store.Component{Status: store.HealthDown, Error: dbError("health", err).Error(), Details: map[string]any{"pool": s.poolStats()}}
	}
	latency := s.now().Sub(start)
	var (
		version      string
		size, active int64
	)
	if err := s.pool.QueryRow(ctx, `
		SELECT current_setting('server_version'),
		       pg_database_size(current_database()),
		       (SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND datname = current_database())`,
	).Scan(&version, &size, &active); err != nil {
		return store.Component{Status: store.HealthDown, Error: dbError("health", err).Error(), Details: map[string]any{"pool": s.poolStats()}}
	}
	return store.Component{Status: store.HealthUp, Details: map[string]any{
		"version":             version,
		"query_latency_ms":    float64(latency.Microseconds()) / 1000,
		"database_size_bytes": size,
		"active_connections":  active,
		"pool":                s.poolStats(),
	}}
}

func (s *Store) poolStats() map[string]any { return poolStats(s.pool) }

func poolStats(p *pgxpool.Pool) map[string]any {
	st := p.Stat()
	return map[string]any{
		"total":                  st.TotalConns(),
		"idle":                   st.IdleConns(),
		"in_use":                 st.AcquiredConns(),
		"constructing":           st.ConstructingConns(),
		"max":                    st.MaxConns(),
		"acquire_count":          st.AcquireCount(),
		"empty_acquire_count":    st.EmptyAcquireCount(),
		"canceled_acquire_count": st.CanceledAcquireCount(),
		"acquire_duration_ms":    float64(st.AcquireDuration().Microseconds()) / 1000,
		"new_conns":              st.NewConnsCount(),
	}
}

// ReadHealth checks the read replica (nil without one): up when it answers,
// with its replay lag (the time since the last transaction it replayed was
// committed on the primary; it grows while the primary is idle too) and
// whether it is in recovery (false means it is not a replica at all).
func (s *Store) ReadHealth() store.HealthChecker {
	if s.reader == s.pool {
		return nil
	}
	return replicaHealth{s}
}

type replicaHealth struct{ s *Store }

func (h replicaHealth) Health(ctx context.Context) store.Component {
	start := h.s.now()
	var (
		recovery bool
		lag      *float64
	)
	if err := h.s.reader.QueryRow(ctx, `
		SELECT pg_is_in_recovery(), extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`).Scan(&recovery, &lag); err != nil {
		return store.Component{Status: store.HealthDown, Error: dbError("replica health", err).Error()}
	}
	details := map[string]any{
		"in_recovery":      recovery,
		"query_latency_ms": float64(h.s.now().Sub(start).Microseconds()) / 1000,
		"pool":             poolStats(h.s.reader),
	}
	if lag != nil {
		details["replay_lag_seconds"] = *lag
	}
	return store.Component{Status: store.HealthUp, Details: details}
}
