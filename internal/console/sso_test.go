package console_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/console"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

type ssoFixture struct {
	*fixture
	iss *oidctest.Issuer
}

// newSSOFixture serves the console with single sign-on through a test
// identity provider (authorization code flow with PKCE), both over TLS on
// 127.0.0.1.
func newSSOFixture(t *testing.T) *ssoFixture {
	t.Helper()
	iss := oidctest.New(t)
	h := testhome.New(t, consolePolicy, testhome.Options{})
	v, err := oidc.NewVerifier(t.Context(), oidc.Config{Issuer: iss.URL(), ClientID: oidctest.ClientID, UserClaim: "preferred_username", HTTPClient: iss.Client()})
	if err != nil {
		t.Fatal(err)
	}
	sso := &console.SSO{Issuer: iss.URL(), ClientID: oidctest.ClientID, Client: iss.Client(),
		Verify: func(ctx context.Context, raw string) (string, []string, error) {
			id, err := v.Verify(ctx, raw)
			if err != nil {
				return "", nil, err
			}
			return id.User, id.Groups, nil
		}}
	c, err := console.New(console.Options{Config: h.Config, Store: h.Store, SSO: sso})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(server.New(server.Options{Config: h.Config, Store: h.Store, Authority: h.Authority, Console: c}).Handler())
	srv.StartTLS()
	t.Cleanup(srv.Close)
	sso.RedirectURL = srv.URL + "/ui/oidc/callback"
	return &ssoFixture{fixture: &fixture{t: t, h: h, srv: srv, clock: &clock{}}, iss: iss}
}

// ssoBrowser trusts both servers, keeps cookies and follows no redirect.
func (f *ssoFixture) ssoBrowser() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	pool.AddCert(f.iss.Certificate())
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	f.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// signInSSO walks start -> provider -> callback and returns the callback's
// page.
func (f *ssoFixture) signInSSO(c *http.Client) (page, string) {
	f.t.Helper()
	p := do(f.t, c, "GET", f.srv.URL+"/ui/oidc/start", nil, nil)
	if p.status != http.StatusSeeOther {
		f.t.Fatalf("start: %d %s", p.status, p.body)
	}
	authz := p.header.Get("Location")
	u, _ := url.Parse(authz)
	q := u.Query()
	if !strings.HasPrefix(authz, f.iss.URL()+"/authorize?") || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("nonce") == "" || q.Get("state") == "" || q.Get("redirect_uri") != f.srv.URL+"/ui/oidc/callback" {
		f.t.Fatalf("authorization request %s", authz)
	}
	p = do(f.t, c, "GET", authz, nil, nil)
	if p.status != http.StatusFound {
		f.t.Fatalf("authorize: %d", p.status)
	}
	cb := p.header.Get("Location")
	return do(f.t, c, "GET", cb, nil, nil), cb
}

func TestSSO(t *testing.T) {
	f := newSSOFixture(t)
	t.Run("ok/admin-group", func(t *testing.T) {
		f.iss.SetLogin(map[string]any{"preferred_username": "dora", "groups": []string{"dev", "sshca-admins"}})
		c := f.ssoBrowser()
		p, cb := f.signInSSO(c)
		if p.status != http.StatusOK || !strings.Contains(p.body, `http-equiv="refresh"`) || !strings.Contains(strings.Join(p.header.Values("Set-Cookie"), "\n"), console.CookieName) {
			t.Fatalf("callback: %d %q\n%s", p.status, p.header.Values("Set-Cookie"), p.body)
		}
		if p := do(t, c, "GET", f.srv.URL+"/ui/certs", nil, nil); p.status != http.StatusOK || !strings.Contains(p.body, "dora") {
			t.Fatalf("certificates after single sign-on: %d", p.status)
		}
		// The callback (its state, its code) works once.
		if p := do(t, c, "GET", cb, nil, nil); p.status != http.StatusForbidden {
			t.Fatalf("replayed callback: %d", p.status)
		}
	})
	t.Run("fail/not-admin", func(t *testing.T) {
		f.iss.SetLogin(map[string]any{"preferred_username": "eve", "groups": []string{"dev"}})
		c := f.ssoBrowser()
		if p, _ := f.signInSSO(c); p.status != http.StatusOK {
			t.Fatalf("callback: %d", p.status)
		}
		if p := do(t, c, "GET", f.srv.URL+"/ui/certs", nil, nil); p.status != http.StatusForbidden {
			t.Fatalf("a person outside the admin group: %d", p.status)
		}
	})
	t.Run("fail/other-browser", func(t *testing.T) {
		// The callback in a browser that did not start the sign-in (an
		// attacker's code injected into the victim's browser).
		f.iss.SetLogin(map[string]any{"preferred_username": "alice"})
		c := f.ssoBrowser()
		p := do(t, c, "GET", f.srv.URL+"/ui/oidc/start", nil, nil)
		p = do(t, c, "GET", p.header.Get("Location"), nil, nil)
		if p := do(t, f.ssoBrowser(), "GET", p.header.Get("Location"), nil, nil); p.status != http.StatusForbidden || !strings.Contains(p.body, "not started in this browser") {
			t.Fatalf("callback in another browser: %d %s", p.status, p.body)
		}
	})
	t.Run("fail/denied-at-provider", func(t *testing.T) {
		f.iss.SetLogin(nil)
		if p, _ := f.signInSSO(f.ssoBrowser()); p.status != http.StatusForbidden || !strings.Contains(p.body, "access_denied") {
			t.Fatalf("refused at the provider: %d %s", p.status, p.body)
		}
	})
	t.Run("fail/no-session-offers-sso", func(t *testing.T) {
		p := do(t, f.ssoBrowser(), "GET", f.srv.URL+"/ui/certs", nil, nil)
		if p.status != http.StatusUnauthorized || !strings.Contains(p.body, `href="/ui/oidc/start"`) {
			t.Fatalf("401 page: %d", p.status)
		}
	})
	entries, err := f.h.Store.AuditEntries(t.Context(), store.AuditFilter{Action: audit.ActionAdmin})
	if err != nil {
		t.Fatal(err)
	}
	var ok, denied int
	for _, e := range entries {
		switch {
		case e.Outcome == "ok" && e.Reason == "console sign-in with single sign-on":
			ok++
		case e.Outcome == "denied" && strings.Contains(e.Reason, "single sign-on"):
			denied++
		}
	}
	if ok != 2 || denied != 3 {
		t.Fatalf("audited single sign-ons: %d ok, %d refused; want 2 and 3", ok, denied)
	}
}

