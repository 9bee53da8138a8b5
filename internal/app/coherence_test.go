package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

// cacheHealth is the redis component of /health with its details.
type cacheHealth struct {
	Status  string         `json:"status"`
	Error   string         `json:"error"`
	Details map[string]any `json:"details"`
}

func getCacheHealth(t *testing.T, base string) cacheHealth {
	t.Helper()
	r := mustFetch(t, "GET", base+"/health", nil)
	var h struct {
		Components map[string]cacheHealth `json:"components"`
	}
	r.decode(t, &h)
	return h.Components["redis"]
}

const coherenceEntities = 50

// writeAll writes value n to every entity u0..u49 of fault_user.
func writeAll(t *testing.T, base string, n int64) {
	t.Helper()
	rows := make([]map[string]any, coherenceEntities)
	for i := range rows {
		rows[i] = map[string]any{"entity_id": "u" + strconv.Itoa(i), "values": userValues(n)}
	}
	wantStatus(t, fmt.Sprintf("write value %d", n), mustFetch(t, "POST", base+"/v1/feature-groups/fault_user/rows", rows), http.StatusOK)
}

// readAll reads every entity and returns how many hold each value.
func readAll(t *testing.T, base string) map[float64]int {
	t.Helper()
	seen := make(map[float64]int)
	for i := range coherenceEntities {
		st, f := readEntity(t, base, "fault_user", "u"+strconv.Itoa(i))
		if st != http.StatusOK {
			t.Fatalf("GET u%d = %d", i, st)
		}
		seq, _ := f["seq"].(float64)
		seen[seq]++
	}
	return seen
}

// wantAll fails at once unless every entity holds value n.
func wantAll(t *testing.T, what, base string, n int64) {
	t.Helper()
	if seen := readAll(t, base); seen[float64(n)] != coherenceEntities {
		t.Fatalf("%s: values read %v, want all %d entities at %d", what, seen, coherenceEntities, n)
	}
}

// TestRedisRestoredFromAnOlderSnapshotIsNeverRead is the probe of issue 7:
// the cache holds v1, a snapshot is taken, v2 is written, and Redis is
// restarted from the snapshot, so it holds v1 again while Postgres holds
// v2. No read may return v1: neither from the running server (which sees
// the restarted server on its next connection) nor from a server started
// after the restore (which finds the cache's identity differs from the one
// recorded in Postgres). /health says the cache was found different and
// rebuilt, and the cache serves hits again afterwards.
func TestRedisRestoredFromAnOlderSnapshotIsNeverRead(t *testing.T) {
	t.Parallel()
	rd := testenv.StartRedis(t, testenv.RedisOptions{})
	env := map[string]string{
		"FEATURESTORE_POSTGRES_URL":    testenv.PostgresSchemaURL(t, "fs_t_app"),
		"FEATURESTORE_REDIS_URL":       rd.URL(),
		"FEATURESTORE_RECOMPUTE_DELAY": "0s",
	}
	base, logs, stop := startServer(t, nil, env)
	logOnFailure(t, logs)
	wantStatus(t, "PUT group", mustFetch(t, "PUT", base+"/v1/feature-groups/fault_user", userGroup("user_id")), http.StatusCreated)

	testenv.Eventually(t, time.Minute, "the cache checked against postgres", func() (bool, string) {
		h := getCacheHealth(t, base)
		return h.Details["checked"] == true && h.Details["trusted"] == true, fmt.Sprint(h)
	})
	writeAll(t, base, 1)
	wantAll(t, "v1", base, 1)
	wantAll(t, "v1 again, from the cache", base, 1)
	hits := scrape(t, base, `feature_store_cache_hits_total{cache_type="redis",feature_group="fault_user"}`)
	if n, _ := strconv.Atoi(hits); n < coherenceEntities {
		t.Fatalf("cache hits after reading v1 twice = %q, want at least %d: the test needs v1 cached", hits, coherenceEntities)
	}
	snapshot := rd.Snapshot()

	writeAll(t, base, 2)
	wantAll(t, "v2", base, 2)
	before := getCacheHealth(t, base)

	rd.RestoreSnapshot(snapshot)
	if n := redisDBSize(t, rd.URL()); n < coherenceEntities {
		t.Fatalf("restored redis holds %d keys, want the %d cached v1 rows: the test proves less than it claims", n, coherenceEntities)
	}

	// Read continuously while the server finds the restored cache: every
	// read is v2.
	testenv.Eventually(t, time.Minute, "the cache rebuilt after the restore", func() (bool, string) {
		wantAll(t, "after the restore", base, 2)
		h := getCacheHealth(t, base)
		return h.Status == "UP" && h.Details["checked"] == true && h.Details["trusted"] == true &&
				h.Details["mismatches"].(float64) > before.Details["mismatches"].(float64) &&
				h.Details["last_rebuilt_at"] != before.Details["last_rebuilt_at"],
			fmt.Sprint(h)
	})
	h := getCacheHealth(t, base)
	if msg, _ := h.Details["last_mismatch"].(string); !strings.Contains(msg, "restarted") {
		t.Errorf("/health last_mismatch = %q, want it to say the Redis server was restarted or restored", msg)
	}
	if v := scrape(t, base, `feature_store_cache_mismatches_total{cache_type="redis",reason="connection"}`) +
		scrape(t, base, `feature_store_cache_mismatches_total{cache_type="redis",reason="identity"}`); v == "" {
		t.Errorf("no feature_store_cache_mismatches_total series after the restore")
	}
	// The cache is used again: a second round of reads hits.
	hitsBefore, _ := strconv.Atoi(scrape(t, base, `feature_store_cache_hits_total{cache_type="redis",feature_group="fault_user"}`))
	wantAll(t, "v2 after the rebuild", base, 2)
	wantAll(t, "v2 after the rebuild, from the cache", base, 2)
	hitsAfter, _ := strconv.Atoi(scrape(t, base, `feature_store_cache_hits_total{cache_type="redis",feature_group="fault_user"}`))
	if hitsAfter-hitsBefore < coherenceEntities {
		t.Errorf("cache hits after the rebuild went from %d to %d, want at least %d more", hitsBefore, hitsAfter, coherenceEntities)
	}

	// The same with no server running across the restore: a new server
	// knows the cache only from what Postgres recorded.
	snapshot = rd.Snapshot() // holds v2
	writeAll(t, base, 3)
	wantAll(t, "v3", base, 3)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rd.RestoreSnapshot(snapshot)
	base, logs, _ = startServer(t, nil, env)
	logOnFailure(t, logs)
	wantAll(t, "a new server after the restore", base, 3)
	testenv.Eventually(t, time.Minute, "the new server rebuilt the cache", func() (bool, string) {
		wantAll(t, "a new server after the restore", base, 3)
		h := getCacheHealth(t, base)
		return h.Details["checked"] == true && h.Details["trusted"] == true && h.Details["mismatches"].(float64) >= 1, fmt.Sprint(h)
	})
	wantAll(t, "a new server, from the cache", base, 3)
}

