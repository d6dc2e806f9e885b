package fleet

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestHostCARotationFinishes: after a host CA rotation is promoted, `sshca
// sync` renews the host certificate under the active key although it is far
// from expiry, sshd serves the new certificate, `fleet status` flags the host
// until then (host-cert-old-ca), and `ca retire --type host` then succeeds
// without --force instead of waiting for the old certificate to expire.
func TestHostCARotationFinishes(t *testing.T) {
	requireOpenSSH(t)
	t.Parallel()
	svc := newService(t)
	h := svc.newHost("30d", "127.0.0.1", "app-01.test")
	h.mustSync()
	srv := h.startSSHD()
	first := h.Cert()
	gen1 := ssh.FingerprintSHA256(first.SignatureKey)
	certFile := "installed ssh_host_ed25519_key-cert.pub"
	status := func() (string, string) {
		t.Helper()
		out := svc.Must("fleet", "status")
		return statusColumn(t, out)[h.name], out
	}

	// A next key changes nothing for the host certificate.
	svc.Must("ca", "rotate", "--type", "host")
	if out := h.mustSync("--sshd-pid-file", h.PidFile); strings.Contains(out, certFile) {
		t.Fatalf("sync renewed the host certificate before the promotion:\n%s", out)
	}
	if st, out := status(); st != "ok" {
		t.Fatalf("fleet status before the promotion: %q\n%s", st, out)
	}

	// Promotion: the host's last report names a certificate of the now
	// retiring key.
	svc.Must("ca", "rotate", "--type", "host", "--promote")
	if st, out := status(); !strings.Contains(st, "host-cert-old-ca") {
		t.Fatalf("fleet status after the promotion: %q, want host-cert-old-ca\n%s", st, out)
	}
	if _, errs, code := svc.Run("ca", "retire", "--type", "host", "1"); code == 0 || !strings.Contains(errs, "still valid") {
		t.Fatalf("ca retire while the host is on generation 1: exit %d, %q", code, errs)
	}

	// sync renews under the active key; the service may sign with its
	// cached active key for a few seconds, so sync until it is the new one.
	deadline := time.Now().Add(30 * time.Second)
	cert := first
	for ssh.FingerprintSHA256(cert.SignatureKey) == gen1 {
		if time.Now().After(deadline) {
			t.Fatalf("sync never renewed the host certificate under the new host CA key")
		}
		before := listenCount(srv)
		out := h.mustSync("--sshd-pid-file", h.PidFile)
		if !strings.Contains(out, certFile) {
			t.Fatalf("sync did not renew a certificate of the retiring key:\n%s", out)
		}
		h.waitReloaded(srv, before)
		cert = h.Cert()
		if ssh.FingerprintSHA256(cert.SignatureKey) == gen1 {
			time.Sleep(time.Second)
		}
	}
	if cert.Serial == first.Serial || strings.Join(cert.ValidPrincipals, ",") != strings.Join(first.ValidPrincipals, ",") {
		t.Fatalf("renewed certificate: serial %d (was %d), principals %v (was %v)", cert.Serial, first.Serial, cert.ValidPrincipals, first.ValidPrincipals)
	}
	if got := keyscanCert(t, srv); got.Serial != cert.Serial || ssh.FingerprintSHA256(got.SignatureKey) == gen1 {
		t.Fatalf("sshd serves serial %d signed by %s, want the renewed %d", got.Serial, ssh.FingerprintSHA256(got.SignatureKey), cert.Serial)
	}
	// Once on the active key, sync leaves the certificate alone.
	if out := h.mustSync("--sshd-pid-file", h.PidFile); strings.Contains(out, certFile) {
		t.Fatalf("sync renewed a certificate of the active key:\n%s", out)
	}
	st, out := status()
	if strings.Contains(st, "host-cert-old-ca") { // the role's 2h renewal lifetime may flag host-cert-expiring
		t.Fatalf("fleet status after the renewal: %q\n%s", st, out)
	}
	if !strings.Contains(out, "HOST CA GEN") {
		t.Fatalf("fleet status has no HOST CA GEN column:\n%s", out)
	}
	t.Logf("$ sshca fleet status\n%s", out)

	// The rotation finishes: generation 1 retires without --force.
	svc.Must("ca", "retire", "--type", "host", "1")
	if out := svc.Must("ca", "list", "--type", "host"); !strings.Contains(out, "retired") {
		t.Fatalf("ca list after retire:\n%s", out)
	}
}
