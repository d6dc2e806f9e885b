package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// SSO signs admins in through the identity provider of sshca.yaml's oidc:
// section with the authorization code flow and PKCE (RFC 7636, S256), as a
// public client: the console sends the browser to the provider with a
// fresh state, nonce and code challenge, takes the code back at
// /ui/oidc/callback, exchanges it with the verifier, and has the service's
// own ID token verifier check the token (issuer, audience, signature,
// lifetime) before it compares the nonce. The groups of the token then
// meet service.console.admins.groups in the policy.
type SSO struct {
	Issuer, ClientID string
	// RedirectURL is PublicURL/ui/oidc/callback; the provider must allow it.
	RedirectURL string
	// Client talks to the provider (nil: http.DefaultClient).
	Client *http.Client
	// Verify checks an ID token and returns who it names.
	Verify func(ctx context.Context, rawIDToken string) (user string, groups []string, err error)

	mu        sync.Mutex
	endpoints *oauth2.Endpoint
	pending   map[[32]byte]ssoPending // by SHA-256 of the state
}

// ssoPending is a sign-in on its way through the provider.
type ssoPending struct {
	verifier, nonce string
	started         time.Time
}

// Bounds of pending sign-ins.
const (
	ssoPendingTTL = 10 * time.Minute
	maxPending    = 10_000
)

// stateCookie binds a pending sign-in to the browser that started it. It
// is SameSite=Lax: the provider's redirect back is a cross-site top-level
// navigation, on which a Strict cookie would not be sent.
const stateCookie = "__Host-sshca-sso"

func (o *SSO) client() *http.Client {
	if o.Client != nil {
		return o.Client
	}
	return http.DefaultClient
}

// endpoint discovers the provider's endpoints once it is reachable.
func (o *SSO) endpoint(ctx context.Context) (oauth2.Endpoint, error) {
	o.mu.Lock()
	ep := o.endpoints
	o.mu.Unlock()
	if ep != nil {
		return *ep, nil
	}
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, o.client()), o.Issuer)
	if err != nil {
		return oauth2.Endpoint{}, err
	}
	e := p.Endpoint()
	if !strings.HasPrefix(e.AuthURL, "https://") && !strings.HasPrefix(o.Issuer, "http://127.0.0.1") {
		return oauth2.Endpoint{}, fmt.Errorf("authorization endpoint %q is not https", e.AuthURL)
	}
	e.AuthStyle = oauth2.AuthStyleInParams
	o.mu.Lock()
	o.endpoints = &e
	o.mu.Unlock()
	return e, nil
}

func (o *SSO) config(ep oauth2.Endpoint) *oauth2.Config {
	return &oauth2.Config{ClientID: o.ClientID, Endpoint: ep, RedirectURL: o.RedirectURL, Scopes: []string{gooidc.ScopeOpenID, "profile", "email", "groups"}}
}

// ssoStart sends the browser to the provider.
func (c *Console) ssoStart(w http.ResponseWriter, r *http.Request) {
	o := c.sso
	ep, err := o.endpoint(r.Context())
	if err != nil {
		c.fail(w, r, nil, &pageError{status: http.StatusServiceUnavailable, msg: "The identity provider cannot be reached; try again, or sign in with a login link.", err: err})
		return
	}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	now := c.now()
	o.mu.Lock()
	if o.pending == nil {
		o.pending = map[[32]byte]ssoPending{}
	}
	for k, p := range o.pending {
		if now.Sub(p.started) > ssoPendingTTL {
			delete(o.pending, k)
		}
	}
	if len(o.pending) >= maxPending {
		o.mu.Unlock()
		c.fail(w, r, nil, &pageError{status: http.StatusServiceUnavailable, msg: "Too many sign-ins in progress; try again in a few minutes."})
		return
	}
	o.pending[sha256.Sum256([]byte(state))] = ssoPending{verifier: verifier, nonce: nonce, started: now}
	o.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: state, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(ssoPendingTTL / time.Second)})
	http.Redirect(w, r, o.config(ep).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce)), http.StatusSeeOther)
}

// ssoCallback finishes a sign-in: the state must be the one this browser
// started (its cookie) and still pending (used once), the code must
// exchange with its verifier, and the ID token must verify and carry the
// nonce.
func (c *Console) ssoCallback(w http.ResponseWriter, r *http.Request) {
	o := c.sso
	q := r.URL.Query()
	refuse := func(why string, err error) {
		c.audit(r.Context(), nil, "denied", "console sign-in refused: single sign-on: "+why, nil)
		c.fail(w, r, nil, &pageError{status: http.StatusForbidden, msg: "Sign-in refused: " + why + ".", err: err})
	}
	state := q.Get("state")
	ck, err := r.Cookie(stateCookie)
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if err != nil || state == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(state)) != 1 {
		refuse("this sign-in was not started in this browser", err)
		return
	}
	key := sha256.Sum256([]byte(state))
	o.mu.Lock()
	p, ok := o.pending[key]
	delete(o.pending, key)
	o.mu.Unlock()
	if !ok || c.now().Sub(p.started) > ssoPendingTTL {
		refuse("this sign-in expired or was already used", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		refuse("the identity provider said "+oneLine(e), nil)
		return
	}
	ep, err := o.endpoint(r.Context())
	if err != nil {
		refuse("the identity provider cannot be reached", err)
		return
	}
	tok, err := o.config(ep).Exchange(gooidc.ClientContext(r.Context(), o.client()), q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		refuse("the identity provider did not accept the code", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		refuse("the identity provider sent no ID token", nil)
		return
	}
	user, groups, err := o.Verify(r.Context(), raw)
	if err != nil {
		refuse("the ID token does not verify", err)
		return
	}
	if n, err := tokenNonce(raw); err != nil || subtle.ConstantTimeCompare([]byte(n), []byte(p.nonce)) != 1 {
		refuse("the ID token is not for this sign-in (nonce)", err)
		return
	}
	s := c.sessions.start(w, user, groups, c.now())
	c.audit(r.Context(), s, "ok", "console sign-in with single sign-on", map[string]string{"groups": strings.Join(groups, ",")})
	// A page, not a redirect: the session cookie is SameSite=Strict and a
	// redirect would continue the provider's cross-site navigation, on
	// which the browser does not send it.
	c.render(w, s, http.StatusOK, "signedin", "Signed in", map[string]any{})
}

// tokenNonce reads the nonce claim of an ID token that has verified.
func tokenNonce(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		return "", err
	}
	return claims.Nonce, nil
}
