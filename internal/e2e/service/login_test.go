package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

// TestLoginThroughAgent is acceptance 1: `sshca serve` on 127.0.0.1, an API
// token from `sshca token create`, `sshca login --token-file` with a real
// ssh-agent, then a real ssh, offering only what the agent holds, into a
// real sshd that trusts the user CA. sshd's log names the key ID, which
// leads to the audit entry. A principal outside the token's role is refused
// with 403 and recorded. The ssh and sshd of each OpenSSH release judge
// the same certificate (the agent is the system's).
func TestLoginThroughAgent(t *testing.T) {
	releases := opensshtest.All(t)
	testkit.RequireTool(t, sshdtest.AgentPath)
	h := newHome(t, "")
	rep := h.serve()
	secret, tokenFile := h.token("--role", "deploy", "--name", "ci-deploy", "--ttl", "1h")

	sock := sshdtest.StartAgent(t)
	userHome := t.TempDir()
	keyPath := filepath.Join(userHome, ".ssh", "id_ed25519")
	env := map[string]string{"SSH_AUTH_SOCK": sock, "HOME": userHome}
	login := func(extra ...string) (string, string, int) {
		args := append([]string{"login", "--server", rep.URL, "--ca-fingerprint", rep.Fingerprint, "--role", "deploy",
			"--token-file", tokenFile, "--key", keyPath}, extra...)
		return h.With(env).Run(args...)
	}

	out, errs, code := login()
	if code != 0 {
		t.Fatalf("sshca login: exit %d: %s%s", code, out, errs)
	}
	if !strings.Contains(out, "added to ssh-agent") {
		t.Fatalf("login did not load the agent: %s", out)
	}
	data, err := os.ReadFile(client.CertPath(keyPath))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := client.ParseCert(data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cert.KeyId, "token:ci-deploy role=deploy req=") {
		t.Fatalf("key ID %q does not name the token and request", cert.KeyId)
	}
	// The agent holds the key and the certificate; ssh is given nothing else.
	// sshd's RevokedKeys is the KRL the service serves.
	krlPath := filepath.Join(t.TempDir(), "revoked.krl")
	anon := rep.Client(t, "")
	krlData, _, etag, _, err := anon.KRL(context.Background(), "user", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(krlPath, krlData, 0o644); err != nil {
		t.Fatal(err)
	}
	var srvs []*sshdtest.Server
	for _, rel := range releases {
		srvs = append(srvs, sshdtest.Start(t, sshdtest.Config{
			OpenSSH:           rel,
			TrustedUserCAKeys: []string{strings.TrimSpace(h.Must("ca", "show", "--type", "user"))},
			Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}},
			RevokedKeysFile:   krlPath,
		}))
	}
	for _, p := range []string{keyPath, keyPath + ".pub", client.CertPath(keyPath)} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, srv := range srvs {
		res := srv.Login(t, sshdtest.LoginOptions{UseAgentOnly: true, Env: []string{"SSH_AUTH_SOCK=" + sock}})
		if !res.OK {
			t.Fatalf("%s: ssh through the agent failed (exit %d): %s\nsshd:\n%s", srv.OpenSSH, res.ExitCode, res.Stderr, res.ServerLog)
		}
		// sshd logs the key ID; its request ID finds the audit entry.
		if !strings.Contains(res.ServerLog, cert.KeyId) {
			t.Errorf("%s: sshd log does not name key ID %q:\n%s", srv.OpenSSH, cert.KeyId, res.ServerLog)
		}
	}
	reqID := regexp.MustCompile(`req=([0-9a-f]+)`).FindStringSubmatch(cert.KeyId)[1]
	entries := auditJSON(t, h, "audit", "list", "--action", audit.ActionIssue, "--json")
	found := false
	for _, e := range entries {
		if e.Details["request_id"] == reqID && e.Serial == cert.Serial && e.KeyID == cert.KeyId {
			found = true
		}
	}
	if !found {
		t.Errorf("no cert.issue audit entry for request %s (serial %d)", reqID, cert.Serial)
	}

	t.Run("fail/revoked-while-serving", func(t *testing.T) {
		// An admin command on the same home while serve runs; the service's
		// KRL changes and sshd enforces it.
		h.Must("revoke", "--serial", fmt.Sprint(cert.Serial), "--reason", "test")
		data, _, newETag, notModified, err := anon.KRL(context.Background(), "user", etag)
		if err != nil || notModified || newETag == etag {
			t.Fatalf("KRL after revocation: not modified %v, ETag %s (was %s), %v", notModified, newETag, etag, err)
		}
		if err := os.WriteFile(krlPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, srv := range srvs {
			res := srv.Login(t, sshdtest.LoginOptions{UseAgentOnly: true, Env: []string{"SSH_AUTH_SOCK=" + sock}})
			if res.OK || !strings.Contains(res.ServerLog, "revoked") {
				t.Fatalf("%s: revoked certificate: login OK=%v\nsshd:\n%s", srv.OpenSSH, res.OK, res.ServerLog)
			}
		}
	})
	t.Run("fail/principal-outside-role", func(t *testing.T) {
		before := len(auditJSON(t, h, "audit", "list", "--action", audit.ActionDeny, "--json"))
		out, errs, code := login("--principals", "root", "--no-agent")
		if code != 1 || !strings.Contains(errs, "403") || !strings.Contains(errs, "principal-not-allowed") {
			t.Fatalf("exit %d, stderr %q; want exit 1 with a 403 principal-not-allowed", code, errs)
		}
		if strings.Contains(out, "wrote") {
			t.Fatalf("a certificate was written: %s", out)
		}
		denials := auditJSON(t, h, "audit", "list", "--action", audit.ActionDeny, "--json")
		if len(denials) != before+1 {
			t.Fatalf("%d denials before, %d after", before, len(denials))
		}
		d := denials[len(denials)-1]
		if d.Actor != "token:ci-deploy" || d.Role != "deploy" || !strings.HasPrefix(d.Reason, "principal-not-allowed") || !strings.Contains(d.Reason, "root") {
			t.Fatalf("denial entry %+v", d)
		}
	})
	if out, errs, code := h.Run("audit", "verify"); code != 0 {
		t.Fatalf("audit verify: %s%s", out, errs)
	}

	// The service's log: JSON lines, a request ID on every line about a
	// request, and never the token.
	rep.Stop(t)
	logs := rep.Log()
	if strings.Contains(logs, secret) || strings.Contains(logs, strings.SplitN(secret, "_", 3)[2]) {
		t.Error("the service logged the API token")
	}
	requests := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch rec["msg"] {
		case "request", "certificate issued":
			requests++
			if id, _ := rec["request_id"].(string); id == "" {
				t.Errorf("log line without request_id: %s", line)
			}
		}
	}
	if requests < 3 {
		t.Errorf("%d request log lines, want at least 3:\n%s", requests, logs)
	}
}