// TestSSOBrowser: in a real headless Chromium, single sign-on goes from the
// console to the provider and back, and the SameSite=Strict session works
// once the page continues to the certificates (a redirect would have
// carried on the provider's cross-site navigation, without the cookie).
func TestSSOBrowser(t *testing.T) {
	chrome := testkit.RequireTool(t, "chromium")
	f := newSSOFixture(t)
	f.iss.SetLogin(map[string]any{"preferred_username": "dora", "groups": []string{"sshca-admins"}})
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.IgnoreCertErrors, chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(ctx); err != nil {
		testkit.SkipOrFatal(t, "chromium does not start: %v", err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(f.srv.URL+"/ui/certs"), chromedp.Click(chromedp.ID("sso"))); err != nil {
		t.Fatal(err)
	}
	waitURL(t, ctx, "/ui/certs")
	if err := chromedp.Do(sctx, chromedp.WaitVisible(chromedp.ID("find"))); err != nil {
		t.Fatal(err)
	}
	who, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS("form.who span")))
	if err != nil || who != "dora" {
		t.Fatalf("signed in as %q (%v)", who, err)
	}
}

// TestSSOThroughServe: `sshca serve` with oidc: and service.console.public_url
// offers single sign-on, verifies the provider's ID token with the
// service's own verifier, and lets a member of the admin group in.
func TestSSOThroughServe(t *testing.T) {
	iss := oidctest.NewHTTP(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	policy := fmt.Sprintf(`service:
  listen: %s
  console:
    admins:
      groups: [sshca-admins]
    public_url: https://%s
oidc:
  issuer: %s
  client_id: %s
  user_claim: preferred_username
roles: {}
`, addr, addr, iss.URL(), oidctest.ClientID)
	h := &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), Env: map[string]string{"USER": "carol"}}
	h.Must("init")
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := h.Serve("")
	if err != nil {
		t.Fatal(err)
	}
	// The browser pins serve's self-signed certificate by its fingerprint.
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || server.CertFingerprint(cs.PeerCertificates[0].Raw) != srv.Fingerprint {
				return fmt.Errorf("not the service's certificate")
			}
			return nil
		}}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	iss.SetLogin(map[string]any{"preferred_username": "dora", "groups": []string{"sshca-admins"}})
	p := do(t, c, "GET", srv.URL+"/ui/certs", nil, nil)
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, `href="/ui/oidc/start"`) {
		t.Fatalf("no session: %d", p.status)
	}
	p = do(t, c, "GET", srv.URL+"/ui/oidc/start", nil, nil)
	authz := p.header.Get("Location")
	if p.status != http.StatusSeeOther || !strings.Contains(authz, url.QueryEscape("https://"+addr+"/ui/oidc/callback")) {
		t.Fatalf("start: %d %s", p.status, authz)
	}
	p = do(t, c, "GET", authz, nil, nil)
	p = do(t, c, "GET", p.header.Get("Location"), nil, nil)
	if p.status != http.StatusOK {
		t.Fatalf("callback: %d\n%s\n%s", p.status, p.body, srv.Log())
	}
	if p := do(t, c, "GET", srv.URL+"/ui/certs", nil, nil); p.status != http.StatusOK || !strings.Contains(p.body, "dora") {
		t.Fatalf("certificates after single sign-on through serve: %d", p.status)
	}
	// serve logged the console's requests, without the callback's code.
	if log := srv.Log(); !strings.Contains(log, `"path":"/ui/oidc/callback"`) || strings.Contains(log, "code=") {
		t.Fatalf("serve log:\n%s", log)
	}
}
