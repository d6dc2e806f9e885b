package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
)

// batch posts a batch and, for a 200, decodes the answer strictly.
func (f *fixture) batch(kind, bearer string, body any) (response, *api.BatchCertResponse) {
	f.t.Helper()
	r := f.post("/v1/certs/"+kind+"/batch", bearer, body)
	if r.status != http.StatusOK {
		return r, nil
	}
	var out api.BatchCertResponse
	if err := api.DecodeStrict(bytes.NewReader(r.body), &out); err != nil {
		f.t.Fatalf("batch answer does not decode strictly: %v\n%s", err, r.body)
	}
	if out.RequestID == "" || out.RequestID != r.header.Get("X-Request-ID") {
		f.t.Fatalf("batch answer request ID %q, header %q", out.RequestID, r.header.Get("X-Request-ID"))
	}
	return r, &out
}

// outcome is what a request got: 200, or the status and code of its refusal.
type outcome struct {
	status int
	code   string
}

// single sends one element alone to the single endpoint.
func (f *fixture) single(kind, bearer string, req api.CertRequest) outcome {
	f.t.Helper()
	r := f.post("/v1/certs/"+kind, bearer, req)
	return outcome{r.status, r.err.Code}
}

func resultOutcome(res api.BatchResult) outcome {
	if res.Error != nil {
		return outcome{res.Error.Status, res.Error.Code}
	}
	return outcome{http.StatusOK, ""}
}

// userCA is the service's active user CA key.
func (f *fixture) userCA(t *testing.T) ssh.PublicKey {
	t.Helper()
	k, err := ca.ActiveKey(context.Background(), f.home.Store, "user")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// auditOf returns the audit entries of the elements of batch request id,
// by element index.
func (f *fixture) auditOf(t *testing.T, id string) map[string][]audit.Entry {
	t.Helper()
	all, err := f.home.Store.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]audit.Entry{}
	for _, e := range all {
		if el, ok := strings.CutPrefix(e.Details["request_id"], id+"."); ok {
			out[el] = append(out[el], e)
		}
	}
	return out
}

