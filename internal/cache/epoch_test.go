package cache

import (
	"fmt"
	"testing"
	"time"

	"github.com/featurestore/featurestore/internal/testenv"
)

// TestCloseWithDirtyKeysMakesOtherServersClear: a server whose write could
// not be written through (Redis hung) and that stops before repairing it
// bumps the cache generation, so another server, which cached the older
// row and sees the same Redis server (no restart to notice), clears the
// cache instead of serving that row until it expires.
func TestCloseWithDirtyKeysMakesOtherServersClear(t *testing.T) {
	t.Parallel()
	rd := testenv.StartRedis(t, testenv.RedisOptions{})
	pg := newPostgres(t)
	open := func() *Redis {
		rc, err := OpenRedis(RedisSingle, rd.URL(), RedisOptions{Prefix: "fs_t_epoch"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		return rc
	}
	rcA, rcB := open(), open()
	a := Wrap(nopClose{pg}, rcA, withEpochs(pg, WrapOptions{RetryInterval: 50 * time.Millisecond}))
	waitChecked(t, a)
	obs := newCountingObserver()
	b := wrap(t, pg, rcB, WrapOptions{Observer: obs, RetryInterval: 50 * time.Millisecond})

	mustPut(t, a, moviesGroup("movies"), base)
	key := keysOf("movies", "m1")
	mustWrite(t, a, movie("movies", "m1", at(1), at(1), "v1"))
	mustLatest(t, b, key...) // fill
	if got := mustLatest(t, b, key...)[0]; got.Values["title"] != "v1" {
		t.Fatalf("b reads %+v, want v1", got)
	}
	if h, _ := obs.counts("redis/movies"); h != 1 {
		t.Fatalf("b's hits = %d, want 1: the test needs v1 cached", h)
	}

	rd.Pause()
	mustWrite(t, a, movie("movies", "m1", at(2), at(2), "v2")) // acknowledged; the write-through times out
	if a.Dirty() != 1 {
		t.Fatalf("a's dirty keys = %d, want 1", a.Dirty())
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if gen, _, err := pg.CacheEpoch(t.Context(), "fs_t_epoch", time.Hour); err != nil || gen != 3 {
		// 1, 2 when the first server stamped the cache, 3 by the Close.
		t.Fatalf("generation after a's Close = %d, %v; want 3", gen, err)
	}
	rd.Resume()

	testenv.Eventually(t, time.Minute, "b cleared the cache and uses it again", func() (bool, string) {
		got := mustLatest(t, b, key...)[0]
		if got.Values["title"] == "v2" {
			d := b.HealthOf(rcB).Health(t.Context()).Details
			msg, _ := d["last_mismatch"].(string)
			return d["checked"] == true && d["trusted"] == true && len(msg) > 10 && msg[:10] == "generation", fmt.Sprint(d)
		}
		return false, fmt.Sprintf("b reads %v", got.Values["title"])
	})
	for range 2 {
		if got := mustLatest(t, b, key...)[0]; got.Values["title"] != "v2" {
			t.Fatalf("b reads %+v after the clear, want v2", got)
		}
	}
}
