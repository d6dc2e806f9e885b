package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// fixture is a service over a fresh SQLite home behind an HTTPS test server.
type fixture struct {
	t     testing.TB
	home  *home.Home
	srv   *server.Server
	ts    *httptest.Server
	http  *http.Client
	clock *testkit.Clock // shared by the server and the authority
}

type fixtureOptions struct {
	policy string
	oidc   server.IDTokenVerifier
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	if o.policy == "" {
		o.policy = testkit.Policy
	}
	clk := &testkit.Clock{}
	h := testhome.New(t, o.policy, testhome.Options{Now: clk.Now})
	srv := server.New(server.Options{Config: h.Config, Store: h.Store, Authority: h.Authority, OIDC: o.oidc, Now: clk.Now})
	ts := httptest.NewTLSServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &fixture{t: t, home: h, srv: srv, ts: ts, http: ts.Client(), clock: clk}
}

// token creates an API token directly in the store and returns its secret.
func (f *fixture) token(name, kind string, roles, principals []string, created time.Time, ttl time.Duration) string {
	f.t.Helper()
	secret, tok, err := ca.NewToken(name, kind, roles, principals, "test", created, ttl)
	if err != nil {
		f.t.Fatal(err)
	}
	ev := audit.Entry{Time: created, Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token created"}
	if err := f.home.Store.CreateToken(context.Background(), tok, ev); err != nil {
		f.t.Fatal(err)
	}
	return secret
}

// roleToken is a valid role token for roles.
func (f *fixture) roleToken(name string, roles ...string) string {
	f.t.Helper()
	return f.token(name, store.TokenRole, roles, nil, f.clock.Now(), time.Hour)
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
	err    api.Error // decoded for 4xx/5xx
}

// do sends a request; body is marshalled as JSON unless it is a []byte or string.
func (f *fixture) do(method, path, bearer, contentType string, body any, header ...string) response {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.http.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: data}
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(data, &r.err); err != nil {
			f.t.Fatalf("%s %s: status %d with a body that is not an api.Error: %q", method, path, resp.StatusCode, data)
		}
	}
	return r
}

// post sends a JSON body with the right content type.
func (f *fixture) post(path, bearer string, body any) response {
	f.t.Helper()
	return f.do(http.MethodPost, path, bearer, "application/json", body)
}

// userCert requests a user certificate and decodes the response.
func (f *fixture) userCert(bearer string, req api.CertRequest) (response, *api.CertResponse, *ssh.Certificate) {
	f.t.Helper()
	return f.cert("/v1/certs/user", bearer, req)
}

func (f *fixture) cert(path, bearer string, req api.CertRequest) (response, *api.CertResponse, *ssh.Certificate) {
	f.t.Helper()
	r := f.post(path, bearer, req)
	if r.status != http.StatusOK {
		return r, nil, nil
	}
	var cr api.CertResponse
	if err := json.Unmarshal(r.body, &cr); err != nil {
		f.t.Fatalf("bad certificate response: %v: %s", err, r.body)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cr.Certificate))
	if err != nil {
		f.t.Fatalf("response certificate does not parse: %v", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		f.t.Fatalf("response certificate is a %T", pub)
	}
	if cert.Serial != cr.Serial || cert.KeyId != cr.KeyID {
		f.t.Fatalf("response fields (serial %d, key ID %q) disagree with the certificate (%d, %q)", cr.Serial, cr.KeyID, cert.Serial, cert.KeyId)
	}
	return r, &cr, cert
}

// state is what a refused request must leave unchanged.
type state struct {
	maxSerial     uint64
	certs         int
	denials       int
	revokeDenials int
	entries       int
}

func (f *fixture) state() state {
	f.t.Helper()
	ctx := context.Background()
	ms, err := f.home.Store.MaxSerial(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	certs, err := f.home.Store.ListCerts(ctx, store.CertFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	all, err := f.home.Store.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	n, rd := 0, 0
	for _, e := range all {
		if e.Action == audit.ActionDeny {
			n++
		}
		if e.Action == audit.ActionRevoke && e.Outcome == "denied" {
			rd++
		}
	}
	return state{maxSerial: ms, certs: len(certs), denials: n, revokeDenials: rd, entries: len(all)}
}

// lastEntry returns the newest audit entry.
func (f *fixture) lastEntry() audit.Entry {
	f.t.Helper()
	all, err := f.home.Store.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil || len(all) == 0 {
		f.t.Fatalf("audit log: %v (%d entries)", err, len(all))
	}
	return all[len(all)-1]
}

// verifyAudit checks the hash chain of the whole log.
func (f *fixture) verifyAudit() {
	f.t.Helper()
	all, err := f.home.Store.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := audit.Verify(all); err != nil {
		f.t.Fatalf("audit chain broken: %v", err)
	}
}

// newKey returns a fresh ed25519 signer and its authorized_keys line.
func newKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	s := testkit.NewSigner(t)
	return s, testkit.AuthorizedKey(s.PublicKey())
}

// wantError checks a refusal's status, code and message.
func wantError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status || r.err.Code != code {
		t.Fatalf("got %d %q (%s), want %d %q", r.status, r.err.Code, r.err.Error, status, code)
	}
	if r.err.Error == "" || strings.ContainsAny(r.err.Error, "\n\r") || len(r.err.Error) > 300 {
		t.Fatalf("error message %q is not one clear line", r.err.Error)
	}
	if r.err.RequestID == "" || r.header.Get("X-Request-ID") != r.err.RequestID {
		t.Fatalf("request ID %q, header %q", r.err.RequestID, r.header.Get("X-Request-ID"))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
}