// TestBatchDecidesEachAsAlone: every element of a batch gets the outcome
// (status and rule) that the same request sent alone gets; certificates
// verify against the user CA, have distinct serials and their own request
// IDs; the audit log has exactly one entry per element.
func TestBatchDecidesEachAsAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	tok := f.roleToken("ci-batch", "deploy")
	key := func() string { _, line := newKey(t); return line }
	items := []api.CertRequest{
		{PublicKey: key(), Role: "deploy", Principals: []string{"ci"}},                      // allowed
		{PublicKey: key(), Role: "other"},                                                   // role not allowed for the token
		{PublicKey: key(), Role: "deploy", Principals: []string{"root"}},                    // principal not granted
		{PublicKey: "ssh-ed25519 AAAAnot-a-key", Role: "deploy"},                            // bad key
		{PublicKey: key(), Role: "nope"},                                                    // unknown role
		{PublicKey: key(), Role: "deploy", TTL: "10m"},                                      // allowed
		{PublicKey: key(), Role: "deploy", TTL: "2h"},                                       // over max_ttl
		{PublicKey: key(), Role: "servers", Principals: []string{"web.corp"}},               // host role on the user door
		{PublicKey: key(), Role: "deploy", ValidAfter: "+1h", ValidBefore: "+90m"},          // a window
		{PublicKey: key(), Role: "deploy", Principals: []string{"role-deploy", "ci", "ci"}}, // allowed, repeated principal
	}
	before := f.state()
	r, out := f.batch("user", tok, api.BatchCertRequest{Requests: items})
	if out == nil {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	if len(out.Results) != len(items) {
		t.Fatalf("%d results for %d requests", len(out.Results), len(items))
	}
	// Counted per element, as the single endpoint counts each request.
	m := f.get("/metrics")
	for _, re := range []string{
		`(?m)^sshca_certificates_issued_total\{role="deploy",type="user"\} 4$`,
		`(?m)^sshca_requests_denied_total\{reason="role-not-allowed",role="other"\} 1$`,
		`(?m)^sshca_requests_denied_total\{reason="role-not-allowed",role="servers"\} 1$`,
		`(?m)^sshca_requests_denied_total\{reason="principal-not-allowed",role="deploy"\} 1$`,
		`(?m)^sshca_requests_denied_total\{reason="bad-key",role="deploy"\} 1$`,
		`(?m)^sshca_requests_denied_total\{reason="unknown-role",role="unknown"\} 1$`,
		`(?m)^sshca_requests_denied_total\{reason="ttl-exceeds-max",role="deploy"\} 1$`,
		`(?m)^sshca_http_request_duration_seconds_count\{route="certs_user_batch",status="200"\} 1$`,
	} {
		if !regexp.MustCompile(re).Match(m.body) {
			t.Errorf("/metrics lacks %s", re)
		}
	}
	caKey := f.userCA(t)
	checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), caKey.Marshal()) }}
	serials := map[uint64]bool{}
	issued := 0
	for i, res := range out.Results {
		want := f.single("user", tok, items[i])
		if got := resultOutcome(res); got != want {
			t.Errorf("element %d: batch %+v, alone %+v", i, got, want)
		}
		if res.Error != nil {
			if res.Certificate != nil || res.Error.Message == "" || strings.ContainsAny(res.Error.Message, "\n\r") {
				t.Errorf("element %d: refusal %+v with certificate %v", i, res.Error, res.Certificate != nil)
			}
			continue
		}
		issued++
		cert, err := parseCertLine(res.Certificate.Certificate)
		if err != nil {
			t.Fatalf("element %d: %v", i, err)
		}
		if cert.Serial != res.Certificate.Serial || cert.KeyId != res.Certificate.KeyID || res.Certificate.Role != "deploy" {
			t.Errorf("element %d: object %+v disagrees with its certificate", i, res.Certificate)
		}
		// Checked within its validity (one element asks for a later window).
		checker.Clock = func() time.Time { return time.Unix(int64(cert.ValidAfter)+1, 0) }
		if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
			t.Errorf("element %d: certificate does not verify against the user CA: %v", i, err)
		}
		if serials[cert.Serial] {
			t.Errorf("element %d: serial %d repeated", i, cert.Serial)
		}
		serials[cert.Serial] = true
		wantID := fmt.Sprintf("%s.%d", out.RequestID, i)
		if res.Certificate.RequestID != wantID || !strings.HasSuffix(cert.KeyId, "req="+wantID) {
			t.Errorf("element %d: request ID %q, key ID %q; want %s", i, res.Certificate.RequestID, cert.KeyId, wantID)
		}
	}
	if issued != 4 {
		t.Errorf("%d certificates issued, want 4", issued)
	}
	// One audit entry per element: the issuance or the denial, with its rule.
	byEl := f.auditOf(t, out.RequestID)
	if len(byEl) != len(items) {
		t.Errorf("audit has entries for %d elements, want %d", len(byEl), len(items))
	}
	for i, res := range out.Results {
		es := byEl[fmt.Sprint(i)]
		if len(es) != 1 {
			t.Errorf("element %d: %d audit entries, want 1: %+v", i, len(es), es)
			continue
		}
		e := es[0]
		switch {
		case res.Error == nil && (e.Action != audit.ActionIssue || e.Serial != res.Certificate.Serial || e.Actor != "token:ci-batch"):
			t.Errorf("element %d: audit %+v, want the issuance of %d", i, e, res.Certificate.Serial)
		case res.Error != nil && (e.Action != audit.ActionDeny || !strings.HasPrefix(e.Reason, res.Error.Code+": ")):
			t.Errorf("element %d: audit %+v, want a denial with rule %s", i, e, res.Error.Code)
		}
	}
	// The batch itself and the singles: 4+4 certificates in all.
	if after := f.state(); after.certs != before.certs+8 {
		t.Errorf("certificates %d -> %d, want 8 more", before.certs, after.certs)
	}
	f.verifyAudit()

	// The Go client reads the same answer.
	got, err := f.client(tok).RequestCerts(t.Context(), "user", items[:4])
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range got {
		var ae *client.APIError
		want := resultOutcome(out.Results[i])
		switch {
		case want.status == http.StatusOK && (res.Err != nil || res.Cert == nil || res.Response.Serial != res.Cert.Serial):
			t.Errorf("client element %d: %+v, want a certificate", i, res)
		case want.status != http.StatusOK && (!errors.As(res.Err, &ae) || ae.Status != want.status || ae.Code != want.code || res.Cert != nil):
			t.Errorf("client element %d: %+v, want %+v", i, res, want)
		}
	}
}

