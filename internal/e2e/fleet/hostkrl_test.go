package fleet

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshdtest"
)

// TestHostRevocationReachesClients: `sshca login` installs the host KRL
// beside the user's key, `sshca ssh-config` points RevokedHostKeys at it,
// and after `sshca revoke --type host` plus `sshca known-hosts` a real ssh
// refuses the revoked host's certificate while it still accepts another
// host's. A KRL older than the installed one, or one whose signature does
// not verify against the host CA, is refused and the installed file stays.
// Each OpenSSH release's ssh judges its own release's sshd.
func TestHostRevocationReachesClients(t *testing.T) {
	releases := requireOpenSSH(t)
	t.Parallel()
	svc := newService(t)
	web := svc.newHost("30d", "web-01.test", "127.0.0.1")
	db := svc.newHost("30d", "db-01.test", "127.0.0.1")
	web.mustSync()
	db.mustSync()
	webSSHDs, dbSSHDs := svc.startSSHDSet(web, releases), svc.startSSHDSet(db, releases)

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
	// sshTo logs in to every server of set with RevokedHostKeys set, and
	// checks each outcome.
	sshTo := func(set *sshdSet, check func(srv *sshdtest.Server, r sshdtest.Result)) {
		t.Helper()
		for _, srv := range set.srvs {
			check(srv, srv.Login(t, sshdtest.LoginOptions{IdentityFile: alice, KnownHosts: set.known[srv],
				Options: []string{"LogLevel=DEBUG1", "RevokedHostKeys=" + krlPath}}))
		}
	}
	accepted := func(what string) func(*sshdtest.Server, sshdtest.Result) {
		return func(srv *sshdtest.Server, r sshdtest.Result) {
			t.Helper()
			if !r.OK {
				t.Fatalf("%s: ssh refused %s:\n%s", srv.OpenSSH, what, r.Stderr)
			}
		}
	}
	refusedRevoked := func(srv *sshdtest.Server, r sshdtest.Result) {
		t.Helper()
		if r.OK || !strings.Contains(r.Stderr, "revoked") {
			t.Fatalf("%s: ssh accepted (or refused for another reason) the revoked host certificate: ok=%v\n%s", srv.OpenSSH, r.OK, r.Stderr)
		}
	}
	sshTo(webSSHDs, accepted("a host with the installed host KRL before any revocation"))
	sshTo(dbSSHDs, accepted("a host with the installed host KRL before any revocation"))
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
	sshTo(webSSHDs, refusedRevoked)
	sshTo(dbSSHDs, accepted("the unrevoked host"))
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
	sshTo(webSSHDs, refusedRevoked)
}

