package revocation

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
)

// lineagePolicy is the sshca.yaml of the renewal lineage test: a service on
// 127.0.0.1 with SSO; %s is the issuer URL. Renewal is left at the role's
// defaults (renewable, bounded by the default max_session).
const lineagePolicy = `backdate: 5m
service:
  listen: 127.0.0.1:0
oidc:
  issuer: %s
  client_id: ` + oidctest.ClientID + `
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
    allow:
      users: [alice, bob]
`

// lineageEnv is the whole environment of the in-process CLI and serve.
func lineageEnv() map[string]string { return map[string]string{"USER": "revocation-e2e"} }

// lineageCA is `sshca serve` on a fresh home with SSO, a real sshd of
// each OpenSSH release that trusts its user CA and reads RevokedKeys from
// krlPath, and the helpers that get, renew, snapshot and try certificates
// (every login on every sshd, with the ssh of its release).
type lineageCA struct {
	t       *testing.T
	h       *e2etest.Home
	iss     *oidctest.Issuer
	srv     *e2etest.Server
	sshds   []*sshdtest.Server
	krlPath string
	dir     string
}

// gen is one certificate of a lineage, kept in a directory of its own
// (a copy of the private key beside the certificate) so that it can be
// offered to ssh, and renewed, after the live key's certificate changed.
type gen struct {
	key  string // private key; the certificate is key-cert.pub
	cert *ssh.Certificate
}

func newLineageCA(t *testing.T) *lineageCA {
	t.Helper()
	releases := opensshtest.All(t)
	c := &lineageCA{t: t, iss: oidctest.NewHTTP(t), dir: t.TempDir()}
	c.h = &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), Env: lineageEnv()}
	c.h.Must("init")
	if err := os.WriteFile(filepath.Join(c.h.Dir, "sshca.yaml"), []byte(fmt.Sprintf(lineagePolicy, c.iss.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := c.h.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	c.srv = srv
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", srv.Log())
		}
	})
	c.krlPath = filepath.Join(c.dir, "revoked.krl")
	c.installServiceKRL()
	for _, rel := range releases {
		c.sshds = append(c.sshds, sshdtest.Start(t, sshdtest.Config{
			OpenSSH:           rel,
			TrustedUserCAKeys: []string{strings.TrimSpace(c.h.Must("ca", "show", "--type", "user"))},
			Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}},
			RevokedKeysFile:   c.krlPath,
		}))
	}
	return c
}

// installKRL replaces sshd's RevokedKeys file atomically with data.
func (c *lineageCA) installKRL(data []byte) {
	c.t.Helper()
	tmp := c.krlPath + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, c.krlPath); err != nil {
		c.t.Fatal(err)
	}
}

// installServiceKRL installs the KRL the service serves (GET /v1/krl/user).
func (c *lineageCA) installServiceKRL() {
	c.t.Helper()
	data, _, _, _, err := c.srv.Client(c.t, "").KRL(context.Background(), "user", "")
	if err != nil {
		c.t.Fatalf("GET KRL: %v", err)
	}
	c.installKRL(data)
}

// installCLIKRL installs the KRL `sshca krl` writes on the same home.
func (c *lineageCA) installCLIKRL() {
	c.t.Helper()
	out := filepath.Join(c.dir, "cli.krl")
	c.h.Must("krl", "--out", out)
	data, err := os.ReadFile(out)
	if err != nil {
		c.t.Fatal(err)
	}
	c.installKRL(data)
}

// login runs `sshca login` against the service with args.
func (c *lineageCA) login(args ...string) (string, string, int) {
	c.t.Helper()
	all := append([]string{"login", "--server", c.srv.URL, "--ca-fingerprint", c.srv.Fingerprint, "--no-agent"}, args...)
	return c.h.With(map[string]string{"HOME": c.t.TempDir()}).Run(all...)
}

// tokenCert creates a role token named name and logs in with it for a
// fresh key; it returns the key's path (its certificate beside it).
func (c *lineageCA) tokenCert(name string) string {
	c.t.Helper()
	secret := strings.TrimSpace(c.h.Must("token", "create", "--role", "deploy", "--name", name, "--ttl", "1h"))
	tok := filepath.Join(c.t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(secret+"\n"), 0o600); err != nil {
		c.t.Fatal(err)
	}
	key := filepath.Join(c.t.TempDir(), name)
	if out, errs, code := c.login("--role", "deploy", "--token-file", tok, "--key", key); code != 0 {
		c.t.Fatalf("sshca login --token-file (%s): exit %d\n%s%s", name, code, out, errs)
	}
	return key
}

