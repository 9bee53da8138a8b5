package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/cache"
	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/store/sqlite"
	"github.com/featurestore/featurestore/internal/testenv"
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

// systems maps each store the helpers open (a cache in front of a system of
// record) to its system of record, which newService passes as the corpus
// reader and registry listener, as internal/app does.
var systems sync.Map // store.Store -> store.Store

func openEmbedded(tb testing.TB) store.Store {
	tb.Helper()
	lite, err := sqlite.Open(context.Background(), tb.TempDir(), sqlite.Options{})
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	st := cache.Wrap(lite, cache.NewMemory(cache.MemoryOptions{}), cache.WrapOptions{})
	systems.Store(store.Store(st), store.Store(lite))
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return st
}

func openPostgres(tb testing.TB) store.Store {
	tb.Helper()
	return openPostgresURL(tb, testenv.PostgresSchemaURL(tb, "fs_t"), fmt.Sprintf("fs_t_%016x", rand.Uint64()))
}

// openPostgresURL opens the Postgres store at url with a Redis cache in
// front that keeps its keys under prefix: two calls with one url and one
// prefix are two replicas of one deployment.
func openPostgresURL(tb testing.TB, url, prefix string) store.Store {
	tb.Helper()
	ctx := context.Background()
	pg, err := postgres.Open(ctx, url, postgres.Options{MaxConns: 8})
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	ropts, err := cache.RedisOptionsFromURL(testenv.RedisURL(tb))
	if err != nil {
		pg.Close()
		tb.Fatal(err)
	}
	client := redis.NewClient(ropts)
	tb.Cleanup(func() { client.Close() })
	rc := cache.NewRedis(client, cache.RedisOptions{Prefix: prefix})
	tb.Cleanup(func() {
		if err := rc.Clear(context.Background()); err != nil {
			tb.Errorf("clear test redis prefix: %v", err)
		}
	})
	st := cache.Wrap(pg, rc, cache.WrapOptions{})
	systems.Store(store.Store(st), store.Store(pg))
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
	if sor, ok := systems.Load(st); ok && opts.Corpus == nil {
		opts.Corpus = sor.(CorpusReader)
	}
	s, err := New(context.Background(), st, opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return s
}

// realMovies are the raw records of the shared TMDB snapshot.
func realMovies(tb testing.TB) []json.RawMessage {
	tb.Helper()
	b, err := os.ReadFile(testenv.TMDBFile(tb))
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
