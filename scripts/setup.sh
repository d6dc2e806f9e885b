#!/usr/bin/env bash
# Installs what sshca's tests need on a fresh Debian machine (as root), when missing.
set -euo pipefail
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
/usr/bin/python3 -c 'import paramiko' >/dev/null 2>&1 || need+=(python3-paramiko)
ruby -e 'require "net/ssh"' >/dev/null 2>&1 || need+=(ruby-net-ssh)
ruby -e 'require "ed25519"' >/dev/null 2>&1 || need+=(ruby-ed25519)
ruby -e 'require "bcrypt_pbkdf"' >/dev/null 2>&1 || need+=(ruby-bcrypt-pbkdf)
command -v plink >/dev/null 2>&1 || need+=(putty-tools)
# The admin console's tests drive a real headless Chromium (chromedp).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# The completion tests load `sshca completion zsh|fish` into the real shells.
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v fish >/dev/null 2>&1 || need+=(fish)
# The man page tests format the generated pages with man -l.
command -v man >/dev/null 2>&1 || need+=(man-db)
# OpenSSH 10.5p1 is built from internal/opensshtest/testdata once per machine.
command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need+=(build-essential)
[ -f /usr/include/openssl/evp.h ] || need+=(libssl-dev)
[ -f /usr/include/zlib.h ] || need+=(zlib1g-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages ${need[*]}; run this script as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p /run/sshd 2>/dev/null || true
