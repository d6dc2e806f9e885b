package revocation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
)

// TestKeyIDRevocationAcrossRotation: a key ID revoked under the old CA
// generation stays revoked there, while a certificate of the new generation
// that reuses the key ID logs in to a real sshd trusting both generations
// with sshca's KRL, of each OpenSSH release.
func TestKeyIDRevocationAcrossRotation(t *testing.T) {
	releases := opensshtest.All(t)
	h := newHome(t, "ed25519")
	dir := t.TempDir()
	keys := map[string]string{}
	for _, name := range []string{"old", "new"} {
		priv, _ := sshdtest.GenerateKey(t, dir, "ed25519")
		p := filepath.Join(dir, name)
		for _, suffix := range []string{"", ".pub"} {
			if err := os.Rename(priv+suffix, p+suffix); err != nil {
				t.Fatal(err)
			}
		}
		keys[name] = p
	}
	h.Must("sign", "user", "--role", "deploy", "--id", "shared", "--ttl", "30m", keys["old"]+".pub")
	h.Must("revoke", "--key-id", "shared", "--reason", "old laptop")
	h.Must("ca", "rotate", "--type", "user")
	h.Must("ca", "rotate", "--type", "user", "--promote")
	h.Must("sign", "user", "--role", "deploy", "--id", "shared", "--ttl", "30m", keys["new"]+".pub")
	krlPath := filepath.Join(dir, "revoked.krl")
	h.Must("krl", "--out", krlPath)

	trusted := strings.Split(strings.TrimSpace(h.Must("ca", "show", "--type", "user")), "\n")
	if len(trusted) < 2 {
		t.Fatalf("ca show lists %d keys after rotation, want both generations", len(trusted))
	}
	for _, rel := range releases {
		srv := sshdtest.Start(t, sshdtest.Config{
			OpenSSH:           rel,
			TrustedUserCAKeys: trusted,
			Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}},
			RevokedKeysFile:   krlPath,
		})
		if r := srv.Login(t, sshdtest.LoginOptions{IdentityFile: keys["old"]}); r.OK {
			t.Errorf("%s: old generation's certificate with the revoked key ID logged in\n%s", rel, r.ServerLog)
		}
		if r := srv.Login(t, sshdtest.LoginOptions{IdentityFile: keys["new"]}); !r.OK {
			t.Errorf("%s: new generation's certificate reusing the key ID refused: %s\n%s", rel, r.Stderr, r.ServerLog)
		}
	}
}
