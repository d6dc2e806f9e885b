package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
)

// challenge asks for a renewal challenge.
func (f *fixture) challenge() string {
	f.t.Helper()
	r := f.post("/v1/certs/renew/challenge", "", struct{}{})
	if r.status != http.StatusOK {
		f.t.Fatalf("challenge: %d %s", r.status, r.err.Error)
	}
	var ch api.Challenge
	if err := json.Unmarshal(r.body, &ch); err != nil || ch.Challenge == "" {
		f.t.Fatalf("challenge response %s: %v", r.body, err)
	}
	return ch.Challenge
}

// proof signs challenge the way api.RenewRequest documents it.
func proof(t *testing.T, s ssh.Signer, challenge string) string {
	t.Helper()
	sig, err := s.Sign(rand.Reader, []byte(api.RenewSignaturePrefix+challenge))
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ssh.Marshal(sig))
}

func certLine(c *ssh.Certificate) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c)))
}

// client returns the Go client of package client, pinned to the test server.
func (f *fixture) client(bearer string) *client.Client {
	f.t.Helper()
	c, err := client.New(f.ts.URL, server.CertFingerprint(f.ts.Certificate().Raw))
	if err != nil {
		f.t.Fatal(err)
	}
	c.Bearer = bearer
	return c
}

// TestRenew checks renewal by proof of possession.
func TestRenew(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	ci := f.roleToken("ci", "deploy")
	admin := f.token("oncall", store.TokenAdmin, nil, nil, f.clock.Now(), time.Hour)
	obtain := func(tok string, s ssh.Signer, principals ...string) *ssh.Certificate {
		t.Helper()
		r, _, cert := f.userCert(tok, api.CertRequest{PublicKey: certLine2(s.PublicKey()), Role: "deploy", Principals: principals})
		if r.status != http.StatusOK {
			t.Fatalf("issue: %d %s", r.status, r.err.Error)
		}
		return cert
	}
	signer, _ := newKey(t)
	other, _ := newKey(t)
	cert := obtain(ci, signer, "ci")

	t.Run("ok/client-renew", func(t *testing.T) {
		resp, nc, err := f.client("").Renew(ctx, cert, signer, "15m")
		if err != nil {
			t.Fatal(err)
		}
		if nc.Serial <= cert.Serial || !slices.Equal(nc.ValidPrincipals, []string{"ci"}) {
			t.Errorf("renewed serial %d principals %v (old serial %d)", nc.Serial, nc.ValidPrincipals, cert.Serial)
		}
		if string(nc.Key.Marshal()) != string(signer.PublicKey().Marshal()) {
			t.Error("renewed certificate is for another key")
		}
		if nc.KeyId != cert.KeyId || resp.KeyID != cert.KeyId {
			t.Errorf("key ID %q, want the original %q: a renewal keeps its key ID", nc.KeyId, cert.KeyId)
		}
		if got := time.Duration(nc.ValidBefore-nc.ValidAfter) * time.Second; got != 20*time.Minute {
			t.Errorf("validity %s, want 15m plus the 5m backdate", got)
		}
		es, err := f.home.Store.AuditEntries(ctx, store.AuditFilter{Serial: nc.Serial})
		if err != nil || len(es) != 1 || es[0].Details["renews"] != fmt.Sprint(cert.Serial) || es[0].Actor != "token:ci" {
			t.Errorf("audit entry of the renewal: %+v %v", es, err)
		}
	})

	renew := func(certificate, challenge, signature string) response {
		return f.post("/v1/certs/renew", "", api.RenewRequest{Certificate: certificate, Challenge: challenge, Signature: signature})
	}
	t.Run("fail/wrong-key", func(t *testing.T) {
		ch := f.challenge()
		before := f.state()
		r := renew(certLine(cert), ch, proof(t, other, ch))
		wantError(t, r, http.StatusUnauthorized, "unauthorized")
		if after := f.state(); after.maxSerial != before.maxSerial || after.denials != before.denials+1 {
			t.Errorf("state %+v -> %+v", before, after)
		}
	})
	t.Run("fail/signature-over-other-data", func(t *testing.T) {
		ch := f.challenge()
		sig, _ := signer.Sign(rand.Reader, []byte(ch)) // without the prefix
		r := renew(certLine(cert), ch, base64.StdEncoding.EncodeToString(ssh.Marshal(sig)))
		wantError(t, r, http.StatusUnauthorized, "unauthorized")
	})
	t.Run("fail/replayed-challenge", func(t *testing.T) {
		ch := f.challenge()
		sig := proof(t, signer, ch)
		if r := renew(certLine(cert), ch, sig); r.status != http.StatusOK {
			t.Fatalf("first use: %d %s", r.status, r.err.Error)
		}
		before := f.state()
		r := renew(certLine(cert), ch, sig)
		wantError(t, r, http.StatusUnauthorized, "unauthorized")
		if after := f.state(); after.maxSerial != before.maxSerial {
			t.Error("replay issued a certificate")
		}
	})
	t.Run("fail/invented-challenge", func(t *testing.T) {
		ch := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
		wantError(t, renew(certLine(cert), ch, proof(t, signer, ch)), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("fail/expired-challenge", func(t *testing.T) {
		ch := f.challenge()
		f.clock.Advance(server.ChallengeTTL + time.Second)
		defer f.clock.Advance(-server.ChallengeTTL - time.Second)
		wantError(t, renew(certLine(cert), ch, proof(t, signer, ch)), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("fail/plain-key", func(t *testing.T) {
		ch := f.challenge()
		wantError(t, renew(certLine2(signer.PublicKey()), ch, proof(t, signer, ch)), http.StatusBadRequest, "bad-certificate")
	})
	t.Run("fail/signature-not-base64", func(t *testing.T) {
		wantError(t, renew(certLine(cert), f.challenge(), "%%%"), http.StatusBadRequest, "bad-signature")
	})
	t.Run("fail/foreign-ca", func(t *testing.T) {
		caSigner, _ := newKey(t)
		forged := &ssh.Certificate{Key: signer.PublicKey(), Serial: cert.Serial, CertType: ssh.UserCert, KeyId: cert.KeyId,
			ValidPrincipals: []string{"root"}, ValidAfter: cert.ValidAfter, ValidBefore: cert.ValidBefore}
		if err := forged.SignCert(rand.Reader, caSigner); err != nil {
			t.Fatal(err)
		}
		ch := f.challenge()
		wantError(t, renew(certLine(forged), ch, proof(t, signer, ch)), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("fail/expired-cert", func(t *testing.T) {
		f.clock.Advance(2 * time.Hour)
		defer f.clock.Advance(-2 * time.Hour)
		ch := f.challenge()
		wantError(t, renew(certLine(cert), ch, proof(t, signer, ch)), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("fail/revoked-cert", func(t *testing.T) {
		victim := obtain(ci, signer)
		if _, err := f.client(admin).Revoke(ctx, api.RevocationRequest{Serial: victim.Serial, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		ch := f.challenge()
		wantError(t, renew(certLine(victim), ch, proof(t, signer, ch)), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("fail/token-revoked", func(t *testing.T) {
		tok := f.roleToken("ci-2", "deploy")
		c2 := obtain(tok, signer)
		toks, _ := f.home.Store.ListTokens(ctx)
		for _, tk := range toks {
			if tk.Name == "ci-2" {
				if err := f.home.Store.RevokeToken(ctx, tk.ID, f.clock.Now(), audit.Entry{Actor: "test", Action: audit.ActionToken, Outcome: "ok"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		ch := f.challenge()
		r := renew(certLine(c2), ch, proof(t, signer, ch))
		wantError(t, r, http.StatusForbidden, "token-revoked")
		if !strings.Contains(r.err.Error, "revoked") {
			t.Errorf("message %q does not say the token was revoked", r.err.Error)
		}
	})
	t.Run("ok/still-renews-after-refusals", func(t *testing.T) {
		if _, _, err := f.client("").Renew(ctx, cert, signer, ""); err != nil {
			t.Fatal(err)
		}
	})
	f.verifyAudit()
}

func certLine2(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }

// TestHostEnrollAndReport follows a server: a one-time enrollment token
// gets a host certificate, and the host then reports with proof of
// possession of its host key.
func TestHostEnrollAndReport(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	enroll := f.token("enroll-web", store.TokenEnroll, []string{"servers"}, []string{"web-01.corp", "web.corp"}, f.clock.Now(), time.Hour)
	hostSigner, hostKey := newKey(t)
	r, _, cert := f.cert("/v1/certs/host", enroll, api.CertRequest{PublicKey: hostKey, Role: "servers", Principals: []string{"web-01.corp"}})
	if r.status != http.StatusOK {
		t.Fatalf("enroll: %d %s", r.status, r.err.Error)
	}
	if cert.CertType != ssh.HostCert || !slices.Equal(cert.ValidPrincipals, []string{"web-01.corp"}) || len(cert.Extensions)+len(cert.CriticalOptions) != 0 {
		t.Fatalf("host certificate: type %d principals %v ext %v opts %v", cert.CertType, cert.ValidPrincipals, cert.Extensions, cert.CriticalOptions)
	}
	rep := api.HostReport{KRLVersion: 3, CAKeys: []string{"SHA256:x"}, HostCertExpiry: time.Unix(int64(cert.ValidBefore), 0).UTC(), Detail: "ok\nsecond line"}
	t.Run("ok/report", func(t *testing.T) {
		if err := f.client("").ReportHost(ctx, cert, hostSigner, rep); err != nil {
			t.Fatal(err)
		}
		hosts, err := f.home.Store.ListHosts(ctx)
		if err != nil || len(hosts) != 1 || hosts[0].Name != "web-01.corp" || hosts[0].KRLVersion != 3 || strings.Contains(hosts[0].Detail, "\n") {
			t.Fatalf("hosts %+v %v", hosts, err)
		}
	})
	t.Run("fail/report-wrong-key", func(t *testing.T) {
		other, _ := newKey(t)
		err := f.client("").ReportHost(ctx, cert, other, rep)
		var ae *client.APIError
		if !asAPIError(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Fatalf("err = %v, want 401", err)
		}
	})
	t.Run("fail/report-user-cert", func(t *testing.T) {
		userSigner, userKey := newKey(t)
		_, _, uc := f.userCert(f.roleToken("ci", "deploy"), api.CertRequest{PublicKey: userKey, Role: "deploy"})
		err := f.client("").ReportHost(ctx, uc, userSigner, rep)
		var ae *client.APIError
		if !asAPIError(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != "bad-certificate" {
			t.Fatalf("err = %v, want 400 bad-certificate", err)
		}
	})
}
