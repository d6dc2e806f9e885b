// Package oidc authenticates people for the certificate service with OpenID
// Connect: it verifies ID tokens from one configured issuer (discovery, JWKS
// with key rotation, signature, iss, aud and azp, exp/nbf/iat and a bounded
// lifetime) and turns them into an Identity, and it obtains ID tokens on the user's side with the OAuth 2.0
// device authorization grant (RFC 8628), which works over SSH and on headless
// machines.
//
// It never decides what an identity may do: claim values are returned as the
// issuer sent them, however odd, and the policy layer validates them. It never
// checks a nonce, because the device grant has no authorization request to
// carry one; audience and expiry bind a token to this client instead. It never
// logs, and it never prints: Login hands the code to show to a callback.
package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
)

// Errors returned by Verify, wrapped with details; test with errors.Is.
var (
	ErrMalformed    = errors.New("oidc: malformed token")
	ErrUnknownKey   = errors.New("oidc: unknown key ID")
	ErrBadSignature = errors.New("oidc: bad signature")
	ErrIssuer       = errors.New("oidc: wrong issuer")
	ErrAudience     = errors.New("oidc: wrong audience")
	ErrExpired      = errors.New("oidc: token expired")
	ErrNotYetValid  = errors.New("oidc: token not yet valid")
	ErrLifetime     = errors.New("oidc: token lifetime too long")
	ErrUserClaim    = errors.New("oidc: missing or invalid user claim")
	ErrClaim        = errors.New("oidc: invalid claim")
)

// Leeway is the clock skew tolerated on exp and nbf.
const Leeway = 30 * time.Second

// MaxIssuedAtSkew is how far in the future a token's iat may be. An issuer
// whose clock runs ahead by more than this is misconfigured; a token stamped
// later than that was made for later use (or by someone who can sign), and
// accepting it would stretch its real lifetime beyond what exp - iat shows.
const MaxIssuedAtSkew = time.Minute

// MaxLifetime bounds exp - iat. ID tokens are meant to live minutes (most
// issuers: 5 minutes to 1 hour); one that lives longer than a day is either a
// misconfigured issuer or a forged or replayed credential, and a captured one
// would open the service for that long. Tokens without iat are refused
// (OpenID Connect Core 1.0 section 2 makes it required), so the bound always
// applies.
const MaxLifetime = 24 * time.Hour

// DefaultUserClaim is the claim that names the identity when Config.UserClaim
// is empty. OpenID Connect Core 1.0 section 5.7 says that only iss and sub
// together identify a user stably: sub is never reassigned and users cannot
// edit it, whereas preferred_username, name and (at some issuers) email can
// be changed by the user, so another person could take over a name that a
// role's allow list grants.
const DefaultUserClaim = "sub"

// DefaultRefreshInterval is the least time between two JWKS fetches that
// tokens with unknown key IDs may trigger.
const DefaultRefreshInterval = 10 * time.Second

// fetchTimeout bounds discovery and JWKS requests whatever the caller's context.
const fetchTimeout = 15 * time.Second

// Config configures a Verifier.
type Config struct {
	// Issuer is the issuer identifier, exactly as the issuer's discovery
	// document and the tokens' iss spell it. It must be an https URL; http is
	// accepted only for a loopback host (tests).
	Issuer string
	// ClientID is the OAuth client that requests the tokens (sshca login).
	// A token's azp, when present, must equal it (or Audience when ClientID
	// is empty); a token with several audiences must carry an azp.
	ClientID string
	// Audience is the aud every ID token must contain; default ClientID.
	Audience string
	// UserClaim names the top-level claim that holds the identity; default
	// DefaultUserClaim ("sub"), the one claim users can never change. It must
	// be a non-empty string in every token. With "email", a token is accepted
	// only when its email_verified claim is true (a boolean, or the string
	// "true" some issuers send): an unverified address is anyone's to type.
	// Any other claim (e.g. "preferred_username") is taken as the issuer
	// sends it; choose one only if the issuer does not let users edit it.
	UserClaim string
	// GroupsClaim names the top-level claim that lists the groups; default
	// "groups". Absent or null means no groups; otherwise it must be an array
	// of strings.
	GroupsClaim string
	// HTTPClient is used for discovery and JWKS; default a client with a
	// timeout.
	HTTPClient *http.Client
	// Now is the clock for exp, nbf and the JWKS refresh interval; default
	// time.Now.
	Now func() time.Time
	// RefreshInterval is the least time between JWKS fetches triggered by an
	// unknown key ID or a failed signature, so that forged tokens cannot make
	// the service hammer the issuer; default DefaultRefreshInterval.
	RefreshInterval time.Duration
}

