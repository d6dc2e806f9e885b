package server_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/server"
)

// TestOIDCUnavailable starts the service while its identity provider refuses
// connections: API tokens get certificates, ID tokens get 503
// oidc-unavailable with Retry-After (not 401, and no audited denial),
// /readyz stays 200 and names the degraded check, sshca_oidc_up is 0. Once
// the issuer is up, discovery is retried and ID tokens work.
func TestOIDCUnavailable(t *testing.T) {
	t.Parallel()
	iss := oidctest.NewHTTPDown(t)
	p, err := oidc.Discover(t.Context(), oidc.Config{Issuer: iss.URL(), ClientID: oidctest.ClientID},
		oidc.Backoff{Min: 20 * time.Millisecond, Max: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, fixtureOptions{oidc: server.OIDC(p)})
	ci := f.roleToken("ci", "deploy")
	_, key := newKey(t)
	idTok := iss.Mint(map[string]any{"sub": "alice"}, "RS256")

	if r, _, _ := f.userCert(ci, api.CertRequest{PublicKey: key, Role: "deploy"}); r.status != http.StatusOK {
		t.Fatalf("API token while the issuer is down: %d %s", r.status, r.err.Error)
	}
	before := f.state()
	r, _, _ := f.userCert(idTok, api.CertRequest{PublicKey: key, Role: "deploy"})
	wantError(t, r, http.StatusServiceUnavailable, "oidc-unavailable")
	if r.header.Get("Retry-After") == "" || r.header.Get("WWW-Authenticate") != "" {
		t.Errorf("503 headers: %v", r.header)
	}
	if after := f.state(); after != before {
		t.Errorf("a 503 changed the state: %+v -> %+v", before, after)
	}
	rd := f.get("/readyz")
	if rd.status != http.StatusOK || !strings.Contains(string(rd.body), "[+]database ok\n[-]oidc unavailable: ") ||
		!strings.HasSuffix(string(rd.body), "ready (degraded: oidc)\n") {
		t.Errorf("/readyz while the issuer is down: %d %q", rd.status, rd.body)
	}
	if m := f.get("/metrics"); !regexp.MustCompile(`(?m)^sshca_oidc_up 0$`).Match(m.body) {
		t.Errorf("/metrics lacks sshca_oidc_up 0")
	}

	iss.Up()
	deadline := time.Now().Add(10 * time.Second)
	for !p.Status().Ready {
		if time.Now().After(deadline) {
			t.Fatalf("discovery did not recover: %+v", p.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, _, _ := f.userCert(idTok, api.CertRequest{PublicKey: key, Role: "deploy"}); r.status != http.StatusOK {
		t.Fatalf("ID token after recovery: %d %s", r.status, r.err.Error)
	}
	if rd := f.get("/readyz"); rd.status != http.StatusOK || string(rd.body) != "ready\n" {
		t.Errorf("/readyz after recovery: %d %q", rd.status, rd.body)
	}
	if rd := f.get("/readyz?verbose"); string(rd.body) != "[+]database ok\n[+]oidc ok\nready\n" {
		t.Errorf("/readyz?verbose after recovery: %q", rd.body)
	}
	if m := f.get("/metrics"); !regexp.MustCompile(`(?m)^sshca_oidc_up 1$`).Match(m.body) {
		t.Errorf("/metrics lacks sshca_oidc_up 1")
	}
}
