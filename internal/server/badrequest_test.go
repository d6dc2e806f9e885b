package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// TestBadRequests sends each kind of bad request (acceptance 5) and checks
// that it gets the expected 4xx status and code with one clear line, that it
// changes nothing (no certificate row, the highest serial unchanged, and no
// audit entry but the one denial the server records), and that the service
// keeps serving: a valid request afterwards succeeds.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	now := f.clock.Now()
	_, key := newKey(t)

	ci := f.roleToken("ci", "deploy")
	hostRoleTok := f.roleToken("ci-hosts", "servers")
	admin := f.token("oncall", store.TokenAdmin, nil, nil, now, time.Hour)
	expired := f.token("old", store.TokenRole, []string{"deploy"}, nil, now.Add(-2*time.Hour), time.Hour)
	revoked := f.token("gone", store.TokenRole, []string{"deploy"}, nil, now, time.Hour)
	enroll := f.token("enroll-web", store.TokenEnroll, []string{"servers"}, []string{"web-01.corp"}, now, time.Hour)
	unusedEnroll := f.token("enroll-db", store.TokenEnroll, []string{"servers"}, []string{"db-01.corp"}, now, time.Hour)
	toks, err := f.home.Store.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.Name == "gone" {
			if err := f.home.Store.RevokeToken(ctx, tk.ID, now, audit.Entry{Actor: "test", Action: audit.ActionToken, Outcome: "ok"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The enrollment token is used once, successfully, before the reuse.
	_, hostKey := newKey(t)
	if r, _, _ := f.cert("/v1/certs/host", enroll, api.CertRequest{PublicKey: hostKey, Role: "servers", Principals: []string{"web-01.corp"}}); r.status != http.StatusOK {
		t.Fatalf("first use of the enrollment token: %d %s", r.status, r.err.Error)
	}

	// A forged token: a real ID with another secret; an unknown one: a
	// well-formed token whose ID does not exist.
	id := strings.SplitN(strings.TrimPrefix(ci, "sshca_"), "_", 2)[0]
	forged := "sshca_" + id + "_" + strings.Repeat("A", 43)
	unknown := "sshca_0123456789abcdef_" + strings.Repeat("B", 43)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, _ := ssh.NewPublicKey(&rsaKey.PublicKey)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	privPEM, _ := ssh.MarshalPrivateKey(edPriv, "")
	many := make([]string, 257)
	for i := range many {
		many[i] = fmt.Sprintf("p%d", i)
	}
	valid := api.CertRequest{PublicKey: key, Role: "deploy"}
	jsonOf := func(mod func(*api.CertRequest)) api.CertRequest {
		r := valid
		mod(&r)
		return r
	}

	const (
		user = "/v1/certs/user"
		host = "/v1/certs/host"
	)
	for _, tc := range []struct {
		name        string
		path        string // "METHOD /path" for other methods than POST
		bearer      string
		contentType string
		body        any
		status      int
		code        string
		denials     int // cert.deny entries the request must add
	}{
		{"fail/malformed-json", user, ci, "application/json", `{"public_key": "ssh-ed25519`, 400, "bad-json", 1},
		{"fail/json-not-an-object", user, ci, "application/json", `["deploy"]`, 400, "bad-json", 1},
		{"fail/json-unknown-field", user, ci, "application/json", `{"role":"deploy","public_key":"` + key + `","admin":true}`, 400, "bad-json", 1},
		{"fail/json-trailing-data", user, ci, "application/json", `{"role":"deploy","public_key":"` + key + `"} {}`, 400, "bad-json", 1},
		{"fail/oversize-body", user, ci, "application/json", `{"role":"deploy","public_key":"` + strings.Repeat("A", 70<<10) + `"}`, 413, "too-large", 1},
		{"fail/wrong-content-type", user, ci, "text/plain", valid, 415, "bad-content-type", 1},
		{"fail/no-content-type", user, ci, "", valid, 415, "bad-content-type", 1},
		{"fail/bad-key", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.PublicKey = "ssh-ed25519 AAAAnotbase64!!" }), 400, "bad-key", 1},
		{"fail/rsa-1024-key", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.PublicKey = string(ssh.MarshalAuthorizedKey(rsaPub)) }), 400, "bad-key", 1},
		{"fail/private-key", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.PublicKey = string(pem.EncodeToMemory(privPEM)) }), 400, "bad-key", 1},
		{"fail/missing-role", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.Role = "" }), 400, "bad-request", 1},
		{"fail/bad-ttl", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.TTL = "forever" }), 400, "bad-ttl", 1},
		{"fail/ttl-over-max", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.TTL = "2h" }), 403, "ttl-exceeds-max", 1},
		{"fail/too-many-principals", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.Principals = many }), 400, "too-many-principals", 1},
		{"fail/missing-auth", user, "", "application/json", valid, 401, "unauthorized", 1},
		{"fail/forged-token", user, forged, "application/json", valid, 401, "unauthorized", 1},
		{"fail/unknown-token", user, unknown, "application/json", valid, 401, "unauthorized", 1},
		{"fail/malformed-token", user, "sshca_nonsense", "application/json", valid, 401, "unauthorized", 1},
		{"fail/id-token-without-sso", user, "eyJhbGciOiJub25lIn0.e30.", "application/json", valid, 401, "unauthorized", 1},
		{"fail/revoked-token", user, revoked, "application/json", valid, 401, "unauthorized", 1},
		{"fail/expired-token", user, expired, "application/json", valid, 401, "unauthorized", 1},
		{"fail/unknown-role", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.Role = "root" }), 403, "unknown-role", 1},
		{"fail/principal-outside-role", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.Principals = []string{"role-deploy", "root"} }), 403, "principal-not-allowed", 1},
		{"fail/wildcard-principal", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.Principals = []string{"*"} }), 403, "bad-principal", 1},
		{"fail/token-of-another-role", user, ci, "application/json", jsonOf(func(r *api.CertRequest) { r.Role = "other" }), 403, "role-not-allowed", 1},
		{"fail/role-token-host-cert", host, hostRoleTok, "application/json", api.CertRequest{PublicKey: key, Role: "servers", Principals: []string{"evil.corp"}}, 403, "role-not-allowed", 1},
		{"fail/user-role-as-host-cert", host, ci, "application/json", api.CertRequest{PublicKey: key, Role: "deploy", Principals: []string{"x.corp"}}, 403, "role-not-allowed", 1},
		{"fail/enroll-token-reused", host, enroll, "application/json", api.CertRequest{PublicKey: key, Role: "servers", Principals: []string{"web-01.corp"}}, 401, "unauthorized", 1},
		{"fail/enroll-token-other-host", host, unusedEnroll, "application/json", api.CertRequest{PublicKey: key, Role: "servers", Principals: []string{"web-01.corp"}}, 403, "principal-not-allowed", 1},
		{"fail/enroll-token-user-cert", user, unusedEnroll, "application/json", api.CertRequest{PublicKey: key, Role: "servers"}, 403, "role-not-allowed", 1},
		{"fail/admin-token-cert", user, admin, "application/json", valid, 403, "role-not-allowed", 1},
		{"fail/admin-endpoint-role-token", "/v1/revocations", ci, "application/json", api.RevocationRequest{Serial: 1}, 403, "admin-only", 1},
		{"fail/admin-endpoint-no-auth", "/v1/revocations", "", "application/json", api.RevocationRequest{Serial: 1}, 401, "unauthorized", 1},
		{"fail/revocation-two-selectors", "/v1/revocations", admin, "application/json", api.RevocationRequest{Serial: 1, KeyID: "x"}, 400, "bad-request", 0},
		{"fail/revocation-bad-json", "/v1/revocations", admin, "application/json", `{"serial":"one"}`, 400, "bad-json", 0},
		{"fail/revocation-never-issued", "/v1/revocations", admin, "application/json", api.RevocationRequest{Serial: 999999}, 400, "never-issued", 0},
		{"fail/renew-bad-json", "/v1/certs/renew", "", "application/json", `{`, 400, "bad-json", 1},
		{"fail/unknown-endpoint", "/v1/certs/root", ci, "application/json", valid, 404, "not-found", 0},
		{"fail/wrong-method", "GET /v1/certs/user", ci, "", nil, 404, "not-found", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.state()
			method, path := http.MethodPost, tc.path
			if m, p, ok := strings.Cut(tc.path, " "); ok {
				method, path = m, p
			}
			r := f.do(method, path, tc.bearer, tc.contentType, tc.body)
			wantError(t, r, tc.status, tc.code)
			if tc.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			after := f.state()
			if after.maxSerial != before.maxSerial || after.certs != before.certs {
				t.Errorf("refusal changed the certificates: max serial %d -> %d, rows %d -> %d", before.maxSerial, after.maxSerial, before.certs, after.certs)
			}
			if got := after.denials - before.denials; got != tc.denials {
				t.Errorf("%d cert.deny entries added, want %d", got, tc.denials)
			}
			// A refused revocation by an admin is audited under "revoke"
			// (outcome denied), not as a certificate denial.
			wantEntries := tc.denials
			if strings.HasPrefix(tc.path, "/v1/revocations") && tc.status != http.StatusUnauthorized && tc.code != "admin-only" {
				wantEntries++
				if got := after.revokeDenials - before.revokeDenials; got != 1 {
					t.Errorf("%d denied revoke entries added, want 1", got)
				}
			}
			if got := after.entries - before.entries; got != wantEntries {
				t.Errorf("%d audit entries added, want %d (only the refusal)", got, wantEntries)
			}
			if tc.denials == 1 {
				e := f.lastEntry()
				if e.Action != audit.ActionDeny || e.Outcome != "denied" || !strings.HasPrefix(e.Reason, tc.code+": ") {
					t.Errorf("denial entry = %+v, want a cert.deny naming %s", e, tc.code)
				}
				if e.Details["request_id"] != r.err.RequestID {
					t.Errorf("denial entry request_id %q, response %q", e.Details["request_id"], r.err.RequestID)
				}
			}
			// The service keeps serving.
			ok, cr, _ := f.userCert(ci, valid)
			if ok.status != http.StatusOK {
				t.Fatalf("valid request after the refusal: %d %s", ok.status, ok.err.Error)
			}
			if cr.Serial <= after.maxSerial {
				t.Fatalf("serial %d not above %d", cr.Serial, after.maxSerial)
			}
		})
	}
	f.verifyAudit()
}

