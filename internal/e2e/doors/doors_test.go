// Package doors_test is the door-by-door access matrix of issue 18: one
// table of callers × roles × requests, run through every door that can
// carry the caller — the domain entry (ca.Authority.Sign), the HTTPS API
// (POST /v1/certs/user|host through internal/client), the CLI (`sshca sign`),
// host enrollment (`sshca host enroll`), the SSH front door (`cert` run
// by a local user connected with their key, x/crypto/ssh), renewal (`sshca login --renew`
// and ca.Authority.Renew, of a certificate obtained under an earlier, more
// permissive policy) and the batch doors (POST /v1/certs/user|host/batch
// through client.RequestCerts, and ca.Authority.SignMany; batch_test.go) —
// each checked against an oracle written from the policy text, and against
// each other.
package doors_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// row is one caller asking for one thing.
type row struct {
	name       string
	c          caller
	typ        string // user, host
	role       string // "" for enrollment tokens: the token names it
	principals []string
	ttl        time.Duration
}

// Callers of the matrix.
var (
	admin = caller{kind: "admin"}

	pwd, pwdOTP = []string{"pwd"}, []string{"pwd", "otp"}

	alice        = caller{kind: "person", user: "alice", amr: pwd}                                        // allow.users of most roles
	aliceMFA     = caller{kind: "person", user: "alice", amr: pwdOTP}                                     // ... signed in with two factors
	gina         = caller{kind: "person", user: "gina", groups: []string{"staff", "deployers"}, amr: pwd} // allowed by group
	ginaMFA      = caller{kind: "person", user: "gina", groups: []string{"staff", "deployers"}, amr: pwdOTP}
	mallory      = caller{kind: "person", user: "mallory", groups: []string{"contractors"}, amr: pwd} // allowed before, not today
	malloryMFA   = caller{kind: "person", user: "mallory", groups: []string{"contractors"}, amr: pwdOTP}
	carolTOTP    = caller{kind: "person", user: "carol", amr: pwd, totp: "valid"} // enrolled TOTP, sends a code
	carolBadTOTP = caller{kind: "person", user: "carol", amr: pwd, totp: "bad"}
	erinTOTP     = caller{kind: "person", user: "erin", amr: pwd, totp: "valid"} // no TOTP enrolled, sends a code

	// Local users at the SSH front door (sshca user add).
	lena         = caller{kind: "local", user: "lena", groups: []string{"dev"}}        // allow.local_users
	olga         = caller{kind: "local", user: "olga", groups: []string{"ops"}}        // allow.local_groups
	tessTOTP     = caller{kind: "local", user: "tess", totp: "valid"}                  // enrolled TOTP as local:tess, answers the prompt
	tessBadTOTP  = caller{kind: "local", user: "tess", totp: "bad"}                    //
	aliceLocal   = caller{kind: "local", user: "alice", groups: []string{"deployers"}} // a person's name and group, as a local user: nothing
	localCallers = []caller{lena, olga, tessTOTP, aliceLocal}
)

func roleToken(roles ...string) caller {
	return caller{kind: "token", tokKind: store.TokenRole, tokRoles: roles}
}

func enrollToken(hosts ...string) caller {
	return caller{kind: "enroll", tokKind: store.TokenEnroll, tokRoles: []string{"servers"}, tokPrincipals: hosts}
}

func (c caller) with(state string) caller { c.tokState = state; return c }

func (c caller) withTOTP(code string) caller { c.totp = code; return c }

