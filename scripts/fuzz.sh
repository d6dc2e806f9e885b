#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each.
#
#   scripts/fuzz.sh                  # every target, FUZZTIME each (default 5s)
#   FUZZTIME=10m scripts/fuzz.sh krl # only targets in packages whose path contains "krl"
#
# Targets are found by grepping for `func FuzzXxx(` in *_test.go files, so a
# new one is picked up without editing this script. A failure leaves its
# input in the package's testdata/fuzz/FuzzXxx/ (commit it: it becomes a seed
# that every ordinary `go test` runs) and makes the script exit 1 after the
# remaining targets have run. See docs/security.md for longer campaigns.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-5s}"
filter="${1:-}"
failed=()
count=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  if [ -n "$filter" ] && [[ "$pkg" != *"$filter"* ]]; then
    continue
  fi
  count=$((count + 1))
  echo "fuzz: $pkg $name ($fuzztime)"
  ok=0
  for attempt in 1 2; do
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
      ok=1
      break
    fi
    # Go's fuzzer sometimes reports "context deadline exceeded" when
    # -fuzztime ends while a worker is busy, without any failing input.
    # That is the harness, not a finding: try once more. A real finding
    # always writes its input ("Failing input written") and is never retried.
    if grep -q "Failing input written" "$log" || ! grep -q "context deadline exceeded" "$log"; then
      break
    fi
    echo "fuzz: $pkg $name: fuzzer stopped with a deadline error and no failing input; running it again"
  done
  if [ "$ok" -ne 1 ]; then
    cat "$log"
    failed+=("$pkg $name")
  fi
done < <(grep -rhoE --include='*_test.go' -H '^func (Fuzz[A-Za-z0-9_]+)\(' internal cmd 2>/dev/null \
  | sed -E 's/:func (Fuzz[A-Za-z0-9_]+)\(/:\1/' | sort -u)
echo "fuzz: $count targets, $fuzztime each, $(( $(date +%s) - start ))s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
  exit 1
fi