// TestIssueUser checks the success path: the key ID names the identity and
// the request, and the audit entry leads back to the certificate.
func TestIssueUser(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ci := f.roleToken("ci", "deploy")
	_, key := newKey(t)
	for _, tc := range []struct {
		name       string
		req        api.CertRequest
		principals []string
		ttl        time.Duration
	}{
		{"ok/defaults", api.CertRequest{PublicKey: key, Role: "deploy"}, []string{"role-deploy", "ci"}, 30 * time.Minute},
		{"ok/subset-and-ttl", api.CertRequest{PublicKey: key, Role: "deploy", Principals: []string{"ci"}, TTL: "10m"}, []string{"ci"}, 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, cr, cert := f.userCert(ci, tc.req)
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.err.Error)
			}
			if got := strings.Join(cert.ValidPrincipals, ","); got != strings.Join(tc.principals, ",") {
				t.Errorf("principals %s, want %v", got, tc.principals)
			}
			if want := "token:ci role=deploy req=" + cr.RequestID; cert.KeyId != want || r.header.Get("X-Request-ID") != cr.RequestID {
				t.Errorf("key ID %q, want %q", cert.KeyId, want)
			}
			if got := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second; got != tc.ttl+5*time.Minute {
				t.Errorf("validity %s, want %s plus the 5m backdate", got, tc.ttl)
			}
			if cert.Extensions["permit-pty"] != "" || len(cert.Extensions) != 1 {
				t.Errorf("extensions %v", cert.Extensions)
			}
			entries, err := f.home.Store.AuditEntries(context.Background(), store.AuditFilter{Serial: cr.Serial})
			if err != nil || len(entries) != 1 {
				t.Fatalf("audit entries for serial %d: %v %v", cr.Serial, entries, err)
			}
			e := entries[0]
			if e.Action != audit.ActionIssue || e.Actor != "token:ci" || e.KeyID != cert.KeyId || e.Details["request_id"] != cr.RequestID {
				t.Errorf("audit entry %+v does not match the certificate", e)
			}
			rec, err := f.home.Store.GetCert(context.Background(), cr.Serial)
			if err != nil || rec.Cert != cr.Certificate {
				t.Errorf("stored certificate body differs from the response (%v)", err)
			}
		})
	}
}

