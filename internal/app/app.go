// Package app wires the feature store together: configuration, logging,
// metrics, storage backends, the HTTP server and the command-line commands.
// main only builds a context and calls Run.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/featurestore/featurestore/internal/verify"
)

// Build information, set with -ldflags "-X github.com/featurestore/featurestore/internal/app.version=..."
var (
	version  = "dev"
	revision = ""
)

func buildRevision() string {
	if revision != "" {
		return revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

const usageText = `featurestore: an instrumented online feature store for TMDB movie features.

Usage:
  featurestore [serve] [flags]          run the HTTP service (the default command)
  featurestore ingest [flags] FILE      ingest a TMDB JSON file (- for standard input)
  featurestore recompute [flags]        recompute the corpus-relative statistical features
  featurestore migrate [flags]          apply storage migrations and exit
  featurestore invalidate-cache [flags] make every server clear its Redis cache (bumps the
                                        cache generation in Postgres; e.g. after writing to
                                        Postgres by hand, or restoring a Redis backup)
  featurestore crawl [flags]            collect movies from the TMDB API (crawl --help)
  featurestore verify [flags]           check the running stack: the operators' checklist (verify --help)
  featurestore version                  print the version

With no --postgres-url the service uses an embedded store in --data-dir and an
in-process cache; --postgres-url and --redis-url switch to Postgres as the
system of record and Redis as the online cache. Every flag can also be set
through the environment variable named after it.

Flags:
`

// Run is the whole program: it parses args (without the program name) and
// runs the chosen command until ctx ends.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return run(ctx, args, getenv, stdout, stderr, nil)
}

// run is Run with a hook told the API's listen address (tests use port 0).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, onListen func(addr string)) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		_, err := fmt.Fprintf(stdout, "featurestore %s (revision %s, %s)\n", version, buildRevision(), runtime.Version())
		return err
	case "help":
		args = []string{"--help"}
		cmd = "serve"
	case "verify":
		return verify.Command(ctx, args, getenv, stdout, stderr)
	case "crawl":
		return crawlCmd(ctx, args, getenv, stdout, stderr)
	case "serve", "ingest", "recompute", "migrate", "invalidate-cache":
	default:
		return fmt.Errorf("unknown command %q (want serve, ingest, recompute, migrate, invalidate-cache, crawl, verify or version; see --help)", cmd)
	}

	var cfg Config
	fs, flags := flagSet("featurestore "+cmd, &cfg, getenv, stderr)
	var ing ingestFlags
	if cmd == "ingest" {
		fs.StringVar(&ing.api, "api", "", "send the file to a running service at this base URL (e.g. http://localhost:8001) instead of writing to the store directly")
		fs.IntVar(&ing.batch, "batch-size", 500, "records per write transaction (or per request with --api)")
		fs.BoolVar(&ing.noRecompute, "no-recompute", false, "skip the recompute of statistical features after the ingest")
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := flags.Err(); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	rest := fs.Args()
	switch cmd {
	case "serve":
		if len(rest) > 0 {
			return fmt.Errorf("serve takes no arguments, got %q", rest)
		}
		return serve(ctx, cfg, stdout, onListen)
	case "ingest":
		if len(rest) != 1 {
			return fmt.Errorf("ingest takes exactly one FILE argument (- for standard input)")
		}
		if ing.batch < 1 {
			return fmt.Errorf("--batch-size must be at least 1")
		}
		return ingestFile(ctx, cfg, ing, rest[0], stdout, stderr)
	case "recompute":
		return recomputeCmd(ctx, cfg, stdout, stderr)
	case "migrate":
		return migrateCmd(ctx, cfg, stdout)
	case "invalidate-cache":
		return invalidateCacheCmd(ctx, cfg, stdout)
	}
	return nil
}