// TestSyncHostKRLForSSHD: `sshca sync --host-krl FILE` keeps the host KRL
// at the path `sshca sshd-config --host-krl FILE` puts on the RevokedKeys
// line. An sshd of each release runs the lines sshd-config prints for it:
// 10.5 loads both KRLs and, once sync installs the host KRL, refuses a key
// revoked as a host key although its user certificate is not revoked; 9.2's
// lines name the user KRL alone, so 9.2 still lets it in. A host KRL
// signed by the user CA (not the host CA) is refused and the installed
// one stays.
func TestSyncHostKRLForSSHD(t *testing.T) {
	releases := requireOpenSSH(t)
	t.Parallel()
	svc := newService(t)
	h := svc.newHost("1h", "127.0.0.1", "web-01.test")
	hostKRL := filepath.Join(h.Dir, "revoked-host.krl")

	// Bad paths are refused before anything is written.
	for _, bad := range []string{"revoked-host.krl", filepath.Join(h.Dir, "revoked.krl"), h.Dir + "/a b.krl"} {
		if out, errs, code := h.sync(svc.URL, svc.FP, "--host-krl", bad); code != 2 || !strings.Contains(errs, "--host-krl") {
			t.Fatalf("sync --host-krl %q: exit %d, want 2\n%s%s", bad, code, out, errs)
		}
	}
	if _, err := os.Stat(h.Dir); err == nil {
		t.Fatalf("a refused sync created %s", h.Dir)
	}

	out := h.mustSync("--host-krl", hostKRL)
	for _, want := range []string{"installed revoked-host.krl (empty)", "host KRL version 0 at " + hostKRL} {
		if !strings.Contains(out, want) {
			t.Fatalf("first sync output lacks %q:\n%s", want, out)
		}
	}
	srvs := make([]*sshdtest.Server, len(releases))
	known := map[*sshdtest.Server][]string{}
	for i, rel := range releases {
		srvs[i] = h.startSSHD(rel, "--host-krl", hostKRL)
		known[srvs[i]] = svc.knownHosts(srvs[i])
		cfg := e2etest.ReadFile(t, srvs[i].ConfigPath)
		want := "\nRevokedKeys " + filepath.Join(h.Dir, "revoked.krl")
		if rel.AtLeast(10, 3) {
			want += " " + hostKRL
		}
		if !strings.Contains(cfg, want+"\n") {
			t.Fatalf("%s: the sshd_config lacks %q:\n%s", rel, want, cfg)
		}
	}
	alice, _ := svc.userCert("alice")
	stolen, _ := svc.userCert("stolen")
	for _, srv := range srvs {
		mustLogin(t, srv, alice, known[srv])
		mustLogin(t, srv, stolen, known[srv])
	}

	// The key is revoked as a host key; the next sync brings the host KRL.
	svc.Must("revoke", "--type", "host", "--key", stolen+".pub", "--reason", "key leaked")
	out = h.mustSync("--host-krl", hostKRL)
	if !strings.Contains(out, "installed revoked-host.krl\n") || strings.Contains(out, "host KRL version 0 ") {
		t.Fatalf("sync after the host revocation:\n%s", out)
	}
	installed, err := os.ReadFile(hostKRL)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(hostKRL); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("host KRL mode %v (%v), want 0644", fi.Mode(), err)
	}
	for _, srv := range srvs {
		t.Run(srv.OpenSSH.Name, func(t *testing.T) {
			mustLogin(t, srv, alice, known[srv])
			if srv.OpenSSH.AtLeast(10, 3) {
				mustRefuse(t, srv, stolen, known[srv], "revoked by file "+hostKRL)
			} else {
				mustLogin(t, srv, stolen, known[srv])
			}
			out, _ := exec.Command(srv.OpenSSH.Keygen, "-Q", "-f", hostKRL, stolen+".pub").CombinedOutput()
			if !strings.Contains(string(out), "REVOKED") {
				t.Fatalf("ssh-keygen -Q on the synced host KRL: %s", out)
			}
		})
	}

	// A host KRL that revokes nothing, signed by the user CA: it would
	// let the stolen key back in. Only the host KRL is tampered with.
	userCA := loadSigner(t, filepath.Join(svc.Dir, "keys", "user-ca-1"))
	forged, err := (&krl.KRL{Version: 1 << 40, Comment: "nothing is revoked"}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, svc)
	p.set(map[string]canned{"/v1/krl?type=host": {200, forged}, "/v1/krl.sig?type=host": {200, sign(t, userCA, forged)}})
	out, errs, code := h.sync(p.URL, p.FP, "--host-krl", hostKRL)
	if code != 1 || !strings.Contains(out, "refused revoked-host.krl: signature does not verify") || !strings.Contains(errs, "host KRL: refused") {
		t.Fatalf("sync with a host KRL signed by the user CA: exit %d\n%s%s", code, out, errs)
	}
	if now, _ := os.ReadFile(hostKRL); !bytes.Equal(now, installed) {
		t.Fatal("a refused host KRL replaced the installed one")
	}
	for _, srv := range srvs {
		if srv.OpenSSH.AtLeast(10, 3) {
			mustRefuse(t, srv, stolen, known[srv], "revoked by file "+hostKRL)
		}
	}
}
