package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
)

func asAPIError(err error, target **client.APIError) bool { return errors.As(err, target) }

func (f *fixture) get(path string, header ...string) response {
	f.t.Helper()
	return f.do(http.MethodGet, path, "", "", nil, header...)
}

// TestKRLEndpoint checks ETag/If-None-Match, a change after a revocation
// through the API, the KRL's meaning (with ssh-keygen -Q as the oracle) and
// its SSHSIG signature against the published CA keys.
func TestKRLEndpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	ci := f.roleToken("ci", "deploy")
	admin := f.token("oncall", store.TokenAdmin, nil, nil, f.clock.Now(), time.Hour)
	_, key := newKey(t)
	_, _, cert := f.userCert(ci, api.CertRequest{PublicKey: key, Role: "deploy"})
	if cert == nil {
		t.Fatal("no certificate")
	}

	r1 := f.get("/v1/krl")
	if r1.status != http.StatusOK || r1.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET /v1/krl: %d %s", r1.status, r1.header.Get("Content-Type"))
	}
	etag := r1.header.Get("ETag")
	if etag == "" || r1.header.Get("Last-Modified") == "" {
		t.Fatalf("ETag %q Last-Modified %q", etag, r1.header.Get("Last-Modified"))
	}
	k1, err := krl.Parse(r1.body)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Check(cert) != nil {
		t.Fatal("fresh certificate is in the KRL")
	}

	t.Run("ok/not-modified", func(t *testing.T) {
		r := f.get("/v1/krl", "If-None-Match", etag)
		if r.status != http.StatusNotModified || len(r.body) != 0 || r.header.Get("ETag") != etag {
			t.Fatalf("If-None-Match: %d, %d bytes, ETag %q", r.status, len(r.body), r.header.Get("ETag"))
		}
		if r := f.get("/v1/krl", "If-None-Match", `"something-else"`); r.status != http.StatusOK {
			t.Fatalf("other ETag: %d", r.status)
		}
	})
	t.Run("ok/signature", func(t *testing.T) {
		verifySig(t, f, r1.body)
	})

	var revoked response
	t.Run("ok/revoke", func(t *testing.T) {
		resp, err := f.client(admin).Revoke(ctx, api.RevocationRequest{Serial: cert.Serial, Reason: "laptop lost"})
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Added || resp.KRLVersion <= k1.Version {
			t.Fatalf("revocation response %+v (KRL version was %d)", resp, k1.Version)
		}
		again, err := f.client(admin).Revoke(ctx, api.RevocationRequest{Serial: cert.Serial})
		if err != nil || again.Added {
			t.Fatalf("second revocation: %+v %v (want idempotent, added=false)", again, err)
		}
		revoked = f.get("/v1/krl", "If-None-Match", etag)
		if revoked.status != http.StatusOK || revoked.header.Get("ETag") == etag {
			t.Fatalf("after revocation: %d ETag %q (old %q)", revoked.status, revoked.header.Get("ETag"), etag)
		}
		k2, err := krl.Parse(revoked.body)
		if err != nil {
			t.Fatal(err)
		}
		if k2.Check(cert) == nil || k2.Version != resp.KRLVersion {
			t.Fatalf("KRL version %d does not revoke serial %d", k2.Version, cert.Serial)
		}
		if v := revoked.header.Get("X-KRL-Version"); v != strconv.FormatUint(k2.Version, 10) {
			t.Errorf("X-KRL-Version %q, KRL says %d", v, k2.Version)
		}
		verifySig(t, f, revoked.body)
		if r := f.get("/v1/krl", "If-None-Match", revoked.header.Get("ETag")); r.status != http.StatusNotModified {
			t.Errorf("new ETag not honoured: %d", r.status)
		}
	})
	t.Run("ok/ssh-keygen-agrees", func(t *testing.T) {
		testkit.RequireTool(t, "ssh-keygen")
		if revoked.body == nil {
			t.Skip("revocation failed")
		}
		dir := t.TempDir()
		krlPath, certPath := filepath.Join(dir, "krl"), filepath.Join(dir, "id-cert.pub")
		_, _, fresh := f.userCert(ci, api.CertRequest{PublicKey: key, Role: "deploy"})
		freshPath := filepath.Join(dir, "fresh-cert.pub")
		for p, data := range map[string][]byte{krlPath: revoked.body, certPath: ssh.MarshalAuthorizedKey(cert), freshPath: ssh.MarshalAuthorizedKey(fresh)} {
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, _ := exec.Command("ssh-keygen", "-Q", "-f", krlPath, certPath, freshPath).CombinedOutput()
		// ssh-keygen -Q prints "FILE (COMMENT): REVOKED" or "...: ok" per file.
		verdict := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			file, _, _ := strings.Cut(line, " ")
			verdict[file] = line[strings.LastIndex(line, ": ")+2:]
		}
		if verdict[certPath] != "REVOKED" || verdict[freshPath] != "ok" {
			t.Fatalf("ssh-keygen -Q: %s", out)
		}
	})
	t.Run("ok/host-krl", func(t *testing.T) {
		r := f.get("/v1/krl?type=host")
		if r.status != http.StatusOK {
			t.Fatalf("%d", r.status)
		}
		if _, err := krl.Parse(r.body); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/bad-type", func(t *testing.T) {
		wantError(t, f.get("/v1/krl?type=root"), http.StatusBadRequest, "bad-request")
		wantError(t, f.get("/v1/ca/root"), http.StatusNotFound, "not-found")
	})
}