// auditJSON runs an `audit list --json` command and decodes its lines.
func auditJSON(t *testing.T, h *caHome, args ...string) []audit.Entry {
	t.Helper()
	out := h.Must(args...)
	var es []audit.Entry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit list line %q: %v", line, err)
		}
		es = append(es, e)
	}
	return es
}

// TestTokenCommands checks the token lifecycle the service relies on:
// a host role cannot be given to a role token (the service would refuse
// it anyway), list shows no secrets, and a revoked token stops at once.
func TestTokenCommands(t *testing.T) {
	h := newHome(t, "")
	if _, errs, code := h.Run("token", "create", "--role", "servers", "--name", "bad"); code != 1 || !strings.Contains(errs, "host role") || !strings.Contains(errs, "sshca: hint: ") {
		t.Fatalf("role token for a host role: exit %d: %s", code, errs)
	}
	rep := h.serve()
	secret, _ := h.token("--role", "deploy", "--name", "ci", "--ttl", "1h")
	list := h.Must("token", "list")
	if !strings.Contains(list, "ci") || strings.Contains(list, strings.SplitN(secret, "_", 3)[2]) {
		t.Fatalf("token list: %s", list)
	}
	c := rep.Client(t, secret)
	req := api.CertRequest{PublicKey: newKeyLine(t), Role: "deploy"}
	if _, _, err := c.RequestCert(context.Background(), "user", req); err != nil {
		t.Fatal(err)
	}
	h.Must("token", "revoke", "ci")
	_, _, err := c.RequestCert(context.Background(), "user", req)
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(ae.Message, "revoked") {
		t.Fatalf("revoked token: %v", err)
	}
}
