//go:build unix

package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sshca/sshca/internal/testkit"
)

// writePassFile writes a passphrase file with mode m (exactly, whatever
// the umask).
func writePassFile(t *testing.T, dir, name, pass string, m os.FileMode) string {
	t.Helper()
	return testkit.WriteFile(t, filepath.Join(dir, name), []byte(pass+"\n"), m)
}

// TestPassphraseFileMode checks that every command taking --passphrase-file
// refuses a file that group or others may read or write, or that is not a
// regular file, with one error line naming the file and its mode and a
// `chmod 600` hint, before reading it; 0600 and 0400 are accepted.
func TestPassphraseFileMode(t *testing.T) {
	secrets := t.TempDir()
	good := writePassFile(t, secrets, "good", testPassphrase, 0o600)
	encrypted := initHome(t, "--passphrase-file", good)
	pub := newKey(t, t.TempDir(), "id_ed25519", "-t", "ed25519")
	fifo := filepath.Join(secrets, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}

	commands := map[string]func(pf string) []string{
		"init": func(pf string) []string {
			return []string{"--home", filepath.Join(t.TempDir(), "ca"), "init", "--passphrase-file", pf}
		},
		"sign": func(pf string) []string {
			return []string{"--home", encrypted, "sign", "user", "--role", "deploy", "--id", "pass-test", "--out", filepath.Join(t.TempDir(), "c"), "--passphrase-file", pf, pub}
		},
		"ca-rotate": func(pf string) []string {
			return []string{"--home", encrypted, "ca", "rotate", "--type", "user", "--passphrase-file", pf}
		},
	}
	for _, tc := range []struct {
		name string
		mode os.FileMode // 0: not a regular file (fifo)
	}{
		{name: "fail/0644", mode: 0o644},
		{name: "fail/0640", mode: 0o640},
		{name: "fail/0604", mode: 0o604},
		{name: "fail/0620-group-writable", mode: 0o620},
		{name: "fail/0602-others-writable", mode: 0o602},
		{name: "fail/fifo"},
		{name: "fail/directory", mode: os.ModeDir | 0o700},
	} {
		for cmd, args := range commands {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				var pf string
				switch {
				case tc.mode == 0:
					pf = fifo // opening it would block: the check comes from the open file's mode
				case tc.mode.IsDir():
					pf = t.TempDir()
				default:
					pf = writePassFile(t, t.TempDir(), "pass", testPassphrase, tc.mode)
				}
				if tc.mode == 0 {
					// Open a FIFO for reading blocks until a writer comes:
					// give it one so that the refusal, not a hang, is tested.
					go func() {
						if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
							w.Close()
						}
					}()
				}
				r := runCLI(t, args(pf)...)
				if r.code != 1 {
					t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
				}
				lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
				if len(lines) != 2 || !strings.HasPrefix(lines[0], "sshca: error: ") || !strings.Contains(lines[0], "passphrase file "+pf+" ") || !strings.HasPrefix(lines[1], "sshca: hint: ") {
					t.Fatalf("stderr is not one error line naming %s and one hint:\n%s", pf, r.stderr)
				}
				if tc.mode != 0 && tc.mode.IsRegular() {
					if !strings.Contains(lines[0], fmt.Sprintf("mode %04o", tc.mode.Perm())) || lines[1] != "sshca: hint: chmod 600 "+pf {
						t.Errorf("stderr does not name the mode %04o and hint `chmod 600 %s`:\n%s", tc.mode.Perm(), pf, r.stderr)
					}
				} else if !strings.Contains(lines[0], "not a regular file") {
					t.Errorf("stderr does not say the file is not a regular file:\n%s", r.stderr)
				}
				if strings.Contains(r.stderr+r.stdout, testPassphrase) {
					t.Error("the refusal prints the passphrase")
				}
			})
		}
	}
	t.Run("ok/0400/sign", func(t *testing.T) {
		pf := writePassFile(t, t.TempDir(), "pass", testPassphrase, 0o400)
		mustRun(t, commands["sign"](pf)...)
	})
}

// TestPassphraseLength checks the minimum length of a passphrase that
// encrypts new CA keys (init, ca rotate), and that a home whose keys were
// encrypted under a shorter one before the rule still signs, with a
// warning that prints nothing of the passphrase.
func TestPassphraseLength(t *testing.T) {
	requireKeygen(t)
	secrets := t.TempDir()
	const short = "hunter2hunt" // 11 characters
	shortFile := writePassFile(t, secrets, "short", short, 0o600)

	t.Run("fail/init-short", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ca")
		r := runCLI(t, "--home", dir, "init", "--passphrase-file", shortFile)
		if r.code != 1 || !strings.Contains(r.stderr, "shorter than 12 characters") || !strings.Contains(r.stderr, "sshca: hint:") {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
		if strings.Contains(r.stderr+r.stdout, short) {
			t.Error("the refusal prints the passphrase")
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("init left %s behind", dir)
		}
	})
	t.Run("ok/init-12", func(t *testing.T) {
		mustRun(t, "--home", filepath.Join(t.TempDir(), "ca"), "init", "--passphrase-file", writePassFile(t, t.TempDir(), "p", "abcdefghijkl", 0o600))
	})

	// An old home: keys re-encrypted under the short passphrase, as a
	// release without the rule allowed.
	long := writePassFile(t, secrets, "long", testPassphrase, 0o600)
	old := initHome(t, "--passphrase-file", long)
	for _, k := range []string{"user-ca-1", "host-ca-1"} {
		keygen(t, "-q", "-p", "-P", testPassphrase, "-N", short, "-f", filepath.Join(old, "keys", k))
	}
	t.Run("ok/old-short-passphrase-signs", func(t *testing.T) {
		pub := newKey(t, t.TempDir(), "id_ed25519", "-t", "ed25519")
		r := runCLI(t, "--home", old, "sign", "user", "--role", "deploy", "--id", "pass-test", "--out", filepath.Join(t.TempDir(), "c"), "--passphrase-file", shortFile, pub)
		if r.code != 0 {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "sshca: warning: the CA key passphrase is shorter than 12 characters") {
			t.Errorf("no warning about the short passphrase:\n%s", r.stderr)
		}
		if strings.Contains(r.stderr+r.stdout, short) {
			t.Error("the warning prints the passphrase")
		}
	})
	t.Run("fail/rotate-with-short", func(t *testing.T) {
		r := runCLI(t, "--home", old, "ca", "rotate", "--type", "user", "--passphrase-file", shortFile)
		if r.code != 1 || !strings.Contains(r.stderr, "shorter than 12 characters") || !strings.Contains(r.stderr, "ssh-keygen -p") {
			t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(old, "keys", "user-ca-2")); !os.IsNotExist(err) {
			t.Error("rotate created a key under the short passphrase")
		}
	})
}
