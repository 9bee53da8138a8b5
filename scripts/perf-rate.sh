#!/usr/bin/env bash
# The fixed-rate latency benchmark of issue 8 ("p99 under the same load no
# worse than today's") and docs/performance.md "Latency at a fixed rate".
# scripts/perf.sh measures with wrk, closed loop at saturation, where p99 is
# the scheduling of a 2-core machine and two builds never see the same load.
# This script offers every build the same load instead: tools/rateload sends
# requests on a fixed schedule (open loop) and measures each latency from the
# moment the request was due, so a stall is charged to every request that
# waited behind it.
#
# For every featurestore build it starts both modes like perf.sh --
# Postgres+Redis (a throwaway schema in the shared Postgres, a private
# redis-server on a free port, --redis-near-cache-entries NEAR) and embedded
# (a throwaway data directory) -- loads the same tools/perfdata corpus into
# each, then runs rateload for every load and rate against every target, the
# targets taking turns, and prints a Markdown table of p50, p99, p99.9 and max.
#
#   bash scripts/perf-rate.sh                               # this checkout
#   COMMITS="5b66575 HEAD" bash scripts/perf-rate.sh        # before and after
#   BIN_BEFORE=/tmp/old/featurestore bash scripts/perf-rate.sh
#   DURATION=3s RATES=500 LOADS=one5 bash scripts/perf-rate.sh   # a quick check
#
# Builds (all of them run side by side, started once, measured in turn):
#   COMMITS     git revisions, each built in a temporary `git worktree`
#               (committed state only) and labelled by its short hash
#   BIN_BEFORE  a featurestore binary, labelled "before", measured beside
#   BIN         a featurestore binary (default: build this checkout), labelled
#               "after" when BIN_BEFORE is set
# A build without --redis-near-cache-entries (older than 1856977) runs without
# the near cache; the table says so.
#
# Loads (tools/perfdata): one5, hundred5, one39, entity as in perf.sh.
# RATES (requests/s) apply to every load except where RATES_<load> is set;
# RATES_hundred5 defaults to "100 200 400" because a 100-entity request costs
# about 20 one-entity ones and older builds answer fewer than 500 of them per
# second. A rate the target cannot sustain shows as "saturated": requests
# queued until -grace after the schedule and the rest were never sent.
#
# It is a manual measurement, never run by CI. Run time: building and loading
# (about 1 minute per build), then builds x 2 x loads x rates x ROUNDS runs of
# WARMUP + DURATION (+ up to GRACE + TIMEOUT when saturated): with the defaults
# and one build 2 x 3 x 3 x 12 s, about 4 minutes; with two COMMITS about 9.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-1}
CONNS=${CONNS:-32}
GRACE=${GRACE:-2s}
TIMEOUT=${TIMEOUT:-5s}
RATES=${RATES:-1000 2000 3000}
RATES_hundred5=${RATES_hundred5:-100 200 400}
LOADS=${LOADS:-one5 hundred5 entity}
ENTITIES=${ENTITIES:-10003}
POOL=${POOL:-2000}
NEAR=${NEAR:-50000}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
for tool in redis-server redis-cli psql curl python3 git; do
  command -v "$tool" >/dev/null || { echo "perf-rate.sh: $tool is not installed (apt-get install redis-server postgresql-client curl python3 git)" >&2; exit 1; }
done

work=$(mktemp -d)
schema="perfrate_$(date +%s)_$$"
pids=()
worktrees=()
nbuilds=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in $(seq 0 $((nbuilds - 1))); do
    psql -q "$POSTGRES_URL" -c "DROP SCHEMA IF EXISTS ${schema}_$n CASCADE" >/dev/null 2>&1 || true
  done
  for w in "${worktrees[@]}"; do git worktree remove --force "$w" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '[perf-rate %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for URL LOG: until URL answers 2xx (120 s at most)
  for _ in $(seq 1 1200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "perf-rate.sh: $1 not ready; its log:" >&2; tail -n 30 "$2" >&2; exit 1
}
# has_flag BIN SUBCOMMAND FLAG. grep reads the whole help (no -q): under
# pipefail, a grep -q that stops at the first match makes the writer's SIGPIPE
# fail the pipeline, which read as "no such flag".
has_flag() { "$1" "$2" --help 2>&1 | grep -- "-$3 " >/dev/null; }

