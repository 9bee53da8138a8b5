#!/usr/bin/env bash
# The throughput benchmark of issue 8 and docs/performance.md "Throughput".
# Builds the binary, starts featurestore twice -- Postgres+Redis (a throwaway
# schema in the shared Postgres, a private redis-server on a free port) and
# embedded (a throwaway data directory) -- loads the same generated corpus
# (tools/perfdata: ENTITIES TMDB-like movies from testdata/tmdb) into both,
# starts tools/ceiling (bare net/http answering the byte-identical bodies it
# captured from the Postgres+Redis service), then runs wrk for every load
# against the three targets in alternation, ROUNDS times, and prints a
# Markdown table of the mean rps, p50, p99 and the ratio to the ceiling, and
# of the target process's CPU time per request (user + system, from
# /proc/PID/stat around each run): unlike rps, CPU per request hardly moves
# when other work shares the machine, so its ratio to the ceiling's is the
# steadier comparison on a busy machine. (Postgres and Redis CPU is not in
# it: PG+Redis reads are answered by the service, near cache or Redis.)
#
#   bash scripts/perf.sh                        # needs wrk, redis-server, psql
#   DURATION=10s ROUNDS=3 bash scripts/perf.sh  # longer, steadier
#   LOADS="one5 entity" bash scripts/perf.sh    # some loads only
#
# The Postgres+Redis service runs with a near cache of NEAR entries (50000;
# NEAR=0 measures without it).
#
# Loads (tools/perfdata writes POOL requests of each, over random ids):
#   one5      POST /get-online-features, 1 entity x 5 features
#   hundred5  POST /get-online-features, 100 entities x 5 features
#   one39     POST /get-online-features, 1 entity x 39 features (movie_basic + movie_text)
#   entity    GET /v1/feature-groups/movie_basic/entities/{id}
# It is a manual measurement, never run by CI; its run time is bounded:
# about 3 x loads x (WARMUP + ROUNDS x DURATION) plus building and loading.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
ENTITIES=${ENTITIES:-10003}
POOL=${POOL:-2000}
LOADS=${LOADS:-one5 hundred5 one39 entity}
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
for tool in wrk redis-server psql curl python3; do
  command -v "$tool" >/dev/null || { echo "perf.sh: $tool is not installed (apt-get install wrk redis-server postgresql-client curl python3)" >&2; exit 1; }
done

work=$(mktemp -d)
schema="perf_$(date +%s)_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql -q "$POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf '[perf %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for URL LOG: until URL answers 2xx (120 s at most)
  for _ in $(seq 1 1200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "perf.sh: $1 not ready; its log:" >&2; tail -n 30 "$2" >&2; exit 1
}

say "building"
go build -o "$work/featurestore" ./cmd/featurestore
go build -o "$work/ceiling" ./tools/ceiling
go build -o "$work/perfdata" ./tools/perfdata
"$work/perfdata" -n "$ENTITIES" -pool "$POOL" -out "$work/data"

redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
psql -q -v ON_ERROR_STOP=1 "$POSTGRES_URL" -c "CREATE SCHEMA $schema" >/dev/null
case $POSTGRES_URL in *\?*) pg_url="$POSTGRES_URL&search_path=$schema" ;; *) pg_url="$POSTGRES_URL?search_path=$schema" ;; esac
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

declare -A url pid
start() { # start NAME FLAGS...: a featurestore with the access log at its default level
  local name=$1 port; shift
  port=$(free_port)
  "$work/featurestore" serve --addr "127.0.0.1:$port" --rate-limit 0 "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  pid[$name]=$!
  url[$name]="http://127.0.0.1:$port"
}
start pg --postgres-url "$pg_url" --redis-url "redis://127.0.0.1:$redis_port/0" --redis-near-cache-entries "${NEAR:-50000}"
start embedded --data-dir "$work/embedded-data"
for name in pg embedded; do
  wait_for "${url[$name]}/health/ready" "$work/$name.log"
  say "loading $ENTITIES movies into $name"
  "$work/featurestore" ingest --api "${url[$name]}" --batch-size 1000 "$work/data/movies.json" >/dev/null 2>"$work/ingest-$name.log" ||
    { tail -n 20 "$work/ingest-$name.log" >&2; exit 1; }
done

