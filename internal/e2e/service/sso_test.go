package service

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/oidc/oidctest"
)

// ssoPolicy adds SSO to the test policy; %s is the issuer URL.
const ssoPolicy = `backdate: 5m
service:
  listen: 127.0.0.1:0
oidc:
  issuer: %s
  client_id: ` + oidctest.ClientID + `
roles:
  deploy:
    type: user
    principals: [role-deploy, "u-{{.User}}"]
    max_ttl: 1h
    allow:
      users: [alice]
  secure:
    type: user
    principals: [role-secure]
    max_ttl: 1h
    require_mfa: true
    allow:
      groups: [ops]
`

// TestSSOLogin runs `sshca login` with the device authorization grant
// against an in-test issuer (real discovery, JWKS and device endpoints over
// HTTP on 127.0.0.1) while `sshca serve` verifies the ID token: the user
// approves the code, gets a certificate with the template principal; a
// require_mfa role without a second factor in amr is refused with 403.
func TestSSOLogin(t *testing.T) {
	iss := oidctest.NewHTTP(t)
	h := newHome(t, "")
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(fmt.Sprintf(ssoPolicy, iss.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := h.serve()
	keyPath := filepath.Join(t.TempDir(), "id_ed25519")

	// login runs `sshca login` for role while approving its user code with claims.
	login := func(role string, claims map[string]any) (string, string, int) {
		t.Helper()
		type result struct {
			out, errs string
			code      int
		}
		done := make(chan result, 1)
		go func() {
			out, errs, code := h.With(map[string]string{"HOME": t.TempDir()}).Run("login", "--server", rep.URL, "--ca-fingerprint", rep.Fingerprint,
				"--role", role, "--key", keyPath, "--no-agent")
			done <- result{out, errs, code}
		}()
		deadline := time.Now().Add(20 * time.Second)
		for approved := false; ; {
			select {
			case r := <-done:
				return r.out, r.errs, r.code
			case <-time.After(20 * time.Millisecond):
			}
			if !approved {
				if codes := iss.PendingUserCodes(); len(codes) == 1 {
					iss.ApproveDevice(codes[0], claims)
					approved = true
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("sshca login did not finish within 20s")
			}
		}
	}

	t.Run("ok/device-flow", func(t *testing.T) {
		out, errs, code := login("deploy", map[string]any{"sub": "alice"})
		if code != 0 {
			t.Fatalf("sshca login: exit %d: %s%s", code, out, errs)
		}
		if !strings.Contains(errs, "enter the code") && !strings.Contains(errs, "To sign in, open") {
			t.Errorf("login did not show the verification URI: %s", errs)
		}
		data, err := os.ReadFile(client.CertPath(keyPath))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := client.ParseCert(data)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(cert.ValidPrincipals, ","); got != "role-deploy,u-alice" {
			t.Errorf("principals %s", got)
		}
		if !strings.HasPrefix(cert.KeyId, "oidc:alice role=deploy req=") {
			t.Errorf("key ID %q", cert.KeyId)
		}
	})
	t.Run("fail/mfa-required", func(t *testing.T) {
		out, errs, code := login("secure", map[string]any{"sub": "bob", "groups": []string{"ops"}, "amr": []string{"pwd"}})
		if code != 1 || !strings.Contains(errs, "403 mfa-required") {
			t.Fatalf("exit %d: %s%s; want 403 mfa-required", code, out, errs)
		}
	})
	t.Run("ok/mfa-amr", func(t *testing.T) {
		out, errs, code := login("secure", map[string]any{"sub": "bob", "groups": []string{"ops"}, "amr": []string{"pwd", "hwk"}})
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, out, errs)
		}
	})
}
