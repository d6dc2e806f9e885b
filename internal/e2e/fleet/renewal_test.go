package fleet

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
)

// TestHostRenewal is acceptance 4: a host enrolled with a short lifetime is
// renewed by `sshca sync` (proof of possession of the host key) before it
// expires, sync makes sshd reload, and sshd serves the new certificate, as
// ssh-keyscan -c and a client verifying it through @cert-authority show.
// The service enrolls one host per OpenSSH release, each with an sshd of
// that release (sync reloads it by its pid file).
func TestHostRenewal(t *testing.T) {
	releases := requireOpenSSH(t)
	t.Parallel()
	svc := newService(t)
	for i, rel := range releases {
		t.Run(rel.Name, func(t *testing.T) {
			hostRenewal(t, svc, rel, fmt.Sprintf("app-%02d.test", i+1))
		})
	}
}

func hostRenewal(t *testing.T, svc *service, rel *opensshtest.Flavour, name string) {
	h := svc.newHostFor(t, "1m", name, "127.0.0.1")
	first := h.Cert()
	certFile := "installed ssh_host_ed25519_key-cert.pub"

	// With a threshold below the minute left, nothing is renewed.
	if out := h.mustSync("--renew-before", "10s"); strings.Contains(out, certFile) {
		t.Fatalf("sync renewed a certificate with more than --renew-before left:\n%s", out)
	}
	srv := h.startSSHD(rel)
	known := svc.knownHosts(srv)
	alice, _ := svc.userCert("alice-" + rel.Name)
	if got := keyscanCert(t, srv); got.Serial != first.Serial {
		t.Fatalf("sshd serves serial %d, want the enrolled %d", got.Serial, first.Serial)
	}

	// renew runs sync with flags, checks that it installed a new
	// certificate of the same key and names, that sshd reloaded, and that
	// sshd serves the new certificate.
	renew := func(t *testing.T, old *ssh.Certificate, flags ...string) *ssh.Certificate {
		t.Helper()
		before := listenCount(srv)
		out := h.mustSync(flags...)
		if !strings.Contains(out, certFile) {
			t.Fatalf("sync did not renew:\n%s", out)
		}
		nc := h.Cert()
		if nc.Serial == old.Serial || nc.ValidBefore < old.ValidBefore { // renewals within a second may end together
			t.Fatalf("renewed certificate: serial %d (was %d), valid before %d (was %d)", nc.Serial, old.Serial, nc.ValidBefore, old.ValidBefore)
		}
		if nc.CertType != ssh.HostCert || string(nc.Key.Marshal()) != string(old.Key.Marshal()) ||
			strings.Join(nc.ValidPrincipals, ",") != strings.Join(old.ValidPrincipals, ",") {
			t.Fatalf("renewed certificate: type %d, principals %v (was %v), same key %v", nc.CertType, nc.ValidPrincipals, old.ValidPrincipals,
				string(nc.Key.Marshal()) == string(old.Key.Marshal()))
		}
		h.waitReloaded(srv, before)
		got := keyscanCert(t, srv)
		if got.Serial != nc.Serial || got.ValidBefore != nc.ValidBefore {
			t.Fatalf("ssh-keyscan -c: sshd serves serial %d valid before %d, want the renewed %d valid before %d",
				got.Serial, got.ValidBefore, nc.Serial, nc.ValidBefore)
		}
		r := mustLogin(t, srv, alice, known)
		if want := fmt.Sprintf("serial %d ID", nc.Serial); !strings.Contains(r.Stderr, want) {
			t.Fatalf("ssh did not verify the renewed host certificate (%s):\n%s", want, r.Stderr)
		}
		if st := h.state(); !st.HostCertExpiry.Equal(time.Unix(int64(nc.ValidBefore), 0)) {
			t.Fatalf("state host_cert_expiry %v, want %v", st.HostCertExpiry, time.Unix(int64(nc.ValidBefore), 0).UTC())
		}
		return nc
	}

	var second *ssh.Certificate
	t.Run("ok/default-threshold-renews-a-short-lived-certificate", func(t *testing.T) {
		// One minute left is less than a third of the lifetime (1m plus
		// the 5m backdate): the default threshold renews it.
		second = renew(t, first, "--sshd-pid-file", h.PidFile)
		life := time.Duration(second.ValidBefore-second.ValidAfter) * time.Second
		if life < 2*time.Hour {
			t.Fatalf("renewed lifetime %v, want the role's default of 2h (plus backdate)", life)
		}
	})
	if second == nil {
		t.FailNow()
	}
	t.Run("ok/fresh-certificate-is-kept", func(t *testing.T) {
		before := listenCount(srv)
		if out := h.mustSync("--sshd-pid-file", h.PidFile); strings.Contains(out, certFile) {
			t.Fatalf("sync renewed a fresh certificate:\n%s", out)
		}
		if h.Cert().Serial != second.Serial {
			t.Fatal("the certificate file changed")
		}
		time.Sleep(200 * time.Millisecond)
		if listenCount(srv) != before {
			t.Fatal("sshd was reloaded although nothing changed")
		}
	})
	reload := "kill -HUP $(cat " + h.PidFile + ")"
	var third *ssh.Certificate
	t.Run("ok/reload-command", func(t *testing.T) {
		third = renew(t, second, "--renew-before", "3h", "--reload-command", reload)
	})
	if third == nil {
		t.FailNow()
	}
	t.Run("ok/failed-reload-is-retried", func(t *testing.T) {
		// The renewal is installed but sshd is not told: the sync fails,
		// and the next sync retries the reload although nothing is due for
		// renewal. (sshd 9.2 re-executes itself for every connection and
		// rereads the certificate then, so it serves the new one even
		// before the reload; what is checked is that the reload happens.)
		reloads := listenCount(srv)
		out, errs, code := h.sync(svc.URL, svc.FP, "--renew-before", "3h", "--reload-command", "exit 3")
		if code == 0 || !strings.Contains(out, certFile) || !strings.Contains(errs, "reload command") {
			t.Fatalf("sync with a failing reload command: exit %d\n%s%s", code, out, errs)
		}
		fourth := h.Cert()
		if fourth.Serial == third.Serial {
			t.Fatal("no renewal was installed")
		}
		if !h.state().ReloadPending {
			t.Fatalf("state does not record the pending reload: %+v", h.state())
		}
		time.Sleep(200 * time.Millisecond)
		before := listenCount(srv)
		if before != reloads {
			t.Fatal("sshd reloaded although the reload command failed")
		}
		if out := h.mustSync("--reload-command", reload); strings.Contains(out, certFile) {
			t.Fatalf("the retry renewed again:\n%s", out)
		}
		h.waitReloaded(srv, before)
		if got := keyscanCert(t, srv); got.Serial != fourth.Serial {
			t.Fatalf("after the retried reload sshd serves serial %d, want %d", got.Serial, fourth.Serial)
		}
		if h.state().ReloadPending {
			t.Fatal("the reload is still pending after it succeeded")
		}
	})
}