// TestBatchRefusesMalformed: a batch that is malformed as a whole or in
// one element is a 400 (413, 415) naming the element; nothing is signed,
// no serial is spent, and the refusal is one audit entry.
func TestBatchRefusesMalformed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	tok := f.roleToken("ci-bad", "deploy")
	_, line := newKey(t)
	good := api.CertRequest{PublicKey: line, Role: "deploy"}
	many := func(n int) api.BatchCertRequest {
		b := api.BatchCertRequest{Requests: make([]api.CertRequest, n)}
		for i := range b.Requests {
			b.Requests[i] = good
		}
		return b
	}
	with := func(i int, edit func(*api.CertRequest)) api.BatchCertRequest {
		b := many(3)
		edit(&b.Requests[i])
		return b
	}
	for _, tc := range []struct {
		name   string
		kind   string
		ctype  string
		body   any
		status int
		code   string
		phrase string
	}{
		{name: "over-limit", body: many(api.MaxBatch + 1), status: 400, code: "bad-request", phrase: "1001"},
		{name: "empty", body: many(0), status: 400, code: "bad-request", phrase: "1 to 1000"},
		{name: "no-requests", body: `{}`, status: 400, code: "bad-request", phrase: "1 to 1000"},
		{name: "duplicate-key", body: `{"requests":[{"public_key":"` + line + `","role":"deploy","role":"other"}]}`, status: 400, code: "bad-json", phrase: "duplicate key"},
		{name: "duplicate-top-key", body: `{"requests":[],"requests":[{"role":"deploy"}]}`, status: 400, code: "bad-json", phrase: "duplicate key"},
		{name: "unknown-field", body: `{"requests":[{"public_key":"` + line + `","role":"deploy","key_idx":"x"}]}`, status: 400, code: "bad-json", phrase: "requests[0]"},
		{name: "totp", body: with(1, func(r *api.CertRequest) { r.TOTP = "123456" }), status: 400, code: "bad-request", phrase: "requests[1]: totp"},
		{name: "bad-ttl", body: with(2, func(r *api.CertRequest) { r.TTL = "forever" }), status: 400, code: "bad-ttl", phrase: "requests[2]"},
		{name: "bad-window", body: with(0, func(r *api.CertRequest) { r.ValidAfter = "tomorrow" }), status: 400, code: "bad-validity", phrase: "requests[0]"},
		{name: "no-role", body: with(1, func(r *api.CertRequest) { r.Role = "" }), status: 400, code: "bad-request", phrase: "requests[1]: role is required"},
		{name: "long-principal", body: with(2, func(r *api.CertRequest) { r.Principals = []string{strings.Repeat("p", 300)} }), status: 400, code: "bad-principal", phrase: "requests[2]"},
		{name: "too-large", body: `{"requests":[{"role":"` + strings.Repeat("x", 5<<20) + `"}]}`, status: 413, code: "too-large"},
		{name: "content-type", ctype: "text/plain", body: many(1), status: 415, code: "bad-content-type"},
		{name: "host-totp", kind: "host", body: with(0, func(r *api.CertRequest) { r.TOTP = "1"; r.Role = "servers" }), status: 400, code: "bad-request", phrase: "requests[0]: totp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, ctype := tc.kind, tc.ctype
			if kind == "" {
				kind = "user"
			}
			if ctype == "" {
				ctype = "application/json"
			}
			before := f.state()
			r := f.do(http.MethodPost, "/v1/certs/"+kind+"/batch", tok, ctype, tc.body)
			wantError(t, r, tc.status, tc.code)
			if !strings.Contains(r.err.Error, tc.phrase) {
				t.Errorf("message %q does not say %q", r.err.Error, tc.phrase)
			}
			after := f.state()
			if after.maxSerial != before.maxSerial || after.certs != before.certs || after.denials != before.denials+1 || after.entries != before.entries+1 {
				t.Errorf("state %+v -> %+v; want nothing but one denial", before, after)
			}
			if e := f.lastEntry(); e.Action != audit.ActionDeny || !strings.HasPrefix(e.Reason, tc.code+": ") {
				t.Errorf("last audit entry %+v, want the refusal %s", e, tc.code)
			}
		})
	}
}

