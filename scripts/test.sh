#!/usr/bin/env bash
# The whole test suite: set-up, formatting, vet, staticcheck, go test -race,
# and (under CI=true) every fuzz target for a few seconds. The last line is
# "tests: N passed, M failed" (top-level tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
go vet ./...
# Pinned; fetched through the Go module proxy on first use, then cached.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
go test -race -count=1 -timeout 30m -v ./... >"$log" 2>&1 || rc=$?
# Package results, then the output of anything that failed.
grep -E '^(ok|FAIL|\?) ' "$log" || true
if [ "$rc" -ne 0 ]; then
  echo "=== failures"
  grep -n -E -- '^(--- FAIL|FAIL|panic:)|^\s+--- FAIL|_test\.go:[0-9]+:' "$log" | tail -300 || true
  echo "=== end of the go test log"
  tail -100 "$log"
fi
passed=$(grep -c -E '^--- PASS' "$log" || true)
failed=$(grep -c -E '^--- FAIL' "$log" || true)
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # a build failure or panic outside any test
fi

# The Go benchmarks once each (seconds), so they cannot rot; the benchmark
# program's suites already ran in short mode as tests of ./bench above.
benchrc=0
if [ "${CI:-}" = "true" ] && [ "$rc" -eq 0 ]; then
  go test -run '^$' -bench . -benchtime 1x ./internal/signer ./internal/krl ./internal/e2e/service ./internal/e2e/frontdoor ./internal/console ./internal/home ./internal/audit ./internal/api ./internal/store ./internal/certwire >"$log" 2>&1 || benchrc=$?
  grep -E '^(ok|FAIL|Benchmark)' "$log" || true
  if [ "$benchrc" -ne 0 ]; then tail -50 "$log"; failed=$((failed + 1)); fi
fi

fuzzrc=0
if [ "${CI:-}" = "true" ] && [ "$rc" -eq 0 ]; then
  FUZZTIME=3s scripts/fuzz.sh || fuzzrc=$?
  if [ "$fuzzrc" -ne 0 ]; then failed=$((failed + 1)); fi
fi
echo "tests: $passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$benchrc" -eq 0 ] && [ "$fuzzrc" -eq 0 ]
