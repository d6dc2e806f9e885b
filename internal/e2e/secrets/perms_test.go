package secrets

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/e2e/e2etest"
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
