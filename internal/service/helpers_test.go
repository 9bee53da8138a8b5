package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/store/sqlite"
)

// t0 is where every test's clock starts.
var t0 = time.Date(2025, 6, 5, 3, 0, 0, 0, time.UTC)

// testClock is the injected clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: t0} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backend opens a fresh, isolated store with its cache in front; cleanup
// closes it and drops its data.
type backend struct {
	name string
	open func(tb testing.TB) store.Store
}

func backends() []backend {
	return []backend{{"embedded", openEmbedded}, {"postgres", openPostgres}}
}

// forEachBackend runs fn in a parallel subtest per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b.open(t))
		})
	}
}

func openEmbedded(tb testing.TB) store.Store {
	tb.Helper()
	lite, err := sqlite.Open(context.Background(), tb.TempDir(), sqlite.Options{})
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	st := cache.Wrap(lite, cache.NewMemory(cache.MemoryOptions{}), cache.WrapOptions{})
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return st
}

func openPostgres(tb testing.TB) store.Store {
	tb.Helper()
	ctx := context.Background()
	base := os.Getenv("FEATURESTORE_TEST_POSTGRES_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := fmt.Sprintf("fs_t_%016x", rand.Uint64())
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	pg, err := postgres.Open(ctx, u.String(), postgres.Options{MaxConns: 8})
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	redisURL := os.Getenv("FEATURESTORE_TEST_REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0?read_timeout=5s&write_timeout=5s&dial_timeout=5s&pool_timeout=5s"
	}
	ropts, err := cache.RedisOptionsFromURL(redisURL)
	if err != nil {
		pg.Close()
		tb.Fatal(err)
	}
	client := redis.NewClient(ropts)
	tb.Cleanup(func() { client.Close() })
	rc := cache.NewRedis(client, cache.RedisOptions{Prefix: fmt.Sprintf("fs_t_%016x", rand.Uint64())})
	tb.Cleanup(func() {
		if err := rc.Clear(context.Background()); err != nil {
			tb.Errorf("clear test redis prefix: %v", err)
		}
	})
	st := cache.Wrap(pg, rc, cache.WrapOptions{})
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return st
}

// newService starts a service over st with an injected clock.
func newService(tb testing.TB, st store.Store, c *testClock, opts Options) *Service {
	tb.Helper()
	opts.Now = c.Now
	s, err := New(context.Background(), st, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

// realMovies are the raw records of the shared TMDB snapshot.
func realMovies(tb testing.TB) []json.RawMessage {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			tb.Fatal("go.mod not found")
		}
		dir = filepath.Dir(dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "..", "shared", "data", "tmdb", "bulk_collection_20250605_022412.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var f struct{ Movies []json.RawMessage }
	if err := json.Unmarshal(b, &f); err != nil {
		tb.Fatal(err)
	}
	return f.Movies
}

// movie is a minimal valid raw record.
func movie(id int64, voteAverage, popularity float64) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id": %d, "title": "Movie %d", "vote_average": %g, "popularity": %g, "vote_count": 10}`,
		id, id, voteAverage, popularity))
}

// latest reads one entity's latest row through the service's store.
func latest(tb testing.TB, s *Service, group, id string) *feature.Row {
	tb.Helper()
	rows, err := s.st.GetLatest(context.Background(), []feature.Key{{Group: group, EntityID: id}})
	if err != nil {
		tb.Fatalf("GetLatest %s/%s: %v", group, id, err)
	}
	return rows[0]
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