say "building"
go build -o "$work/rateload" ./tools/rateload
go build -o "$work/perfdata" ./tools/perfdata
"$work/perfdata" -n "$ENTITIES" -pool "$POOL" -out "$work/data"
labels=() bins=()
if [ -n "${COMMITS:-}" ]; then
  for c in $COMMITS; do
    rev=$(git rev-parse --short "$c^{commit}")
    n=${#bins[@]}
    say "building $c ($rev) in a temporary worktree"
    git worktree add -q --detach "$work/src-$n" "$rev"
    worktrees+=("$work/src-$n")
    (cd "$work/src-$n" && go build -o "$work/featurestore-$n" ./cmd/featurestore)
    git worktree remove --force "$work/src-$n"
    labels+=("$rev") bins+=("$work/featurestore-$n")
  done
else
  if [ -n "${BIN_BEFORE:-}" ]; then labels+=(before) bins+=("$BIN_BEFORE"); fi
  if [ -n "${BIN:-}" ]; then
    bin=$BIN
  else
    bin="$work/featurestore-checkout"
    go build -o "$bin" ./cmd/featurestore
  fi
  if [ -n "${BIN_BEFORE:-}" ]; then label=after; else
    label=$(git rev-parse --short HEAD 2>/dev/null || echo checkout)
    if [ -z "${BIN:-}" ] && ! git diff --quiet HEAD 2>/dev/null; then label="$label+changes"; fi
    [ -z "${BIN:-}" ] || label=bin
  fi
  labels+=("$label") bins+=("$bin")
fi
nbuilds=${#bins[@]}

declare -A url label_of
targets=()
notes=()
start() { # start NAME BIN FLAGS...
  local name=$1 bin=$2 port; shift 2
  port=$(free_port)
  "$bin" serve --addr "127.0.0.1:$port" --rate-limit 0 "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  url[$name]="http://127.0.0.1:$port"
  targets+=("$name")
}
for n in $(seq 0 $((nbuilds - 1))); do
  bin=${bins[$n]}
  [ -x "$bin" ] || { echo "perf-rate.sh: $bin is not an executable featurestore" >&2; exit 1; }
  redis_port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >"$work/redis-$n.log" 2>&1 &
  pids+=($!)
  psql -q -v ON_ERROR_STOP=1 "$POSTGRES_URL" -c "CREATE SCHEMA ${schema}_$n" >/dev/null
  case $POSTGRES_URL in *\?*) pg_url="$POSTGRES_URL&search_path=${schema}_$n" ;; *) pg_url="$POSTGRES_URL?search_path=${schema}_$n" ;; esac
  for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  near=()
  if [ "$NEAR" != 0 ]; then
    if has_flag "$bin" serve redis-near-cache-entries; then near=(--redis-near-cache-entries "$NEAR")
    else notes+=("${labels[$n]} has no near cache (no --redis-near-cache-entries): PG+Redis ran without it."); fi
  fi
  start "pg$n" "$bin" --postgres-url "$pg_url" --redis-url "redis://127.0.0.1:$redis_port/0" "${near[@]}"
  start "embedded$n" "$bin" --data-dir "$work/embedded-data-$n"
  label_of[pg$n]="${labels[$n]} PG+Redis"
  label_of[embedded$n]="${labels[$n]} embedded"
  batch=()
  if has_flag "$bin" ingest batch-size; then batch=(--batch-size 1000); fi
  for name in "pg$n" "embedded$n"; do
    wait_for "${url[$name]}/health/ready" "$work/$name.log"
    say "loading $ENTITIES movies into ${label_of[$name]}"
    "$bin" ingest --api "${url[$name]}" "${batch[@]}" "$work/data/movies.json" >/dev/null 2>"$work/ingest-$name.log" ||
      { tail -n 20 "$work/ingest-$name.log" >&2; exit 1; }
  done
