package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/totp"
)

// setRole changes one role of the running service's policy (a policy edit
// after issuance); the returned function restores it.
func (f *fixture) setRole(t *testing.T, name string, edit func(r *policy.Role)) {
	t.Helper()
	roles := make(map[string]policy.Role, len(f.home.Authority.Roles))
	for k, v := range f.home.Authority.Roles {
		roles[k] = v
	}
	old := f.home.Authority.Roles
	if edit == nil {
		delete(roles, name)
	} else {
		r := roles[name]
		edit(&r)
		roles[name] = r
	}
	f.home.Authority.Roles = roles
	t.Cleanup(func() { f.home.Authority.Roles = old })
}

// renewBy renews cert through the HTTP door, with an optional TOTP code.
func (f *fixture) renewBy(t *testing.T, cert *ssh.Certificate, s ssh.Signer, totpCode string) (response, *ssh.Certificate) {
	t.Helper()
	ch := f.challenge()
	r := f.post("/v1/certs/renew", "", api.RenewRequest{Certificate: certLine(cert), Challenge: ch, Signature: proof(t, s, ch), TOTP: totpCode})
	if r.status != http.StatusOK {
		return r, nil
	}
	var cr api.CertResponse
	if err := jsonUnmarshal(r.body, &cr); err != nil {
		t.Fatal(err)
	}
	nc, err := parseCertLine(cr.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	return r, nc
}

// TestRenewalIsIssuance reproduces the renewal attacks of issue 18: each
// policy change after issuance that refuses a fresh request refuses the
// renewal too, with the rule; renewals keep the key ID and the identity.
func TestRenewalIsIssuance(t *testing.T) {
	t.Parallel()
	f, iss := newOIDCFixture(t)
	mint := func(user string, groups []string, amr []string) string {
		c := map[string]any{"sub": user, "preferred_username": user}
		if groups != nil {
			c["groups"] = groups
		}
		if amr != nil {
			c["amr"] = amr
		}
		return iss.Mint(c, "RS256")
	}
	obtain := func(t *testing.T, bearer, role string) (*ssh.Certificate, ssh.Signer) {
		t.Helper()
		s, line := newKey(t)
		r, _, cert := f.userCert(bearer, api.CertRequest{PublicKey: line, Role: role})
		if r.status != http.StatusOK {
			t.Fatalf("issue: %d %s", r.status, r.err.Error)
		}
		return cert, s
	}
	refused := func(t *testing.T, cert *ssh.Certificate, s ssh.Signer, code string) {
		t.Helper()
		before := f.state()
		r, _ := f.renewBy(t, cert, s, "")
		wantError(t, r, http.StatusForbidden, code)
		if after := f.state(); after.maxSerial != before.maxSerial || after.denials != before.denials+1 {
			t.Errorf("refused renewal: state %+v -> %+v (want no serial, one denial)", before, after)
		}
		if e := f.lastEntry(); e.Action != "cert.deny" || !strings.HasPrefix(e.Reason, code+":") {
			t.Errorf("last audit entry %+v, want a cert.deny with rule %s", e, code)
		}
	}

	t.Run("ok/renewal-chain-keeps-key-id-and-lineage", func(t *testing.T) {
		cert, s := obtain(t, mint("alice", nil, nil), "deploy")
		_, r1 := f.renewBy(t, cert, s, "")
		if r1 == nil {
			t.Fatal("first renewal refused")
		}
		_, r2 := f.renewBy(t, r1, s, "")
		if r2 == nil {
			t.Fatal("renewal of the renewal refused")
		}
		for _, c := range []*ssh.Certificate{r1, r2} {
			if c.KeyId != cert.KeyId {
				t.Errorf("renewed key ID %q, want the original %q", c.KeyId, cert.KeyId)
			}
		}
		rec, err := f.home.Store.GetCert(context.Background(), r2.Serial)
		if err != nil {
			t.Fatal(err)
		}
		l := rec.Lineage
		if l.Identity != "alice" || l.Caller != policy.CallerPerson || l.Origin != cert.Serial || l.Renews != r1.Serial || rec.Requester != "oidc:alice" {
			t.Errorf("lineage of the second renewal: %+v requester %q", l, rec.Requester)
		}
	})
	t.Run("fail/person-removed-from-allow", func(t *testing.T) {
		cert, s := obtain(t, mint("gina", []string{"deployers"}, nil), "deploy")
		f.setRole(t, "deploy", func(r *policy.Role) { r.Allow = &policy.Allow{Users: []string{"alice"}} })
		r, _, _ := f.userCert(mint("gina", []string{"deployers"}, nil), api.CertRequest{PublicKey: certLine2(s.PublicKey()), Role: "deploy"})
		wantError(t, r, http.StatusForbidden, "role-not-allowed")
		refused(t, cert, s, "role-not-allowed")
	})
	t.Run("fail/role-gains-require-mfa", func(t *testing.T) {
		cert, s := obtain(t, mint("alice", nil, nil), "deploy")
		f.setRole(t, "deploy", func(r *policy.Role) { r.RequireMFA = true })
		refused(t, cert, s, "mfa-required")
	})
	t.Run("fail/mfa-certificate-renewed-without-factor", func(t *testing.T) {
		cert, s := obtain(t, mint("alice", nil, []string{"pwd", "otp"}), "secure")
		refused(t, cert, s, "mfa-required")
	})
	t.Run("ok/mfa-certificate-renewed-with-fresh-totp", func(t *testing.T) {
		secret := []byte("0123456789abcdefghij")
		if err := f.home.Store.PutTOTP(context.Background(), "carol", secret, auditEntry("totp enrolled")); err != nil {
			t.Fatal(err)
		}
		cert, s := obtain(t, mint("carol", nil, []string{"pwd", "hwk"}), "secure")
		r, nc := f.renewBy(t, cert, s, totp.Code(secret, f.clock.Now()))
		if nc == nil {
			t.Fatalf("renewal with a fresh factor: %d %s", r.status, r.err.Error)
		}
		f.clock.Advance(31 * time.Second)
		refused(t, nc, s, "mfa-required")
	})
	t.Run("fail/role-removed", func(t *testing.T) {
		cert, s := obtain(t, mint("alice", nil, nil), "deploy")
		f.setRole(t, "deploy", nil)
		refused(t, cert, s, "unknown-role")
	})
	t.Run("fail/role-forbids-renewal", func(t *testing.T) {
		cert, s := obtain(t, mint("alice", nil, nil), "deploy")
		f.setRole(t, "deploy", func(r *policy.Role) { r.Renewal = policy.RenewNone })
		refused(t, cert, s, "renewal-forbidden")
	})
	t.Run("fail/session-bound", func(t *testing.T) {
		cert, s := obtain(t, mint("alice", nil, nil), "deploy")
		f.setRole(t, "deploy", func(r *policy.Role) { r.MaxSession = 40 * time.Minute })
		_, r1 := f.renewBy(t, cert, s, "")
		if r1 == nil {
			t.Fatal("renewal within the session refused")
		}
		if end := time.Unix(int64(r1.ValidBefore), 0); end.After(f.clock.Now().Add(40 * time.Minute)) {
			t.Errorf("renewal valid until %s, past the session's end", end)
		}
		f.clock.Advance(25 * time.Minute)
		_, r2 := f.renewBy(t, r1, s, "")
		if r2 == nil {
			t.Fatal("second renewal within the session refused")
		}
		f.clock.Advance(14*time.Minute + 30*time.Second)
		refused(t, r2, s, "session-expired")
	})
	t.Run("fail/token-expired", func(t *testing.T) {
		tok := f.token("ci-short", store.TokenRole, []string{"deploy"}, nil, f.clock.Now(), 10*time.Minute)
		cert, s := obtain(t, tok, "deploy")
		f.clock.Advance(11 * time.Minute)
		refused(t, cert, s, "token-expired")
	})
	t.Run("fail/cli-signed", func(t *testing.T) {
		s, _ := newKey(t)
		cert, err := f.home.Authority.Sign(context.Background(), ca.Request{Caller: ca.Admin("root"), Type: policy.UserCert, Role: "deploy", KeyID: "root-signed", PublicKey: s.PublicKey()})
		if err != nil {
			t.Fatal(err)
		}
		refused(t, cert, s, "renewal-forbidden")
		f.setRole(t, "deploy", func(r *policy.Role) { r.Renewal = policy.RenewAny })
		if _, nc := f.renewBy(t, cert, s, ""); nc == nil || nc.KeyId != "root-signed" {
			t.Fatalf("renewal: role says any; got %v", nc)
		}
	})
	t.Run("ok/group-template-principals-renew", func(t *testing.T) {
		cert, s := obtain(t, mint("dora", []string{"dev"}, nil), "personal")
		_, nc := f.renewBy(t, cert, s, "")
		if nc == nil || strings.Join(nc.ValidPrincipals, ",") != strings.Join(cert.ValidPrincipals, ",") {
			t.Fatalf("renewal of {{.Groups}} principals %v: %v", cert.ValidPrincipals, nc)
		}
	})
}

// TestBoundedByConstruction: hostile field sizes grow neither the metrics
// nor the audit log, and requests without a valid credential are limited
// per source address before anything is written.
func TestBoundedByConstruction(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{policy: strings.Replace(testkit.Policy, "anonymous_rate_limit: 100000", "anonymous_rate_limit: 20", 1)})
	ci := f.roleToken("ci", "deploy")
	_, key := newKey(t)
	huge := strings.Repeat("r", 60000)
	for i := 0; i < 20; i++ {
		r, _, _ := f.userCert(ci, api.CertRequest{PublicKey: key, Role: huge + fmt.Sprint(i)})
		wantError(t, r, http.StatusBadRequest, "bad-request")
		r, _, _ = f.userCert(ci, api.CertRequest{PublicKey: key, Role: fmt.Sprint("no-such-role-", i)})
		wantError(t, r, http.StatusForbidden, "unknown-role")
	}
	resp, err := f.http.Get(f.ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "rrrr") || strings.Contains(string(body), "no-such-role") {
		t.Error("a role name from a request became a metric label")
	}
	if len(body) > 64<<10 {
		t.Errorf("/metrics is %d bytes", len(body))
	}
	entries, err := f.home.Store.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := len(e.Role) + len(e.Reason) + len(e.KeyID); n > 2048 {
			t.Errorf("audit entry %d holds %d bytes of request text", e.Seq, n)
		}
	}

	// No credential at all: 20 refusals are recorded, then 429 with nothing written.
	before := f.state()
	limited := 0
	for i := 0; i < 40; i++ {
		r, _, _ := f.userCert("sshca_0000000000000000_nope", api.CertRequest{PublicKey: key, Role: "deploy"})
		if r.status == http.StatusTooManyRequests {
			limited++
		}
		f.post("/v1/certs/renew/challenge", "", struct{}{})
	}
	after := f.state()
	if limited < 20 {
		t.Errorf("%d of 40 unauthenticated requests limited, want at least 20", limited)
	}
	if after.entries-before.entries > 20 {
		t.Errorf("unauthenticated requests wrote %d audit entries, want at most the 20 admitted", after.entries-before.entries)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func parseCertLine(line string) (*ssh.Certificate, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, err
	}
	c, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("not a certificate")
	}
	return c, nil
}

func auditEntry(reason string) audit.Entry {
	return audit.Entry{Time: time.Now(), Actor: "test", Action: audit.ActionAdmin, Outcome: "ok", Reason: reason}
}
