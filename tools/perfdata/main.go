// Command perfdata writes the inputs of scripts/perf.sh: a generated
// TMDB-like corpus (internal/tmdb/synthetic) and, for every load of the
// throughput benchmark, a pool of requests over random ids of that corpus.
//
//	go run ./tools/perfdata -n 10003 -pool 2000 -out /tmp/perf
//
// writes /tmp/perf/movies.json (a crawler file for `featurestore ingest`)
// and one file per load, /tmp/perf/LOAD.requests, one request per line:
// METHOD, a tab, the path, a tab, the body (empty for a GET). The wrk
// script scripts/perf/pool.lua sends random lines of such a file, and
// tools/ceiling answers exactly those requests. The same seed gives the same
// files.
//
// It is a measurement input, not a test: nothing in `go test ./...` runs it.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/featurestore/featurestore/internal/tmdb"
	"github.com/featurestore/featurestore/internal/tmdb/synthetic"
)

// five are the features of the "× 5 features" loads: three groups, numbers,
// a string and a derived tier.
var five = []string{
	"movie_basic:popularity", "movie_basic:vote_average", "movie_basic:rating_tier",
	"movie_temporal:release_year", "movie_text:title_length",
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "perfdata:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("perfdata", flag.ContinueOnError)
	records := fs.String("records", "testdata/tmdb/bulk_collection_20250605_022412.json", "real TMDB records (crawler file) to derive the corpus from")
	n := fs.Int("n", 10_003, "movies in the corpus")
	pool := fs.Int("pool", 2000, "requests per load")
	seed := fs.Uint64("seed", 1, "seed of the random entity ids")
	out := fs.String("out", "", "directory to write into (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *n < 100 || *pool < 1 {
		return errors.New("-out is required, -n must be at least 100 and -pool at least 1")
	}
	if err := os.MkdirAll(*out, 0o750); err != nil {
		return err
	}
	base, err := synthetic.Load(*records)
	if err != nil {
		return err
	}
	movies := make([]map[string]any, *n)
	for i := range movies {
		movies[i] = synthetic.Movie(base, i)
	}
	if err := writeJSON(filepath.Join(*out, "movies.json"), map[string]any{"movies": movies}); err != nil {
		return err
	}
	thirtyNine := append(groupFeatures(tmdb.GroupBasic), groupFeatures(tmdb.GroupText)...)
	rng := rand.New(rand.NewPCG(*seed, 0x9e7f)) // #nosec G404 -- reproducible benchmark input, not a secret
	loads := map[string]func() string{
		"one5":     func() string { return feast(randomIDs(rng, *n, 1), five) },
		"hundred5": func() string { return feast(randomIDs(rng, *n, 100), five) },
		"one39":    func() string { return feast(randomIDs(rng, *n, 1), thirtyNine) },
		"entity": func() string {
			id := randomIDs(rng, *n, 1)[0]
			return "GET\t/v1/feature-groups/" + tmdb.GroupBasic + "/entities/" + strconv.FormatInt(id, 10) + "\t"
		},
	}
	for _, name := range []string{"one5", "hundred5", "one39", "entity"} {
		if err := writeLines(filepath.Join(*out, name+".requests"), *pool, loads[name]); err != nil {
			return err
		}
	}
	return nil
}

// groupFeatures are the "group:feature" references of every feature of a
// built-in group, in its order.
func groupFeatures(group string) []string {
	for _, g := range tmdb.Groups() {
		if g.Name == group {
			refs := make([]string, len(g.Features))
			for i, f := range g.Features {
				refs[i] = group + ":" + f.Name
			}
			return refs
		}
	}
	panic("no built-in group " + group)
}

// randomIDs are k distinct ids of the corpus of n movies.
func randomIDs(rng *rand.Rand, n, k int) []int64 {
	ids := make([]int64, 0, k)
	seen := make(map[int]bool, k)
	for len(ids) < k {
		i := rng.IntN(n)
		if !seen[i] {
			seen[i] = true
			ids = append(ids, int64(synthetic.FirstID+i))
		}
	}
	return ids
}

func feast(ids []int64, features []string) string {
	b, err := json.Marshal(map[string]any{"entities": map[string]any{tmdb.EntityKey: ids}, "features": features})
	if err != nil {
		panic(err) // ids and strings always marshal
	}
	return "POST\t/get-online-features\t" + string(b)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func writeLines(path string, n int, line func() string) error {
	f, err := os.Create(path) // #nosec G304 -- in the directory named on the command line
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for range n {
		if _, err := w.WriteString(line() + "\n"); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