// Identity is what a verified ID token says about its holder. Strings are the
// issuer's values, unvalidated.
type Identity struct {
	// Subject is the sub claim: the issuer's stable ID for the user.
	Subject string
	// User is the value of the configured user claim.
	User string
	// Groups is the configured groups claim, in the token's order; nil when
	// absent.
	Groups []string
	// AMR lists the authentication methods (RFC 8176 values); nil when absent.
	AMR []string
	// Expiry is the exp claim.
	Expiry time.Time
	// IssuedAt is the iat claim (zero when absent).
	IssuedAt time.Time
}

// Verifier checks ID tokens from one issuer. It is safe for concurrent use.
type Verifier struct {
	cfg  Config
	keys *keySet
	v    *gooidc.IDTokenVerifier
}

// NewVerifier runs discovery against c.Issuer, fetches the issuer's JWKS and
// returns a Verifier. Errors name the step that failed.
func NewVerifier(ctx context.Context, c Config) (*Verifier, error) {
	c, err := c.normalize()
	if err != nil {
		return nil, err
	}
	p, err := discover(ctx, c.HTTPClient, c.Issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("oidc: discovery for %q: %w", c.Issuer, err)
	}
	if err := checkURL("jwks_uri", meta.JWKSURI); err != nil {
		return nil, err
	}
	var algs []string
	for _, a := range meta.Algs {
		if slices.Contains(supportedAlgs, a) {
			algs = append(algs, a)
		}
	}
	if len(meta.Algs) > 0 && len(algs) == 0 {
		return nil, fmt.Errorf("oidc: issuer %q supports none of the signing algorithms %v", c.Issuer, supportedAlgs)
	}
	// With no algorithms advertised, go-oidc falls back to RS256 alone, the
	// one OIDC Core makes mandatory.
	ks := &keySet{url: meta.JWKSURI, client: c.HTTPClient, now: c.Now, interval: c.RefreshInterval}
	if err := ks.refresh(ctx, true); err != nil {
		return nil, err
	}
	return &Verifier{
		cfg:  c,
		keys: ks,
		// go-oidc checks the algorithm against algs and the signature (through
		// ks) and decodes the standard claims; iss, aud and time are checked
		// below so that each failure has its own error.
		v: gooidc.NewVerifier(c.Issuer, ks, &gooidc.Config{
			SupportedSigningAlgs: algs,
			SkipClientIDCheck:    true,
			SkipExpiryCheck:      true,
			SkipIssuerCheck:      true,
		}),
	}, nil
}

// normalize fills in c's defaults and checks what needs no network.
func (c Config) normalize() (Config, error) {
	if c.ClientID == "" && c.Audience == "" {
		return c, errors.New("oidc: client ID or audience required")
	}
	if c.Audience == "" {
		c.Audience = c.ClientID
	}
	if c.UserClaim == "" {
		c.UserClaim = DefaultUserClaim
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = "groups"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if err := checkURL("issuer", c.Issuer); err != nil {
		return c, err
	}
	return c, nil
}

// now is c's clock.
func (c Config) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

// discover fetches and checks the discovery document; go-oidc requires its
// issuer to equal ours exactly.
func discover(ctx context.Context, client *http.Client, issuer string) (*gooidc.Provider, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, client), issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery for %q: %w", issuer, err)
	}
	return p, nil
}

// sigErrKey carries a *error through go-oidc's Verify into keySet, which
// stores its typed error there: go-oidc flattens KeySet errors to text.
type sigErrKey struct{}

