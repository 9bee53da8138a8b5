package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// RegistryChannel is the channel a trigger on feature_groups notifies, at
// commit, of every change to the registry; the payload is the schema.
const RegistryChannel = "featurestore_registry"

// ListenRegistry calls changed after every committed change to the registry
// of this store's schema, whoever made it, until ctx ends. It holds a
// connection of its own (outside the pool) that LISTENs; when that
// connection fails it reconnects with a backoff of up to maxBackoff, and it
// calls changed after every (re)connection too, since notifications sent
// while it was not listening are lost.
func (s *Store) ListenRegistry(ctx context.Context, changed func()) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	wait := minBackoff
	for ctx.Err() == nil {
		listened, err := s.listenOnce(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		if listened {
			wait = minBackoff
		}
		s.log.Warn("registry notifications interrupted; reconnecting", zap.Error(err), zap.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, maxBackoff)
	}
}

// listenOnce connects, listens and calls changed for each notification of
// this schema until the connection fails or ctx ends. listened reports
// whether LISTEN succeeded.
func (s *Store) listenOnce(ctx context.Context, changed func()) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	s.listenerPID.Store(conn.PgConn().PID())
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+RegistryChannel); err != nil {
		return false, err
	}
	changed() // whatever changed while no one listened
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if n.Payload == schema {
			changed()
		}
	}
}
