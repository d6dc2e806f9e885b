package lifecycle

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
)

// startSSHDs starts an sshd of each OpenSSH release with cfg; Login then
// runs the ssh of the server's release.
func startSSHDs(t *testing.T, cfg sshdtest.Config) []*sshdtest.Server {
	t.Helper()
	var srvs []*sshdtest.Server
	for _, rel := range opensshtest.All(t) {
		cfg.OpenSSH = rel
		srvs = append(srvs, sshdtest.Start(t, cfg))
	}
	return srvs
}

// TestRevokeKey is acceptance 4 of issue 6: after `ca revoke-key` and a
// new KRL, a real sshd refuses every certificate of the old CA key, even
// while it still trusts that key, and certificates of the fresh key log in
// once the server trusts what `ca show` publishes. An sshd of each OpenSSH
// release judges every login.
func TestRevokeKey(t *testing.T) {
	h := newHome(t, "ed25519")
	dir := t.TempDir()
	krlPath := filepath.Join(dir, "revoked.krl")
	h.Must("krl", "--out", krlPath) // an empty, valid KRL before sshd starts
	gens := h.wantStates("user", map[int]string{1: "active"})

	var oldKeys []string
	for _, id := range []string{"old-a", "old-b", "old-c"} {
		key, cert := h.signUser(dir, id, "30m")
		signedBy(t, id, cert, gens[1].fingerprint)
		oldKeys = append(oldKeys, key)
	}
	oldTrust := h.wantPublished(gens, []int{1}, "--type", "user")
	srvs := startSSHDs(t, sshdtest.Config{
		TrustedUserCAKeys: oldTrust,
		Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}},
		RevokedKeysFile:   krlPath,
	})
	for _, srv := range srvs {
		for _, k := range oldKeys {
			mustLogin(t, srv, k, srv.OpenSSH.Name+": "+filepath.Base(k)+" before revoke-key")
		}
	}

	out := h.Must("ca", "revoke-key", "--type", "user", "--reason", "e2e: CA key leaked", "1")
	if !strings.Contains(out, "generation 2 is now active") {
		t.Fatalf("revoke-key output %q does not name the new active generation", out)
	}
	gens = h.wantStates("user", map[int]string{1: "revoked", 2: "active"})
	h.Must("krl", "--out", krlPath)

	// The server has not refreshed its trusted CAs: the KRL alone refuses.
	for _, srv := range srvs {
		for _, k := range oldKeys {
			mustBeRefused(t, srv, k, srv.OpenSSH.Name+": "+filepath.Base(k)+" after revoke-key", "revoked")
			out, _ := exec.Command(srv.OpenSSH.Keygen, "-Q", "-f", krlPath, k+"-cert.pub").CombinedOutput()
			if !strings.Contains(string(out), "REVOKED") {
				t.Errorf("%s: ssh-keygen -Q does not find %s revoked: %s", srv.OpenSSH, filepath.Base(k), out)
			}
		}
	}

	newKey, newCert := h.signUser(dir, "fresh", "30m")
	signedBy(t, "certificate after revoke-key", newCert, gens[2].fingerprint)
	for _, srv := range srvs {
		srv.SetTrustedUserCAKeys(t, h.wantPublished(gens, []int{2}, "--type", "user")...)
		mustLogin(t, srv, newKey, srv.OpenSSH.Name+": certificate of the fresh key")
		for _, k := range oldKeys {
			mustBeRefused(t, srv, k, srv.OpenSSH.Name+": "+filepath.Base(k)+" after the trust refresh", "")
		}
	}

	// The audit log records it, and stays verifiable.
	audit := e2etest.Lines(h.Must("audit", "list", "--action", "ca.revoke-key"))
	if len(audit) != 1 || !strings.Contains(audit[0], " ca.revoke-key ok") || !strings.Contains(audit[0], gens[1].fingerprint) ||
		!strings.Contains(audit[0], `reason="e2e: CA key leaked"`) || !strings.Contains(audit[0], `new_active="2"`) {
		t.Fatalf("audit list --action ca.revoke-key: %q", audit)
	}
	h.Must("audit", "verify")

	for _, tc := range []struct {
		name, gen, want string
	}{
		{name: "fail/already-revoked", gen: "1", want: "already revoked"},
		{name: "fail/no-such-generation", gen: "9", want: "no generation 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &caHome{&e2etest.Home{T: t, Dir: h.Dir, Env: h.Env}}
			_, errs, code := h.Run("ca", "revoke-key", "--type", "user", tc.gen)
			if code != 1 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and %q", code, errs, tc.want)
			}
			h.wantStates("user", map[int]string{1: "revoked", 2: "active"})
		})
	}
}