// TestDirectWritesKeepTheServersCacheCoherent: a command that writes into
// Postgres while servers cache it in Redis refuses to run without the
// servers' cache configuration; with it, its writes go through the cache
// and a running server reads them at once.
func TestDirectWritesKeepTheServersCacheCoherent(t *testing.T) {
	t.Parallel()
	rd := testenv.StartRedis(t, testenv.RedisOptions{})
	pgURL := testenv.PostgresSchemaURL(t, "fs_t_app")
	env := map[string]string{
		"FEATURESTORE_POSTGRES_URL":    pgURL,
		"FEATURESTORE_REDIS_URL":       rd.URL(),
		"FEATURESTORE_RECOMPUTE_DELAY": "0s",
	}
	base, logs, _ := startServer(t, nil, env)
	logOnFailure(t, logs)
	raws := tmdbRecords(t)
	ingestAll(t, base, raws)
	popularity := func() any {
		_, f := readEntity(t, base, "movie_basic", "552524")
		return f["popularity"]
	}
	testenv.Eventually(t, time.Minute, "movie 552524 served from the cache", func() (bool, string) {
		if p := popularity(); p != 630.3236 {
			t.Fatalf("popularity of 552524 = %v, want 630.3236", p)
		}
		h := getCacheHealth(t, base)
		hits := scrape(t, base, `feature_store_cache_hits_total{cache_type="redis",feature_group="movie_basic"}`)
		return h.Details["checked"] == true && hits != "" && hits != "0", hits
	})

	changed, err := json.Marshal([]any{tmdbRecord(t, raws, 552524, map[string]any{"popularity": 2.5})})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "changed.json")
	if err := os.WriteFile(file, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	ingest := func(env map[string]string) error {
		return Run(context.Background(), []string{"ingest", "--no-recompute", file}, envFrom(env), io.Discard, io.Discard)
	}

	// Without the cache: refused, nothing written.
	err = ingest(map[string]string{"FEATURESTORE_POSTGRES_URL": pgURL})
	if !errors.Is(err, errCacheBypass) || !strings.Contains(err.Error(), "--redis-url") {
		t.Fatalf("ingest without the servers' cache: %v, want a refusal naming --redis-url", err)
	}
	// With another key prefix: refused too.
	err = ingest(map[string]string{"FEATURESTORE_POSTGRES_URL": pgURL, "FEATURESTORE_REDIS_URL": rd.URL(), "FEATURESTORE_REDIS_KEY_PREFIX": "other"})
	if !errors.Is(err, errCacheBypass) || !strings.Contains(err.Error(), "--redis-key-prefix") {
		t.Fatalf("ingest with another key prefix: %v, want a refusal naming --redis-key-prefix", err)
	}
	// With another Redis: refused too.
	other := testenv.StartRedis(t, testenv.RedisOptions{})
	err = ingest(map[string]string{"FEATURESTORE_POSTGRES_URL": pgURL, "FEATURESTORE_REDIS_URL": other.URL()})
	if !errors.Is(err, errCacheBypass) || !strings.Contains(err.Error(), "--redis-url reaches Redis masters") {
		t.Fatalf("ingest with another Redis: %v, want a refusal naming the other masters", err)
	}
	if p := popularity(); p != 630.3236 {
		t.Fatalf("popularity of 552524 after refused ingests = %v, want the old 630.3236", p)
	}

	// With the servers' cache: written through, read at once.
	if err := ingest(env); err != nil {
		t.Fatalf("ingest with the servers' cache: %v", err)
	}
	if p := popularity(); p != 2.5 {
		t.Fatalf("popularity of 552524 right after the ingest = %v, want 2.5", p)
	}

	// An operator's invalidate-cache makes the server clear its cache.
	before := getCacheHealth(t, base)
	if err := Run(context.Background(), []string{"invalidate-cache"}, envFrom(map[string]string{"FEATURESTORE_POSTGRES_URL": pgURL}), io.Discard, io.Discard); err != nil {
		t.Fatalf("invalidate-cache: %v", err)
	}
	testenv.Eventually(t, time.Minute, "the cache rebuilt after invalidate-cache", func() (bool, string) {
		h := getCacheHealth(t, base)
		msg, _ := h.Details["last_mismatch"].(string)
		return h.Details["generation"].(float64) > before.Details["generation"].(float64) && h.Details["checked"] == true &&
			strings.HasPrefix(msg, "generation"), fmt.Sprint(h)
	})
	if v := scrape(t, base, `feature_store_cache_mismatches_total{cache_type="redis",reason="generation"}`); v != "1" {
		t.Errorf("generation mismatches = %q, want 1", v)
	}
}

