// Package readme runs the README's walk-through as a user pastes it, so
// that it cannot rot.
package readme

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildLine is the README's first command; the test runs it from the
// repository root into a scratch directory, then the rest of the block
// there.
const buildLine = `CGO_ENABLED=0 go build -o sshca ./cmd/sshca && export PATH="$PWD:$PATH"   # one static binary`

// walkthrough returns the lines of the first sh block after "## Walk-through".
func walkthrough(t *testing.T, readme string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n## Walk-through\n")
	if !ok {
		t.Fatal("README has no Walk-through section")
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("the Walk-through has no sh block")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("the Walk-through's sh block is not closed")
	}
	return strings.Split(strings.TrimRight(block, "\n"), "\n")
}

func need(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing", tool)
		}
		t.Skipf("%s is missing", tool)
	}
}

func TestReadmeWalkthrough(t *testing.T) {
	need(t, "ssh-keygen")
	need(t, "bash")
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := walkthrough(t, string(data))
	if lines[0] != buildLine {
		t.Fatalf("the walk-through starts with %q; this test knows how to run %q", lines[0], buildLine)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "sshca"), "./cmd/sshca")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's build command: %v\n%s", err, out)
	}
	script := "set -euo pipefail\nexport PATH=\"$PWD:$PATH\"\n" + strings.Join(lines[1:], "\n") + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "SSHCA_HOME=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the walk-through failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"version",                 // sshca version
		"@cert-authority *.corp ", // ca show --known-hosts
		"alice-cert.pub: ok",      // krl check
		"revoked",                 // list shows alice-shift revoked
		"audit log intact",        // audit verify
		"Signed host certificate app-01-cert.pub",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the walk-through's output lacks %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{"alice-cert.pub", "alice-shift-cert.pub", "app-01-cert.pub", "revoked.krl"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the walk-through did not write %s: %v", f, err)
		}
	}
	// ssh-keygen -Q is the oracle for the KRL the walk-through wrote.
	q, _ := exec.Command("ssh-keygen", "-Q", "-f", filepath.Join(dir, "revoked.krl"), filepath.Join(dir, "alice-shift-cert.pub"), filepath.Join(dir, "alice-cert.pub")).CombinedOutput()
	if !strings.Contains(string(q), "alice-shift-cert.pub): REVOKED") || !strings.Contains(string(q), "/alice-cert.pub): ok") {
		t.Errorf("ssh-keygen -Q disagrees with the walk-through:\n%s", q)
	}
}
