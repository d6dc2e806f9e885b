package console_test

import (
	"database/sql"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/console"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/hostile"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/storetest"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// consolePolicy is the standard test policy with the console on for
// alice (by name) and the group sshca-admins.
var consolePolicy = strings.Replace(testkit.Policy, "  anonymous_rate_limit: 100000\n",
	"  anonymous_rate_limit: 100000\n  console:\n    admins:\n      users: [alice]\n      groups: [sshca-admins]\n    idle_timeout: 10m\n    max_session: 1h\n", 1)

// clock is a settable clock for the console.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	h     *home.Home
	srv   *httptest.Server
	clock *clock
}

// newFixture serves the certificate service with the console over TLS on
// 127.0.0.1, on a fresh home.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	h := testhome.New(t, consolePolicy, testhome.Options{})
	clk := &clock{t: time.Now()}
	c, err := console.New(console.Options{Config: h.Config, Store: h.Store, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(server.New(server.Options{Config: h.Config, Store: h.Store, Authority: h.Authority, Console: c}).Handler())
	t.Cleanup(srv.Close)
	return &fixture{t: t, h: h, srv: srv, clock: clk}
}

// link makes a login link for user, as `sshca console link` does.
func (f *fixture) link(user string) string {
	f.t.Helper()
	l, _, err := console.NewLoginLink(f.t.Context(), f.h.Store, f.srv.URL, user, "cli:test", f.clock.now(), console.DefaultLinkTTL)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects.
func (f *fixture) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *f.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

type page struct {
	status int
	body   string
	header http.Header
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values, hdr map[string]string) page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{status: resp.StatusCode, body: string(b), header: resp.Header}
}

// signIn follows a login link: the GET page, then its button's POST.
func (f *fixture) signIn(c *http.Client, link string) page {
	f.t.Helper()
	p := do(f.t, c, "GET", link, nil, nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, `id="signin"`) {
		f.t.Fatalf("login page: %d %s", p.status, p.body)
	}
	u, _ := url.Parse(link)
	return do(f.t, c, "POST", f.srv.URL+"/ui/login", url.Values{"t": {u.Query().Get("t")}}, nil)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

// issue records a certificate for identity through the store's batch
// path, as the authority does (the certificate line is a placeholder).
func (f *fixture) issue(keyID, identity string, principals []string) uint64 {
	f.t.Helper()
	keys, err := f.h.Store.ListCAKeys(f.t.Context(), "user")
	if err != nil || len(keys) == 0 {
		f.t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	rec := &store.CertRecord{CAType: "user", CAFingerprint: keys[0].Fingerprint, Role: "deploy", KeyID: keyID, Principals: principals,
		ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(time.Hour), SubjectFingerprint: "SHA256:x", SubjectType: "ssh-ed25519",
		Requester: "cli:test", IssuedAt: now, Lineage: store.Lineage{Caller: "admin", Identity: identity}}
	serial, err := storetest.Issue(f.t.Context(), f.h.Store, rec, audit.Entry{Time: now, Actor: "cli:test", Action: audit.ActionIssue, Role: "deploy", KeyID: keyID, Outcome: "ok"})
	if err != nil {
		f.t.Fatal(err)
	}
	return serial
}

func (f *fixture) revoked(serial uint64) bool {
	f.t.Helper()
	rec, err := f.h.Store.GetCert(f.t.Context(), serial)
	if err != nil {
		f.t.Fatal(err)
	}
	m, err := ca.RevokedCerts(f.t.Context(), f.h.Store, []store.CertRecord{*rec})
	if err != nil {
		f.t.Fatal(err)
	}
	_, ok := m[serial]
	return ok
}

func TestLoginLink(t *testing.T) {
	f := newFixture(t)
	link := f.link("alice")
	c := f.browser()
	// A GET does not spend the link (previews, prefetch).
	for range 2 {
		if p := do(t, c, "GET", link, nil, nil); p.status != http.StatusOK {
			t.Fatalf("GET link: %d", p.status)
		}
	}
	p := f.signIn(c, link)
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/certs" {
		t.Fatalf("sign-in: %d %q %s", p.status, p.header.Get("Location"), p.body)
	}
	ck := p.header.Get("Set-Cookie")
	for _, want := range []string{console.CookieName + "=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict", "Max-Age=3600"} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie %q lacks %q", ck, want)
		}
	}
	if p := do(t, c, "GET", f.srv.URL+"/ui/certs", nil, nil); p.status != http.StatusOK || !strings.Contains(p.body, "alice") {
		t.Fatalf("certificates after sign-in: %d", p.status)
	}

	t.Run("fail/reused", func(t *testing.T) {
		other := f.browser()
		p := f.signIn(other, link)
		if p.status != http.StatusForbidden || !strings.Contains(p.body, "already used") || p.header.Get("Set-Cookie") != "" {
			t.Fatalf("reused link: %d %q\n%s", p.status, p.header.Get("Set-Cookie"), p.body)
		}
		if p := do(t, other, "GET", f.srv.URL+"/ui/certs", nil, nil); p.status != http.StatusUnauthorized {
			t.Fatalf("certificates without a session: %d", p.status)
		}
	})
	t.Run("fail/expired", func(t *testing.T) {
		l := f.link("alice")
		f.clock.add(console.DefaultLinkTTL)
		p := f.signIn(f.browser(), l)
		if p.status != http.StatusForbidden || !strings.Contains(p.body, "expired") {
			t.Fatalf("expired link: %d\n%s", p.status, p.body)
		}
	})
	t.Run("fail/wrong-secret", func(t *testing.T) {
		l := f.link("alice")
		u, _ := url.Parse(l)
		tok := u.Query().Get("t")
		bad := tok[:len(tok)-2] + "AA"
		if bad == tok {
			bad = tok[:len(tok)-2] + "BB"
		}
		p := do(t, f.browser(), "POST", f.srv.URL+"/ui/login", url.Values{"t": {bad}}, nil)
		if p.status != http.StatusForbidden {
			t.Fatalf("wrong secret: %d", p.status)
		}
		// The right one still works: a wrong guess does not spend it.
		if p := f.signIn(f.browser(), l); p.status != http.StatusSeeOther {
			t.Fatalf("right secret after a wrong one: %d", p.status)
		}
	})
	t.Run("fail/not-a-link", func(t *testing.T) {
		if p := do(t, f.browser(), "GET", f.srv.URL+"/ui/login?t=nope", nil, nil); p.status != http.StatusBadRequest {
			t.Fatalf("GET with a malformed link: %d", p.status)
		}
	})
	// Every sign-in, refused or not, is in the audit log.
	entries, err := f.h.Store.AuditEntries(t.Context(), store.AuditFilter{Action: audit.ActionAdmin})
	if err != nil {
		t.Fatal(err)
	}
	var ok, denied int
	for _, e := range entries {
		switch {
		case e.Outcome == "ok" && strings.Contains(e.Reason, "console sign-in"):
			ok++
		case e.Outcome == "denied" && strings.Contains(e.Reason, "console sign-in refused"):
			denied++
		}
	}
	if ok != 2 || denied != 3 {
		t.Fatalf("audited sign-ins: %d ok, %d refused; want 2 and 3", ok, denied)
	}
}

