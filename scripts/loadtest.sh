#!/usr/bin/env bash
# The load test behind docs/security.md "Limits": p99 latency of
# POST /get-online-features (20 movies x 3 features, embedded mode) at the
# sustainable load and at 4x it, with and without the concurrency limit.
# Loopback only; every run is bounded (DURATION, 20s by default).
#
#   bash scripts/loadtest.sh            # needs wrk (apt-get install wrk)
#   CONNS=8 DURATION=30s bash scripts/loadtest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-8}          # the sustainable load: closed-loop connections
DURATION=${DURATION:-20s}
LIMIT=${LIMIT:-16}         # --max-concurrent-requests for the limited runs
WAIT=${WAIT:-50ms}         # --queue-wait for the limited runs
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/featurestore" ./cmd/featurestore

run() { # run NAME CONNECTIONS SERVER-FLAGS...
  local name=$1 conns=$2; shift 2
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$work/data"
  "$work/featurestore" serve --addr "127.0.0.1:$port" --data-dir "$work/data" --log-level warn \
    --rate-limit 0 --recompute-delay 0 "$@" >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
  curl -sf -X POST "127.0.0.1:$port/v1/movies" -H 'Content-Type: application/json' \
    --data-binary @../shared/data/tmdb/bulk_collection_20250605_022412.json >/dev/null
  wrk -t2 -c"$conns" -d5s -s scripts/loadtest/online.lua "http://127.0.0.1:$port/get-online-features" >/dev/null # warm up
  printf '%-34s c=%-4s ' "$name" "$conns"
  wrk -t2 -c"$conns" -d"$DURATION" -s scripts/loadtest/online.lua "http://127.0.0.1:$port/get-online-features" | grep '^RESULT' | cut -d' ' -f2-
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run "no limit, sustainable load" "$CONNS" --max-concurrent-requests 0
run "no limit, 4x load" $((4 * CONNS)) --max-concurrent-requests 0
run "limit $LIMIT wait $WAIT, sustainable load" "$CONNS" --max-concurrent-requests "$LIMIT" --queue-wait "$WAIT"
run "limit $LIMIT wait $WAIT, 4x load" $((4 * CONNS)) --max-concurrent-requests "$LIMIT" --queue-wait "$WAIT"
