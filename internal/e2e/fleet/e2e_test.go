package fleet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshdtest"
)

// TestEnrollSyncLoginRevoke is acceptance 1 and 2: a server enrolled with a
// one-time token and configured from `sshca sync` and `sshca sshd-config`
// accepts a certificate from `sshca login`, the client verifies its host
// certificate through `sshca ssh-config`'s @cert-authority line; after a
// revocation at the service, `fleet wait` fails until the server syncs,
// then sshd refuses the certificate and `fleet wait` succeeds. An sshd of
// each OpenSSH release serves the same synced files.
func TestEnrollSyncLoginRevoke(t *testing.T) {
	releases := requireOpenSSH(t)
	t.Parallel()
	svc := newService(t)
	h := svc.newHost("1h", "127.0.0.1", "web-01.test")
	enrolled := h.Cert()

	// First sync on a server with no KRL: it installs everything, the
	// empty KRL first.
	out := h.mustSync()
	for _, want := range []string{"installed revoked.krl (empty)", "installed trusted_user_ca_keys", "installed principals/" + e2etest.CurrentUser(t)} {
		if !strings.Contains(out, want) {
			t.Fatalf("first sync output lacks %q:\n%s", want, out)
		}
	}
	// The agent installs the CA's key re-serialised, with its own comment,
	// not the bytes the service sent.
	caFields := strings.Fields(svc.Must("ca", "show", "--type", "user"))
	if len(caFields) < 2 {
		t.Fatalf("sshca ca show printed %q", caFields)
	}
	want := caFields[0] + " " + caFields[1] + " sshca-user-ca\n"
	if got := e2etest.ReadFile(t, filepath.Join(h.Dir, "trusted_user_ca_keys")); got != want {
		t.Fatalf("trusted_user_ca_keys = %q, want the CA's key %q", got, want)
	}
	assertModes(t, h.Dir)

	srvs := h.startSSHDs(releases)
	known := map[*sshdtest.Server][]string{}
	for _, srv := range srvs {
		known[srv] = svc.knownHosts(srv)
	}
	alice, aliceCert := svc.userCert("alice")

	t.Run("ok/login-verifies-host-certificate", func(t *testing.T) {
		eachSSHD(t, srvs, func(t *testing.T, srv *sshdtest.Server) {
			r := mustLogin(t, srv, alice, known[srv])
			// ssh says which host certificate it verified: the enrolled one.
			want := fmt.Sprintf("serial %d ID %q", enrolled.Serial, enrolled.KeyId)
			if !strings.Contains(r.Stderr, "Server host certificate: ssh-ed25519-cert-v01@openssh.com") || !strings.Contains(r.Stderr, want) {
				t.Fatalf("ssh did not verify the enrolled host certificate (%s):\n%s", want, r.Stderr)
			}
			if !strings.Contains(r.Stderr, "matches the ED25519-CERT host certificate") {
				t.Fatalf("ssh did not match the host certificate against the @cert-authority line:\n%s", r.Stderr)
			}
			if !strings.Contains(r.ServerLog, fmt.Sprintf("serial %d", aliceCert.Serial)) {
				t.Fatalf("sshd log does not show the user certificate:\n%s", r.ServerLog)
			}
		})
	})
	t.Run("fail/host-ca-not-trusted", func(t *testing.T) {
		eachSSHD(t, srvs, func(t *testing.T, srv *sshdtest.Server) {
			// The same login with another CA in known_hosts fails under
			// StrictHostKeyChecking=yes: the line above is what made it pass.
			_, pub := sshdtest.GenerateKey(t, t.TempDir(), "ed25519")
			r := login(t, srv, alice, []string{srv.CertAuthorityLine(pub)})
			if r.OK || !strings.Contains(r.Stderr, "Host key verification failed") {
				t.Fatalf("login with an untrusted host CA: ok=%v\n%s", r.OK, r.Stderr)
			}
		})
	})

	// Revoke alice's certificate at the service with an admin token.
	admin, err := client.New(svc.URL, svc.FP)
	if err != nil {
		t.Fatal(err)
	}
	admin.Bearer = strings.TrimSpace(e2etest.ReadFile(t, svc.token("--admin", "--name", "oncall", "--ttl", "1h")))
	rev, err := admin.Revoke(t.Context(), api.RevocationRequest{Serial: aliceCert.Serial, Reason: "laptop lost"})
	if err != nil {
		t.Fatal(err)
	}
	if !rev.Added || rev.KRLVersion == 0 {
		t.Fatalf("revocation response %+v", rev)
	}

	t.Run("fail/fleet-wait-before-sync", func(t *testing.T) {
		start := time.Now()
		out, errs, code := svc.Run("fleet", "wait", "--krl-version", "latest", "--timeout", "2s")
		if code == 0 {
			t.Fatalf("fleet wait succeeded before the host synced:\n%s", out)
		}
		want := fmt.Sprintf("%s (has %d)", h.name, rev.KRLVersion-1)
		if !strings.Contains(errs, "timed out waiting for KRL version "+fmt.Sprint(rev.KRLVersion)) || !strings.Contains(errs, want) {
			t.Fatalf("fleet wait: exit %d, stderr does not list %q:\n%s", code, want, errs)
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Fatalf("fleet wait gave up after %v, before its 2s timeout", d)
		}
		// sshd still has the old KRL: the login still works, so what
		// refuses it below is the sync.
		eachSSHD(t, srvs, func(t *testing.T, srv *sshdtest.Server) { mustLogin(t, srv, alice, known[srv]) })
	})

	// fleet wait, started before the sync, returns 0 only after it.
	type result struct {
		out, errs string
		code      int
		at        time.Time
	}
	waited := make(chan result, 1)
	go func() {
		out, errs, code := svc.Run("fleet", "wait", "--krl-version", fmt.Sprint(rev.KRLVersion), "--timeout", "30s")
		waited <- result{out, errs, code, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-waited:
		t.Fatalf("fleet wait returned before the sync: exit %d %s%s", r.code, r.out, r.errs)
	default:
	}
	out = h.mustSync()
	synced := time.Now()
	if !strings.Contains(out, "installed revoked.krl") || !strings.Contains(out, fmt.Sprintf("KRL version %d", rev.KRLVersion)) {
		t.Fatalf("sync after the revocation:\n%s", out)
	}

	t.Run("ok/ssh-keygen-finds-the-certificate-revoked", func(t *testing.T) {
		for _, rel := range releases {
			out, _ := exec.Command(rel.Keygen, "-Q", "-f", filepath.Join(h.Dir, "revoked.krl"), alice+"-cert.pub").CombinedOutput()
			if !strings.Contains(string(out), "REVOKED") {
				t.Fatalf("%s ssh-keygen -Q on the synced KRL: %s", rel, out)
			}
		}
	})
	t.Run("fail/login-after-sync", func(t *testing.T) {
		eachSSHD(t, srvs, func(t *testing.T, srv *sshdtest.Server) { mustRefuse(t, srv, alice, known[srv], "revoked") })
	})
	t.Run("ok/fleet-wait-after-sync", func(t *testing.T) {
		var r result
		select {
		case r = <-waited:
		case <-time.After(20 * time.Second):
			t.Fatal("fleet wait did not return after the sync")
		}
		if r.code != 0 || !strings.Contains(r.out, fmt.Sprintf("every live host has KRL version %d", rev.KRLVersion)) {
			t.Fatalf("fleet wait: exit %d\n%s%s", r.code, r.out, r.errs)
		}
		if r.at.Before(synced.Add(-time.Second)) {
			t.Fatalf("fleet wait returned at %v, before the sync finished at %v", r.at, synced)
		}
		if out, errs, code := svc.Run("fleet", "wait", "--krl-version", "latest", "--timeout", "2s"); code != 0 {
			t.Fatalf("fleet wait --krl-version latest after the sync: exit %d %s%s", code, out, errs)
		}
	})
	t.Run("ok/fresh-certificate-still-logs-in", func(t *testing.T) {
		bob, _ := svc.userCert("bob")
		eachSSHD(t, srvs, func(t *testing.T, srv *sshdtest.Server) { mustLogin(t, srv, bob, known[srv]) })
	})
}

// assertModes checks what sshd needs of the synced files: world-readable
// (sshd reads principals files as the target user), not writable by others.
func assertModes(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"trusted_user_ca_keys", "revoked.krl", "principals", filepath.Join("principals", e2etest.CurrentUser(t))} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o644)
		if fi.IsDir() {
			want = 0o755
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "revoked.krl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := krl.Parse(data); err != nil {
		t.Fatalf("revoked.krl: %v", err)
	}
}
