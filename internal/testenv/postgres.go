package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Postgres is a PostgreSQL server of the test's own, in a temporary
// directory on a free port, which the test may stop and start again.
// Cleanup stops it.
type Postgres struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
}

// StartPostgres runs initdb (trust auth, user postgres) and starts the
// server, with the newest binaries under /usr/lib/postgresql/*/bin; the
// test fails without them. initdb and postgres refuse to run as root, so
// as root they run as the postgres OS user. Skipped under -short.
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	SkipIfShort(tb, "a PostgreSQL server")
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		tb.Fatal("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: install postgresql")
	}
	sort.Strings(found)
	// Not tb.TempDir: its parent is private to root, and the server may run
	// as the postgres user.
	dir, err := os.MkdirTemp("", "fs-test-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("running as root and no postgres user to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	p := &Postgres{tb: tb, bin: filepath.Dir(found[len(found)-1]), dir: dir, port: FreePort(tb)}
	if out, err := p.command("initdb", "-D", p.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	p.Start()
	tb.Cleanup(func() { _ = p.pgctl("stop", "-m", "immediate") })
	return p
}

// URL is the server's `postgres` database as user postgres.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", p.port)
}

// Start starts the stopped server and waits until it accepts connections,
// recovering from the WAL after a Stop.
func (p *Postgres) Start() {
	p.tb.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", p.port, p.dir)
	if err := p.pgctl("start", "-l", filepath.Join(p.dir, "server.log"), "-o", opts); err != nil {
		p.tb.Fatal(err)
	}
}

// Stop stops the server the hard way (immediate mode), as a crash would.
func (p *Postgres) Stop() {
	p.tb.Helper()
	if err := p.pgctl("stop", "-m", "immediate"); err != nil {
		p.tb.Fatal(err)
	}
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	name = filepath.Join(p.bin, name)
	if os.Geteuid() == 0 {
		return exec.Command( // #nosec G204 -- test helper: the PostgreSQL binaries with arguments it builds itself
			"runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...) // #nosec G204 -- test helper: the PostgreSQL binaries with arguments it builds itself
}

func (p *Postgres) pgctl(args ...string) error {
	out, err := p.command("pg_ctl", append([]string{"-D", p.data(), "-w", "-t", "60"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}
