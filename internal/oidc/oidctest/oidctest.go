// Package oidctest runs an OpenID Connect issuer inside a test: real discovery
// and JWKS documents over HTTP(S) on 127.0.0.1, real RS256 and ES256 JWTs, key
// rotation, and an RFC 8628 device authorization grant whose approvals the
// test controls.
//
// It is for tests only: keys are generated per issuer and kept in memory, user
// codes are approved by calling methods rather than through a login page, and
// nothing is validated beyond what the tests need. It never imports sshca's
// own packages, so any package's tests may use it.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ClientID is the client the issuer knows: the default audience of minted
// tokens and the only client_id its device and token endpoints accept.
const ClientID = "sshca-test"

// DefaultSubject is the sub claim of minted tokens unless the claims set one.
// sub is the verifier's default user claim, so tests that mean a person set
// "sub" to the user name (or configure another user claim explicitly).
const DefaultSubject = "test-subject"

// DeviceGrantType is the grant_type of the RFC 8628 device access token request.
const DeviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// Issuer is a running test OIDC issuer. Its methods are safe for concurrent
// use; Mint, MintWithKey, Rotate and New report failures through the test
// and so belong on the test's goroutine.
type Issuer struct {
	t   testing.TB
	srv *httptest.Server
	url string // fixed at creation, also while the issuer is down
	mux *http.ServeMux

	// Lifetime is how long minted tokens are valid when claims carry no exp
	// (default 5 minutes; verifiers refuse more than a day). Set it before
	// use.
	Lifetime time.Duration

	mu       sync.Mutex
	gen      int
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	devices  map[string]*device // by device_code
	byUser   map[string]*device // by user_code
	jwksHits int
	codes    map[string]*authCode // authorization codes (authcode.go), by code
	login    map[string]any       // claims of whoever signs in at /authorize; nil: denied
}

type deviceState int

const (
	statePending deviceState = iota
	stateApproved
	stateDenied
	stateExpired
)

type device struct {
	deviceCode, userCode string
	state                deviceState
	claims               map[string]any
	polls                int
}

// New starts an issuer serving HTTPS on 127.0.0.1 with httptest's
// self-signed certificate; use Client to talk to it. The server is closed
// when the test ends.
func New(t testing.TB) *Issuer {
	t.Helper()
	return start(t, true)
}

// NewHTTP starts an issuer serving plain HTTP on 127.0.0.1, for clients
// (such as a built binary) that cannot be handed a custom *http.Client.
func NewHTTP(t testing.TB) *Issuer {
	t.Helper()
	return start(t, false)
}

// NewHTTPDown is NewHTTP with the issuer not listening yet: its URL is
// fixed, and connections to it are refused until Up is called. It stands
// for an identity provider that is unreachable when a service starts.
func NewHTTPDown(t testing.TB) *Issuer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	iss := newIssuer(t)
	iss.url = "http://" + addr
	return iss
}

// Up starts serving an issuer made by NewHTTPDown at its URL.
func (i *Issuer) Up() {
	i.t.Helper()
	if i.srv != nil {
		i.t.Fatal("oidctest: issuer is already up")
	}
	l, err := net.Listen("tcp", strings.TrimPrefix(i.url, "http://"))
	if err != nil {
		i.t.Fatalf("oidctest: listen again on %s: %v", i.url, err)
	}
	i.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: i.mux}}
	i.srv.Start()
	i.t.Cleanup(i.srv.Close)
}

func start(t testing.TB, tls bool) *Issuer {
	t.Helper()
	iss := newIssuer(t)
	if tls {
		iss.srv = httptest.NewTLSServer(iss.mux)
	} else {
		iss.srv = httptest.NewServer(iss.mux)
	}
	iss.url = iss.srv.URL
	t.Cleanup(iss.srv.Close)
	return iss
}

func newIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{
		t:        t,
		Lifetime: 5 * time.Minute,
		devices:  map[string]*device{},
		byUser:   map[string]*device{},
	}
	iss.Rotate()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", iss.handleDiscovery)
	mux.HandleFunc("GET /jwks", iss.handleJWKS)
	mux.HandleFunc("POST /device/code", iss.handleDeviceCode)
	mux.HandleFunc("POST /token", iss.handleToken)
	mux.HandleFunc("GET /authorize", iss.handleAuthorize)
	mux.HandleFunc("GET /device", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "oidctest: approve the user code from the test")
	})
	iss.mux = mux
	return iss
}

