package service

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/oidc/oidctest"
)

// TestServeWithoutIssuer starts the built `sshca serve` while its OIDC
// issuer refuses connections (issue 16): it starts, API tokens get
// certificates, ID tokens get 503 oidc-unavailable, /readyz stays 200 and
// names the degraded check, the log has a warning per failed attempt. Once
// the issuer is up, background discovery succeeds (one info line) and the
// same ID token gets a certificate.
func TestServeWithoutIssuer(t *testing.T) {
	iss := oidctest.NewHTTPDown(t)
	h := newHome(t, "")
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(fmt.Sprintf(ssoPolicy, iss.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	rep := h.serveBin(binary(t))
	secret, _ := h.token("--role", "deploy", "--name", "ci", "--ttl", "1h")
	ctx := t.Context()
	key := newKeyLine(t)
	get := func(path string) (int, string) {
		t.Helper()
		c := rep.Client(t, "")
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	cert := func(bearer string) error {
		_, _, err := rep.Client(t, bearer).RequestCert(ctx, "user", api.CertRequest{PublicKey: key, Role: "deploy"})
		return err
	}

	if err := cert(secret); err != nil {
		t.Fatalf("API token while the issuer is down: %v", err)
	}
	idTok := iss.Mint(map[string]any{"sub": "alice"}, "RS256")
	var ae *client.APIError
	if err := cert(idTok); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "oidc-unavailable" {
		t.Fatalf("ID token while the issuer is down: %v, want 503 oidc-unavailable", err)
	}
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, "[-]oidc unavailable") || !strings.Contains(body, "ready (degraded: oidc)") {
		t.Fatalf("/readyz while the issuer is down: %d %q", code, body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "\nsshca_oidc_up 0\n") {
		t.Error("/metrics lacks sshca_oidc_up 0")
	}

	iss.Up()
	// The first retries come after about 1s, 2s, 4s: within 20s for sure.
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cert(idTok)
		if err == nil {
			break
		}
		if !errors.As(err, &ae) || ae.Code != "oidc-unavailable" || time.Now().After(deadline) {
			t.Fatalf("ID token after the issuer came up: %v\n%s", err, rep.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body := get("/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz after recovery: %d %q", code, body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "\nsshca_oidc_up 1\n") {
		t.Error("/metrics lacks sshca_oidc_up 1")
	}
	log := rep.Log()
	warnings := strings.Count(log, `"msg":"OIDC issuer unavailable`)
	if warnings < 1 || !strings.Contains(log, `"level":"WARN","msg":"OIDC issuer unavailable`) {
		t.Errorf("no warning for the failed discovery:\n%s", log)
	}
	if n := strings.Count(log, `"msg":"OIDC issuer reachable again`); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, log)
	}
}
