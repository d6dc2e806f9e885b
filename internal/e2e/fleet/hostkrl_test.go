package fleet

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshdtest"
)

// TestHostRevocationReachesClients: `sshca login` installs the host KRL
// beside the user's key, `sshca ssh-config` points RevokedHostKeys at it,
// and after `sshca revoke --type host` plus `sshca known-hosts` a real ssh
// refuses the revoked host's certificate while it still accepts another
// host's. A KRL older than the installed one, or one whose signature does
// not verify against the host CA, is refused and the installed file stays.
func TestHostRevocationReachesClients(t *testing.T) {
	requireOpenSSH(t)
	t.Parallel()
	svc := newService(t)
	web := svc.newHost("30d", "web-01.test", "127.0.0.1")
	db := svc.newHost("30d", "db-01.test", "127.0.0.1")
	web.mustSync()
	db.mustSync()
	webSrv, dbSrv := web.startSSHD(), db.startSSHD()
	webKnown, dbKnown := svc.knownHosts(webSrv), svc.knownHosts(dbSrv)

	// login installs the host KRL beside the key.
	alice, _ := svc.userCert("alice")
	krlPath := filepath.Join(filepath.Dir(alice), "sshca", "revoked_hosts.krl")
	if _, err := os.Stat(krlPath); err != nil {
		t.Fatalf("login did not install the host KRL: %v", err)
	}
	cfg, errs, code := sshca("ssh-config", "--server", svc.URL, "--ca-fingerprint", svc.FP, "--key", alice)
	if code != 0 {
		t.Fatalf("ssh-config: exit %d: %s", code, errs)
	}
	if !strings.Contains(cfg, "\n    RevokedHostKeys "+krlPath+"\n") {
		t.Fatalf("ssh-config does not point RevokedHostKeys at %s:\n%s", krlPath, cfg)
	}
	sshTo := func(srv *sshdtest.Server, known []string) sshdtest.Result {
		t.Helper()
		return srv.Login(t, sshdtest.LoginOptions{IdentityFile: alice, KnownHosts: known,
			Options: []string{"LogLevel=DEBUG1", "RevokedHostKeys=" + krlPath}})
	}
	for _, c := range []struct {
		srv   *sshdtest.Server
		known []string
	}{{webSrv, webKnown}, {dbSrv, dbKnown}} {
		if r := sshTo(c.srv, c.known); !r.OK {
			t.Fatalf("ssh with the installed host KRL refused before any revocation:\n%s", r.Stderr)
		}
	}
	old, err := os.ReadFile(krlPath)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(svc.URL, svc.FP)
	if err != nil {
		t.Fatal(err)
	}
	_, oldSig, _, _, err := cl.KRL(t.Context(), "host", "")
	if err != nil {
		t.Fatal(err)
	}

	// Revoke web-01's host certificate; known-hosts brings it to the client.
	svc.Must("revoke", "--type", "host", "--serial", strconv.FormatUint(web.Cert().Serial, 10), "--reason", "web-01 compromised")
	out, errs, code := sshca("known-hosts", "--server", svc.URL, "--ca-fingerprint", svc.FP, "--file", krlPath)
	if code != 0 || !strings.Contains(out, "installed host KRL version") {
		t.Fatalf("known-hosts: exit %d\n%s%s", code, out, errs)
	}
	cur, err := os.ReadFile(krlPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := krl.Parse(cur)
	if err != nil {
		t.Fatal(err)
	}
	if k.Check(web.Cert()) == nil {
		t.Fatalf("the installed host KRL (version %d) does not revoke web-01's certificate", k.Version)
	}
	r := sshTo(webSrv, webKnown)
	if r.OK || !strings.Contains(r.Stderr, "revoked") {
		t.Fatalf("ssh accepted (or refused for another reason) the revoked host certificate: ok=%v\n%s", r.OK, r.Stderr)
	}
	if r := sshTo(dbSrv, dbKnown); !r.OK {
		t.Fatalf("ssh refused the unrevoked host:\n%s", r.Stderr)
	}
	// Up to date: nothing to install.
	if out, errs, code := sshca("known-hosts", "--server", svc.URL, "--ca-fingerprint", svc.FP, "--file", krlPath); code != 0 || !strings.Contains(out, "is current") {
		t.Fatalf("known-hosts again: exit %d\n%s%s", code, out, errs)
	}

	// A proxy replaying the older KRL with its valid signature, or the
	// current KRL with the older signature, is refused; the file stays.
	p := newProxy(t, svc)
	for _, tc := range []struct {
		name string
		m    map[string]canned
		want string
	}{
		{"fail/older-version", map[string]canned{"/v1/krl": {200, old}, "/v1/krl.sig": {200, oldSig}}, "older than the installed"},
		{"fail/bad-signature", map[string]canned{"/v1/krl.sig": {200, oldSig}}, "signature does not verify"},
		{"fail/not-a-krl", map[string]canned{"/v1/krl": {200, []byte("garbage")}}, "signature does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.set(tc.m)
			out, errs, code := sshca("known-hosts", "--server", p.URL, "--ca-fingerprint", p.FP, "--file", krlPath)
			if code != 1 || !strings.Contains(errs, tc.want) {
				t.Fatalf("known-hosts: exit %d, want 1 and %q\n%s%s", code, tc.want, out, errs)
			}
			if now, _ := os.ReadFile(krlPath); !bytes.Equal(now, cur) {
				t.Fatal("a refused host KRL replaced the installed one")
			}
		})
	}
	if r := sshTo(webSrv, webKnown); r.OK {
		t.Fatal("ssh accepted the revoked host after the refused updates")
	}
}