// URL returns the issuer identifier, e.g. https://127.0.0.1:41234 (no
// trailing slash); it is the iss of minted tokens.
func (i *Issuer) URL() string { return i.url }

// Client returns an HTTP client that trusts the issuer's certificate.
func (i *Issuer) Client() *http.Client { return i.srv.Client() }

// KeyIDs returns the key IDs currently published, RSA first.
func (i *Issuer) KeyIDs() (rsaKID, ecKID string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.kids()
}

func (i *Issuer) kids() (string, string) {
	return fmt.Sprintf("rs256-%d", i.gen), fmt.Sprintf("es256-%d", i.gen)
}

// JWKSFetches returns how many times the JWKS document has been served.
func (i *Issuer) JWKSFetches() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.jwksHits
}

// Rotate replaces both signing keys with new ones under new key IDs; the old
// keys disappear from the JWKS at once.
func (i *Issuer) Rotate() {
	i.t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		i.t.Fatalf("oidctest: generate RSA key: %v", err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		i.t.Fatalf("oidctest: generate EC key: %v", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.gen++
	i.rsaKey, i.ecKey = rk, ek
}

// Mint returns a compact JWT over claims signed with the current key for alg
// ("RS256" or "ES256"). Missing claims get defaults: iss = URL(), aud =
// ClientID, sub = DefaultSubject, iat = now, exp = now + Lifetime. A claim
// given as nil is left out (to test missing claims); time.Time values become
// NumericDate seconds.
func (i *Issuer) Mint(claims map[string]any, alg string) string {
	i.t.Helper()
	tok, err := i.mint(claims, alg)
	if err != nil {
		i.t.Fatalf("oidctest: %v", err)
	}
	return tok
}

// MintWithKey is Mint with a caller-chosen key and key ID, e.g. a key the
// issuer never published (an unknown kid) or a published kid with a foreign
// key (a bad signature). alg must suit key: RS256/RS384/RS512/PS256 for RSA,
// ES256/ES384/ES512 for ECDSA, EdDSA for Ed25519.
func (i *Issuer) MintWithKey(claims map[string]any, alg string, key crypto.Signer, kid string) string {
	i.t.Helper()
	tok, err := i.sign(i.withDefaults(claims), jose.SignatureAlgorithm(alg), key, kid)
	if err != nil {
		i.t.Fatalf("oidctest: %v", err)
	}
	return tok
}

func (i *Issuer) mint(claims map[string]any, alg string) (string, error) {
	i.mu.Lock()
	rsaKID, ecKID := i.kids()
	rk, ek := i.rsaKey, i.ecKey
	i.mu.Unlock()
	switch alg {
	case "RS256":
		return i.sign(i.withDefaults(claims), jose.RS256, rk, rsaKID)
	case "ES256":
		return i.sign(i.withDefaults(claims), jose.ES256, ek, ecKID)
	default:
		return "", fmt.Errorf("mint: unsupported alg %q (want RS256 or ES256)", alg)
	}
}

func (i *Issuer) withDefaults(claims map[string]any) map[string]any {
	now := time.Now()
	out := map[string]any{
		"iss": i.URL(),
		"aud": ClientID,
		"sub": DefaultSubject,
		"iat": now.Unix(),
		"exp": now.Add(i.Lifetime).Unix(),
	}
	for k, v := range claims {
		switch v := v.(type) {
		case nil:
			delete(out, k)
		case time.Time:
			out[k] = v.Unix()
		default:
			out[k] = v
		}
	}
	return out
}

func (i *Issuer) sign(claims map[string]any, alg jose.SignatureAlgorithm, key crypto.Signer, kid string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("mint: encode claims: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", fmt.Errorf("mint: signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("mint: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// ApproveDevice lets the device code behind userCode obtain tokens: the next
// poll of the token endpoint returns an RS256 ID token minted from claims
// (with Mint's defaults). An unknown user code fails the test.
func (i *Issuer) ApproveDevice(userCode string, claims map[string]any) {
	i.setState(userCode, stateApproved, maps.Clone(claims))
}

// DenyDevice makes the next poll for userCode end with access_denied.
func (i *Issuer) DenyDevice(userCode string) { i.setState(userCode, stateDenied, nil) }

// ExpireDevice makes the next poll for userCode end with expired_token.
func (i *Issuer) ExpireDevice(userCode string) { i.setState(userCode, stateExpired, nil) }

func (i *Issuer) setState(userCode string, s deviceState, claims map[string]any) {
	i.mu.Lock()
	defer i.mu.Unlock()
	d, ok := i.byUser[userCode]
	if !ok {
		i.t.Errorf("oidctest: unknown user code %q", userCode)
		return
	}
	d.state, d.claims = s, claims
}

// PendingUserCodes returns the user codes still waiting for a decision, sorted.
func (i *Issuer) PendingUserCodes() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	var out []string
	for code, d := range i.byUser {
		if d.state == statePending {
			out = append(out, code)
		}
	}
	slices.Sort(out)
	return out
}

// Polls returns how many times the token endpoint was asked for the device
// code behind userCode.
func (i *Issuer) Polls(userCode string) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if d, ok := i.byUser[userCode]; ok {
		return d.polls
	}
	return 0
}

func (i *Issuer) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	u := i.URL()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                u,
		"authorization_endpoint":                u + "/authorize",
		"token_endpoint":                        u + "/token",
		"device_authorization_endpoint":         u + "/device/code",
		"jwks_uri":                              u + "/jwks",
		"response_types_supported":              []string{"code", "id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"grant_types_supported":                 []string{"authorization_code", DeviceGrantType},
		"scopes_supported":                      []string{"openid", "profile", "email", "groups"},
		"token_endpoint_auth_methods_supported": []string{"none"},
	})
}

func (i *Issuer) handleJWKS(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	i.jwksHits++
	rsaKID, ecKID := i.kids()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: i.rsaKey.Public(), KeyID: rsaKID, Algorithm: "RS256", Use: "sig"},
		{Key: i.ecKey.Public(), KeyID: ecKID, Algorithm: "ES256", Use: "sig"},
	}}
	i.mu.Unlock()
	writeJSON(w, http.StatusOK, set)
}

