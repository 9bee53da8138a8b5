package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/featurestore/featurestore/internal/feature"
	"github.com/featurestore/featurestore/internal/store"
	"github.com/featurestore/featurestore/internal/store/postgres"
	"github.com/featurestore/featurestore/internal/store/sqlite"
	"github.com/featurestore/featurestore/internal/testenv"
)

// newRedisClient connects to the shared test Redis.
func newRedisClient(tb testing.TB) *redis.Client {
	tb.Helper()
	opts, err := RedisOptionsFromURL(testenv.RedisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	c := redis.NewClient(opts)
	tb.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("ping test redis: %v", err)
	}
	return c
}

// newRedisCache returns a Redis cache under a random prefix of the shared
// Redis, whose keys are deleted at cleanup.
func newRedisCache(tb testing.TB, opts RedisOptions) *Redis {
	tb.Helper()
	c := newRedisClient(tb)
	opts.Prefix = fmt.Sprintf("fs_t_%016x", rand.Uint64())
	r := NewRedis(c, opts)
	tb.Cleanup(func() {
		if err := r.Clear(context.Background()); err != nil {
			tb.Errorf("clear test prefix: %v", err)
		}
		_ = r.Close() // stops a near cache; the client is closed by its own cleanup
	})
	return r
}

// newPostgres opens a Postgres store in a throwaway schema fs_t_<random>,
// dropped at cleanup (registered before the store's Close, so it runs after).
func newPostgres(tb testing.TB) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), testenv.PostgresSchemaURL(tb, "fs_t"), postgres.Options{MaxConns: 8})
	if err != nil {
		tb.Fatalf("open postgres: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// newSQLite opens an embedded store in a temporary directory.
func newSQLite(tb testing.TB) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), tb.TempDir(), sqlite.Options{})
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// wrap wraps inner with c and closes the wrapper (stopping its repair loop)
// at cleanup; inner's own cleanup closes it.
func wrap(tb testing.TB, inner store.Store, c Cache, opts WrapOptions) *Store {
	tb.Helper()
	s := Wrap(nopClose{inner}, c, withEpochs(inner, opts))
	tb.Cleanup(func() { s.Close() })
	waitChecked(tb, s)
	return s
}

// waitChecked waits until s has checked its cache against the system of
// record (and cleared it, the first time) and reads it.
func waitChecked(tb testing.TB, s *Store) {
	tb.Helper()
	testenv.Eventually(tb, time.Minute, "cache checked and trusted", func() (bool, string) {
		return s.Checked() && s.Trusted(), fmt.Sprintf("checked %v, trusted %v", s.Checked(), s.Trusted())
	})
}

// withEpochs sets opts.Epochs to inner if it keeps them (Postgres), as
// Wrap would find it unwrapped.
func withEpochs(inner store.Store, opts WrapOptions) WrapOptions {
	if e, ok := inner.(EpochStore); ok && opts.Epochs == nil {
		opts.Epochs = e
	}
	return opts
}

// nopClose keeps Store.Close from closing a store the test closes itself.
type nopClose struct{ store.Store }

func (nopClose) Close() error { return nil }

// base is the tests' reference time.
var base = time.Date(2025, 6, 5, 2, 24, 12, 0, time.UTC)

func at(seconds int) time.Time { return base.Add(time.Duration(seconds) * time.Second) }

func moviesGroup(name string) feature.Group {
	return feature.Group{
		Name:      name,
		EntityKey: "movie_id",
		Features: []feature.Spec{
			{Name: "budget", Type: feature.Int64},
			{Name: "rating", Type: feature.Float64},
			{Name: "adult", Type: feature.Bool},
			{Name: "title", Type: feature.String},
		},
	}
}

// movie is a row whose budget encodes its write time, so torn rows show.
func movie(group, id string, event, write time.Time, title string) feature.Row {
	return feature.Row{Group: group, EntityID: id, EventTime: event, WriteTime: write, Values: feature.Values{
		"budget": write.UnixMicro(), "rating": 7.25, "adult": false, "title": title,
	}}
}

// countingObserver records the Observer calls.
type countingObserver struct {
	mu     sync.Mutex
	hits   map[string]int // cacheType/group
	misses map[string]int
	errors map[string]int // cacheType/operation
}

func newCountingObserver() *countingObserver {
	return &countingObserver{hits: map[string]int{}, misses: map[string]int{}, errors: map[string]int{}}
}

func (o *countingObserver) CacheHit(cacheType, group string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hits[cacheType+"/"+group] += n
}

func (o *countingObserver) CacheMiss(cacheType, group string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.misses[cacheType+"/"+group] += n
}

func (o *countingObserver) CacheError(cacheType, operation string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errors[cacheType+"/"+operation]++
}

func (o *countingObserver) errorCount(key string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.errors[key]
}

func (o *countingObserver) counts(key string) (hits, misses int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.hits[key], o.misses[key]
}
