package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"
)

// The authorization code grant with PKCE (RFC 6749 section 4.1, RFC 7636):
// /authorize signs in whoever SetLogin named, without a page, and
// redirects back with a one-time code; the token endpoint exchanges it,
// once, for an ID token, given the verifier of the S256 challenge.

// authCode is one issued authorization code.
type authCode struct {
	clientID, redirectURI, challenge, nonce string
	claims                                  map[string]any
	expires                                 time.Time
}

// SetLogin makes /authorize sign in a person with these ID token claims
// (nil: it answers access_denied, as when the person refuses).
func (i *Issuer) SetLogin(claims map[string]any) {
	i.mu.Lock()
	i.login = claims
	i.mu.Unlock()
}

func (i *Issuer) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || q.Get("client_id") != ClientID {
		http.Error(w, "oidctest: bad client_id or redirect_uri", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	i.mu.Lock()
	claims := i.login
	i.mu.Unlock()
	switch {
	case q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "":
		back.Set("error", "invalid_request")
	case claims == nil:
		back.Set("error", "access_denied")
	default:
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		code := base64.RawURLEncoding.EncodeToString(b)
		i.mu.Lock()
		if i.codes == nil {
			i.codes = map[string]*authCode{}
		}
		i.codes[code] = &authCode{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
			nonce: q.Get("nonce"), claims: claims, expires: time.Now().Add(time.Minute)}
		i.mu.Unlock()
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// handleCodeToken exchanges a code: once, for the same client and
// redirect URI, with the verifier whose S256 hash is the challenge.
func (i *Issuer) handleCodeToken(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	c, ok := i.codes[r.PostForm.Get("code")]
	delete(i.codes, r.PostForm.Get("code"))
	i.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	switch {
	case !ok || time.Now().After(c.expires) || r.PostForm.Get("redirect_uri") != c.redirectURI:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	case r.PostForm.Get("client_id") != c.clientID:
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	case subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	claims := map[string]any{}
	for k, v := range c.claims {
		claims[k] = v
	}
	if c.nonce != "" {
		claims["nonce"] = c.nonce
	}
	idToken, err := i.mint(claims, "RS256")
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": "at-" + r.PostForm.Get("code"), "token_type": "Bearer",
		"expires_in": int(i.Lifetime / time.Second), "id_token": idToken})
}

// Certificate returns the TLS certificate of an issuer made by New, for a
// client (a test's browser) that must trust it beside other servers.
func (i *Issuer) Certificate() *x509.Certificate { return i.srv.Certificate() }