// userCodeAlphabet is RFC 8628 section 6.1's example: consonants only, so a
// code spells no word and survives case-insensitive entry.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func (i *Issuer) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Get("client_id") != ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	buf := make([]byte, 40)
	if _, err := rand.Read(buf); err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error")
		return
	}
	dc := base64.RawURLEncoding.EncodeToString(buf[:32])
	uc := make([]byte, 0, 9)
	for k, b := range buf[32:] {
		if k == 4 {
			uc = append(uc, '-')
		}
		uc = append(uc, userCodeAlphabet[int(b)%len(userCodeAlphabet)])
	}
	d := &device{deviceCode: dc, userCode: string(uc)}
	i.mu.Lock()
	i.devices[dc] = d
	i.byUser[d.userCode] = d
	i.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               dc,
		"user_code":                 d.userCode,
		"verification_uri":          i.URL() + "/device",
		"verification_uri_complete": i.URL() + "/device?user_code=" + d.userCode,
		"expires_in":                600,
		"interval":                  1, // the smallest RFC 8628 allows, to keep tests fast
	})
}

func (i *Issuer) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Get("grant_type") == "authorization_code" {
		i.handleCodeToken(w, r)
		return
	}
	if r.PostForm.Get("grant_type") != DeviceGrantType {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	if r.PostForm.Get("client_id") != ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	i.mu.Lock()
	d, ok := i.devices[r.PostForm.Get("device_code")]
	if !ok {
		i.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	d.polls++
	state, claims := d.state, d.claims
	if state != statePending {
		// A decided device code is used up (RFC 8628 section 3.5).
		delete(i.devices, d.deviceCode)
	}
	i.mu.Unlock()

	switch state {
	case statePending:
		oauthError(w, http.StatusBadRequest, "authorization_pending")
	case stateDenied:
		oauthError(w, http.StatusBadRequest, "access_denied")
	case stateExpired:
		oauthError(w, http.StatusBadRequest, "expired_token")
	case stateApproved:
		idToken, err := i.mint(claims, "RS256")
		if err != nil {
			oauthError(w, http.StatusInternalServerError, "server_error")
			return
		}
		at := make([]byte, 24)
		_, _ = rand.Read(at)
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": base64.RawURLEncoding.EncodeToString(at),
			"token_type":   "Bearer",
			"expires_in":   int(i.Lifetime / time.Second),
			"id_token":     idToken,
		})
	}
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