func TestSessionExpiry(t *testing.T) {
	f := newFixture(t)
	c := f.browser()
	f.signIn(c, f.link("alice"))
	get := func() int { return do(t, c, "GET", f.srv.URL+"/ui/certs", nil, nil).status }
	// Used every 9 minutes, the session outlives its 10-minute idle
	// timeout, up to its hour.
	for range 6 {
		f.clock.add(9 * time.Minute)
		if s := get(); s != http.StatusOK {
			t.Fatalf("active session refused: %d", s)
		}
	}
	f.clock.add(7 * time.Minute) // 61 minutes after sign-in
	if s := get(); s != http.StatusUnauthorized {
		t.Fatalf("session past its absolute expiry: %d", s)
	}
	c = f.browser()
	f.signIn(c, f.link("alice"))
	f.clock.add(10 * time.Minute)
	if s := get(); s != http.StatusUnauthorized {
		t.Fatalf("idle session: %d", s)
	}
}

func TestCSRF(t *testing.T) {
	f := newFixture(t)
	serial := f.issue("victim", "mallory", []string{"role-deploy"})
	c := f.browser()
	f.signIn(c, f.link("alice"))
	p := do(t, c, "GET", fmt.Sprintf("%s/ui/certs/%d", f.srv.URL, serial), nil, nil)
	if p.status != http.StatusOK {
		t.Fatalf("certificate page: %d", p.status)
	}
	csrf := csrfOf(t, p.body)
	revoke := fmt.Sprintf("%s/ui/certs/%d/revoke", f.srv.URL, serial)
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"fail/no-token", url.Values{"reason": {"x"}}, nil},
		{"fail/wrong-token", url.Values{"reason": {"x"}, "csrf": {csrf[:len(csrf)-1] + "x"}}, nil},
		{"fail/other-origin", url.Values{"reason": {"x"}, "csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}},
		{"fail/cross-site", url.Values{"reason": {"x"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p := do(t, c, "POST", revoke, tc.form, tc.hdr); p.status != http.StatusForbidden {
				t.Fatalf("status %d", p.status)
			}
			if f.revoked(serial) {
				t.Fatal("revoked without a valid CSRF token")
			}
		})
	}
	t.Run("fail/no-reason", func(t *testing.T) {
		if p := do(t, c, "POST", revoke, url.Values{"csrf": {csrf}, "reason": {"  "}}, nil); p.status != http.StatusBadRequest || f.revoked(serial) {
			t.Fatalf("status %d", p.status)
		}
	})
	t.Run("ok/revoke", func(t *testing.T) {
		p := do(t, c, "POST", revoke, url.Values{"csrf": {csrf}, "reason": {"key lost"}}, map[string]string{"Origin": f.srv.URL})
		if p.status != http.StatusSeeOther || !f.revoked(serial) {
			t.Fatalf("status %d, revoked %v", p.status, f.revoked(serial))
		}
		entries, err := f.h.Store.AuditEntries(t.Context(), store.AuditFilter{Action: audit.ActionRevoke, Serial: serial})
		if err != nil || len(entries) != 1 || entries[0].Actor != "console:alice" || entries[0].Reason != "key lost" {
			t.Fatalf("revocation audit: %+v, %v", entries, err)
		}
	})
	t.Run("ok/revoke-identity", func(t *testing.T) {
		a, b := f.issue("m-1", "mallory", nil), f.issue("m-2", "mallory", nil)
		other := f.issue("o-1", "olivia", nil)
		p := do(t, c, "POST", fmt.Sprintf("%s/ui/certs/%d/revoke", f.srv.URL, a), url.Values{"csrf": {csrf}, "reason": {"left"}, "scope": {"identity"}}, nil)
		if p.status != http.StatusSeeOther || !f.revoked(a) || !f.revoked(b) || f.revoked(other) {
			t.Fatalf("status %d; revoked %v %v, other %v", p.status, f.revoked(a), f.revoked(b), f.revoked(other))
		}
	})
}

// routes are every page and action of the console.
var routes = []struct{ method, path string }{
	{"GET", "/ui/"}, {"GET", "/ui/certs"}, {"GET", "/ui/certs/1"}, {"GET", "/ui/fleet"}, {"GET", "/ui/keys"},
	{"GET", "/ui/tokens"}, {"GET", "/ui/audit"}, {"POST", "/ui/certs/1/revoke"}, {"POST", "/ui/tokens"},
	{"POST", "/ui/tokens/0123456789abcdef/revoke"}, {"POST", "/ui/totp/reset"}, {"POST", "/ui/logout"},
}

func TestNonAdminForbidden(t *testing.T) {
	f := newFixture(t)
	serial := f.issue("kept", "someone", nil)
	c := f.browser()
	if p := f.signIn(c, f.link("bob")); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", p.status)
	}
	// bob's pages carry a CSRF token too: his POSTs are refused by the
	// policy, not by a missing token.
	csrf := csrfOf(t, do(t, c, "GET", f.srv.URL+"/ui/certs", nil, nil).body)
	before, _ := f.h.Store.ListTokens(t.Context())
	for _, r := range routes {
		path := strings.Replace(r.path, "/1", fmt.Sprintf("/%d", serial), 1)
		var form url.Values
		if r.method == "POST" {
			form = url.Values{"csrf": {csrf}, "reason": {"x"}, "name": {"t1"}, "kind": {"admin"}, "ttl": {"1h"}, "user": {"alice"}}
		}
		p := do(t, c, r.method, f.srv.URL+path, form, nil)
		if p.status != http.StatusForbidden || !strings.Contains(p.body, "not a console admin") {
			t.Errorf("%s %s: %d, want 403", r.method, path, p.status)
		}
	}
	after, _ := f.h.Store.ListTokens(t.Context())
	if f.revoked(serial) || len(after) != len(before) {
		t.Fatal("a refused request changed something")
	}
	// Without any session: 401 everywhere (GET) and no change.
	for _, r := range routes {
		if p := do(t, f.browser(), r.method, f.srv.URL+r.path, url.Values{}, nil); p.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a session: %d", r.method, r.path, p.status)
		}
	}
}

