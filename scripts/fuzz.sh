#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (every `func FuzzXxx` in a
# _test.go file) for FUZZTIME each: a short smoke run in CI (scripts/test.sh
# sets 3s), as long as you like on demand:
#
#   FUZZTIME=10m bash scripts/fuzz.sh                  # every target, 10 minutes each
#   FUZZTIME=1h bash scripts/fuzz.sh FuzzCheck         # one target
#
# A failing input is written to the package's testdata/fuzz/<Target>/ and
# from then on runs in every plain `go test` as a regression test: commit it
# with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-30s}
only=${1:-}
grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(f \*testing\.F\)' . | sort | while read -r file; do
  pkg="./$(dirname "${file#./}")"
  grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | sed 's/^func //' | while read -r target; do
    if [ -n "$only" ] && [ "$only" != "$target" ]; then continue; fi
    printf '==> fuzz %s %s (%s)\n' "$pkg" "$target" "$FUZZTIME"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/fuzz-$$.log 2>&1 || {
      cat /tmp/fuzz-$$.log; rm -f /tmp/fuzz-$$.log; exit 1; }
    tail -n 1 /tmp/fuzz-$$.log
  done
done
rm -f /tmp/fuzz-$$.log
