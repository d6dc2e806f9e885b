// Package e2etest is test support for sshca's end-to-end test packages
// under internal/e2e: it runs the sshca command line on a CA home
// (in-process through cli.Run, or as a built binary), starts and stops
// `sshca serve`, and holds the small helpers those packages share (the
// current user, certificate files); the helpers every package's tests share
// are in package testkit.
//
// It is test support only: every function takes a testing.TB or is meant
// for a TestMain, and it is never imported by product code. It never
// touches anything outside the test's temporary directories, and a server
// it starts listens on 127.0.0.1 alone.
package e2etest

import (
	"os"
	"os/user"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// CurrentUser returns the name of the account the test runs as: the one a
// real sshd logs a test's ssh client in as.
func CurrentUser(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// Lines splits command output into its non-empty lines.
func Lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// ReadFile returns the content of the file at path, or fails the test.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ReadCert parses the OpenSSH certificate file at path (a <key>-cert.pub),
// or fails the test.
func ReadCert(t testing.TB, path string) *ssh.Certificate {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(ReadFile(t, path)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s: not a certificate", path)
	}
	return cert
}
