package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// authzPolicy is the policy of the authorization matrix: two user roles
// for different people, a user role that demands a second factor, and a
// host role.
const authzPolicy = `backdate: 5m
service:
  rate_limit: 1000000
  anonymous_rate_limit: 1000000
roles:
  deploy:
    type: user
    principals: [role-deploy, ci]
    default_ttl: 30m
    max_ttl: 1h
    extensions: [permit-pty]
    allow:
      users: [alice]
      groups: [deployers]
  other:
    type: user
    principals: [role-other]
    max_ttl: 1h
    allow:
      users: [bob]
  secure:
    type: user
    principals: [role-secure]
    max_ttl: 1h
    require_mfa: true
    source_address: [10.0.0.0/8]
    allow:
      users: [alice]
      groups: [deployers]
  servers:
    type: host
    principals: ["*.corp"]
    max_ttl: 24h
`

// authzRole is what the matrix knows of each role, written from the policy
// above (not read from the server).
type authzRole struct {
	host       bool
	principals []string // the role's principals (host roles: two names its pattern matches)
	outside    string   // a principal the role does not grant
	maxTTL     time.Duration
	allowUsers []string
	allowGroup []string
	mfa        bool
	extensions []string
	options    map[string]string
}

var authzRoles = map[string]authzRole{
	"deploy": {principals: []string{"role-deploy", "ci"}, outside: "root", maxTTL: time.Hour,
		allowUsers: []string{"alice"}, allowGroup: []string{"deployers"}, extensions: []string{"permit-pty"}},
	"other": {principals: []string{"role-other"}, outside: "root", maxTTL: time.Hour, allowUsers: []string{"bob"}},
	"secure": {principals: []string{"role-secure"}, outside: "root", maxTTL: time.Hour, mfa: true,
		allowUsers: []string{"alice"}, allowGroup: []string{"deployers"}, options: map[string]string{"source-address": "10.0.0.0/8"}},
	"servers": {host: true, principals: []string{"web1.corp", "web2.corp"}, outside: "evil.example", maxTTL: 24 * time.Hour},
}

// authzMethod is one way of authenticating, with what the contract says it
// may do.
type authzMethod struct {
	name string
	// token: kind and roles of an API token; oidc: the identity.
	tokenKind  string
	roles      []string
	principals []string // enroll tokens: the host names bound to the token
	expired    bool
	revoked    bool
	oidcUser   string
	oidcGroups []string
	mfa        bool
}

var authzMethods = []authzMethod{
	{name: "role-token-deploy", tokenKind: store.TokenRole, roles: []string{"deploy"}},
	{name: "role-token-other", tokenKind: store.TokenRole, roles: []string{"other"}},
	{name: "role-token-host-role", tokenKind: store.TokenRole, roles: []string{"servers"}},
	{name: "host-token", tokenKind: store.TokenHost, roles: []string{"servers"}},
	{name: "enroll-token", tokenKind: store.TokenEnroll, roles: []string{"servers"}, principals: []string{"web1.corp", "web2.corp"}},
	{name: "admin-token", tokenKind: store.TokenAdmin},
	{name: "expired-token", tokenKind: store.TokenRole, roles: []string{"deploy"}, expired: true},
	{name: "revoked-token", tokenKind: store.TokenRole, roles: []string{"deploy"}, revoked: true},
	{name: "oidc-allowed-by-user", oidcUser: "alice"},
	{name: "oidc-allowed-by-group", oidcUser: "gina", oidcGroups: []string{"staff", "deployers"}},
	{name: "oidc-not-allowed", oidcUser: "mallory", oidcGroups: []string{"deployers-not"}},
	{name: "oidc-with-mfa", oidcUser: "alice", mfa: true},
}

// firstRole is a role the method may name (deploy for those with none).
func (m authzMethod) firstRole() string {
	if len(m.roles) > 0 {
		return m.roles[0]
	}
	return "deploy"
}

// authzRow is one combination and its expected outcome.
type authzRow struct {
	method     authzMethod
	role       string
	principals string // "none" (the default), "subset", "all", "outside"
	ttl        string // "max" (exactly max_ttl), "over" (max_ttl + 1m)
	options    bool   // the request also asks for critical options and extensions
	certType   string // "user", "host"
	status     int
	code       string
}

func (r authzRow) name() string {
	n := fmt.Sprintf("%s/%s/%s/%s/ttl-%s", r.method.name, r.certType, r.role, r.principals, r.ttl)
	if r.options {
		n += "/with-options"
	}
	return n
}

// requested returns the principals the row asks for.
func (r authzRow) requested() []string {
	role := authzRoles[r.role]
	switch r.principals {
	case "subset":
		return role.principals[:1]
	case "all":
		return role.principals
	case "outside":
		return []string{role.principals[0], role.outside}
	}
	return nil
}