// matrix is the table.
func matrix() []row {
	p := func(s ...string) []string { return s }
	h := time.Hour
	return []row{
		// The admin at the CLI (who holds the CA keys).
		{name: "admin-deploy", c: admin, typ: "user", role: "deploy"},
		{name: "admin-deploy-subset-max-ttl", c: admin, typ: "user", role: "deploy", principals: p("ci"), ttl: h},
		{name: "admin-deploy-outside-principal", c: admin, typ: "user", role: "deploy", principals: p("root")},
		{name: "admin-deploy-ttl-over-max", c: admin, typ: "user", role: "deploy", ttl: 2 * h},
		{name: "admin-mfa-role", c: admin, typ: "user", role: "secure"},
		{name: "admin-renewal-any", c: admin, typ: "user", role: "break-glass"},
		{name: "admin-renewal-any-ttl-over-max", c: admin, typ: "user", role: "break-glass", ttl: 2 * h},
		{name: "admin-renewal-none", c: admin, typ: "user", role: "frozen"},
		{name: "admin-removed-role", c: admin, typ: "user", role: "legacy"},
		{name: "admin-host", c: admin, typ: "host", role: "servers", principals: p("web1.corp")},
		{name: "admin-host-outside-pattern", c: admin, typ: "host", role: "servers", principals: p("evil.example")},
		{name: "admin-user-cert-host-role", c: admin, typ: "user", role: "servers"},

		// People signed in through the identity provider.
		{name: "person-allowed-by-user", c: alice, typ: "user", role: "deploy"},
		{name: "person-allowed-by-group", c: gina, typ: "user", role: "deploy"},
		{name: "person-not-allowed", c: mallory, typ: "user", role: "deploy"},
		{name: "person-subset-max-ttl", c: alice, typ: "user", role: "deploy", principals: p("ci"), ttl: h},
		{name: "person-outside-principal", c: alice, typ: "user", role: "deploy", principals: p("root")},
		{name: "person-ttl-over-max", c: alice, typ: "user", role: "deploy", ttl: 2 * h},
		{name: "person-mfa-role-one-factor", c: alice, typ: "user", role: "secure"},
		{name: "person-mfa-role-amr-mfa", c: aliceMFA, typ: "user", role: "secure"},
		{name: "person-mfa-role-group-amr-mfa", c: ginaMFA, typ: "user", role: "secure"},
		{name: "person-mfa-role-totp", c: carolTOTP, typ: "user", role: "secure"},
		{name: "person-mfa-role-bad-totp", c: carolBadTOTP, typ: "user", role: "secure"},
		{name: "person-mfa-role-totp-not-enrolled", c: erinTOTP, typ: "user", role: "secure"},
		{name: "person-not-allowed-with-mfa", c: malloryMFA, typ: "user", role: "secure"},
		{name: "person-renewal-none", c: alice, typ: "user", role: "frozen"},
		{name: "person-max-session", c: alice, typ: "user", role: "brief"},
		{name: "person-renewal-any", c: alice, typ: "user", role: "break-glass"},
		{name: "person-removed-role", c: alice, typ: "user", role: "legacy"},
		{name: "person-host-cert-user-role", c: alice, typ: "host", role: "deploy", principals: p("web1.corp")},
		{name: "person-host-role", c: alice, typ: "host", role: "servers", principals: p("web1.corp")},

		// Local users at the SSH front door, which asks only for user
		// certificates of the key the user connected with.
		{name: "local-allowed-by-user", c: lena, typ: "user", role: "deploy"},
		{name: "local-allowed-by-group", c: olga, typ: "user", role: "deploy"},
		{name: "local-subset-max-ttl", c: lena, typ: "user", role: "deploy", principals: p("ci"), ttl: h},
		{name: "local-outside-principal", c: lena, typ: "user", role: "deploy", principals: p("root")},
		{name: "local-ttl-over-max", c: lena, typ: "user", role: "deploy", ttl: 2 * h},
		{name: "local-not-allowed", c: lena, typ: "user", role: "frozen"},
		{name: "local-group-not-allowed", c: olga, typ: "user", role: "secure"},
		{name: "local-person-name-and-group", c: aliceLocal, typ: "user", role: "deploy"},
		{name: "local-mfa-role-one-factor", c: lena, typ: "user", role: "secure"},
		{name: "local-mfa-role-totp", c: tessTOTP, typ: "user", role: "secure"},
		{name: "local-mfa-role-bad-totp", c: tessBadTOTP, typ: "user", role: "secure"},
		{name: "local-removed-role", c: lena, typ: "user", role: "legacy"},
		{name: "local-host-role", c: lena, typ: "user", role: "servers"},

		// API tokens.
		{name: "token-in-scope", c: roleToken("deploy"), typ: "user", role: "deploy"},
		{name: "token-subset-max-ttl", c: roleToken("deploy"), typ: "user", role: "deploy", principals: p("ci"), ttl: h},
		{name: "token-out-of-scope", c: roleToken("deploy"), typ: "user", role: "secure"},
		{name: "token-mfa-role", c: roleToken("secure"), typ: "user", role: "secure"},
		{name: "token-mfa-role-with-totp", c: roleToken("secure").withTOTP("valid"), typ: "user", role: "secure"},
		{name: "token-expired", c: roleToken("deploy").with("expired"), typ: "user", role: "deploy"},
		{name: "token-revoked", c: roleToken("deploy").with("revoked"), typ: "user", role: "deploy"},
		{name: "token-revoked-after-use", c: roleToken("deploy").with("revoked-after-use"), typ: "user", role: "deploy"},
		{name: "token-ttl-over-max", c: roleToken("deploy"), typ: "user", role: "deploy", ttl: 2 * h},
		{name: "token-outside-principal", c: roleToken("deploy"), typ: "user", role: "deploy", principals: p("root")},
		{name: "token-renewal-none", c: roleToken("frozen"), typ: "user", role: "frozen"},
		{name: "token-removed-role", c: roleToken("legacy"), typ: "user", role: "legacy"},
		{name: "token-host-cert", c: roleToken("servers"), typ: "host", role: "servers", principals: p("web1.corp")},
		{name: "admin-token", c: caller{kind: "token", tokKind: store.TokenAdmin}, typ: "user", role: "deploy"},
		{name: "host-token", c: caller{kind: "token", tokKind: store.TokenHost, tokRoles: p("servers")}, typ: "host", role: "servers", principals: p("web1.corp")},

		// Host enrollment tokens.
		{name: "enroll-bound", c: enrollToken("web1.corp"), typ: "host"},
		{name: "enroll-bound-subset-ttl", c: enrollToken("web1.corp", "web2.corp"), typ: "host", principals: p("web2.corp"), ttl: h},
		{name: "enroll-not-bound", c: enrollToken("web1.corp"), typ: "host", principals: p("web2.corp")},
		{name: "enroll-outside-pattern", c: enrollToken("evil.example"), typ: "host"},
		{name: "enroll-ttl-over-max", c: enrollToken("web1.corp"), typ: "host", ttl: 48 * h},
		{name: "enroll-used", c: enrollToken("web1.corp").with("used"), typ: "host"},
		{name: "enroll-expired", c: enrollToken("web1.corp").with("expired"), typ: "host"},
		{name: "enroll-revoked", c: enrollToken("web1.corp").with("revoked"), typ: "host"},
		{name: "enroll-user-cert", c: enrollToken("web1.corp"), typ: "user", role: "servers"},
	}
}

