package secrets

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

const permsPolicy = `backdate: 5m
service:
  listen: 127.0.0.1:0
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
`

// TestCAKeyFilePermissions checks that init and ca rotate create CA private
// keys readable by the owner only, and that `sshca serve` refuses to start
// (exit 1, naming the file and its mode) while any live CA key file — the
// active user or host key, or the next user key — is readable by group or
// others, and starts again once it is not.
func TestCAKeyFilePermissions(t *testing.T) {
	bin := sshcaBin.Path(t)
	tmp := t.TempDir()
	h := &e2etest.Home{T: t, Bin: bin, Dir: filepath.Join(tmp, "ca"), Env: e2etest.ChildEnv(tmp, "secrets-test")}
	h.Must("init")
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(permsPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	h.Must("ca", "rotate", "--type", "user") // user-ca-2, state next
	keys := filepath.Join(h.Dir, "keys")
	for _, name := range []string{"user-ca-1", "host-ca-1", "user-ca-2"} {
		fi, err := os.Stat(filepath.Join(keys, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s created with mode %04o, want 0600", name, got)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	for _, tc := range []struct {
		name string
		file string
		mode os.FileMode
	}{
		{name: "ok/user-0600", file: "user-ca-1", mode: 0o600},
		{name: "ok/user-0400", file: "user-ca-1", mode: 0o400},
		{name: "fail/user-0640", file: "user-ca-1", mode: 0o640},
		{name: "fail/user-0644", file: "user-ca-1", mode: 0o644},
		{name: "fail/user-0604", file: "user-ca-1", mode: 0o604},
		{name: "fail/host-0640", file: "host-ca-1", mode: 0o640},
		{name: "fail/host-0644", file: "host-ca-1", mode: 0o644},
		{name: "fail/next-user-0644", file: "user-ca-2", mode: 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(keys, tc.file)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.Chmod(path, 0o600) })
			logPath := filepath.Join(t.TempDir(), "serve.log")
			p, err := h.Serve(logPath)
			wantFail := strings.HasPrefix(tc.name, "fail/")
			if !wantFail {
				if err != nil {
					t.Fatalf("serve refused a %04o key file: %v", tc.mode, err)
				}
				p.Stop(t)
				return
			}
			if err == nil {
				p.Kill()
				t.Fatalf("serve started although %s has mode %04o", tc.file, tc.mode)
			}
			if code := p.Wait(); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			log, _ := os.ReadFile(logPath)
			msg := string(log)
			for _, want := range []string{"sshca: error:", path, fmt.Sprintf("%04o", tc.mode), "chmod 600"} {
				if !strings.Contains(msg, want) {
					t.Errorf("stderr does not name %q:\n%s", want, msg)
				}
			}
		})
	}
}

// homePolicy puts the audit file inside the home (%s is its path), so that
// the checks below cover it too.
const homePolicy = `backdate: 5m
service:
  listen: 127.0.0.1:0
  audit_file: %s
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
`

// publicFiles may be readable by others: public keys and the service's
// TLS certificate. Everything else sshca puts in a home is secret.
func publicFile(path string) bool {
	return strings.HasSuffix(path, ".pub") || filepath.Base(path) == "tls-cert.pem"
}

// checkHomeModes stats everything in the home: every directory must be
// 0700, every file 0600 (public ones 0644). want lists files that must be
// there at this point.
func checkHomeModes(t *testing.T, when, dir string, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) { // a -wal or -shm gone since the listing
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seen[rel] = true
		wantMode := os.FileMode(0o600)
		switch {
		case d.IsDir():
			wantMode = 0o700
		case publicFile(p):
			wantMode = 0o644
		}
		if got := fi.Mode().Perm(); got != wantMode {
			t.Errorf("%s: %s has mode %04o, want %04o", when, rel, got, wantMode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("%s: %s is missing from the home (saw %v)", when, w, seen)
		}
	}
}

