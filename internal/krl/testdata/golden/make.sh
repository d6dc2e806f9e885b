#!/bin/sh
# Regenerates the golden KRLs in this directory with OpenSSH's ssh-keygen.
# Usage: sh internal/krl/testdata/golden/make.sh   (from any directory)
#
# Made with OpenSSH_9.2p1 (Debian 12). Keys are random, so a rerun changes
# every file; commit the whole directory together. golden_test.go replays
# the same specification files through ParseSpec/Apply and must produce the
# same bytes (the generation date is taken from each file). The list of
# KRLs and their ssh-keygen invocations is mirrored in golden_test.go.
set -eu
cd "$(dirname "$0")"
rm -f -- *.krl *.pub *.spec

key() { # name type [bits]
	ssh-keygen -q -t "$2" ${3:+-b "$3"} -N '' -C "$1" -f "$1"
}
key ca1 ed25519
key ca2 ecdsa 256
key ca3 rsa 2048
key user1 ed25519
key user2 ecdsa 384
key user3 rsa 2048
key user4 ed25519
key user5 ecdsa 256

# Certificates (bare certificate lines revoke under their own CA).
ssh-keygen -q -s ca1 -I alice -n alice -z 42 -V -1d:+1d user1.pub
ssh-keygen -q -s ca2 -I bob@example.com -n bob -z 0 -V -1d:+1d user2.pub
ssh-keygen -q -s ca3 -I carol -n carol -z 77 -V -1d:+1d user4.pub
rm -f ca1 ca2 ca3 user1 user2 user3 user4 user5 # private keys are not needed

: >empty.spec
cat >serial-list.spec <<'EOF'
# scattered single serials, in several bases
serial: 1
serial: 1000
SERIAL: 1099511627776
serial:	0x10
serial: 017 # octal 15
serial: 18446744073709551615
serial: 5000000000
EOF
cat >serial-range.spec <<'EOF'
serial: 100-200
serial: 1000-100000
serial: 5-9
serial: 7-12   # overlaps the previous range
serial: 1-3
serial: 4      # adjacent: merges 1-12
serial: 18446744073709551000-18446744073709551615
EOF
cat >serial-bitmap.spec <<'EOF'
serial: 5
serial: 7
serial: 9
EOF
cat >serial-topbit.spec <<'EOF'
serial: 1-8
serial: 10
EOF
cat >serial-mixed.spec <<'EOF'
serial: 16
serial: 100-200
serial: 300
serial: 302
serial: 303
serial: 305
serial: 309
serial: 400
serial: 500
serial: 510-515
serial: 600
serial: 1000000
serial: 1000003
serial: 1000500
serial: 1000501
serial: 2000000-3000000
serial: 3000005
EOF
cat >key-ids.spec <<'EOF'
id: alice
id: bob@example.com
id:     leading blanks are skipped
id: inner  spaces	and tabs are kept   
ID: Zürich ünïcode
id: # an empty key ID: everything after # is a comment
id: alice
EOF
cat >wildcard.spec <<'EOF'
serial: 1-10
serial: 99
id: anyone
EOF
{
	printf 'key: %s\n' "$(cat user1.pub)"
	printf 'KEY: %s\n' "$(cat user2.pub)"
	cat user3.pub
	printf 'key: %s\n' "$(cat user4-cert.pub)" # a certificate: its key
} >explicit.spec
{
	printf 'sha1: %s\n' "$(cat user1.pub)"
	printf 'sha1: %s\n' "$(cat user3.pub)"
	printf 'sha1: %s\n' "$(cat user2-cert.pub)"
} >sha1.spec
{
	printf 'sha256: %s\n' "$(cat user2.pub)"
	printf 'hash: %s\n' "$(ssh-keygen -l -f user5.pub | cut -d' ' -f2)"
	printf 'hash: %s=\n' "$(ssh-keygen -l -f user4.pub | cut -d' ' -f2)"
} >sha256.spec
{
	cat user1-cert.pub # serial 42 under ca1
	cat user2-cert.pub # serial 0: key ID under ca2
	cat user4-cert.pub # serial 77 under ca3
} >certs.spec
cat >ca1.spec <<'EOF'
serial: 1-5
serial: 40
serial: 42
id: alice
EOF
cat >ca2.spec <<'EOF'
serial: 7
id: bob@example.com
EOF
cat >ca3.spec <<'EOF'
serial: 100-100000
serial: 100002
id: carol
EOF

krl() { # out [ssh-keygen options...] -- files
	out=$1
	shift
	ssh-keygen -q -k -f "$out" "$@"
}
krl empty.krl -z 1 empty.spec
krl serial-list.krl -z 2 -s ca1.pub serial-list.spec
krl serial-range.krl -z 3 -s ca1.pub serial-range.spec
krl serial-bitmap.krl -z 4 -s ca1.pub serial-bitmap.spec
krl serial-topbit.krl -z 5 -s ca1.pub serial-topbit.spec
krl serial-mixed.krl -z 6 -s ca2.pub serial-mixed.spec
krl key-ids.krl -z 7 -s ca1.pub key-ids.spec
krl wildcard.krl -z 8 -s none wildcard.spec
krl explicit.krl -z 9 explicit.spec
krl sha1.krl -z 10 sha1.spec
krl sha256.krl -z 11 sha256.spec
krl certs.krl -z 12 certs.spec
krl comment.krl -z 13 -C 'golden comment' -s ca1.pub serial-bitmap.spec
# Several CAs: one invocation per CA, -u adds to the existing file.
krl multi-ca.krl -z 14 -s ca2.pub ca2.spec
krl multi-ca.krl -u -s ca1.pub ca1.spec
krl multi-ca.krl -u -s none wildcard.spec
krl multi-ca.krl -u -s ca3.pub ca3.spec certs.spec
krl everything.krl -z 15 -s ca1.pub ca1.spec serial-mixed.spec key-ids.spec explicit.spec sha1.spec
krl everything.krl -u -s ca3.pub ca3.spec sha256.spec certs.spec
krl everything.krl -u -s none wildcard.spec
# ssh-keygen's oversized-bitmap bug: odd serials 1..40001 make one bitmap of
# 40001 bits, which ssh-keygen -Q then refuses to load (16384-bit limit).
seq 1 2 40001 | sed 's/^/serial: /' >oversized.spec
krl oversized-bitmap.krl -z 16 -s ca1.pub oversized.spec
rm oversized.spec
if ssh-keygen -Q -f oversized-bitmap.krl ca1.pub >/dev/null 2>&1; then
	echo "make.sh: ssh-keygen loaded oversized-bitmap.krl; the bug is fixed here" >&2
fi
