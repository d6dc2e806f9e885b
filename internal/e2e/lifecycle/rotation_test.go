package lifecycle

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
)

// retireModes are the two ways an old CA key goes away: by itself once
// every certificate it signed has expired (short TTLs, retire_grace 1s),
// or by `ca retire --force` while certificates it signed are still valid.
var retireModes = []struct {
	name   string
	auto   bool
	oldTTL string // lifetime of the old key's certificates
}{
	// The old certificates must outlive the rotation and promotion steps
	// (a few logins), then expire so that the key retires by itself.
	// A login takes about a second on a loaded 2-core machine.
	{name: "ok/auto-retire-after-expiry", auto: true, oldTTL: "12s"},
	{name: "ok/forced-retire-with-valid-certs", auto: false, oldTTL: "30m"},
}

// modeRelease spreads the retire modes over the OpenSSH releases, so
// that each release's sshd and ssh (the client is the server's release)
// see a whole rotation without running every mode twice: what differs
// between the modes is sshca's, not OpenSSH's.
func modeRelease(releases []*opensshtest.Flavour, mode int) *opensshtest.Flavour {
	return releases[mode%len(releases)]
}

// TestUserCARotation is acceptance 1 of issue 6 for the user CA: before
// promotion old certificates log in and sshd already trusts the next key;
// after promotion new certificates come from the new key and old ones still
// log in; after retirement old ones are refused because their CA is no
// longer trusted, and new ones still log in.
func TestUserCARotation(t *testing.T) {
	releases := opensshtest.All(t)
	for i, tc := range retireModes {
		rel := modeRelease(releases, i)
		t.Run(tc.name+"-on-"+rel.Name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			h := newHome(t, "ed25519")
			dir := t.TempDir()
			gens := h.wantStates("user", map[int]string{1: "active"})

			oldKey, oldCert := h.signUser(dir, "old", tc.oldTTL)
			signedBy(t, "old certificate", oldCert, gens[1].fingerprint)
			srv := sshdtest.Start(t, sshdtest.Config{
				OpenSSH:           rel,
				TrustedUserCAKeys: h.wantPublished(gens, []int{1}, "--type", "user"),
				Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}},
				Extra:             sshdDebug2,
			})
			mustLogin(t, srv, oldKey, "generation 1 certificate before rotation")

			// 1. rotate: the next key is published, sshd trusts both, gen 1 still signs.
			h.Must("ca", "rotate", "--type", "user")
			gens = h.wantStates("user", map[int]string{1: "active", 2: "next"})
			if gens[2].fingerprint == gens[1].fingerprint {
				t.Fatal("rotate: next key has the active key's fingerprint")
			}
			srv.SetTrustedUserCAKeys(t, h.wantPublished(gens, []int{1, 2}, "--type", "user")...)
			mustLogin(t, srv, oldKey, "generation 1 certificate after rotate")
			preKey, preCert := h.signUser(dir, "pre-promote", tc.oldTTL)
			signedBy(t, "certificate signed before promotion", preCert, gens[1].fingerprint)

			// 2. promote: gen 2 signs, gen 1 is retiring and still published.
			h.Must("ca", "rotate", "--type", "user", "--promote")
			gens = h.wantStates("user", map[int]string{1: "retiring", 2: "active"})
			trust := h.wantPublished(gens, []int{1, 2}, "--type", "user")
			srv.SetTrustedUserCAKeys(t, trust...)
			newKey, newCert := h.signUser(dir, "new", "30m")
			signedBy(t, "certificate signed after promotion", newCert, gens[2].fingerprint)
			mustLogin(t, srv, newKey, "generation 2 certificate after promotion")
			if time.Until(certExpiry(oldCert)) < time.Second {
				t.Fatalf("the machine is too slow for this test: rotation took %v, longer than the old certificates' lifetime %s", time.Since(start), tc.oldTTL)
			}
			mustLogin(t, srv, oldKey, "unexpired generation 1 certificate after promotion")
			t.Logf("rotate and promote took %v; old certificates valid for %s", time.Since(start).Round(time.Millisecond), tc.oldTTL)

			// 3. retire.
			if tc.auto {
				h.waitRetired("user", 1, certExpiry(preCert))
			} else {
				_, errs, code := h.Run("ca", "retire", "--type", "user", "1")
				if code != 1 || !strings.Contains(errs, "sshca: error: ") || !strings.Contains(errs, "still valid") {
					t.Fatalf("ca retire with valid certificates: exit %d, stderr %q; want exit 1 and \"still valid\"", code, errs)
				}
				h.wantStates("user", map[int]string{1: "retiring", 2: "active"})
				h.wantPublished(gens, []int{1, 2}, "--type", "user")
				h.Must("ca", "retire", "--type", "user", "--force", "1")
			}
			h.wantStates("user", map[int]string{1: "retired", 2: "active"})
			after := h.wantPublished(gens, []int{2}, "--type", "user")
			if !contains(trust, after[0]) {
				t.Fatalf("retirement changed the active key's line: %q not in %q", after[0], trust)
			}
			srv.SetTrustedUserCAKeys(t, after...)
			// sshd checks the CA before the validity period, so even the
			// expired certificates are refused for their CA.
			mustBeRefused(t, srv, oldKey, "generation 1 certificate after retirement", "is not listed in")
			mustBeRefused(t, srv, preKey, "generation 1 certificate after retirement", "is not listed in")
			// Nothing else changes.
			mustLogin(t, srv, newKey, "generation 2 certificate after retirement")
			laterKey, laterCert := h.signUser(dir, "later", "30m")
			signedBy(t, "certificate signed after retirement", laterCert, gens[2].fingerprint)
			mustLogin(t, srv, laterKey, "certificate signed after retirement")
		})
	}
}