// TestServiceOnRedisCluster runs the service with --redis-mode cluster on a
// real 6-node cluster: writes and reads are right, the second read hits,
// and /health reports the cluster's state.
func TestServiceOnRedisCluster(t *testing.T) {
	t.Parallel()
	cl := testenv.StartRedisCluster(t)
	base, logs, _ := startServer(t, []string{"--redis-mode", "cluster"}, map[string]string{
		"FEATURESTORE_POSTGRES_URL":    testenv.PostgresSchemaURL(t, "fs_t_app"),
		"FEATURESTORE_REDIS_URL":       cl.URL() + "&read_timeout=5s&write_timeout=5s&pool_timeout=5s",
		"FEATURESTORE_RECOMPUTE_DELAY": "0s",
	})
	logOnFailure(t, logs)
	wantStatus(t, "PUT group", mustFetch(t, "PUT", base+"/v1/feature-groups/fault_user", userGroup("user_id")), http.StatusCreated)
	writeAll(t, base, 1)
	wantAll(t, "v1", base, 1)
	wantAll(t, "v1 from the cache", base, 1)
	writeAll(t, base, 2)
	wantAll(t, "v2 written through", base, 2)
	hits, _ := strconv.Atoi(scrape(t, base, `feature_store_cache_hits_total{cache_type="redis",feature_group="fault_user"}`))
	if hits < 2*coherenceEntities {
		t.Errorf("cache hits = %d, want at least %d", hits, 2*coherenceEntities)
	}
	if v := scrape(t, base, `feature_store_cache_errors_total{cache_type="redis",operation="set"}`); v != "" && v != "0" {
		t.Errorf("failed cache sets on a healthy cluster: %s", v)
	}
	h := getCacheHealth(t, base)
	if h.Status != "UP" || h.Details["cluster_state"] != "ok" || h.Details["cluster_masters"] != float64(3) || h.Details["checked"] != true {
		t.Errorf("/health redis = %+v, want UP, cluster_state ok, 3 masters, checked", h)
	}
}