// personCert logs user in through the device flow of the test issuer for a
// fresh key; it returns the key's path (its certificate beside it).
func (c *lineageCA) personCert(user string) string {
	c.t.Helper()
	key := filepath.Join(c.t.TempDir(), user)
	type result struct {
		out, errs string
		code      int
	}
	done := make(chan result, 1)
	go func() {
		out, errs, code := c.login("--role", "deploy", "--key", key)
		done <- result{out, errs, code}
	}()
	deadline := time.After(30 * time.Second)
	for approved := false; ; {
		select {
		case r := <-done:
			if r.code != 0 {
				c.t.Fatalf("sshca login (SSO, %s): exit %d\n%s%s", user, r.code, r.out, r.errs)
			}
			return key
		case <-deadline:
			c.t.Fatalf("sshca login (SSO, %s) did not finish within 30s", user)
		case <-time.After(20 * time.Millisecond):
		}
		if codes := c.iss.PendingUserCodes(); !approved && len(codes) == 1 {
			// sub and preferred_username agree, so the identity is the
			// same whichever claim the service reads.
			c.iss.ApproveDevice(codes[0], map[string]any{"sub": user, "preferred_username": user})
			approved = true
		}
	}
}

// snapshot copies the key and its current certificate into a directory of
// their own and returns them as a generation.
func (c *lineageCA) snapshot(key, label string) gen {
	c.t.Helper()
	d := filepath.Join(c.dir, label)
	if err := os.MkdirAll(d, 0o700); err != nil {
		c.t.Fatal(err)
	}
	g := gen{key: filepath.Join(d, "id")}
	for _, suffix := range []string{"", ".pub", "-cert.pub"} {
		data, err := os.ReadFile(key + suffix)
		if err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(g.key+suffix, data, 0o600); err != nil {
			c.t.Fatal(err)
		}
	}
	g.cert = e2etest.ReadCert(c.t, g.key+"-cert.pub")
	return g
}

// renew runs `sshca login --renew` on key (proof of possession of the key,
// no token, no SSO).
func (c *lineageCA) renew(key string) (string, string, int) {
	c.t.Helper()
	return c.login("--renew", "--key", key)
}

// mustRenew renews key and returns the renewal as a generation labelled
// label; it checks that the renewal is a new certificate of the same key,
// key ID and principals that does not end before prev.
func (c *lineageCA) mustRenew(key, label string, prev gen) gen {
	c.t.Helper()
	if out, errs, code := c.renew(key); code != 0 {
		c.t.Fatalf("sshca login --renew (%s): exit %d\n%s%s", label, code, out, errs)
	}
	g := c.snapshot(key, label)
	nc, pc := g.cert, prev.cert
	switch {
	case nc.Serial == pc.Serial:
		c.t.Fatalf("%s: renewal has the serial %d of the certificate it renews", label, nc.Serial)
	case nc.KeyId != pc.KeyId:
		c.t.Fatalf("%s: renewal changed the key ID: %q, was %q", label, nc.KeyId, pc.KeyId)
	case string(nc.Key.Marshal()) != string(pc.Key.Marshal()):
		c.t.Fatalf("%s: renewal certifies another key", label)
	case strings.Join(nc.ValidPrincipals, ",") != strings.Join(pc.ValidPrincipals, ","):
		c.t.Fatalf("%s: renewal principals %v, were %v", label, nc.ValidPrincipals, pc.ValidPrincipals)
	case nc.ValidBefore < pc.ValidBefore:
		c.t.Fatalf("%s: renewal ends at %d, before the certificate it renews (%d)", label, nc.ValidBefore, pc.ValidBefore)
	}
	return g
}

// lineage obtains a certificate with first, renews it, and renews the
// renewal; it returns the three generations, labelled label0..label2.
func (c *lineageCA) lineage(label string, first func() string) []gen {
	c.t.Helper()
	key := first()
	g0 := c.snapshot(key, label+"0")
	g1 := c.mustRenew(key, label+"1", g0)
	g2 := c.mustRenew(key, label+"2", g1)
	return []gen{g0, g1, g2}
}