say "ceiling: capturing the answers of the Postgres+Redis service"
files=()
for load in $LOADS; do files+=("$work/data/$load.requests"); done
ceiling_port=$(free_port)
"$work/ceiling" -upstream "${url[pg]}" -addr "127.0.0.1:$ceiling_port" "${files[@]}" >"$work/ceiling.log" 2>&1 &
pids+=($!)
pid[ceiling]=$!
url[ceiling]="http://127.0.0.1:$ceiling_port"
for _ in $(seq 1 3000); do grep -q 'serving on' "$work/ceiling.log" && break
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/ceiling.log" >&2; exit 1; }; sleep 0.1; done
grep -q 'serving on' "$work/ceiling.log" || { echo "perf.sh: the ceiling did not start" >&2; cat "$work/ceiling.log" >&2; exit 1; }

targets=(pg embedded ceiling)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system, in clock ticks
tick_us=$((1000000 / $(getconf CLK_TCK)))
bench() { # bench TARGET LOAD DURATION: prints "rps p50 p99 errors cpu_us_per_request"
  local before after
  before=$(cpu_ticks "${pid[$1]}")
  wrk -t"$THREADS" -c"$CONNS" -d"$3" -s scripts/perf/pool.lua "${url[$1]}" -- "$work/data/$2.requests" >"$work/wrk.out"
  after=$(cpu_ticks "${pid[$1]}")
  sed -n 's/^RESULT rps=\(.*\) p50_ms=\(.*\) p99_ms=\(.*\) errors=\(.*\) requests=\(.*\)$/\1 \2 \3 \4 \5/p' "$work/wrk.out" |
    awk -v t=$((after - before)) -v us="$tick_us" '$5 > 0 { printf "%s %s %s %s %.1f\n", $1, $2, $3, $4, t * us / $5 }'
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for load in $LOADS; do
  for t in "${targets[@]}"; do say "warm-up $load $t"; bench "$t" "$load" "$WARMUP" >/dev/null; done
done
: >"$work/results"
for round in $(seq 1 "$ROUNDS"); do
  for load in $LOADS; do
    for i in 0 1 2; do # each round starts from another target
      t=${targets[$(((i + round) % 3))]}
      r=$(bench "$t" "$load" "$DURATION")
      [ -n "$r" ] || { echo "perf.sh: wrk gave no result for $t $load" >&2; exit 1; }
      say "round $round $load $t: $r"
      echo "$load $t $r" >>"$work/results"
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit+changes"
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $(nproc) CPUs (${cpu:-unknown CPU}), $(go env GOVERSION)."
echo "wrk -t$THREADS -c$CONNS, $ROUNDS rounds of $DURATION per target and load (alternating), after a $WARMUP warm-up;"
echo "$ENTITIES entities, $POOL random requests per load; load average $load_before before, $load_after after."
echo
echo "| load | target | rps | p50 ms | p99 ms | of ceiling | CPU µs/request | ceiling's CPU / target's |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
awk -v loads="$LOADS" '
  { k = $1 SUBSEP $2; n[k]++; rps[k] += $3; p50[k] += $4; p99[k] += $5; err[k] += $6; cpu[k] += $7 }
  END {
    name["one5"] = "1 entity × 5 features"; name["hundred5"] = "100 entities × 5 features"
    name["one39"] = "1 entity × 39 features"; name["entity"] = "GET entity (movie_basic)"
    tn["pg"] = "featurestore PG+Redis"; tn["embedded"] = "featurestore embedded"; tn["ceiling"] = "ceiling (net/http, same bytes)"
    split("pg embedded ceiling", ts, " "); nl = split(loads, ls, " "); bad = 0
    for (i = 1; i <= nl; i++) {
      c = ls[i] SUBSEP "ceiling"; ceil = rps[c] / n[c]; ceilcpu = cpu[c] / n[c]
      for (j = 1; j <= 3; j++) {
        k = ls[i] SUBSEP ts[j]; r = rps[k] / n[k]; u = cpu[k] / n[k]
        note = err[k] > 0 ? sprintf(" (%d errors)", err[k]) : ""; if (err[k] > 0) bad = 1
        printf "| %s | %s | %.0f%s | %.2f | %.2f | %s | %.1f | %s |\n", name[ls[i]], tn[ts[j]], r, note, p50[k] / n[k], p99[k] / n[k],
          ts[j] == "ceiling" ? "1" : sprintf("%.2f", r / ceil), u,
          ts[j] == "ceiling" ? "1" : (u > 0 ? sprintf("%.2f", ceilcpu / u) : "-")
      }
    }
    exit bad
  }' "$work/results" || { echo; echo "perf.sh: some requests failed (see errors above): not a valid measurement" >&2; exit 1; }
