#!/usr/bin/env bash
# The whole test suite: set-up, formatting, vet, staticcheck, go test -race,
# and (under CI=true) every fuzz target for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed:"; echo "$unformatted"; exit 1; fi
go vet ./...
# Pinned; fetched through the Go module proxy on first use, then cached.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go test -race -count=1 -timeout 30m ./...
if [ "${CI:-}" = "true" ]; then
  FUZZTIME=3s scripts/fuzz.sh
fi