// Verify checks rawIDToken and returns the identity it carries. It checks, in
// order: the JWS form and algorithm (one the issuer advertises and go-oidc
// supports: RS/PS/ES 256-512, EdDSA; never "none" or HMAC), the signature
// against the issuer's JWKS (fetched again, at most once per
// RefreshInterval when the key ID is unknown or the signature fails, so a
// rotation is picked up), iss, aud, azp (OpenID Connect Core 1.0 section
// 3.1.3.7: required with several audiences, and when present it must name our
// client), exp and nbf (with Leeway), a non-empty sub, iat (present, at most
// MaxIssuedAtSkew ahead, and exp - iat at most MaxLifetime), the user claim,
// and the shapes of the groups and amr claims.
func (v *Verifier) Verify(ctx context.Context, rawIDToken string) (*Identity, error) {
	var sigErr error
	tok, err := v.v.Verify(context.WithValue(ctx, sigErrKey{}, &sigErr), rawIDToken)
	if err != nil {
		if sigErr != nil {
			return nil, sigErr
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if tok.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("%w: got %s, want %q", ErrIssuer, clip(tok.Issuer), v.cfg.Issuer)
	}
	if !slices.Contains(tok.Audience, v.cfg.Audience) {
		return nil, fmt.Errorf("%w: got %s, want %q", ErrAudience, clipList(tok.Audience), v.cfg.Audience)
	}
	now := v.cfg.Now()
	if tok.Expiry.IsZero() {
		return nil, fmt.Errorf("%w: no exp claim", ErrMalformed)
	}
	if !now.Before(tok.Expiry.Add(Leeway)) {
		return nil, fmt.Errorf("%w: at %s", ErrExpired, tok.Expiry.UTC().Format(time.RFC3339))
	}
	if tok.Subject == "" {
		return nil, fmt.Errorf("%w: empty sub", ErrMalformed)
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	azp := v.cfg.ClientID
	if azp == "" {
		azp = v.cfg.Audience
	}
	if err := checkAuthorizedParty(claims, tok.Audience, azp); err != nil {
		return nil, err
	}
	id, err := identityFromClaims(claims, v.cfg.UserClaim, v.cfg.GroupsClaim, now)
	if err != nil {
		return nil, err
	}
	id.Subject = tok.Subject
	id.Expiry = tok.Expiry
	id.IssuedAt = tok.IssuedAt
	return id, nil
}

// checkAuthorizedParty applies OpenID Connect Core 1.0 section 3.1.3.7
// items 4 and 5: a token for several audiences must say which of them it was
// issued to (azp), and an azp must be our client. Without this, a token that
// another client obtained, and that merely lists us among its audiences,
// would sign in here.
func checkAuthorizedParty(claims map[string]json.RawMessage, aud []string, clientID string) error {
	raw, ok := claims["azp"]
	if !ok || isNull(raw) {
		if len(aud) > 1 {
			return fmt.Errorf("%w: %d audiences and no azp claim", ErrAudience, len(aud))
		}
		return nil
	}
	var azp string
	if err := json.Unmarshal(raw, &azp); err != nil {
		return fmt.Errorf("%w: azp is not a string", ErrMalformed)
	}
	if azp != clientID {
		return fmt.Errorf("%w: azp %s, want %q", ErrAudience, clip(azp), clientID)
	}
	return nil
}

// identityFromClaims checks nbf, iat and the lifetime, extracts the user,
// groups and amr claims and checks email_verified. It is separate from Verify
// so that it can be fuzzed without signing.
func identityFromClaims(claims map[string]json.RawMessage, userClaim, groupsClaim string, now time.Time) (*Identity, error) {
	// Times are compared as floats: a hostile value may not fit an int64.
	nbf, ok, err := numericDate(claims, "nbf")
	if err != nil {
		return nil, err
	}
	if ok && float64(now.Add(Leeway).Unix()) < nbf {
		return nil, fmt.Errorf("%w: nbf %.0f is after now (%d)", ErrNotYetValid, nbf, now.Unix())
	}
	iat, ok, err := numericDate(claims, "iat")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no iat claim", ErrMalformed)
	}
	if float64(now.Add(MaxIssuedAtSkew).Unix()) < iat {
		return nil, fmt.Errorf("%w: issued in the future: iat %.0f is after now (%d)", ErrNotYetValid, iat, now.Unix())
	}
	exp, ok, err := numericDate(claims, "exp")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no exp claim", ErrMalformed)
	}
	if exp < iat {
		return nil, fmt.Errorf("%w: exp %.0f is before iat %.0f", ErrMalformed, exp, iat)
	}
	if exp-iat > MaxLifetime.Seconds() {
		return nil, fmt.Errorf("%w: exp - iat is %.0fs, at most %.0fs allowed", ErrLifetime, exp-iat, MaxLifetime.Seconds())
	}
	raw, ok := claims[userClaim]
	if !ok || isNull(raw) {
		return nil, fmt.Errorf("%w: claim %q missing", ErrUserClaim, userClaim)
	}
	var user string
	if err := json.Unmarshal(raw, &user); err != nil {
		return nil, fmt.Errorf("%w: claim %q is not a string", ErrUserClaim, userClaim)
	}
	if user == "" {
		return nil, fmt.Errorf("%w: claim %q is empty", ErrUserClaim, userClaim)
	}
	if userClaim == "email" {
		// An issuer that lets users set an address without proving it would
		// let anyone claim someone else's. Only a token that says the address
		// was verified counts; an absent claim proves nothing. Some issuers
		// (Amazon Cognito) send the boolean as a string.
		raw := claims["email_verified"]
		if v := strings.TrimSpace(string(raw)); v != "true" && v != `"true"` {
			return nil, fmt.Errorf("%w: email %s is not verified (email_verified must be true)", ErrUserClaim, clip(user))
		}
	}
	groups, err := stringList(claims, groupsClaim)
	if err != nil {
		return nil, err
	}
	amr, err := stringList(claims, "amr")
	if err != nil {
		return nil, err
	}
	return &Identity{User: user, Groups: groups, AMR: amr}, nil
}

