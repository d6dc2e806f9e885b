package e2etest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Binary is the sshca command built from this module's ./cmd/sshca (without
// the race detector) into a temporary directory, at most once per test
// process. A test package that needs a real process (to deliver a real
// signal, or to see its real output) keeps one in a package variable,
// builds it in TestMain and removes it there after the tests.
type Binary struct {
	once      sync.Once
	dir, path string
	err       error
}

// Build builds the binary on its first call and returns its path, or why
// there is none.
func (b *Binary) Build() (string, error) {
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "sshca-e2e-bin-")
		if b.err == nil {
			b.path, b.err = buildSSHCA(b.dir)
		}
	})
	return b.path, b.err
}

// Path returns the built binary, building it first if need be, or fails
// the test.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	path, err := b.Build()
	if err != nil {
		t.Fatalf("build sshca: %v", err)
	}
	return path
}

// Remove deletes the binary and its directory.
func (b *Binary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// buildSSHCA builds ./cmd/sshca of the module the test runs in into dir.
func buildSSHCA(dir string) (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		return "", errors.New("not inside the sshca module")
	}
	bin := filepath.Join(dir, "sshca")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sshca")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sshca: %w\n%s", err, out)
	}
	return bin, nil
}
