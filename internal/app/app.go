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

	"github.com/featurestore/featurestore/internal/auth"
	"github.com/featurestore/featurestore/internal/envflag"
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
  featurestore recompute [flags]        deprecated: statistics are computed at read time; writes nothing
  featurestore historical [flags] FILE  build a point-in-time training set (historical --help)
  featurestore migrate [flags]          apply storage migrations and exit
  featurestore invalidate-cache [flags] make every server clear its Redis cache (bumps the
                                        cache generation in Postgres; e.g. after writing to
                                        Postgres by hand, or restoring a Redis backup)
  featurestore crawl [flags]            collect movies from the TMDB API
  featurestore verify [flags]           check the running stack: the operators' checklist
  featurestore token --name N --role R  make an API token and its --auth-tokens-file entry
  featurestore version                  print the version

Each command has its own --help (featurestore ingest --help) with its flags.
With no --postgres-url the service uses an embedded store in --data-dir and an
in-process cache; --postgres-url and --redis-url switch to Postgres as the
system of record and Redis as the online cache. Every flag can also be set
through the environment variable named after it.

Flags of serve:
`

const serveUsage = `featurestore serve: run the HTTP service (the default command).

Usage:
  featurestore [serve] [flags]

Serves the REST API, /health and /metrics on --addr (/metrics on
--metrics-addr instead when set). Storage opens in the background: until it
does, liveness, readiness (503), /info and /metrics answer and every other
route answers 503. Migrations are applied at start-up. On SIGTERM readiness
turns 503, in-flight requests finish within --shutdown-timeout and pools close.

Flags:
`

const ingestUsage = `featurestore ingest: ingest a TMDB JSON file.

Usage:
  featurestore ingest [flags] FILE

