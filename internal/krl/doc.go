// Package krl reads, writes and evaluates OpenSSH key revocation lists
// (PROTOCOL.krl, as implemented by OpenSSH's krl.c), and reads the
// revocation specification files that `ssh-keygen -k` takes.
//
// Section references (§) are to the team's notes on the OpenSSH formats,
// spec/openssh-formats.md, which cite PROTOCOL.krl and krl.c.
//
// Parse accepts exactly what OpenSSH's ssh_krl_from_blob accepts (§3.4)
// and additionally bounds the memory a hostile input can make it use.
// Marshal writes the canonical form that `ssh-keygen -k` writes (§3.5,
// §3.6), byte for byte, with one deliberate difference: a serial bitmap is
// never allowed to grow past the 16384 bits that OpenSSH's own reader
// accepts, so every KRL this package writes can be loaded by sshd. Check
// answers the question sshd asks (§3.7).
//
// The package never signs KRLs and never writes the legacy SIGNATURE
// section; it never reads files, the clock or randomness on its own, and it
// imports nothing else from sshca.
package krl