done

measure() { # measure TARGET LOAD RATE: prints "p50 p99 p999 max late errors unsent achieved"
  "$work/rateload" -url "${url[$1]}" -rate "$3" -duration "$DURATION" -warmup "$WARMUP" -conns "$CONNS" \
    -grace "$GRACE" -timeout "$TIMEOUT" "$work/data/$2.requests" |
    sed -n 's/^RESULT .* errors=\([^ ]*\) unsent=\([^ ]*\) p50_ms=\([^ ]*\) p90_ms=[^ ]* p99_ms=\([^ ]*\) p999_ms=\([^ ]*\) max_ms=\([^ ]*\) late=\([^ ]*\) .* achieved_rps=\([^ ]*\)$/\3 \4 \5 \6 \7 \1 \2 \8/p'
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/results"
nt=${#targets[@]}
run_no=0
for round in $(seq 1 "$ROUNDS"); do
  for load in $LOADS; do
    rates_var="RATES_$load"
    for rate in ${!rates_var:-$RATES}; do
      run_no=$((run_no + 1))
      for i in $(seq 0 $((nt - 1))); do # each run starts from another target
        t=${targets[$(((i + run_no) % nt))]}
        r=$(measure "$t" "$load" "$rate")
        [ -n "$r" ] || { echo "perf-rate.sh: rateload gave no result for $t $load $rate" >&2; exit 1; }
        say "round $round $load $rate/s ${label_of[$t]}: p50 p99 p999 max late errors unsent achieved = $r"
        echo "$load $rate $t $r" >>"$work/results"
      done
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs (${cpu:-unknown CPU}), $(go env GOVERSION); builds: ${labels[*]}."
echo "tools/rateload, at most $CONNS in flight, $ROUNDS round(s) of $WARMUP warm-up + $DURATION per target, load and rate"
echo "(alternating targets); latency from the scheduled time; $ENTITIES entities, $POOL random requests per load;"
echo "load average $load_before before, $load_after after."
for note in "${notes[@]}"; do echo "$note"; done
echo
echo "| load | rate/s | target | p50 ms | p99 ms | p99.9 ms | max ms | late | errors |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
labels_file="$work/labels"
for t in "${targets[@]}"; do printf '%s\t%s\n' "$t" "${label_of[$t]}" >>"$labels_file"; done
awk -v targets="${targets[*]}" '
  FILENAME == ARGV[1] { split($0, kv, "\t"); tn[kv[1]] = kv[2]; next }
  {
    k = $1 SUBSEP $2 SUBSEP $3
    if (!(k in n)) order[++no] = k
    n[k]++; p50[k] += $4; p99[k] += $5; p999[k] += $6; if ($7 > mx[k]) mx[k] = $7
    late[k] += $8; err[k] += $9; uns[k] += $10
  }
  END {
    name["one5"] = "1 entity × 5 features"; name["hundred5"] = "100 entities × 5 features"
    name["one39"] = "1 entity × 39 features"; name["entity"] = "GET entity (movie_basic)"
    nt = split(targets, ts, " "); bad = 0
    for (o = 1; o <= no; o++) {
      split(order[o], f, SUBSEP)
      if (f[3] != ts[1]) continue # one block of rows per load and rate, targets in a fixed order
      for (j = 1; j <= nt; j++) {
        k = f[1] SUBSEP f[2] SUBSEP ts[j]; c = n[k]
        note = err[k] > 0 ? sprintf("%d", err[k]) : "0"
        if (uns[k] > 0) { note = note sprintf(", saturated: %d unsent", uns[k]); }
        if (err[k] > 0 || uns[k] > 0) bad = 1
        printf "| %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %d | %s |\n", name[f[1]], f[2], tn[ts[j]],
          p50[k] / c, p99[k] / c, p999[k] / c, mx[k], late[k], note
      }
    }
    exit bad
  }' "$labels_file" "$work/results" ||
  { echo; echo "perf-rate.sh: some requests failed or were never sent: those rows are not valid measurements" >&2; exit 1; }