// mustLogIn checks that sshd lets g in and logs its key ID and serial,
// which is what an operator reads to know who logged in.
func (c *lineageCA) mustLogIn(g gen, label string) {
	c.t.Helper()
	c.mustLogInAs(g, g.cert.KeyId, label)
}

// mustLogInAs is mustLogIn with the key ID sshd must log: for a renewal,
// the key ID of the lineage's original certificate.
func (c *lineageCA) mustLogInAs(g gen, keyID, label string) {
	c.t.Helper()
	for i, r := range c.loginEach(g.key) {
		sshd := c.sshds[i]
		if !r.OK {
			c.t.Fatalf("%s: %s: login refused (exit %d): %s\nsshd:\n%s", sshd.OpenSSH, label, r.ExitCode, r.Stderr, r.ServerLog)
		}
		want := fmt.Sprintf("ID %s (serial %d)", keyID, g.cert.Serial)
		if !acceptedWith(r.ServerLog, want) {
			c.t.Fatalf("%s: %s: sshd did not log %q on the accepted login:\n%s", sshd.OpenSSH, label, want, r.ServerLog)
		}
	}
}

// loginEach logs in with key to every sshd at once, each with the ssh of
// its release, and returns the results in c.sshds order. The releases'
// logins touch nothing in common, and this test makes dozens of them.
// (Login fails the test only when it cannot run ssh at all.)
func (c *lineageCA) loginEach(key string) []sshdtest.Result {
	c.t.Helper()
	res := make([]sshdtest.Result, len(c.sshds))
	var wg sync.WaitGroup
	for i, sshd := range c.sshds {
		wg.Add(1)
		go func() {
			defer wg.Done() // also when Login ends its goroutine with t.Fatal
			res[i] = sshd.Login(c.t, sshdtest.LoginOptions{IdentityFile: key})
		}()
	}
	wg.Wait()
	return res
}

// acceptedWith reports whether an "Accepted publickey" line of log says want.
func acceptedWith(log, want string) bool {
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "Accepted publickey") && strings.Contains(l, want) {
			return true
		}
	}
	return false
}

// mustBeRefused checks that sshd refuses g as revoked, and that
// ssh-keygen -Q finds it in the installed KRL.
func (c *lineageCA) mustBeRefused(g gen, label string) {
	c.t.Helper()
	for i, r := range c.loginEach(g.key) {
		sshd := c.sshds[i]
		if r.OK {
			c.t.Errorf("%s: %s (serial %d, key ID %q): revoked certificate still logs in:\n%s", sshd.OpenSSH, label, g.cert.Serial, g.cert.KeyId, r.ServerLog)
			continue
		}
		if !strings.Contains(r.ServerLog, "revoked") {
			c.t.Errorf("%s: %s: refused, but sshd does not say revoked:\n%s", sshd.OpenSSH, label, r.ServerLog)
		}
		out, _ := exec.Command(sshd.OpenSSH.Keygen, "-Q", "-f", c.krlPath, g.key+"-cert.pub").CombinedOutput()
		if !strings.Contains(string(out), "REVOKED") {
			c.t.Errorf("%s: %s: ssh-keygen -Q does not find it in the KRL: %s", sshd.OpenSSH, label, out)
		}
	}
}

// mustNotRenew checks that the service refuses to renew g because it is
// revoked, and that the refusal leaves its certificate file alone.
func (c *lineageCA) mustNotRenew(g gen, label string) {
	c.t.Helper()
	before := e2etest.ReadFile(c.t, g.key+"-cert.pub")
	out, errs, code := c.renew(g.key)
	if code == 0 {
		c.t.Errorf("%s: renewal of a revoked certificate succeeded:\n%s", label, out)
	} else if !strings.Contains(errs, "401") || !strings.Contains(errs, "revoked") {
		c.t.Errorf("%s: renewal refused with exit %d %q; want a 401 saying the certificate is revoked", label, code, errs)
	}
	if e2etest.ReadFile(c.t, g.key+"-cert.pub") != before {
		c.t.Errorf("%s: a refused renewal rewrote the certificate file", label)
	}
}

