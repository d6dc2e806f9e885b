package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/testkit"
)

const keygenPath = "/usr/bin/ssh-keygen"

// testEnv is the environment every in-process run sees: none of the
// caller's SSHCA_* variables leak in.
func testEnv(name string) string {
	if name == "USER" {
		return "clitest"
	}
	return ""
}

// result is the outcome of one in-process sshca run.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs sshca in-process with args and an empty stdin.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(t.Context(), args, strings.NewReader(""), &stdout, &stderr, testEnv)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustRun runs sshca and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	r := runCLI(t, args...)
	if r.code != 0 {
		t.Fatalf("sshca %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// requireKeygen skips the test without ssh-keygen, or fails it under CI=true.
func requireKeygen(t *testing.T) {
	t.Helper()
	testkit.RequireTool(t, keygenPath)
}

// keygen runs ssh-keygen with args and returns its stdout.
func keygen(t *testing.T, args ...string) string {
	t.Helper()
	requireKeygen(t)
	cmd := exec.Command(keygenPath, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ssh-keygen %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// newKey makes an unencrypted key pair at dir/name with ssh-keygen and
// returns the public key's path. typeArgs are e.g. "-t", "ed25519".
func newKey(t *testing.T, dir, name string, typeArgs ...string) string {
	t.Helper()
	priv := filepath.Join(dir, name)
	keygen(t, append([]string{"-q", "-N", "", "-C", "clitest", "-f", priv}, typeArgs...)...)
	return priv + ".pub"
}

// initHome creates a CA home in a fresh temporary directory.
func initHome(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	mustRun(t, append([]string{"--home", dir, "init"}, args...)...)
	return dir
}

// writePolicy replaces the home's sshca.yaml.
func writePolicy(t *testing.T, homeDir, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(homeDir, home.ConfigFile), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readCert parses a certificate file.
func readCert(t *testing.T, path string) *ssh.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s: %s is not a certificate", path, pub.Type())
	}
	return c
}

// storeState is what the database holds, read directly through the store.
type storeState struct {
	certs     []store.CertRecord
	maxSerial uint64
	audit     []audit.Entry
}

func readStore(t *testing.T, homeDir string) storeState {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(homeDir, home.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var s storeState
	if s.certs, err = st.ListCerts(t.Context(), store.CertFilter{}); err != nil {
		t.Fatal(err)
	}
	if s.maxSerial, err = st.MaxSerial(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.audit, err = st.AuditEntries(t.Context(), store.AuditFilter{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshotFiles maps every regular file under the dirs (except the
// database, which the audit log may legitimately grow, and the audit head
// kept beside it) to its content.
func snapshotFiles(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || strings.HasPrefix(d.Name(), home.DBFile) || d.Name() == home.HeadFile {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[p] = string(b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}