// TestBatchEnrollmentToken: an enrollment token cannot obtain host
// certificates through a batch — every element is refused (and audited)
// by the authority's batch guard — and the token is not spent: a single
// request with it afterwards obtains the one certificate it is for.
func TestBatchEnrollmentToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	now := f.clock.Now()
	enroll := f.token("enroll-web", store.TokenEnroll, []string{"servers"}, []string{"web-01.corp"}, now, time.Hour)
	_, k1 := newKey(t)
	_, k2 := newKey(t)
	before := f.state()
	r, out := f.batch("host", enroll, api.BatchCertRequest{Requests: []api.CertRequest{
		{PublicKey: k1, Principals: []string{"web-01.corp"}},
		{PublicKey: k2, Role: "servers", Principals: []string{"web-01.corp"}},
	}})
	if out == nil {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	for i, res := range out.Results {
		if res.Error == nil || res.Error.Status != http.StatusForbidden || res.Error.Code != ca.RuleBatchUnsupported {
			t.Errorf("element %d: %+v, want 403 %s", i, res, ca.RuleBatchUnsupported)
		}
	}
	after := f.state()
	if after.certs != before.certs || after.maxSerial != before.maxSerial || after.denials != before.denials+2 {
		t.Errorf("state %+v -> %+v; want two denials and nothing else", before, after)
	}
	// Not spent: the single door still enrolls the host, once.
	if r, _, cert := f.cert("/v1/certs/host", enroll, api.CertRequest{PublicKey: k1, Principals: []string{"web-01.corp"}}); cert == nil {
		t.Fatalf("single enrollment after the batch: %d %s", r.status, r.body)
	}
	if got := f.single("host", enroll, api.CertRequest{PublicKey: k2, Principals: []string{"web-01.corp"}}); got.status != http.StatusUnauthorized {
		t.Errorf("second use of the enrollment token: %+v, want 401", got)
	}
}

// TestBatchRateLimit: a batch of n counts as n requests; one larger than
// what the caller has left is refused whole (429, audited) and issues
// nothing.
func TestBatchRateLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{policy: strings.Replace(testkit.Policy, "\n  rate_limit: 100000", "\n  rate_limit: 5", 1)})
	tok := f.roleToken("ci-rate", "deploy")
	n := func(k int) api.BatchCertRequest {
		b := api.BatchCertRequest{}
		for range k {
			_, line := newKey(t)
			b.Requests = append(b.Requests, api.CertRequest{PublicKey: line, Role: "deploy"})
		}
		return b
	}
	if r, out := f.batch("user", tok, n(3)); out == nil || out.Results[2].Certificate == nil {
		t.Fatalf("batch of 3 within a limit of 5: %d %s", r.status, r.body)
	}
	// 2 left: a batch of 3 is refused whole.
	before := f.state()
	r, _ := f.batch("user", tok, n(3))
	wantError(t, r, http.StatusTooManyRequests, "rate-limited")
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	after := f.state()
	if after.certs != before.certs || after.maxSerial != before.maxSerial || after.denials != before.denials+1 {
		t.Errorf("state %+v -> %+v; want one denial, no certificate", before, after)
	}
	// Larger than the limit itself: says how many a batch may hold.
	r, _ = f.batch("user", tok, n(6))
	wantError(t, r, http.StatusTooManyRequests, "rate-limited")
	if !strings.Contains(r.err.Error, "at most 5") {
		t.Errorf("message %q does not say the most a batch may hold", r.err.Error)
	}
}

