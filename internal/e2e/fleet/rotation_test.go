package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/sshdtest"
)

// TestHostCARotationFinishes: after a host CA rotation is promoted, `sshca
// sync` renews the host certificate under the active key although it is far
// from expiry, sshd serves the new certificate, `fleet status` flags the host
// until then (host-cert-old-ca), and `ca retire --type host` then succeeds
// without --force instead of waiting for the old certificate to expire.
// The service enrolls one host per OpenSSH release, each serving its
// certificate from an sshd of that release.
func TestHostCARotationFinishes(t *testing.T) {
	releases := requireOpenSSH(t)
	t.Parallel()
	svc := newService(t)
	hosts := make([]*host, len(releases))
	srvs := make([]*sshdtest.Server, len(releases))
	for i, rel := range releases {
		hosts[i] = svc.newHost("30d", fmt.Sprintf("app-%02d.test", i+1), "127.0.0.1")
		hosts[i].mustSync()
		srvs[i] = hosts[i].startSSHD(rel)
	}
	first := hosts[0].Cert()
	gen1 := ssh.FingerprintSHA256(first.SignatureKey)
	certFile := "installed ssh_host_ed25519_key-cert.pub"
	status := func(h *host) (string, string) {
		t.Helper()
		out := svc.Must("fleet", "status")
		return statusColumn(t, out)[h.name], out
	}

	// A next key changes nothing for the host certificates.
	svc.Must("ca", "rotate", "--type", "host")
	for _, h := range hosts {
		if out := h.mustSync("--sshd-pid-file", h.PidFile); strings.Contains(out, certFile) {
			t.Fatalf("sync renewed the host certificate before the promotion:\n%s", out)
		}
		if st, out := status(h); st != "ok" {
			t.Fatalf("fleet status before the promotion: %q\n%s", st, out)
		}
	}

	// Promotion: the hosts' last reports name certificates of the now
	// retiring key.
	svc.Must("ca", "rotate", "--type", "host", "--promote")
	for _, h := range hosts {
		if st, out := status(h); !strings.Contains(st, "host-cert-old-ca") {
			t.Fatalf("fleet status after the promotion: %q, want host-cert-old-ca\n%s", st, out)
		}
	}
	if _, errs, code := svc.Run("ca", "retire", "--type", "host", "1"); code == 0 || !strings.Contains(errs, "still valid") {
		t.Fatalf("ca retire while the hosts are on generation 1: exit %d, %q", code, errs)
	}
	for i, h := range hosts {
		t.Run(srvs[i].OpenSSH.Name, func(t *testing.T) { renewUnderNewHostCA(t, svc, h, srvs[i], gen1) })
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, h := range hosts {
		st, out := status(h)
		if strings.Contains(st, "host-cert-old-ca") { // the role's 2h renewal lifetime may flag host-cert-expiring
			t.Fatalf("fleet status after the renewal: %q\n%s", st, out)
		}
		if !strings.Contains(out, "HOST CA GEN") {
			t.Fatalf("fleet status has no HOST CA GEN column:\n%s", out)
		}
	}
	t.Logf("$ sshca fleet status\n%s", svc.Must("fleet", "status"))

	// The rotation finishes: generation 1 retires without --force.
	svc.Must("ca", "retire", "--type", "host", "1")
	if out := svc.Must("ca", "list", "--type", "host"); !strings.Contains(out, "retired") {
		t.Fatalf("ca list after retire:\n%s", out)
	}
}

// renewUnderNewHostCA syncs h until its certificate is signed by another
// host CA key than gen1, and checks that srv serves it after the reload.
func renewUnderNewHostCA(t *testing.T, svc *service, h *host, srv *sshdtest.Server, gen1 string) {
	first := h.Cert()
	certFile := "installed ssh_host_ed25519_key-cert.pub"

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
	// The client of the server's release verifies it through the host CA.
	alice, _ := svc.userCert("alice-" + srv.OpenSSH.Name)
	r := mustLogin(t, srv, alice, svc.knownHosts(srv))
	if want := fmt.Sprintf("serial %d ID", cert.Serial); !strings.Contains(r.Stderr, want) {
		t.Fatalf("ssh did not verify the renewed host certificate (%s):\n%s", want, r.Stderr)
	}
}
