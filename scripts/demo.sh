#!/usr/bin/env bash
# The main job on a fresh machine: build sshca, create a CA home on the
# embedded store (./sshca-data unless SSHCA_HOME is set), sign a user and a
# host certificate, and show them. Safe to re-run: an existing home is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v ssh-keygen >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null
fi
mkdir -p bin
CGO_ENABLED=0 go build -o bin/sshca ./cmd/sshca # static: no libc (SQLite is pure Go)
export SSHCA_HOME="${SSHCA_HOME:-$PWD/sshca-data}"
sshca=bin/sshca
if [ ! -e "$SSHCA_HOME/sshca.db" ]; then
  $sshca init
fi
work="$SSHCA_HOME/demo"
mkdir -p "$work"
[ -e "$work/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C demo-user -f "$work/id_ed25519"
[ -e "$work/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C demo-host -f "$work/ssh_host_ed25519_key"
echo "== TrustedUserCAKeys line"
$sshca ca show --type user
echo "== known_hosts line"
$sshca ca show --type host --known-hosts '*.corp'
echo "== user certificate"
$sshca sign user --role deploy --id "demo-$(date +%Y%m%d-%H%M%S)" --ttl 8h "$work/id_ed25519.pub"
$sshca inspect "$work/id_ed25519-cert.pub"
echo "== host certificate"
$sshca sign host --role servers --id app-01 --principals app-01.corp,10.0.1.10 "$work/ssh_host_ed25519_key.pub"
ssh-keygen -L -f "$work/ssh_host_ed25519_key-cert.pub"
echo "== inventory"
$sshca list --active
$sshca audit verify
