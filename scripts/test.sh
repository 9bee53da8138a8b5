#!/usr/bin/env bash
# The project's one test command (README "Test it", and what CI runs):
# installs the tools the tests use, makes sure Postgres and Redis are up,
# then runs gofmt, go vet, gosec, the whole test suite under the race
# detector, and every fuzz target for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Tools: promtool (metrics lint of a live scrape) comes from Debian's prometheus package;
# the end-to-end monitoring test (internal/monitoring) runs prometheus, prometheus-alertmanager
# and the two exporters.
if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1 ||
  ! command -v prometheus-redis-exporter >/dev/null 2>&1 || ! command -v prometheus-postgres-exporter >/dev/null 2>&1; then
  log "installing prometheus, prometheus-alertmanager and the Redis and Postgres exporters"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager \
    prometheus-redis-exporter prometheus-postgres-exporter >/dev/null
fi

# Postgres on 127.0.0.1:5432 (trust auth) and Redis on 127.0.0.1:6379.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting Redis"
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p 5432
redis-cli -h 127.0.0.1 -p 6379 ping

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

log "go vet ./..."
go vet ./...

# gosec, pinned, from the Go module proxy. Findings are fixed, or justified
# inline with `// #nosec Gxxx -- reason`; any other finding fails the run.
GOSEC_VERSION=v2.30.0
GOBIN_DIR="$(go env GOPATH)/bin"
if [ ! -x "$GOBIN_DIR/gosec-$GOSEC_VERSION" ]; then # a go-installed gosec reports its version as "dev"
  log "installing gosec $GOSEC_VERSION"
  GOBIN="$GOBIN_DIR" go install "github.com/securego/gosec/v2/cmd/gosec@$GOSEC_VERSION"
  cp "$GOBIN_DIR/gosec" "$GOBIN_DIR/gosec-$GOSEC_VERSION"
fi
log "gosec ./..."
"$GOBIN_DIR/gosec-$GOSEC_VERSION" -quiet ./...

log "go test -race ./..."
go test -race -count=1 -timeout 30m ./...

# Every fuzz target for a few seconds (the seeds under testdata/fuzz already
# ran in go test); FUZZTIME=10m bash scripts/fuzz.sh runs them longer.
log "fuzz smoke run"
FUZZTIME="${FUZZTIME:-3s}" bash scripts/fuzz.sh
