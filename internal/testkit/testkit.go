// Package testkit is the one home of the helpers that sshca's tests share,
// whatever package they test: the "skip, or fail under CI" rule for
// missing tools, running the test binary again as a child process, fresh
// SSH keys, and the standard test policy.
//
// It is test support only: every function takes a testing.TB or is meant
// for a TestMain, and no product code imports it (`go list -deps
// ./cmd/sshca` does not list it). It imports nothing of sshca's, so the
// tests of any package, however low, can use it; helpers that need a CA
// home live in its subpackage testhome.
package testkit

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// CI reports whether the tests run under CI: the environment variable CI
// is "true" (as GitHub Actions and most CI systems set it). There a missing
// tool or service is a failure, never a skip.
func CI() bool { return onCI(os.Getenv) }

func onCI(getenv func(string) string) bool { return getenv("CI") == "true" }

// SkipOrFatal skips the test with the message, or fails it under CI, where
// a missing oracle must not let a test pass silently.
func SkipOrFatal(t testing.TB, format string, args ...any) {
	t.Helper()
	skipOrFatal(t, os.Getenv, format, args...)
}

func skipOrFatal(t testing.TB, getenv func(string) string, format string, args ...any) {
	t.Helper()
	if onCI(getenv) {
		t.Fatalf(format, args...)
		return // for a testing.TB whose Fatalf returns
	}
	t.Skipf(format, args...)
}

// RequireTool returns the path of the program name (a name looked up in
// PATH, or a path), skipping the test when it is missing or not executable,
// or failing it under CI.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		SkipOrFatal(t, "%s is missing: %v", name, err)
	}
	return path
}

// RequireTools is RequireTool for several programs.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		RequireTool(t, n)
	}
}

// NewSigner returns a fresh Ed25519 key as an ssh.Signer, or fails the test.
func NewSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// AuthorizedKey renders pub as one authorized_keys line, without the
// trailing newline.
func AuthorizedKey(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}
