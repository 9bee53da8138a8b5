package testenv_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/testenv"
)

func TestPaths(t *testing.T) {
	t.Parallel()
	root := testenv.RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "internal", "testenv", "testenv.go")); err != nil {
		t.Errorf("RepoRoot = %s, not this repository: %v", root, err)
	}
	if p, want := testenv.TMDBFile(t), filepath.Join(root, "testdata", "tmdb"); filepath.Dir(p) != want {
		t.Errorf("TMDBFile = %s, want it in %s, inside the repository", p, want)
	}
}

func TestRequireTool(t *testing.T) {
	t.Parallel()
	testenv.SkipIfShort(t, "RequireTool skips under -short (TestShortSkips checks that)")
	if p := testenv.RequireTool(t, "go"); !filepath.IsAbs(p) {
		t.Errorf("RequireTool(go) = %q, want an absolute path", p)
	}
}

// TestShortSkips checks, in the -short tier, that every helper needing a
// backend or a tool skips its test instead of reaching for it.
func TestShortSkips(t *testing.T) {
	if !testing.Short() {
		t.Skip("checks the -short tier: run with go test -short")
	}
	t.Parallel()
	helpers := map[string]func(t *testing.T){
		"PostgresURL":       func(t *testing.T) { testenv.PostgresURL(t) },
		"PostgresSchemaURL": func(t *testing.T) { testenv.PostgresSchemaURL(t, "fs_t_testenv") },
		"RedisURL":          func(t *testing.T) { testenv.RedisURL(t) },
		"StartRedis":        func(t *testing.T) { testenv.StartRedis(t, testenv.RedisOptions{}) },
		"StartPostgres":     func(t *testing.T) { testenv.StartPostgres(t) },
		"RequireTool":       func(t *testing.T) { testenv.RequireTool(t, "go") },
	}
	for name, helper := range helpers {
		var skipped bool
		t.Run(name, func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			helper(t)
		})
		if !skipped {
			t.Errorf("%s did not skip under -short", name)
		}
	}
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(testenv.FreePort(t)))
	if err != nil {
		t.Fatalf("listen on the free port: %v", err)
	}
	l.Close()
}

func TestEventually(t *testing.T) {
	t.Parallel()
	n := 0
	testenv.Eventually(t, time.Minute, "the third call", func() (bool, string) { n++; return n == 3, "" })
	if n != 3 {
		t.Errorf("cond called %d times, want 3", n)
	}
}

func TestPostgresSchemaURL(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var schema string
	t.Run("schema", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, testenv.PostgresSchemaURL(t, "fs_t_testenv"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			t.Fatal(err)
		}
		if len(schema) != len("fs_t_testenv_")+16 || schema[:len("fs_t_testenv_")] != "fs_t_testenv_" {
			t.Fatalf("current_schema() = %q, want fs_t_testenv_<random>", schema)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Fatalf("create a table in the schema: %v", err)
		}
	})
	conn, err := pgx.Connect(ctx, testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left {
		t.Errorf("schema %s still exists after cleanup", schema)
	}
}

func TestStartRedis(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t, testenv.RedisOptions{AppendOnly: true})
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(r.Port()), MaxRetries: -1, ReadTimeout: 200 * time.Millisecond})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	r.Pause()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Error("PING answered while paused")
	}
	r.Resume()
	r.Kill()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Error("PING answered after Kill")
	}
	r.Restart()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET after restart = %q, %v; want the append-only file's v", got, err)
	}
	opts, err := redis.ParseURL(r.URL())
	if err != nil || opts.Addr != c.Options().Addr {
		t.Errorf("URL() = %s (%v), want the server's address %s", r.URL(), err, c.Options().Addr)
	}
}

func TestStartPostgres(t *testing.T) {
	t.Parallel()
	p := testenv.StartPostgres(t)
	ctx := t.Context()
	ping := func() error {
		conn, err := pgx.Connect(ctx, p.URL())
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		return conn.Ping(ctx)
	}
	if err := ping(); err != nil {
		t.Fatalf("connect: %v", err)
	}
	p.Stop()
	if err := ping(); err == nil {
		t.Fatal("connected after Stop")
	}
	p.Start()
	if err := ping(); err != nil {
		t.Fatalf("connect after Start: %v", err)
	}
}