// TestHomePermissions checks, under umask 0 (so that no mode comes from
// the umask) and with the built binary, that the home is 0700 and every
// file sshca creates in it 0600 — the database and its -wal and -shm, the
// secrets key, the CA keys, the TLS key, an audit file kept in the home —
// after init into a directory made 0755 beforehand, while serve runs, and
// after a CLI command beside it; and that a home loosened by hand (or by an
// older sshca) is tightened by the next command and by serve, each saying
// so on stderr.
func TestHomePermissions(t *testing.T) {
	bin := sshcaBin.Path(t)
	old := syscall.Umask(0) // the process's, inherited by the children; this test is not parallel
	defer syscall.Umask(old)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "ca")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &e2etest.Home{T: t, Bin: bin, Dir: dir, Env: e2etest.ChildEnv(tmp, "secrets-test")}
	_, errs, code := h.Run("init")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "sshca: warning: "+dir+" had mode 0755; made it 0700") {
		t.Errorf("init did not say it tightened the home:\n%s", errs)
	}
	initFiles := []string{"sshca.yaml", "sshca.db", "keys", "keys/secrets.key", "keys/user-ca-1", "keys/user-ca-1.pub", "keys/host-ca-1"}
	checkHomeModes(t, "after init", dir, initFiles...)

	auditFile := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(filepath.Join(dir, "sshca.yaml"), fmt.Appendf(nil, homePolicy, auditFile), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := h.Serve(filepath.Join(tmp, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	running := append(initFiles, "sshca.db-wal", "sshca.db-shm", "tls-key.pem", "tls-cert.pem", "audit.jsonl")
	checkHomeModes(t, "while serve runs", dir, running...)
	key, _ := sshdtest.GenerateKey(t, t.TempDir(), "ed25519")
	h.Must("sign", "user", "--role", "deploy", "--id", "perms", key+".pub")
	checkHomeModes(t, "after sign beside serve", dir, running...)
	p.Stop(t)
	checkHomeModes(t, "after serve stopped", dir, "sshca.db", "tls-key.pem", "audit.jsonl")

	loosen := func() {
		t.Helper()
		for rel, m := range map[string]os.FileMode{".": 0o755, "keys": 0o755, "sshca.db": 0o644} {
			if err := os.Chmod(filepath.Join(dir, rel), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantNotices := func(t *testing.T, out string) {
		t.Helper()
		for _, w := range []string{
			"sshca: warning: " + dir + " had mode 0755; made it 0700",
			"sshca: warning: " + filepath.Join(dir, "keys") + " had mode 0755; made it 0700",
			"sshca: warning: " + filepath.Join(dir, "sshca.db") + " had mode 0644; made it 0600",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("no %q in:\n%s", w, out)
			}
		}
	}
	t.Run("ok/cli-tightens-loose-home", func(t *testing.T) {
		loosen()
		_, errs, code := h.Run("sign", "user", "--role", "deploy", "--id", "perms-2", key+".pub")
		if code != 0 {
			t.Fatalf("sign: exit %d: %s", code, errs)
		}
		wantNotices(t, errs)
		checkHomeModes(t, "after sign on a loose home", dir, "sshca.db")
	})
	t.Run("ok/serve-tightens-loose-home", func(t *testing.T) {
		loosen()
		logPath := filepath.Join(t.TempDir(), "serve.log")
		p, err := h.Serve(logPath)
		if err != nil {
			t.Fatal(err)
		}
		wantNotices(t, e2etest.ReadFile(t, logPath))
		checkHomeModes(t, "serve on a loose home", dir, "sshca.db", "sshca.db-wal")
		p.Stop(t)
	})
}

// TestPassphraseFilePermissions checks with the built binary that init,
// serve and ca rotate refuse a passphrase file that group or others can
// read (one error line naming the file and its mode, a `chmod 600` hint,
// exit 1, nothing of the passphrase printed), and that a new passphrase
// must have at least 12 characters.
func TestPassphraseFilePermissions(t *testing.T) {
	bin := sshcaBin.Path(t)
	tmp := t.TempDir()
	h := &e2etest.Home{T: t, Bin: bin, Dir: filepath.Join(tmp, "ca"), Env: e2etest.ChildEnv(tmp, "secrets-test")}
	passphrase := "pp-" + randomHex(t, 12)
	writePass := func(name, pass string, mode os.FileMode) string {
		t.Helper()
		return testkit.WriteFile(t, filepath.Join(tmp, name), []byte(pass+"\n"), mode)
	}
	loose := writePass("loose.pass", passphrase, 0o644)
	private := writePass("private.pass", passphrase, 0o600)
	short := writePass("short.pass", "short-pass", 0o600)

	refused := func(t *testing.T, out, errs string, code int, want ...string) {
		t.Helper()
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstderr: %s", code, errs)
		}
		if !strings.HasPrefix(errs, "sshca: error: ") || len(e2etest.Lines(errs)) != 2 {
			t.Errorf("stderr is not one error line and one hint:\n%s", errs)
		}
		for _, w := range want {
			if !strings.Contains(errs, w) {
				t.Errorf("stderr lacks %q:\n%s", w, errs)
			}
		}
		if strings.Contains(out+errs, passphrase) || strings.Contains(out+errs, "short-pass") {
			t.Error("a passphrase was printed")
		}
	}
	t.Run("fail/init-0644", func(t *testing.T) {
		out, errs, code := h.Run("init", "--passphrase-file", loose)
		refused(t, out, errs, code, loose, "0644", "sshca: hint: chmod 600 "+loose)
		if _, err := os.Stat(h.Dir); !os.IsNotExist(err) {
			t.Error("init created the home anyway")
		}
	})
	t.Run("fail/init-short", func(t *testing.T) {
		out, errs, code := h.Run("init", "--passphrase-file", short)
		refused(t, out, errs, code, short, "shorter than 12 characters")
	})
	h.Must("init", "--passphrase-file", private)
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(permsPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("fail/serve-0644", func(t *testing.T) {
		logPath := filepath.Join(t.TempDir(), "serve.log")
		p, err := h.Serve(logPath, "--passphrase-file", loose)
		if err == nil {
			p.Kill()
			t.Fatal("serve started with a passphrase file others can read")
		}
		refused(t, "", e2etest.ReadFile(t, logPath), p.Wait(), loose, "0644", "sshca: hint: chmod 600 "+loose)
	})
	t.Run("fail/serve-env-0644", func(t *testing.T) {
		logPath := filepath.Join(t.TempDir(), "serve.log")
		p, err := h.With(map[string]string{"SSHCA_PASSPHRASE_FILE": loose}).Serve(logPath)
		if err == nil {
			p.Kill()
			t.Fatal("serve started with a passphrase file others can read")
		}
		refused(t, "", e2etest.ReadFile(t, logPath), p.Wait(), loose, "0644", "chmod 600")
	})
	t.Run("fail/rotate-0644", func(t *testing.T) {
		out, errs, code := h.Run("ca", "rotate", "--type", "user", "--passphrase-file", loose)
		refused(t, out, errs, code, loose, "0644", "chmod 600")
	})
	t.Run("ok/serve-0600", func(t *testing.T) {
		p, err := h.Serve("", "--passphrase-file", private)
		if err != nil {
			t.Fatal(err)
		}
		p.Stop(t)
	})
}