// issueEntry is the part of an `audit list --json` line the test reads.
type issueEntry struct {
	Actor   string            `json:"actor"`
	Serial  uint64            `json:"serial"`
	KeyID   string            `json:"key_id"`
	Details map[string]string `json:"details"`
}

// issued returns the cert.issue audit entries by serial.
func (c *lineageCA) issued() map[uint64]issueEntry {
	c.t.Helper()
	out := c.h.Must("audit", "list", "--action", "cert.issue", "--json")
	m := map[uint64]issueEntry{}
	for _, l := range e2etest.Lines(out) {
		var e issueEntry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			c.t.Fatalf("audit list --json: %v: %q", err, l)
		}
		m[e.Serial] = e
	}
	return m
}

// checkLineageRecorded checks that the audit log records every renewal of
// gens as issued to actor, renewing its predecessor, from the first serial.
func (c *lineageCA) checkLineageRecorded(gens []gen, actor string) {
	c.t.Helper()
	entries := c.issued()
	origin := strconv.FormatUint(gens[0].cert.Serial, 10)
	for i, g := range gens {
		e, ok := entries[g.cert.Serial]
		if !ok {
			c.t.Errorf("no cert.issue audit entry for serial %d", g.cert.Serial)
			continue
		}
		if e.Actor != actor || e.KeyID != g.cert.KeyId {
			c.t.Errorf("serial %d: audit actor %q key ID %q; want %q, %q", g.cert.Serial, e.Actor, e.KeyID, actor, g.cert.KeyId)
		}
		if i == 0 {
			continue
		}
		if prev := strconv.FormatUint(gens[i-1].cert.Serial, 10); e.Details["renews"] != prev || e.Details["origin"] != origin {
			c.t.Errorf("serial %d: audit says renews %q origin %q; want renews %s origin %s", g.cert.Serial, e.Details["renews"], e.Details["origin"], prev, origin)
		}
	}
}