// numericDate decodes an optional NumericDate claim (RFC 7519 section 2): a
// JSON number of seconds. Absent or null reports ok false.
func numericDate(claims map[string]json.RawMessage, name string) (v float64, ok bool, err error) {
	raw, ok := claims[name]
	if !ok || isNull(raw) {
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, false, fmt.Errorf("%w: %s is not a number", ErrMalformed, name)
	}
	return v, true, nil
}

// stringList decodes an optional claim that must be an array of strings.
func stringList(claims map[string]json.RawMessage, name string) ([]string, error) {
	raw, ok := claims[name]
	if !ok || isNull(raw) {
		return nil, nil
	}
	// Decode through []any: json would turn a null element of a []string
	// into "" without complaint.
	var items []any
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%w: %q is not an array of strings", ErrClaim, name)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %q is not an array of strings", ErrClaim, name)
		}
		out = append(out, s)
	}
	return out, nil
}

func isNull(raw json.RawMessage) bool {
	return strings.TrimSpace(string(raw)) == "null"
}

// checkURL requires https, or http to a loopback host (tests), with no
// user info or fragment.
func checkURL(what, raw string) error {
	if raw == "" {
		return fmt.Errorf("oidc: %s URL missing", what)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("oidc: %s URL: %w", what, err)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" || (what == "issuer" && u.RawQuery != "") {
		return fmt.Errorf("oidc: %s URL %q: want https://host[/path]", what, raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return nil
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("oidc: %s URL %q: http is allowed only for localhost; use https", what, raw)
	default:
		return fmt.Errorf("oidc: %s URL %q: scheme must be https", what, raw)
	}
}

// clip quotes an untrusted value for an error message, cut to a sane length.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

func clipList(l []string) string {
	const max = 4
	parts := make([]string, 0, max+1)
	for k, s := range l {
		if k == max {
			parts = append(parts, fmt.Sprintf("... (%d in all)", len(l)))
			break
		}
		parts = append(parts, clip(s))
	}
	return "[" + strings.Join(parts, " ") + "]"
}
