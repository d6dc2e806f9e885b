package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
)

// TestCachedTokenRevokedElsewhere: a role token served from the service's
// cache and then revoked by another process (`sshca token revoke`) obtains
// nothing more: the transaction that would record the certificate checks the
// token, the request gets 401, and the refusal is audited.
func TestCachedTokenRevokedElsewhere(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	secret := f.roleToken("ci", "deploy")
	_, line := newKey(t)
	req := api.CertRequest{PublicKey: line, Role: "deploy"}
	if r, _, _ := f.userCert(secret, req); r.status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	id := strings.SplitN(strings.TrimPrefix(secret, "sshca_"), "_", 2)[0]
	ev := audit.Entry{Time: f.clock.Now(), Actor: "cli:root", Action: audit.ActionToken, Outcome: "ok", Reason: "token revoked"}
	if err := f.home.Store.RevokeToken(context.Background(), id, f.clock.Now(), ev); err != nil {
		t.Fatal(err)
	}
	before := f.state()
	r, _, _ := f.userCert(secret, req)
	wantError(t, r, http.StatusUnauthorized, "unauthorized")
	after := f.state()
	if after.certs != before.certs || after.denials != before.denials+1 {
		t.Fatalf("after the revoked token: certs %d→%d, denials %d→%d; want no new certificate and one denial",
			before.certs, after.certs, before.denials, after.denials)
	}
	if e := f.lastEntry(); e.Action != audit.ActionDeny || !strings.Contains(e.Reason, "token-invalid") {
		t.Fatalf("last audit entry = %s %q; want the token-invalid denial", e.Action, e.Reason)
	}
	f.verifyAudit()
}