// expect applies expectAuthz to the row.
func (r authzRow) expect() (int, string) {
	return expectAuthz(r.method, r.role, authzRoles[r.role], r.requested(), r.ttl == "over", r.options, r.certType)
}

// expectAuthz is the contract (product.md §2 invariant 5, issue 3's
// authentication rules) as a decision table, in the order the service
// checks: authentication, then who may use the role, then the token's
// binding to host names, then the role's own limits.
func expectAuthz(m authzMethod, roleName string, role authzRole, principals []string, ttlOver, options bool, certType string) (int, string) {
	host := certType == "host"
	// 1. Authentication.
	if m.expired || m.revoked {
		return http.StatusUnauthorized, "unauthorized"
	}
	// 2. A well-formed request: the API has no way to ask for critical
	// options or extensions (they come from the role), and a host names
	// itself (an enrollment token names the host when the request does not).
	if options {
		return http.StatusBadRequest, "bad-json"
	}
	if host && len(principals) == 0 && m.tokenKind == store.TokenEnroll {
		principals = m.principals
	}
	// 3. May this caller use this role for this certificate type?
	if m.tokenKind != "" {
		switch m.tokenKind {
		case store.TokenRole, store.TokenEnroll:
			if !slices.Contains(m.roles, roleName) {
				return http.StatusForbidden, "role-not-allowed" // a token of one role asking for another
			}
			if m.tokenKind == store.TokenEnroll && !host {
				return http.StatusForbidden, "role-not-allowed" // enrollment tokens only obtain host certificates
			}
			if m.tokenKind == store.TokenRole && host {
				return http.StatusForbidden, "role-not-allowed" // host certificates need an enrollment token
			}
		default:
			return http.StatusForbidden, "role-not-allowed" // admin and host tokens obtain no certificates
		}
		if role.mfa {
			return http.StatusForbidden, "mfa-required" // a token cannot show a second factor
		}
	} else {
		allowed := slices.Contains(role.allowUsers, m.oidcUser)
		for _, g := range m.oidcGroups {
			allowed = allowed || slices.Contains(role.allowGroup, g)
		}
		if !allowed {
			return http.StatusForbidden, "role-not-allowed"
		}
		if role.mfa && !m.mfa {
			return http.StatusForbidden, "mfa-required"
		}
	}
	// 4. An enrollment token names the hosts it may certify.
	if m.tokenKind == store.TokenEnroll {
		for _, p := range principals {
			if !slices.Contains(m.principals, p) {
				return http.StatusForbidden, "principal-not-allowed"
			}
		}
	}
	// 5. The role's limits: certificate type, lifetime, principals.
	if role.host != host {
		return http.StatusForbidden, "cert-type-mismatch"
	}
	if ttlOver {
		return http.StatusForbidden, "ttl-exceeds-max"
	}
	if host && len(principals) == 0 {
		return http.StatusForbidden, "empty-principals" // a host names itself
	}
	for _, p := range principals {
		if !slices.Contains(role.principals, p) {
			if host {
				return http.StatusForbidden, "host-principal-no-match"
			}
			return http.StatusForbidden, "principal-not-allowed"
		}
	}
	return http.StatusOK, ""
}

// authzFixture is the service of the matrix.
type authzFixture struct {
	t       testing.TB
	home    *home.Home
	handler http.Handler
	iss     *oidctest.Issuer
	pub     ssh.PublicKey
	pubLine string
	creds   map[string]string // method name -> bearer credential (enroll tokens are made per row)
	n       int
}

func newAuthzFixture(t testing.TB) *authzFixture {
	t.Helper()
	ctx := context.Background()
	h := testhome.New(t, authzPolicy, testhome.Options{})
	iss := oidctest.New(t)
	iss.Lifetime = time.Hour
	v, err := oidc.NewVerifier(ctx, oidc.Config{Issuer: iss.URL(), ClientID: oidctest.ClientID, HTTPClient: iss.Client()})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Config: h.Config, Store: h.Store, Authority: h.Authority, OIDC: server.OIDC(v)})
	signer, line := newKey(t)
	f := &authzFixture{t: t, home: h, handler: srv.Handler(), iss: iss, pub: signer.PublicKey(), pubLine: line, creds: map[string]string{}}
	for _, m := range authzMethods {
		switch {
		case m.tokenKind == store.TokenEnroll:
			// One use each: made per row.
		case m.tokenKind != "":
			f.creds[m.name] = f.token(m)
		default:
			claims := map[string]any{"sub": m.oidcUser}
			if len(m.oidcGroups) > 0 {
				claims["groups"] = m.oidcGroups
			}
			if m.mfa {
				claims["amr"] = []string{"pwd", "otp"}
			}
			f.creds[m.name] = iss.Mint(claims, "ES256")
		}
	}
	return f
}