// TestBatchRevokedToken: a revoked token is refused as by the single
// endpoint (401); one revoked while the service still holds a cached copy
// is refused per element by the recording transaction (401), audited as
// token-invalid, and issues nothing.
func TestBatchRevokedToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	_, line := newKey(t)
	req := api.CertRequest{PublicKey: line, Role: "deploy"}
	revoke := func(secret string) {
		t.Helper()
		id, _, err := ca.SplitToken(secret)
		if err != nil {
			t.Fatal(err)
		}
		ev := audit.Entry{Time: f.clock.Now(), Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token revoked"}
		if err := f.home.Store.RevokeToken(ctx, id, f.clock.Now().Add(-time.Second), ev); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("revoked", func(t *testing.T) {
		tok := f.roleToken("ci-revoked", "deploy")
		revoke(tok)
		before := f.state()
		r, _ := f.batch("user", tok, api.BatchCertRequest{Requests: []api.CertRequest{req, req}})
		wantError(t, r, http.StatusUnauthorized, "unauthorized")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
		if alone := f.single("user", tok, req); alone != (outcome{http.StatusUnauthorized, "unauthorized"}) {
			t.Errorf("single endpoint: %+v; the batch got 401 unauthorized", alone)
		}
		if after := f.state(); after.certs != before.certs || after.maxSerial != before.maxSerial {
			t.Errorf("state %+v -> %+v", before, after)
		}
	})
	t.Run("revoked-while-cached", func(t *testing.T) {
		tok := f.roleToken("ci-cached", "deploy")
		if r, out := f.batch("user", tok, api.BatchCertRequest{Requests: []api.CertRequest{req}}); out == nil || out.Results[0].Certificate == nil {
			t.Fatalf("first batch: %d %s", r.status, r.body)
		}
		revoke(tok)
		before := f.state()
		r, out := f.batch("user", tok, api.BatchCertRequest{Requests: []api.CertRequest{req, req}})
		if out == nil {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		alone := f.single("user", tok, req)
		for i, res := range out.Results {
			if got := resultOutcome(res); got != alone || got.status != http.StatusUnauthorized {
				t.Errorf("element %d: %+v; alone %+v; want 401", i, got, alone)
			}
		}
		after := f.state()
		if after.certs != before.certs || after.denials != before.denials+3 {
			t.Errorf("state %+v -> %+v; want 3 denials (2 elements, 1 single), no certificate", before, after)
		}
		for el, es := range f.auditOf(t, out.RequestID) {
			if len(es) != 1 || !strings.HasPrefix(es[0].Reason, "token-invalid: ") {
				t.Errorf("element %s: audit %+v, want one token-invalid denial", el, es)
			}
		}
	})
}

// TestBatchFull: a batch of api.MaxBatch elements, each as large as a
// usual request gets (an RSA-4096 key, a TTL, two principals), fits the
// body limit and is issued whole: distinct serials, one audit entry each.
func TestBatchFull(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOptions{})
	tok := f.roleToken("ci-full", "deploy")
	rk, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	line := testkit.AuthorizedKey(pub) + " runner@build-farm-0001.ci.example.com"
	b := api.BatchCertRequest{Requests: make([]api.CertRequest, api.MaxBatch)}
	for i := range b.Requests {
		b.Requests[i] = api.CertRequest{PublicKey: line, Role: "deploy", Principals: []string{"ci", "role-deploy"}, TTL: "45m"}
	}
	body, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > server.MaxBatchBodyBytes/2 {
		t.Fatalf("a full batch of usual requests is %d bytes, too close to the limit %d", len(body), server.MaxBatchBodyBytes)
	}
	r, out := f.batch("user", tok, body)
	if out == nil {
		t.Fatalf("full batch: %d %s", r.status, r.err.Error)
	}
	serials := map[uint64]bool{}
	for i, res := range out.Results {
		if res.Certificate == nil || serials[res.Certificate.Serial] {
			t.Fatalf("element %d: %+v", i, res)
		}
		serials[res.Certificate.Serial] = true
	}
	if got := len(f.auditOf(t, out.RequestID)); got != api.MaxBatch {
		t.Errorf("audit entries for %d elements, want %d", got, api.MaxBatch)
	}
}
