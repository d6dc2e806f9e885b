#!/bin/sh
# Regenerates the golden SSHSIG files in this directory with ssh-keygen
# (OpenSSH 9.2). Private keys are thrown away; only public keys, the message
# and the signatures are kept. Run from this directory: sh gen.sh
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'sshca golden message\n' > message.txt
for spec in ed25519:ed25519: ecdsa-p256:ecdsa:256 rsa-3072:rsa:3072; do
	name=${spec%%:*}; rest=${spec#*:}; type=${rest%%:*}; bits=${rest#*:}
	if [ -n "$bits" ]; then
		ssh-keygen -q -t "$type" -b "$bits" -N '' -C "$name" -f "$tmp/$name"
	else
		ssh-keygen -q -t "$type" -N '' -C "$name" -f "$tmp/$name"
	fi
	cp "$tmp/$name.pub" "$name.pub"
	ssh-keygen -q -Y sign -n sshca-krl -f "$tmp/$name" message.txt
	mv message.txt.sig "$name.sig"
done
ssh-keygen -q -Y sign -n sshca-krl -O hashalg=sha256 -f "$tmp/ed25519" message.txt
mv message.txt.sig ed25519-sha256.sig