FILE (- for standard input) is one movie, an array of movies, a TMDB list page
({"page":1,"results":[...]}) or a crawler file ({"movies":[...]}). Records are
validated one by one; the valid ones are written in batches of --batch-size,
each in one transaction, directly into the store the flags name or, with
--api, through a running service (needed while a service holds the embedded
store's directory). A progress bar goes to standard error. The statistical
features relative to the corpus are computed at read time, so nothing runs
after the ingest.
Rejected records are listed with the fields at fault and the command exits
non-zero; every failure says exactly what was stored. Flags go before FILE.

Flags:
`

const recomputeUsage = `featurestore recompute: deprecated; writes nothing.

Usage:
  featurestore recompute [flags]

The corpus-relative statistical features (z-scores, percentiles) are
computed at read time from the corpus aggregate the store keeps with every
write (docs/statistics.md), so there is nothing to recompute. The command
only reports the number of movies in the corpus.

Flags:
`

const migrateUsage = `featurestore migrate: apply the storage migrations and exit.

Usage:
  featurestore migrate [flags]

Applies the numbered migrations to Postgres (--postgres-url) or to the
embedded store in --data-dir. The service also applies them at start-up; this
command lets a deployment run them once, before the replicas start.

Flags:
`

// storeFlags are the service flags of the commands that open the store.
var storeFlags = []string{"data-dir", "postgres-url", "postgres-max-conns", "redis-url", "redis-key-prefix",
	"cache-ttl", "cache-absent-ttl"}

// configCommand is a command that takes the service's configuration.
type configCommand struct {
	usage string
	// flags are the service flags it takes (nil: all of them); the others
	// keep their defaults and stay out of its --help.
	flags []string
}

var configCommands = map[string]configCommand{
	"serve":     {usage: serveUsage},
	"ingest":    {usage: ingestUsage, flags: storeFlags},
	"recompute": {usage: recomputeUsage, flags: storeFlags},
	"migrate":   {usage: migrateUsage, flags: []string{"data-dir", "postgres-url"}},
}

// commandFlagSet is the flag set of a configCommand: every service flag is
// declared on a hidden set (so cfg gets every default and environment
// value), and the command's own are exposed on the set returned.
func commandFlagSet(name string, c configCommand, cfg *Config, getenv func(string) string, out io.Writer) (*flag.FlagSet, *envflag.Set) {
	if c.flags == nil {
		fs, flags := flagSet("featurestore "+name, cfg, getenv, out)
		fs.Usage = func() {
			fmt.Fprint(fs.Output(), c.usage)
			fs.PrintDefaults()
		}
		return fs, flags
	}
	shared, flags := flagSet("featurestore "+name, cfg, getenv, io.Discard)
	fs := flag.NewFlagSet("featurestore "+name, flag.ContinueOnError)
	fs.SetOutput(out)
	for _, n := range c.flags {
		if fl := shared.Lookup(n); fl != nil {
			fs.Var(fl.Value, fl.Name, fl.Usage)
		}
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), c.usage)
		fs.PrintDefaults()
	}
	return fs, flags
}

func isHelp(arg string) bool { return arg == "--help" || arg == "-help" || arg == "-h" || arg == "--h" }

// Run is the whole program: it parses args (without the program name) and
// runs the chosen command until ctx ends.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return run(ctx, args, getenv, stdout, stderr, nil)
}

// run is Run with a hook told the API's listen address (tests use port 0).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, onListen func(addr string)) error {
	cmd := "serve"
	// overview: featurestore --help, with no command, lists the commands.
	overview := len(args) > 0 && isHelp(args[0])
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version":
		if len(args) > 0 {
			fmt.Fprintln(stderr, "featurestore version: print the version, revision and Go version.\n\nUsage:\n  featurestore version")
			if isHelp(args[0]) {
				return nil
			}
			return fmt.Errorf("version takes no arguments, got %q", args)
		}
		_, err := fmt.Fprintf(stdout, "featurestore %s (revision %s, %s)\n", version, buildRevision(), runtime.Version())
		return err
	case "help":
		args, cmd, overview = []string{"--help"}, "serve", true
	case "verify":
		return verify.Command(ctx, args, getenv, stdout, stderr)
	case "crawl":
		return crawlCmd(ctx, args, getenv, stdout, stderr)
	case "historical":
		return historicalCmd(ctx, args, getenv, stdout, stderr)
	case "token":
		return tokenCmd(args, stdout, stderr)
	case "serve", "ingest", "recompute", "migrate", "invalidate-cache":
	default:
		return fmt.Errorf("unknown command %q (want serve, ingest, recompute, migrate, invalidate-cache, crawl, historical, verify, token or version; see --help)", cmd)
	}

	var cfg Config
	c := configCommands[cmd]
	if overview {
		// featurestore --help: the commands, then the flags of serve.
		c.usage = usageText
	}
	fs, flags := commandFlagSet(cmd, c, &cfg, getenv, stderr)
	var ing ingestFlags
	if cmd == "ingest" {
		fs.StringVar(&ing.api, "api", "", "send the file to a running service at this base URL (e.g. http://localhost:8001) instead of writing to the store directly")
		fs.IntVar(&ing.batch, "batch-size", 500, "records per write transaction (or per request with --api)")
		fs.BoolVar(&ing.noRecompute, "no-recompute", false, "deprecated, no effect (statistics are computed at read time)")
		fs.StringVar(&ing.tokenFile, "token-file", "", "with --api: a file holding the bearer token to send (default: the "+auth.TokenEnv+" variable)")
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
		tok, err := auth.ClientToken(ing.tokenFile, getenv(auth.TokenEnv))
		if err != nil {
			return err
		}
		ing.token = tok
		return ingestFile(ctx, cfg, ing, rest[0], stdout, stderr)
	case "recompute":
		if len(rest) > 0 {
			return fmt.Errorf("recompute takes no arguments, got %q", rest)
		}
		return recomputeCmd(ctx, cfg, stdout, stderr)
	case "migrate":
		if len(rest) > 0 {
			return fmt.Errorf("migrate takes no arguments, got %q", rest)
		}
		return migrateCmd(ctx, cfg, stdout)
	case "invalidate-cache":
		return invalidateCacheCmd(ctx, cfg, stdout)
	}
	return nil
}