// hostileStrings are the corpus's text inputs (testdata/hostile) plus
// markup aimed at each context of the pages.
func hostileStrings(t *testing.T) []string {
	t.Helper()
	cases, inputs, err := hostile.Load(filepath.Join("..", "..", "testdata", "hostile"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{
		`<script>window.__pwned=1</script>`,
		`"><img src=x onerror="window.__pwned=1">`,
		`'><svg onload=window.__pwned=1>`,
		`javascript:window.__pwned=1`,
		"</td></tr></table><form action=https://evil.example><button>x",
		"bell\x07 nul\x00 esc\x1b[31m del\x7f",
		strings.Repeat("W", 9000),
	}
	for i, in := range inputs {
		if len(in) > 0 && len(in) <= 4096 && utf8.Valid(in) && cases[i].Input != "" {
			out = append(out, string(in))
		}
	}
	return out
}

// TestHostileDataInert stores hostile key IDs, principals, identities,
// token names and audit reasons directly (as a restored dump or another
// door might) and checks that every page renders them as text: never
// their markup unescaped, always in full, and no page carries a script.
func TestHostileDataInert(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	strs := hostileStrings(t)
	if len(strs) < 10 {
		t.Fatalf("only %d hostile strings", len(strs))
	}
	var serials []uint64
	for i, s := range strs {
		serials = append(serials, f.issue(s, s, []string{s, "p"}))
		tok := store.Token{ID: fmt.Sprintf("%016x", i+1), Name: fmt.Sprintf("%s-%d", s, i), Kind: store.TokenRole, Roles: []string{s},
			Hash: "00", CreatedBy: s, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
		if err := f.h.Store.CreateToken(ctx, tok, audit.Entry{Time: time.Now(), Actor: s, Action: audit.ActionToken, Outcome: "ok", Reason: s}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.h.Store.AddRevocation(ctx, store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: serials[i], Hi: serials[i], Reason: s, Actor: s},
			audit.Entry{Time: time.Now(), Actor: s, Action: audit.ActionRevoke, Role: s, Serial: serials[i], Outcome: "ok", Reason: s}); err != nil {
			t.Fatal(err)
		}
		if err := f.h.Store.ReportHost(ctx, store.Host{Name: s, LastSeen: time.Now(), CAKeys: []string{}, Detail: s, HostCertCA: s}); err != nil {
			t.Fatal(err)
		}
		// A denial for role s: the chart's bars and legend name it.
		if _, err := f.h.Store.Append(ctx, audit.Entry{Time: time.Now(), Actor: s, Action: audit.ActionDeny, Role: s, Outcome: "denied", Reason: s}); err != nil {
			t.Fatal(err)
		}
		u := store.LocalUser{Name: fmt.Sprintf("%s-%d", s, i), Groups: []string{s}, CreatedBy: s, CreatedAt: time.Now()}
		if err := f.h.Store.AddLocalUser(ctx, u, audit.Entry{Time: time.Now(), Actor: s, Action: audit.ActionAdmin, Outcome: "ok", Reason: s}); err != nil {
			t.Fatal(err)
		}
	}
	c := f.browser()
	f.signIn(c, f.link("alice"))
	pages := []string{"/ui/certs", "/ui/certs?status=revoked", "/ui/fleet", "/ui/tokens", "/ui/audit", "/ui/keys"}
	for _, s := range serials {
		pages = append(pages, fmt.Sprintf("/ui/certs/%d", s))
	}
	for _, path := range pages {
		p := do(t, c, "GET", f.srv.URL+path, nil, nil)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if strings.Contains(strings.ToLower(p.body), "<script") || strings.Contains(p.body, "<img") || strings.Contains(p.body, "onerror=\"") ||
			strings.Contains(p.body, "<svg onload") || strings.Contains(p.body, "evil.example><button") {
			t.Errorf("%s: hostile markup in the page", path)
		}
		if strings.ContainsAny(p.body, "\x00\x07\x1b") {
			t.Errorf("%s: control characters in the page", path)
		}
	}
	// The chart's legend names each hostile role, as text.
	auditPage := html.UnescapeString(do(t, c, "GET", f.srv.URL+"/ui/audit", nil, nil).body)
	if !strings.Contains(auditPage, `<span class="wrap">`+strs[0]+`</span>: 0 issued, 1 denied`) {
		t.Error("the chart's legend does not name the hostile role")
	}
	// Each certificate page shows its key ID in full, as text: the
	// escaped form of the stored string, control characters aside.
	for i, s := range strs {
		if strings.ContainsAny(s, "\x00\x07\x1b\x7f\r\n\t") {
			continue
		}
		p := do(t, c, "GET", fmt.Sprintf("%s/ui/certs/%d", f.srv.URL, serials[i]), nil, nil)
		if !strings.Contains(html.UnescapeString(p.body), s) {
			t.Errorf("certificate %d: key ID %.40q not shown in full", serials[i], s)
		}
	}
}

func TestHeadersAndNoScript(t *testing.T) {
	f := newFixture(t)
	c := f.browser()
	f.signIn(c, f.link("alice"))
	for _, path := range []string{"/ui/certs", "/ui/fleet", "/ui/keys", "/ui/tokens", "/ui/audit", "/ui/nope", "/ui/static/console.css"} {
		p := do(t, c, "GET", f.srv.URL+path, nil, nil)
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
			if p.header.Get(k) != want {
				t.Errorf("%s: %s %q", path, k, p.header.Get(k))
			}
		}
		if strings.Contains(p.body, "<script") || strings.Contains(p.body, "http://") || strings.Contains(p.body, "https://") {
			t.Errorf("%s: script or external reference in the page", path)
		}
	}
	// The API's own 404 is unchanged outside /ui/.
	if p := do(t, c, "GET", f.srv.URL+"/nope", nil, nil); p.status != http.StatusNotFound || !strings.Contains(p.body, `"not-found"`) {
		t.Fatalf("API 404: %d %s", p.status, p.body)
	}
}

// TestAuditChainStatus: the audit page says the chain is intact, verifies
// what is appended later, and says it is broken when a row was changed.
func TestAuditChainStatus(t *testing.T) {
	f := newFixture(t)
	c := f.browser()
	f.signIn(c, f.link("alice"))
	p := do(t, c, "GET", f.srv.URL+"/ui/audit", nil, nil)
	if !strings.Contains(p.body, "Intact") {
		t.Fatalf("fresh chain not intact:\n%s", p.body)
	}
	f.issue("later", "later", nil)
	head, _, err := f.h.Store.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	p = do(t, c, "GET", f.srv.URL+"/ui/audit", nil, nil)
	if !strings.Contains(p.body, fmt.Sprintf("%d entries verified", head)) {
		t.Fatalf("appended entries not verified (head %d):\n%s", head, p.body)
	}

	// A row changed after it was verified is found by the next pass from
	// the first entry, an hour later.
	db0, ok := f.h.Store.(interface{ SQL() *sql.DB })
	if !ok {
		t.Fatalf("%T gives no SQL handle", f.h.Store)
	}
	if _, err := db0.SQL().ExecContext(t.Context(), `UPDATE audit SET reason = 'rewritten' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if p := do(t, c, "GET", f.srv.URL+"/ui/audit", nil, nil); !strings.Contains(p.body, "Intact") {
		t.Fatal("verified entries were hashed again before the hour")
	}
	f.clock.add(61 * time.Minute)
	c = f.browser() // the session has ended meanwhile
	f.signIn(c, f.link("alice"))
	if p := do(t, c, "GET", f.srv.URL+"/ui/audit", nil, nil); !strings.Contains(p.body, "entry 2: content does not match its hash") {
		t.Fatalf("a row changed after verification not found on the next pass:\n%s", p.body)
	}

	g := newFixture(t)
	db, ok := g.h.Store.(interface{ SQL() *sql.DB })
	if !ok {
		t.Fatalf("%T gives no SQL handle", g.h.Store)
	}
	if _, err := db.SQL().ExecContext(t.Context(), `UPDATE audit SET reason = 'rewritten' WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	c = g.browser()
	g.signIn(c, g.link("alice"))
	p = do(t, c, "GET", g.srv.URL+"/ui/audit", nil, nil)
	if !strings.Contains(p.body, "Broken") || !strings.Contains(p.body, "entry 1: content does not match its hash") {
		t.Fatalf("tampered chain not reported:\n%s", p.body)
	}
}