// verifySig checks /v1/krl.sig for data with package sshsig against the
// keys of /v1/ca/user, and with ssh-keygen -Y verify when it is installed.
func verifySig(t *testing.T, f *fixture, data []byte) {
	t.Helper()
	sig := f.get("/v1/krl.sig")
	if sig.status != http.StatusOK {
		t.Fatalf("GET /v1/krl.sig: %d", sig.status)
	}
	keys, raw, err := f.client("").CAKeys(context.Background(), "user")
	if err != nil || len(keys) == 0 {
		t.Fatalf("CA keys: %v (%d)", err, len(keys))
	}
	if _, err := sshsig.Verify(sig.body, bytes.NewReader(data), sshsig.Namespace, keys); err != nil {
		t.Fatalf("KRL signature: %v", err)
	}
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)-1] ^= 1
	if _, err := sshsig.Verify(sig.body, bytes.NewReader(flipped), sshsig.Namespace, keys); err == nil {
		t.Fatal("signature verifies a changed KRL")
	}
	// ssh-keygen -Y verify is the oracle: missing, it fails under CI.
	testkit.RequireTool(t, "ssh-keygen")
	dir := t.TempDir()
	allowed, sigPath := filepath.Join(dir, "allowed"), filepath.Join(dir, "krl.sig")
	line := strings.SplitN(strings.TrimSpace(string(raw)), "\n", 2)[0]
	if err := os.WriteFile(allowed, []byte(`sshca namespaces="`+sshsig.Namespace+`" `+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sigPath, sig.body, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "sshca", "-n", sshsig.Namespace, "-s", sigPath)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y verify: %v: %s", err, out)
	}
}

// TestRateLimit checks the per-identity limit: the bucket runs dry, the
// caller gets 429 with Retry-After, and other identities are unaffected.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{policy: strings.Replace(testkit.Policy, "rate_limit: 100000", "rate_limit: 3", 1)})
	_, key := newKey(t)
	req := api.CertRequest{PublicKey: key, Role: "deploy"}
	ci := f.roleToken("ci", "deploy")
	for i := 0; i < 3; i++ {
		if r, _, _ := f.userCert(ci, req); r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i+1, r.status, r.err.Error)
		}
	}
	before := f.state()
	r, _, _ := f.userCert(ci, req)
	wantError(t, r, http.StatusTooManyRequests, "rate-limited")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if after := f.state(); after.maxSerial != before.maxSerial {
		t.Error("a rate-limited request issued a certificate")
	}
	if r, _, _ := f.userCert(f.roleToken("ci-other", "deploy"), req); r.status != http.StatusOK {
		t.Fatalf("another identity: %d %s", r.status, r.err.Error)
	}
	f.clock.Advance(time.Minute)
	if r, _, _ := f.userCert(ci, req); r.status != http.StatusOK {
		t.Fatalf("after the window: %d %s", r.status, r.err.Error)
	}
}

// TestMetricsAndHealth checks /metrics (issued and denied counters by role
// and reason, the latency histogram, the KRL version), /healthz and /readyz.
func TestMetricsAndHealth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ci := f.roleToken("ci", "deploy")
	_, key := newKey(t)
	for i := 0; i < 2; i++ {
		f.userCert(ci, api.CertRequest{PublicKey: key, Role: "deploy"})
	}
	f.userCert(ci, api.CertRequest{PublicKey: key, Role: "deploy", Principals: []string{"root"}})
	f.userCert("", api.CertRequest{PublicKey: key, Role: "deploy"})
	f.get("/v1/krl")

	m := f.get("/metrics")
	if m.status != http.StatusOK {
		t.Fatalf("/metrics: %d", m.status)
	}
	for _, re := range []string{
		`(?m)^sshca_certificates_issued_total\{role="deploy",type="user"\} 2$`,
		`(?m)^sshca_requests_denied_total\{reason="principal-not-allowed",role="deploy"\} 1$`,
		`(?m)^sshca_requests_denied_total\{reason="unauthorized",role="none"\} 1$`,
		`(?m)^sshca_http_request_duration_seconds_bucket\{route="certs_user",status="200",le="\+Inf"\} 2$`,
		`(?m)^sshca_http_request_duration_seconds_count\{route="certs_user",status="403"\} 1$`,
		`(?m)^sshca_http_request_duration_seconds_count\{route="certs_user",status="401"\} 1$`,
		`(?m)^sshca_krl_version\{type="user"\} \d+$`,
		`(?m)^sshca_build_info\{goversion="go[^"]+",revision="[^"]+",version="[^"]+"\} 1$`,
		// Two certificates and two denials, one request at a time: four
		// records in four group-commit transactions.
		`(?m)^sshca_store_commit_items_total 4$`,
		`(?m)^sshca_store_commit_batches_total 4$`,
	} {
		if !regexp.MustCompile(re).Match(m.body) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
	if bytes.Contains(m.body, []byte(ci)) {
		t.Error("/metrics contains a token")
	}
	for _, tc := range []struct{ path, body string }{{"/healthz", "ok\n"}, {"/readyz", "ready\n"}} {
		if r := f.get(tc.path); r.status != http.StatusOK || string(r.body) != tc.body {
			t.Errorf("%s: %d %q", tc.path, r.status, r.body)
		}
	}
	// With the database gone the service is alive but not ready.
	f.home.Store.Close()
	wantError(t, f.get("/readyz"), http.StatusServiceUnavailable, "not-ready")
	if r := f.get("/healthz"); r.status != http.StatusOK {
		t.Errorf("/healthz without a database: %d", r.status)
	}
}
