package testenv

import (
	"os"
	"os/user"
	"strconv"
)

// StartReplica makes a streaming replica of the running server p: a
// pg_basebackup -R (which writes primary_conninfo and standby.signal) into
// a temporary directory, started on another free port. Cleanup stops it.
// The primary's defaults allow it: wal_level replica, max_wal_senders 10,
// and initdb's trust entries for replication connections from 127.0.0.1.
func (p *Postgres) StartReplica() *Postgres {
	p.tb.Helper()
	dir, err := os.MkdirTemp("", "fs-test-pg-replica-")
	if err != nil {
		p.tb.Fatal(err)
	}
	p.tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 { // the server runs as the postgres user (see StartPostgres)
		u, err := user.Lookup("postgres")
		if err != nil {
			p.tb.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			p.tb.Fatal(err)
		}
	}
	r := &Postgres{tb: p.tb, bin: p.bin, dir: dir, port: FreePort(p.tb)}
	if out, err := r.command("pg_basebackup", "-D", r.data(), "-R", "-X", "stream", "--no-sync",
		"-h", "127.0.0.1", "-p", strconv.Itoa(p.port), "-U", "postgres").CombinedOutput(); err != nil {
		p.tb.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	r.Start()
	p.tb.Cleanup(func() { _ = r.pgctl("stop", "-m", "immediate") })
	return r
}