// freshDoors are the doors that can carry r's caller.
func freshDoors(r row) []string {
	switch r.c.kind {
	case "admin":
		return []string{"domain", "cli"}
	case "local":
		return []string{"domain", "ssh"}
	case "enroll":
		if r.typ == "host" {
			return []string{"domain", "service", "enroll"}
		}
	}
	return []string{"domain", "service"}
}

var renewDoors = []string{"renew", "renew-domain"}

// beforeTTL is the lifetime of the certificates renewed later: they must
// outlive the policy change.
const beforeTTL = 12 * time.Hour

// policyChange is how long the service is down for the policy edit; it
// also expires the tokens of the "expired" rows that renewals see.
const policyChange = 2 * time.Hour

// renewCase is a certificate obtained under beforePolicy, renewed today.
type renewCase struct {
	row     *row
	cert    *ssh.Certificate
	keyPath string
	tok     cred
	issued  time.Time
}

// runCtx is what a check needs to know of a run.
type runCtx struct {
	pub    ssh.PublicKey
	tok    cred
	keyID  string           // the key ID the certificate must carry ("" for actor role=... req=...)
	actor  string           // who the certificate's key ID names
	renews *ssh.Certificate // the certificate a renewal renews
	s0, s1 snapshot
	// batch marks one element of a batch: entries are the audit entries
	// that are its own (the whole batch's when the batch as a whole was
	// refused), s0 and s1 surround the whole batch.
	batch   bool
	entries []audit.Entry
}

// result is one row through one door.
type result struct {
	exp   verdict
	class string
	norm  string
	cert  *ssh.Certificate
}

func certType(typ string) policy.CertType {
	if typ == "host" {
		return policy.HostCert
	}
	return policy.UserCert
}

func actorOf(c caller, tok cred) string {
	switch c.kind {
	case "admin":
		return "cli:root"
	case "person":
		return "oidc:" + c.user
	case "local":
		return "local:" + c.user
	}
	return "token:" + tok.name
}

// bearer is the credential c presents to the service.
func (w *world) bearer(c caller, tok cred) string {
	if c.kind == "person" {
		return w.idToken(c)
	}
	return tok.secret
}

// domainCaller is the caller a door hands to the authority: the admin at
// the CLI, a person from a verified ID token, a token as stored now.
func (w *world) domainCaller(t *testing.T, c caller, tok cred) policy.Caller {
	t.Helper()
	ctx := context.Background()
	switch c.kind {
	case "admin":
		return ca.Admin("root")
	case "person":
		id, err := w.oidc.Verify(ctx, w.idToken(c))
		if err != nil {
			t.Fatal(err)
		}
		return policy.Caller{Kind: policy.CallerPerson, Identity: policy.Identity{User: id.User, Groups: id.Groups}, MFA: id.MFA, AuthTime: w.clk.Now()}
	case "local":
		// As the front door builds it from the local user's record; a
		// second factor comes with the request (TOTP).
		return policy.Caller{Kind: policy.CallerLocal, Identity: policy.Identity{User: c.user, Groups: c.groups}, AuthTime: w.clk.Now()}
	}
	st, err := w.h.Store.GetToken(ctx, tok.id)
	if err != nil {
		t.Fatal(err)
	}
	return policy.TokenCaller(ca.PolicyToken(st), w.clk.Now())
}

func domainOutcome(t *testing.T, cert *ssh.Certificate, err error) outcome {
	t.Helper()
	if err == nil {
		return outcome{cert: cert}
	}
	var de *policy.DenyError
	if !errors.As(err, &de) {
		t.Fatalf("refused without a policy rule: %v", err)
	}
	return outcome{code: de.Rule, msg: err.Error()}
}

// fresh sends r through door under the policy in force.
func (w *world) fresh(t *testing.T, r row, door string) (outcome, runCtx) {
	t.Helper()
	return w.freshWith(t, r, door, nil, nil)
}