// FuzzCertRequest sends arbitrary bodies to POST /v1/certs/user with a
// valid token: the service must answer every one with 200 or a 4xx JSON
// error, never a 5xx, and a 200 only for a certificate the role allows.
func FuzzCertRequest(f *testing.F) {
	fx := newFixture(f, fixtureOptions{})
	ci := fx.roleToken("ci", "deploy")
	_, key := newKey(f)
	for _, seed := range []string{
		`{"public_key":"` + key + `","role":"deploy"}`,
		`{"public_key":"` + key + `","role":"deploy","principals":["ci"],"ttl":"5m"}`,
		`{"public_key":"` + key + `","role":"deploy","principals":["root"]}`,
		`{"public_key":"` + key + `","role":"deploy","ttl":"-1h"}`,
		`{"public_key":"` + key + `","role":"deploy","principals":[""]}`,
		`{"public_key":"` + key + `","role":"servers","principals":["a.corp"]}`,
		`{"public_key":"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQ","role":"deploy"}`,
		`{"public_key":null,"role":"deploy"}`,
		`{"role":["deploy"]}`,
		`{"principals":{"a":1}}`,
		`{`, `null`, `[]`, `""`, ``,
		`{"public_key":"` + key + `","role":"deploy"}{"role":"x"}`,
		`{"public_key":"` + key + "\\n" + key + `","role":"deploy"}`,
	} {
		f.Add([]byte(seed))
	}
	h := fx.srv.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/certs/user", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ci)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusOK:
			var cr api.CertResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &cr); err != nil {
				t.Fatalf("200 with body %q", rec.Body.Bytes())
			}
			for _, p := range cr.Principals {
				if p != "role-deploy" && p != "ci" {
					t.Fatalf("issued principal %q", p)
				}
			}
			if len(cr.Principals) == 0 {
				t.Fatal("issued a certificate without principals")
			}
		case rec.Code >= 400 && rec.Code < 500:
			var e api.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" || e.Code == "" {
				t.Fatalf("%d with body %q", rec.Code, rec.Body.Bytes())
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
		}
	})
}
