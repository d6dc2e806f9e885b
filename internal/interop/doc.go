// Package interop proves, with evidence, which SSH implementations accept
// the certificates sshca issues. Its test logs in to real OpenSSH sshds
// (Debian 12's 9.2 and the newest upstream release, see package
// opensshtest) and to an in-process x/crypto/ssh server with the ssh of
// both OpenSSH releases, Go's x/crypto/ssh, Python paramiko, Ruby net-ssh
// and PuTTY plink, for every CA
// key type and several subject key types, checks host certificates the same
// way, and writes the result to docs/compatibility.md
// (`go test ./internal/interop -update`).
//
// Outside its tests the package offers one thing: Authenticator, the
// public-key check a Go x/crypto/ssh server needs to accept sshca user
// certificates safely (trusted CAs, an sshca KRL, no SHA-1, no empty
// principal list). It never signs, never reads files or the clock on its
// own, and is imported by nothing in the sshca binary.
package interop