// freshWith is fresh with, when not nil, the API token tok and the TOTP
// code *code that an earlier run (a refused batch) already presented,
// instead of new ones: what that run left unspent must still work.
func (w *world) freshWith(t *testing.T, r row, door string, tok *cred, totpCode *string) (outcome, runCtx) {
	t.Helper()
	ctx := context.Background()
	label := r.name + "." + door
	keyPath, pub := w.newKey(t, label, door == "cli" || door == "enroll")
	if door == "ssh" {
		pub = w.local[r.c.user].PublicKey() // the front door certifies the key the user connects with
	}
	pubLine := keyLine(pub)
	x := runCtx{pub: pub}
	switch {
	case tok != nil:
		x.tok = *tok
	case r.c.kind == "token" || r.c.kind == "enroll":
		x.tok = w.freshToken(t, r.c, label)
	}
	x.actor = actorOf(r.c, x.tok)
	if r.c.tokState == "revoked-after-use" && tok == nil {
		w.useThenRevoke(t, r, door, x.tok)
	}
	var code string
	if totpCode != nil {
		code = *totpCode
	} else {
		code = w.totpCode(r.c)
	}
	x.s0 = w.snap(t, x.pub)
	var o outcome
	switch door {
	case "domain":
		req := ca.Request{Caller: w.domainCaller(t, r.c, x.tok), Type: certType(r.typ), Role: r.role, Principals: r.principals, TTL: r.ttl,
			PublicKey: pub, TOTP: code, Details: map[string]string{"source": "doors-test"}}
		if r.c.kind == "admin" {
			req.KeyID = "doors-" + label
			x.keyID = req.KeyID
		}
		cert, err := w.h.Authority.Sign(ctx, req)
		o = domainOutcome(t, cert, err)
	case "service":
		cl := *w.client
		cl.Bearer = w.bearer(r.c, x.tok)
		_, cert, err := cl.RequestCert(ctx, r.typ, api.CertRequest{PublicKey: pubLine, Role: r.role, Principals: r.principals, TTL: fmtTTL(r.ttl), TOTP: code})
		o = apiOutcome(t, cert, err)
	case "cli":
		x.keyID = "doors-" + label
		args := []string{"--home", w.dir, "sign", r.typ, "--role", r.role, "--id", x.keyID}
		if len(r.principals) > 0 {
			args = append(args, "--principals", strings.Join(r.principals, ","))
		}
		if r.ttl != 0 {
			args = append(args, "--ttl", fmtTTL(r.ttl))
		}
		_, stderr, code := w.cli(append(args, keyPath+".pub")...)
		o = cliOutcome(t, code, stderr, keyPath+"-cert.pub")
	case "ssh":
		cmd := "cert --role " + r.role
		if len(r.principals) > 0 {
			cmd += " --principals " + strings.Join(r.principals, ",")
		}
		if r.ttl != 0 {
			cmd += " --ttl " + fmtTTL(r.ttl)
		}
		stdout, stderr, exit := w.ssh(t, r.c, code, cmd)
		o = sshOutcome(t, exit, stdout, stderr)
	case "enroll":
		tf := filepath.Join(w.work, label+".token")
		if err := os.WriteFile(tf, []byte(x.tok.secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"host", "enroll", "--server", w.ts.URL, "--ca-fingerprint", w.pin, "--token-file", tf, "--host-key", keyPath}
		if len(r.principals) > 0 {
			args = append(args, "--principals", strings.Join(r.principals, ","))
		}
		if r.ttl != 0 {
			args = append(args, "--ttl", fmtTTL(r.ttl))
		}
		_, stderr, code := w.cli(args...)
		o = cliOutcome(t, code, stderr, client.CertPath(keyPath))
	default:
		t.Fatalf("no door %q", door)
	}
	x.s1 = w.snap(t, x.pub)
	return o, x
}

// useThenRevoke makes a request with tok through door that succeeds — the
// service then holds the token in its cache — and revokes tok.
func (w *world) useThenRevoke(t *testing.T, r row, door string, tok cred) {
	t.Helper()
	_, pub := w.newKey(t, r.name+".warm-up", false)
	var err error
	switch door {
	case "domain":
		_, err = w.h.Authority.Sign(context.Background(), ca.Request{Caller: w.domainCaller(t, r.c, tok), Type: certType(r.typ), Role: r.role, PublicKey: pub})
	case "service":
		cl := *w.client
		cl.Bearer = tok.secret
		_, _, err = cl.RequestCert(context.Background(), r.typ, api.CertRequest{PublicKey: keyLine(pub), Role: r.role})
	case "batch":
		cl := *w.client
		cl.Bearer = tok.secret
		var res []client.CertResult
		if res, err = cl.RequestCerts(context.Background(), r.typ, []api.CertRequest{{PublicKey: keyLine(pub), Role: r.role}}); err == nil {
			err = res[0].Err
		}
	case "batch-domain":
		var errs []error
		if _, errs, err = w.h.Authority.SignMany(context.Background(), []ca.Request{{Caller: w.domainCaller(t, r.c, tok), Type: certType(r.typ), Role: r.role, PublicKey: pub}}); err == nil {
			err = errs[0]
		}
	default:
		t.Fatalf("no warm-up through %s", door)
	}
	if err != nil {
		t.Fatalf("request before the revocation: %v", err)
	}
	w.revokeToken(t, tok)
}

// issueBefore obtains rc's certificate under beforePolicy through the
// door its caller uses: the CLI for the admin, the service for the rest.
func (w *world) issueBefore(t *testing.T, r *row, principals []string, want verdict) *renewCase {
	t.Helper()
	label := r.name + ".before"
	keyPath, pub := w.newKey(t, label, true)
	pubLine := keyLine(pub)
	rc := &renewCase{row: r, keyPath: keyPath, issued: w.clk.Now()}
	var o outcome
	switch r.c.kind {
	case "admin":
		args := []string{"--home", w.dir, "sign", r.typ, "--role", r.role, "--id", "doors-" + label, "--ttl", fmtTTL(beforeTTL)}
		if len(principals) > 0 {
			args = append(args, "--principals", strings.Join(principals, ","))
		}
		_, stderr, code := w.cli(append(args, keyPath+".pub")...)
		o = cliOutcome(t, code, stderr, client.CertPath(keyPath))
	default:
		if r.c.kind != "person" {
			ttl := 24 * time.Hour
			if r.c.tokState == "expired" {
				ttl = policyChange / 2 // valid now, expired after the policy change
			}
			rc.tok = w.token(t, r.c, label, w.clk.Now(), ttl)
		}
		cl := *w.client
		cl.Bearer = w.bearer(r.c, rc.tok)
		_, cert, err := cl.RequestCert(context.Background(), r.typ, api.CertRequest{PublicKey: pubLine, Role: r.role, Principals: principals, TTL: fmtTTL(beforeTTL)})
		o = apiOutcome(t, cert, err)
		if o.cert != nil {
			if err := client.WriteCert(keyPath, o.cert); err != nil {
				t.Fatal(err)
			}
		}
	}
	if o.cert == nil {
		t.Fatalf("%s: refused under the policy before (%d %s: %s); the oracle allowed it", r.name, o.status, o.code, o.msg)
	}
	if !slices.Equal(o.cert.ValidPrincipals, want.principals) {
		t.Fatalf("%s: principals before %v, oracle %v", r.name, o.cert.ValidPrincipals, want.principals)
	}
	rc.cert = o.cert
	return rc
}

// renew renews rc's certificate through door under the policy in force.
func (w *world) renew(t *testing.T, rc *renewCase, door string) (outcome, runCtx) {
	t.Helper()
	r := rc.row
	x := runCtx{pub: rc.cert.Key, tok: rc.tok, keyID: rc.cert.KeyId, renews: rc.cert, actor: actorOf(r.c, rc.tok)}
	code := w.totpCode(r.c)
	if door == "renew" {
		// The holder presents the certificate obtained before.
		if data, err := os.ReadFile(client.CertPath(rc.keyPath)); err != nil || !bytes.Equal(data, ssh.MarshalAuthorizedKey(rc.cert)) {
			t.Fatalf("%s does not hold the certificate to renew: %v", client.CertPath(rc.keyPath), err)
		}
	}
	x.s0 = w.snap(t, x.pub)
	var o outcome
	switch door {
	case "renew":
		args := []string{"login", "--server", w.ts.URL, "--ca-fingerprint", w.pin, "--renew", "--key", rc.keyPath, "--no-agent"}
		if r.ttl != 0 {
			args = append(args, "--ttl", fmtTTL(r.ttl))
		}
		if code != "" {
			args = append(args, "--totp", code)
		}
		_, stderr, exit := w.cli(args...)
		o = cliOutcome(t, exit, stderr, client.CertPath(rc.keyPath))
		if o.cert != nil && o.cert.Serial == rc.cert.Serial {
			t.Fatalf("login --renew succeeded but left the old certificate")
		}
	case "renew-domain":
		cert, err := w.h.Authority.Renew(context.Background(), ca.RenewRequest{Cert: rc.cert, TTL: r.ttl, TOTP: code,
			Details: map[string]string{"source": "doors-test"}})
		o = domainOutcome(t, cert, err)
	default:
		t.Fatalf("no door %q", door)
	}
	x.s1 = w.snap(t, x.pub)
	return o, x
}

// check compares one run with the oracle: the verdict and its rule, the
// certificate's content, what changed in the store and the audit log.
func (w *world) check(t *testing.T, r row, door string, exp verdict, o *outcome, x runCtx, backdate time.Duration) {
	t.Helper()
	overHTTP := door == "service" || door == "enroll" || door == "renew" || door == "batch"
	renewal := door == "renew" || door == "renew-domain"
	entries := x.entries
	if !x.batch {
		entries = w.appended(t, x.s0, x.s1, x.actor, "unauthenticated")
	}
	issues, denials := only(entries, audit.ActionIssue), only(entries, audit.ActionDeny)
	if exp.allow {
		c := o.cert
		if c == nil {
			t.Fatalf("refused (%d %s: %s); the oracle allows it", o.status, o.code, o.msg)
		}
		if !slices.Equal(c.ValidPrincipals, exp.principals) {
			t.Errorf("principals %v, want %v", c.ValidPrincipals, exp.principals)
		}
		if got := time.Duration(c.ValidBefore-c.ValidAfter) * time.Second; got != exp.ttl+backdate {
			t.Errorf("validity %s, want ttl %s + backdate %s", got, exp.ttl, backdate)
		}
		if c.CertType != uint32(certType(r.typ)) || !bytes.Equal(c.Key.Marshal(), x.pub.Marshal()) {
			t.Errorf("certificate of type %d for another key", c.CertType)
		}
		// Serials are unique, not ordered across processes: the CLI
		// reserves its own blocks.
		// A batch's certificates share one block of serials.
		if batchSerial := x.batch && c.Serial > x.s0.maxSerial && c.Serial <= x.s1.maxSerial; !batchSerial && x.s1.maxSerial != max(x.s0.maxSerial, c.Serial) || x.s1.certs != x.s0.certs+1 {
			t.Errorf("serial %d: store went from max serial %d, %d certificates of the key to %d, %d", c.Serial, x.s0.maxSerial, x.s0.certs, x.s1.maxSerial, x.s1.certs)
		}
		if len(issues) != 1 || issues[0].Serial != c.Serial || len(denials) != 0 {
			t.Errorf("audit: %d cert.issue entries (%+v), %d cert.deny; want one cert.issue of serial %d", len(issues), issues, len(denials), c.Serial)
		}
		switch {
		case x.keyID != "" && c.KeyId != x.keyID:
			t.Errorf("key ID %q, want %q", c.KeyId, x.keyID)
		case x.keyID == "" && !strings.HasPrefix(c.KeyId, x.actor+" role="+exp.role+" "):
			t.Errorf("key ID %q does not name %s and role %s", c.KeyId, x.actor, exp.role)
		}
		rec, err := w.h.Store.GetCert(context.Background(), c.Serial)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Role != exp.role || rec.Requester != x.actor {
			t.Errorf("record: role %q requester %q, want %q %q", rec.Role, rec.Requester, exp.role, x.actor)
		}
		if renewal && (rec.Lineage.Renews != x.renews.Serial || rec.Lineage.Origin != x.renews.Serial) {
			t.Errorf("lineage %+v, want a renewal of serial %d", rec.Lineage, x.renews.Serial)
		}
		if !renewal && r.c.kind == "enroll" && !w.tokenUsed(t, x.tok.id) {
			t.Errorf("enrollment token %s not spent by the enrollment", x.tok.name)
		}
		return
	}
	if o.cert != nil {
		t.Fatalf("issued serial %d %v; the oracle refuses it: %s (%s)", o.cert.Serial, o.cert.ValidPrincipals, exp.rule, exp.frag)
	}
	wantStatus, wantCode, wantAudit := 0, exp.rule, exp.rule
	if overHTTP {
		wantStatus = 403
		if !renewal && isCredentialRule(exp.rule) {
			// At the HTTPS door a token that is no credential any more
			// does not authenticate: the same verdict, as a 401.
			wantStatus, wantCode, wantAudit = 401, "unauthorized", "unauthorized"
		}
	}
	if exp.status != 0 {
		// A refusal of the door itself, not a decision (a batch refused
		// whole for a field it does not take).
		wantStatus, wantCode, wantAudit = exp.status, exp.rule, exp.rule
	}
	if (x.s1.maxSerial != x.s0.maxSerial && !x.batch) || x.s1.certs != x.s0.certs || len(issues) != 0 {
		t.Errorf("refusal changed the store: max serial %d -> %d, certificates of the key %d -> %d, %d cert.issue", x.s0.maxSerial, x.s1.maxSerial, x.s0.certs, x.s1.certs, len(issues))
	}
	if len(denials) != 1 {
		t.Fatalf("audit: %d cert.deny entries %+v, want one", len(denials), denials)
	}
	audited, _, _ := strings.Cut(denials[0].Reason, ":")
	if door == "cli" {
		o.code = audited // the CLI prints the message; the rule is in the audit log
	}
	if o.status != wantStatus || o.code != wantCode {
		t.Errorf("refused with %d %q (%s), want %d %q", o.status, o.code, o.msg, wantStatus, wantCode)
	}
	if overHTTP && !renewal && r.c.tokState == "revoked-after-use" && audited == "token-invalid" {
		// The service authenticated the token from its few-second cache;
		// the transaction that would have recorded the certificate found
		// it revoked (docs/api.md: 401, audited with rule token-invalid).
		wantAudit, exp.frag = "token-invalid", "revoked or"
	}
	if audited != wantAudit {
		t.Errorf("audited as %q (%s), want rule %q", audited, denials[0].Reason, wantAudit)
	}
	if !strings.Contains(o.msg, exp.frag) || !strings.Contains(denials[0].Reason, exp.frag) {
		t.Errorf("refusal %q (audit %q) does not say %q", o.msg, denials[0].Reason, exp.frag)
	}
	if !renewal && r.c.kind == "enroll" && r.c.tokState != "used" && w.tokenUsed(t, x.tok.id) {
		t.Errorf("refused enrollment spent token %s", x.tok.name)
	}
}

func classOf(o outcome) string {
	switch {
	case o.cert != nil:
		return "allow"
	case o.status == 401 || isCredentialRule(o.code):
		return "credential-refused"
	}
	return o.code
}

func okFail(v verdict) string {
	if v.allow {
		return "ok"
	}
	return "fail"
}

// TestDoorMatrix runs every row of the matrix through every door that can
// carry its caller, fresh under today's policy and as a renewal of a
// certificate obtained under the policy before, and checks each against the
// oracle and the doors against each other.
func TestDoorMatrix(t *testing.T) {
	start := time.Now()
	before, today := readPolicy(t, beforePolicy), readPolicy(t, todayPolicy)
	rows := matrix()
	w := newWorld(t)

	// Under the policy before: obtain every certificate that policy allows,
	// for the renewals.
	w.open(t, beforePolicy)
	w.enrollTOTP(t, "carol")
	for _, c := range localCallers {
		w.addLocalUser(t, c.user, c.groups)
	}
	w.enrollTOTP(t, "local:tess")
	var cases []*renewCase
	for i := range rows {
		r := &rows[i]
		ps := r.principals
		if len(ps) == 0 && r.c.kind != "enroll" {
			if tr, ok := today.roles[r.role]; ok && tr.typ == "user" {
				ps = tr.principals // so that a renewal asks for what a fresh request gets today
			}
		}
		v := before.decide(ask{c: r.c, typ: r.typ, role: r.role, principals: ps, ttl: beforeTTL})
		if v.allow {
			cases = append(cases, w.issueBefore(t, r, ps, v))
		}
	}

	// The policy changes: a new sshca.yaml, the service restarted, time
	// passes, some tokens are revoked.
	w.clk.Advance(policyChange)
	w.open(t, todayPolicy)
	for _, rc := range cases {
		if strings.HasPrefix(rc.row.c.tokState, "revoked") {
			w.revokeToken(t, rc.tok)
		}
	}

	results := map[string]map[string]result{}
	counts := map[string][2]int{} // by door: allowed, refused
	record := func(t *testing.T, r row, door string, exp verdict, o outcome, tok cred) {
		t.Helper()
		if results[r.name] == nil {
			results[r.name] = map[string]result{}
		}
		results[r.name][door] = result{exp: exp, class: classOf(o), norm: normalize(o.msg, tok.name), cert: o.cert}
		n := counts[door]
		if o.cert != nil {
			n[0]++
		} else {
			n[1]++
		}
		counts[door] = n
	}

	// Fresh requests under today's policy.
	for _, r := range rows {
		exp := today.decide(ask{c: r.c, typ: r.typ, role: r.role, principals: r.principals, ttl: r.ttl, totp: r.c.totp, credState: r.c.tokState})
		for _, door := range freshDoors(r) {
			t.Run(okFail(exp)+"/"+r.name+"/"+door, func(t *testing.T) {
				o, x := w.fresh(t, r, door)
				w.check(t, r, door, exp, &o, x, today.backdate)
				record(t, r, door, exp, o, x.tok)
			})
		}
	}

	// Batches under today's policy: every row the HTTPS single door runs,
	// as an element of one batch with the rows of the same caller and type,
	// through the HTTPS batch door and SignMany. What a batch refused to
	// take, an enrollment token or a TOTP code, is then sent alone through
	// its own door: the batch must have spent nothing.
	for _, g := range batchGroups(rows) {
		for _, door := range batchDoors {
			t.Run("batch/"+g.name+"/"+door, func(t *testing.T) {
				elems, tok, actor := w.runBatch(t, g, door)
				var after *batchElem // a group shares one token: spend it once, after every element's check
				for i, e := range elems {
					exp := today.decide(ask{c: e.r.c, typ: e.r.typ, role: e.r.role, principals: e.r.principals, ttl: e.r.ttl, totp: e.r.c.totp, credState: e.r.c.tokState})
					bexp := batchVerdict(door, e.r, exp)
					name := e.r.name
					if e.companion {
						name += ".companion"
					}
					t.Run(fmt.Sprintf("%s/%s/%s[%d]", okFail(bexp), name, door, i), func(t *testing.T) {
						w.checkElem(t, door, e, tok, actor, bexp, today.backdate)
						if !e.companion {
							record(t, e.r, door, bexp, e.o, tok)
						}
					})
					if after == nil && !e.companion && batchOnly(door, e.r, exp) {
						after = e
					}
				}
				if e := after; e != nil {
					exp := today.decide(ask{c: e.r.c, typ: e.r.typ, role: e.r.role, principals: e.r.principals, ttl: e.r.ttl, totp: e.r.c.totp, credState: e.r.c.tokState})
					alone := ownDoor(door, e.r)
					t.Run(okFail(exp)+"/"+e.r.name+"/"+door+"-then-"+alone, func(t *testing.T) {
						var tp *cred
						if tok.id != "" {
							tp = &tok
						}
						o, x := w.freshWith(t, e.r, alone, tp, &e.code)
						w.check(t, e.r, alone, exp, &o, x, today.backdate)
					})
				}
			})
		}
	}

	// Renewals of what was obtained before, under today's policy.
	for _, rc := range cases {
		r := *rc.row
		exp := today.decide(ask{c: r.c, typ: r.typ, role: r.role, ttl: r.ttl, totp: r.c.totp, credState: r.c.tokState,
			renew: &renewAsk{principals: rc.cert.ValidPrincipals, authAge: w.clk.Now().Sub(rc.issued)}})
		for _, door := range renewDoors {
			t.Run(okFail(exp)+"/"+r.name+"/"+door, func(t *testing.T) {
				o, x := w.renew(t, rc, door)
				w.check(t, r, door, exp, &o, x, today.backdate)
				record(t, r, door, exp, o, x.tok)
			})
		}
	}

	// The same decision everywhere: every fresh door as the domain entry,
	// both renewal doors alike, and a renewal as a fresh request by the same
	// caller unless a renewal rule decided.
	for _, r := range rows {
		res := results[r.name]
		ref, ok := res["domain"]
		if !ok {
			continue // its subtest failed before recording
		}
		t.Run("ok/"+r.name+"/same-verdict", func(t *testing.T) {
			for _, door := range freshDoors(r) {
				// A revoked token still in the service's cache is refused in
				// other words (token-invalid); the verdict is the same.
				sameWords := r.c.tokState != "revoked-after-use"
				if got, ok := res[door]; ok && (got.class != ref.class || sameWords && got.norm != ref.norm) {
					t.Errorf("%s: %s %q; domain: %s %q", door, got.class, got.norm, ref.class, ref.norm)
				}
			}
			for _, door := range batchDoors {
				// A batch decides as alone, except what it does not take.
				got, ok := res[door]
				if !ok || batchOnly(door, r, ref.exp) {
					continue
				}
				sameWords := r.c.tokState != "revoked-after-use"
				if got.class != ref.class || sameWords && got.norm != ref.norm {
					t.Errorf("%s: %s %q; domain: %s %q", door, got.class, got.norm, ref.class, ref.norm)
				}
				if got.class == "allow" && ref.class == "allow" && (!slices.Equal(got.cert.ValidPrincipals, ref.cert.ValidPrincipals) ||
					got.cert.ValidBefore-got.cert.ValidAfter != ref.cert.ValidBefore-ref.cert.ValidAfter) {
					t.Errorf("%s: %v for %ds; domain: %v for %ds", door, got.cert.ValidPrincipals, got.cert.ValidBefore-got.cert.ValidAfter,
						ref.cert.ValidPrincipals, ref.cert.ValidBefore-ref.cert.ValidAfter)
				}
			}
			rn, ok1 := res["renew"]
			rd, ok2 := res["renew-domain"]
			if !ok1 || !ok2 {
				return
			}
			if rn.class != rd.class || rn.norm != rd.norm {
				t.Errorf("renew: %s %q; renew-domain: %s %q", rn.class, rn.norm, rd.class, rd.norm)
			}
			if rd.exp.renewalOnly == "" && rd.class != ref.class {
				t.Errorf("renewal %s, fresh request %s, and no renewal rule applies", rd.class, ref.class)
			}
			if rd.class == "allow" && ref.class == "allow" && (!slices.Equal(rd.cert.ValidPrincipals, ref.cert.ValidPrincipals) ||
				rd.cert.ValidBefore-rd.cert.ValidAfter != ref.cert.ValidBefore-ref.cert.ValidAfter) {
				t.Errorf("renewal %v for %ds; fresh %v for %ds", rd.cert.ValidPrincipals, rd.cert.ValidBefore-rd.cert.ValidAfter,
					ref.cert.ValidPrincipals, ref.cert.ValidBefore-ref.cert.ValidAfter)
			}
		})
	}

	var doors []string
	total, allowed := 0, 0
	for _, d := range []string{"domain", "service", "cli", "enroll", "ssh", "batch", "batch-domain", "renew", "renew-domain"} {
		n := counts[d]
		doors = append(doors, fmt.Sprintf("%s %d/%d", d, n[0], n[1]))
		total += n[0] + n[1]
		allowed += n[0]
	}
	t.Logf("door matrix: %d rows (%d renewed after the policy change) × doors = %d runs, %d allowed, %d refused [allowed/refused: %s] in %s",
		len(rows), len(cases), total, allowed, total-allowed, strings.Join(doors, ", "), time.Since(start).Round(time.Millisecond))
}