// TestHostCARotation is acceptance 1 of issue 6 for the host CA: ssh
// verifies the host certificate only through the @cert-authority lines of
// `ca show --known-hosts` (StrictHostKeyChecking=yes).
func TestHostCARotation(t *testing.T) {
	releases := opensshtest.All(t)
	for i, tc := range retireModes {
		rel := modeRelease(releases, i)
		t.Run(tc.name+"-on-"+rel.Name, func(t *testing.T) {
			t.Parallel()
			h := newHome(t, "ed25519")
			dir := t.TempDir()
			gens := h.wantStates("host", map[int]string{1: "active"})
			userKey, _ := h.signUser(dir, "user", "30m")
			srv := sshdtest.Start(t, sshdtest.Config{
				OpenSSH:           rel,
				TrustedUserCAKeys: e2etest.Lines(h.Must("ca", "show", "--type", "user")),
				Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}},
				SignHostKey: func(pub ssh.PublicKey) ([]byte, error) {
					return h.signHost(dir, pub, "host-gen1", tc.oldTTL)
				},
			})
			signedBy(t, "host certificate", srv.HostCertificate, gens[1].fingerprint)
			oldHostCert, err := os.ReadFile(srv.HostCertPath)
			if err != nil {
				t.Fatal(err)
			}
			pattern := srv.KnownHostsPattern()
			knownHosts := func(gens map[int]generation, want ...int) []string {
				t.Helper()
				lns := h.wantPublished(gens, want, "--type", "host", "--known-hosts", pattern)
				for _, l := range lns {
					if !strings.HasPrefix(l, "@cert-authority "+pattern+" ") {
						t.Fatalf("ca show --known-hosts: line %q", l)
					}
				}
				return lns
			}
			login := func(known []string) sshdtest.Result {
				t.Helper()
				return srv.Login(t, sshdtest.LoginOptions{IdentityFile: userKey, KnownHosts: known,
					Options: []string{"StrictHostKeyChecking=yes", "LogLevel=DEBUG1"}})
			}
			// verified fails unless ssh accepted the host through a
			// certificate signed by CA fingerprint fp.
			verified := func(what string, known []string, fp string) {
				t.Helper()
				r := login(known)
				if !r.OK {
					t.Fatalf("%s: login failed: exit %d\nssh: %s\nsshd: %s", what, r.ExitCode, r.Stderr, r.ServerLog)
				}
				if !hostCertCA(r.Stderr, fp) {
					t.Fatalf("%s: ssh did not check a host certificate of CA %s:\n%s", what, fp, r.Stderr)
				}
			}
			verified("generation 1 host certificate", knownHosts(gens, 1), gens[1].fingerprint)

			// 1. rotate: both CA lines, the old host certificate verifies.
			h.Must("ca", "rotate", "--type", "host")
			gens = h.wantStates("host", map[int]string{1: "active", 2: "next"})
			known := knownHosts(gens, 1, 2)
			verified("generation 1 host certificate after rotate", known, gens[1].fingerprint)

			// 2. promote: the old host certificate still verifies; the host
			// is re-certified by the new key and verifies against the same
			// known_hosts.
			h.Must("ca", "rotate", "--type", "host", "--promote")
			gens = h.wantStates("host", map[int]string{1: "retiring", 2: "active"})
			if got := knownHosts(gens, 1, 2); strings.Join(got, "\n") != strings.Join(known, "\n") {
				t.Fatalf("promotion changed the published lines:\n%q\nwant\n%q", got, known)
			}
			if time.Until(certExpiry(srv.HostCertificate)) < time.Second {
				t.Fatalf("the machine is too slow for this test: the old host certificate (%s) expires before it can be checked", tc.oldTTL)
			}
			verified("unexpired generation 1 host certificate after promotion", known, gens[1].fingerprint)
			newHostCert, err := h.signHost(dir, srv.HostPublicKey, "host-gen2", "30m")
			if err != nil {
				t.Fatal(err)
			}
			installHostCert(t, srv, newHostCert)
			verified("generation 2 host certificate", known, gens[2].fingerprint)

			// 3. retire.
			if tc.auto {
				h.waitRetired("host", 1, certExpiry(srv.HostCertificate)) // srv.HostCertificate is still the generation 1 one
			} else {
				_, errs, code := h.Run("ca", "retire", "--type", "host", "1")
				if code != 1 || !strings.Contains(errs, "still valid") {
					t.Fatalf("ca retire with a valid host certificate: exit %d, stderr %q", code, errs)
				}
				h.Must("ca", "retire", "--type", "host", "--force", "1")
			}
			h.wantStates("host", map[int]string{1: "retired", 2: "active"})
			after := knownHosts(gens, 2)
			verified("generation 2 host certificate after retirement", after, gens[2].fingerprint)

			// A host still presenting a certificate of the retired key fails.
			installHostCert(t, srv, oldHostCert)
			if !tc.auto {
				// The certificate itself is fine: the old known_hosts accepts it.
				verified("generation 1 host certificate with the pre-retirement known_hosts", known, gens[1].fingerprint)
			}
			r := login(after)
			if r.OK || r.ExitCode != 255 || !strings.Contains(r.Stderr, "Host key verification failed") {
				t.Fatalf("host with a retired CA's certificate: ok=%v exit %d; want host key verification to fail\n%s", r.OK, r.ExitCode, r.Stderr)
			}
		})
	}
}

// hostCertCA reports whether ssh's debug output shows it checking a server
// host certificate signed by the CA with fingerprint fp.
func hostCertCA(sshStderr, fp string) bool {
	for _, l := range strings.Split(sshStderr, "\n") {
		if strings.Contains(l, "Server host certificate: ") && strings.Contains(l, " CA ") && strings.Contains(l, fp) {
			return true
		}
	}
	return false
}

// installHostCert replaces sshd's host certificate and reloads it.
func installHostCert(t *testing.T, srv *sshdtest.Server, cert []byte) {
	t.Helper()
	if err := os.WriteFile(srv.HostCertPath, cert, 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Reload(t)
}