// token stores an API token for m and returns its secret.
func (f *authzFixture) token(m authzMethod) string {
	f.t.Helper()
	ctx := context.Background()
	now := time.Now()
	created, ttl := now, time.Hour
	if m.expired {
		created = now.Add(-2 * time.Hour)
	}
	f.n++
	name := fmt.Sprintf("%s-%d", m.name, f.n)
	secret, tok, err := ca.NewToken(name, m.tokenKind, m.roles, m.principals, "test", created, ttl)
	if err != nil {
		f.t.Fatal(err)
	}
	ev := audit.Entry{Time: created, Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token created"}
	if err := f.home.Store.CreateToken(ctx, tok, ev); err != nil {
		f.t.Fatal(err)
	}
	if m.revoked {
		ev := audit.Entry{Time: now, Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token revoked"}
		if err := f.home.Store.RevokeToken(ctx, tok.ID, now, ev); err != nil {
			f.t.Fatal(err)
		}
	}
	return secret
}

// counts is what a refusal must leave unchanged.
func (f *authzFixture) counts(t testing.TB) (int, uint64) {
	t.Helper()
	ctx := context.Background()
	certs, err := f.home.Store.ListCerts(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := f.home.Store.MaxSerial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(certs), ms
}

// TestAuthorizationMatrix is acceptance 2 of issue 7: every combination of
// authentication method, role, requested principals, lifetime and
// certificate type gets exactly the allow or deny that the contract
// (expectAuthz) gives, and an allowed request gets nothing beyond what the
// role and the request name.
func TestAuthorizationMatrix(t *testing.T) {
	f := newAuthzFixture(t)
	var rows []authzRow
	for _, m := range authzMethods {
		for _, certType := range []string{"user", "host"} {
			for _, roleName := range slices.Sorted(maps.Keys(authzRoles)) {
				for _, pr := range []string{"none", "subset", "all", "outside"} {
					for _, ttl := range []string{"max", "over"} {
						rows = append(rows, authzRow{method: m, role: roleName, principals: pr, ttl: ttl, certType: certType})
					}
				}
			}
			// Asking for options is refused whatever else the request says.
			rows = append(rows, authzRow{method: m, role: m.firstRole(), principals: "subset", ttl: "max", options: true, certType: certType})
		}
	}
	allowed := 0
	byCode := map[string]int{}
	for _, row := range rows {
		role := authzRoles[row.role]
		principals := row.requested()
		ttl := role.maxTTL
		if row.ttl == "over" {
			ttl += time.Minute
		}
		row.status, row.code = row.expect()
		t.Run(map[bool]string{true: "ok/", false: "fail/"}[row.status == http.StatusOK]+row.name(), func(t *testing.T) {
			cred := f.creds[row.method.name]
			if row.method.tokenKind == store.TokenEnroll {
				cred = f.token(row.method)
			}
			body, err := json.Marshal(api.CertRequest{PublicKey: f.pubLine, Role: row.role, Principals: principals, TTL: ttl.String()})
			if err != nil {
				t.Fatal(err)
			}
			if row.options {
				body = append(bytes.TrimSuffix(body, []byte("}")), `,"critical_options":{"force-command":""},"extensions":["permit-agent-forwarding"]}`...)
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/certs/"+row.certType, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+cred)
			certsBefore, serialBefore := f.counts(t)
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			certsAfter, serialAfter := f.counts(t)
			if rec.Code != row.status {
				t.Fatalf("status %d, want %d %s: %s", rec.Code, row.status, row.code, rec.Body.Bytes())
			}
			if row.status != http.StatusOK {
				var e api.Error
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
					t.Fatalf("error body: %v: %s", err, rec.Body.Bytes())
				}
				if e.Code != row.code {
					t.Errorf("code %q (%s), want %q", e.Code, e.Error, row.code)
				}
				if certsAfter != certsBefore || serialAfter != serialBefore {
					t.Errorf("a refusal changed the store: %d certificates (max serial %d), then %d (%d)", certsBefore, serialBefore, certsAfter, serialAfter)
				}
				return
			}
			var cr api.CertResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &cr); err != nil {
				t.Fatal(err)
			}
			want := principals
			switch {
			case len(want) > 0:
			case row.method.tokenKind == store.TokenEnroll:
				want = row.method.principals
			default:
				want = role.principals
			}
			checkAuthzGrant(t, row, role, want, ttl, f.pub, cr)
			if certsAfter != certsBefore+1 || serialAfter <= serialBefore {
				t.Errorf("issuance not recorded: %d certificates (max serial %d), then %d (%d)", certsBefore, serialBefore, certsAfter, serialAfter)
			}
		})
		if row.status == http.StatusOK {
			allowed++
		} else {
			byCode[fmt.Sprintf("%d %s", row.status, row.code)]++
		}
	}
	// The table must contain the combinations the issue names.
	for _, must := range []struct {
		method, certType, role, principals, ttl string
		status                                  int
	}{
		{"role-token-deploy", "user", "deploy", "subset", "max", 200},
		{"role-token-other", "user", "deploy", "subset", "max", 403},      // a token of one role asking for another
		{"role-token-host-role", "user", "servers", "subset", "max", 403}, // a host-role token asking for a user certificate
		{"host-token", "user", "deploy", "subset", "max", 403},
		{"enroll-token", "user", "servers", "subset", "max", 403},
		{"enroll-token", "host", "servers", "all", "max", 200},
		{"expired-token", "user", "deploy", "subset", "max", 401},
		{"revoked-token", "user", "deploy", "subset", "max", 401},
		{"oidc-allowed-by-group", "user", "secure", "subset", "max", 403}, // no second factor
		{"oidc-with-mfa", "user", "secure", "subset", "max", 200},
		{"oidc-allowed-by-user", "user", "deploy", "outside", "max", 403},
		{"oidc-allowed-by-user", "user", "deploy", "all", "over", 403},
		{"enroll-token", "host", "servers", "none", "max", 200}, // the token names the hosts
		{"role-token-host-role", "host", "servers", "none", "max", 403},
	} {
		found := false
		for _, r := range rows {
			if r.method.name == must.method && r.certType == must.certType && r.role == must.role && r.principals == must.principals && r.ttl == must.ttl && !r.options {
				if st, _ := r.expect(); st != must.status {
					t.Errorf("the table expects %d for %s, the issue %d", st, r.name(), must.status)
				}
				found = true
			}
		}
		if !found {
			t.Errorf("the table has no row %+v", must)
		}
	}
	var codes []string
	for _, c := range slices.Sorted(maps.Keys(byCode)) {
		codes = append(codes, fmt.Sprintf("%s: %d", c, byCode[c]))
	}
	t.Logf("authorization matrix: %d rows (%d methods x 2 certificate types x (4 roles x 4 principal sets x 2 lifetimes + 1 request with options)): %d allowed, %d denied (%s)",
		len(rows), len(authzMethods), allowed, len(rows)-allowed, strings.Join(codes, ", "))
	if allowed == 0 || allowed == len(rows) {
		t.Fatalf("a matrix that allows %d of %d rows proves nothing", allowed, len(rows))
	}
}

// checkAuthzGrant checks that an issued certificate holds exactly what the
// role grants and the request asked for.
func checkAuthzGrant(t *testing.T, row authzRow, role authzRole, principals []string, ttl time.Duration, pub ssh.PublicKey, cr api.CertResponse) {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cr.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		t.Fatalf("response holds a %T", k)
	}
	wantType := uint32(ssh.UserCert)
	if row.certType == "host" {
		wantType = ssh.HostCert
	}
	if cert.CertType != wantType {
		t.Errorf("certificate type %d, want %d", cert.CertType, wantType)
	}
	if !bytes.Equal(cert.Key.Marshal(), pub.Marshal()) {
		t.Error("certificate is for another key")
	}
	if !slices.Equal(cert.ValidPrincipals, principals) {
		t.Errorf("principals %q, want exactly %q", cert.ValidPrincipals, principals)
	}
	life := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second
	if life > ttl+5*time.Minute+time.Second || ttl > role.maxTTL {
		t.Errorf("lifetime %s (backdated) for a request of %s; max_ttl %s", life, ttl, role.maxTTL)
	}
	wantExt := map[string]string{}
	for _, e := range role.extensions {
		wantExt[e] = ""
	}
	if row.certType == "host" {
		wantExt = map[string]string{}
	}
	if !maps.Equal(cert.Extensions, wantExt) {
		t.Errorf("extensions %v, want %v", cert.Extensions, wantExt)
	}
	wantOpts := role.options
	if wantOpts == nil {
		wantOpts = map[string]string{}
	}
	if !maps.Equal(cert.CriticalOptions, wantOpts) {
		t.Errorf("critical options %v, want %v", cert.CriticalOptions, wantOpts)
	}
	actor := "oidc:" + row.method.oidcUser
	if row.method.tokenKind != "" {
		actor = "token:" + row.method.name
	}
	if !strings.HasPrefix(cert.KeyId, actor) || !strings.Contains(cert.KeyId, "role="+row.role) {
		t.Errorf("key ID %q does not name %s and role %s", cert.KeyId, actor, row.role)
	}
}