// TestRenewalLineageRevocation is the acceptance test of issue 18: "a
// renewed certificate keeps its key ID; `revoke --key-id` of the original
// and `revoke --identity` stop its renewals in a real sshd". Against `sshca
// serve` and a real sshd whose RevokedKeys is sshca's KRL, a certificate
// obtained with a role token and one obtained through SSO are each renewed
// twice (a renewal of a renewal). Every generation keeps the original key ID
// and logs in, and sshd logs that key ID for the renewals. Then:
//
//   - `sshca revoke --key-id` of the token lineage's original key ID, with
//     the service's KRL installed, refuses the original and both renewals in
//     sshd, and the service refuses to renew any of them;
//   - `sshca revoke --identity` of a person (bare name) and of a token
//     (token:NAME), with the KRL of `sshca krl` installed, refuses every
//     still-valid certificate of that identity — the originals and all their
//     renewals — and their renewal;
//
// while certificates of other identities, renewed too, still log in.
func TestRenewalLineageRevocation(t *testing.T) {
	c := newLineageCA(t)

	a := c.lineage("a", func() string { return c.tokenCert("ci-a") })     // revoked by key ID
	tb := c.lineage("tb", func() string { return c.tokenCert("ci-b") })   // revoked by --identity token:ci-b
	pb := c.lineage("pb", func() string { return c.personCert("alice") }) // revoked by --identity alice
	// alice's second key: a lineage of its own, same identity.
	pb2 := c.lineage("pb2-", func() string { return c.personCert("alice") })
	// Bystanders: other identities, renewed too; nothing revokes them.
	tc := c.lineage("tc", func() string { return c.tokenCert("ci-c") })
	pc := c.lineage("pc", func() string { return c.personCert("bob") })

	for _, l := range []struct {
		gens   []gen
		prefix string
	}{{a, "token:ci-a role=deploy "}, {tb, "token:ci-b role=deploy "}, {pb, "oidc:alice role=deploy "}, {pc, "oidc:bob role=deploy "}} {
		if !strings.HasPrefix(l.gens[0].cert.KeyId, l.prefix) {
			t.Fatalf("key ID %q does not name its identity (%q)", l.gens[0].cert.KeyId, l.prefix)
		}
	}
	if pb[0].cert.KeyId == pb2[0].cert.KeyId {
		t.Fatalf("two requests of alice got the same key ID %q", pb[0].cert.KeyId)
	}
	c.checkLineageRecorded(a, "token:ci-a")
	c.checkLineageRecorded(pb, "oidc:alice")

	all := map[string][]gen{"a": a, "tb": tb, "pb": pb, "pb2-": pb2, "tc": tc, "pc": pc}
	t.Run("ok/every-generation-logs-in-under-the-original-key-id", func(t *testing.T) {
		for label, gens := range all {
			for i, g := range gens {
				// sshd names every generation by the original's key ID.
				c.mustLogInAs(g, gens[0].cert.KeyId, fmt.Sprintf("%s%d", label, i))
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("fail/revoke-key-id-of-the-original", func(t *testing.T) {
		c.h.Must("revoke", "--key-id", a[0].cert.KeyId, "--reason", "issue 18 acceptance")
		c.installServiceKRL()
		for i, g := range a {
			c.mustBeRefused(g, fmt.Sprintf("a%d", i))
		}
		for i, g := range a {
			c.mustNotRenew(g, fmt.Sprintf("a%d", i))
		}
		// Nothing else was revoked.
		for _, label := range []string{"tb", "pb", "tc", "pc"} {
			c.mustLogIn(all[label][2], label+"2")
		}
	})

	t.Run("fail/revoke-identity-of-a-person", func(t *testing.T) {
		out := c.h.Must("revoke", "--identity", "alice", "--reason", "left")
		// alice's two lineages: 6 certificates, every one still valid.
		if !strings.Contains(out, "revoked 6 certificate(s)") {
			t.Errorf("revoke --identity alice: %q; want 6 certificates", out)
		}
		c.installCLIKRL()
		for _, label := range []string{"pb", "pb2-"} {
			for i, g := range all[label] {
				c.mustBeRefused(g, fmt.Sprintf("%s%d", label, i))
			}
			c.mustNotRenew(all[label][2], label+"2")
			c.mustNotRenew(all[label][0], label+"0")
		}
		for _, label := range []string{"tb", "tc", "pc"} {
			c.mustLogIn(all[label][2], label+"2")
		}
	})

	t.Run("fail/revoke-identity-of-a-token", func(t *testing.T) {
		out := c.h.Must("revoke", "--identity", "token:ci-b", "--reason", "leaked")
		if !strings.Contains(out, "revoked 3 certificate(s)") {
			t.Errorf("revoke --identity token:ci-b: %q; want 3 certificates", out)
		}
		c.installCLIKRL()
		for i, g := range tb {
			c.mustBeRefused(g, fmt.Sprintf("tb%d", i))
		}
		c.mustNotRenew(tb[2], "tb2")
		c.mustNotRenew(tb[1], "tb1")
	})

	t.Run("ok/other-identities-still-log-in-and-renew", func(t *testing.T) {
		for _, label := range []string{"tc", "pc"} {
			gens := all[label]
			for i, g := range gens {
				c.mustLogIn(g, fmt.Sprintf("%s%d", label, i))
			}
			g3 := c.mustRenew(gens[2].key, label+"3", gens[2])
			c.mustLogIn(g3, label+"3")
		}
	})

	// The service's KRL and the CLI's agree on every generation.
	t.Run("ok/service-and-cli-krl-agree", func(t *testing.T) {
		data, _, _, _, err := c.srv.Client(t, "").KRL(context.Background(), "user", "")
		if err != nil {
			t.Fatal(err)
		}
		svcKRL := filepath.Join(t.TempDir(), "service.krl")
		if err := os.WriteFile(svcKRL, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for label, gens := range all {
			for i, g := range gens {
				a, _ := exec.Command(sshdtest.KeygenPath, "-Q", "-f", svcKRL, g.key+"-cert.pub").CombinedOutput()
				b, _ := exec.Command(sshdtest.KeygenPath, "-Q", "-f", c.krlPath, g.key+"-cert.pub").CombinedOutput()
				if strings.Contains(string(a), "REVOKED") != strings.Contains(string(b), "REVOKED") {
					t.Errorf("%s%d: service KRL says %q, sshca krl says %q", label, i, a, b)
				}
			}
		}
	})
}
