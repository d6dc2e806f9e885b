package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// Authentication only: this file turns credentials into a policy.Caller.
// Whether that caller may do anything is decided in package policy.

func unauthorized(msg string, err error) error {
	return &httpError{status: http.StatusUnauthorized, code: "unauthorized", msg: msg, err: err}
}

// authenticate identifies the caller from the Authorization header: an API
// token (sshca_...) or an OIDC ID token.
func (s *Server) authenticate(r *http.Request) (policy.Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return policy.Caller{}, unauthorized("missing Authorization: Bearer credential", nil)
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return policy.Caller{}, unauthorized("Authorization must be a Bearer credential", nil)
	}
	if len(cred) > maxTokenBytes {
		return policy.Caller{}, unauthorized("credential too long", nil)
	}
	if strings.HasPrefix(cred, ca.TokenPrefix) {
		return s.authToken(r.Context(), cred)
	}
	if s.o.OIDC == nil {
		return policy.Caller{}, unauthorized("invalid credential (SSO is not configured on this service)", nil)
	}
	id, err := s.o.OIDC.Verify(r.Context(), cred)
	if errors.Is(err, ErrOIDCUnavailable) {
		return policy.Caller{}, oidcUnavailable(err)
	}
	if err != nil {
		return policy.Caller{}, unauthorized("invalid ID token", err)
	}
	if err := policy.ValidPrincipal(id.User); err != nil {
		// The identity names certificates and audit entries; refuse odd ones.
		return policy.Caller{}, unauthorized("ID token identity is not usable", err)
	}
	// The lineage's session (max_session) counts from this request.
	return policy.Caller{Kind: policy.CallerPerson, Identity: policy.Identity{User: id.User, Groups: id.Groups}, MFA: id.MFA, AuthTime: s.now()}, nil
}

// authToken checks an API token's secret and returns its caller, with the
// token as the store has it (role tokens from a short cache: the recording
// transaction checks them again). A token that policy says is no longer
// usable (revoked, expired, spent) is not a credential.
func (s *Server) authToken(ctx context.Context, cred string) (policy.Caller, error) {
	id, secret, err := ca.SplitToken(cred)
	if err != nil {
		return policy.Caller{}, unauthorized("malformed API token", nil)
	}
	t, err := s.tokens.get(ctx, s.o.Store, id)
	if errors.Is(err, store.ErrNotFound) {
		return policy.Caller{}, unauthorized("unknown API token", nil)
	}
	if err != nil {
		return policy.Caller{}, err
	}
	if !ca.TokenSecretMatches(t, secret) {
		return policy.Caller{}, unauthorized("invalid API token", nil)
	}
	c := policy.TokenCaller(ca.PolicyToken(t), s.now())
	if err := policy.TokenUsable(c.Token, s.now()); err != nil {
		return policy.Caller{}, unauthorized(strings.TrimPrefix(err.Error(), "policy: "), nil)
	}
	return c, nil
}

// sourceIP is the address a request came from, for per-source limits.
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// admitAnonymous rate-limits, per source address, work done for requests
// that bring no valid credential (failed authentication, renewal
// challenges), before anything is written for them.
func (s *Server) admitAnonymous(r *http.Request) error {
	if s.anon.allow(sourceIP(r)) {
		return nil
	}
	s.metrics.denied("", "rate-limited")
	return &httpError{status: http.StatusTooManyRequests, code: "rate-limited", msg: "too many requests without a valid credential from this address; slow down"}
}

// unauthenticated records a request refused before its caller was known —
// rate-limited per source address first, so that no credential at all
// cannot grow the audit log without bound.
func (s *Server) unauthenticated(r *http.Request, action string, err error) error {
	if lerr := s.admitAnonymous(r); lerr != nil {
		return lerr
	}
	if errors.Is(err, ErrOIDCUnavailable) {
		// Nothing was decided about the caller: not a refusal to audit.
		return err
	}
	if action == audit.ActionDeny {
		return s.denyRequest(r, policy.Caller{}, "", ruleOf(err), err)
	}
	return s.refuse(r, "unauthenticated", action, err)
}

func (s *Server) handleTOTPEnroll(w http.ResponseWriter, r *http.Request) error {
	c, err := s.authenticate(r)
	if err != nil {
		return s.unauthenticated(r, audit.ActionAdmin, err)
	}
	if !s.limiter.allow(c.Actor()) {
		return s.refuse(r, c.Actor(), audit.ActionAdmin, &httpError{status: http.StatusTooManyRequests, code: "rate-limited", msg: "too many requests; slow down"})
	}
	var req struct {
		Invite string `json:"invite,omitempty"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &req); err != nil {
			return s.refuse(r, c.Actor(), audit.ActionAdmin, err)
		}
	}
	secret, err := s.o.Authority.EnrollTOTP(r.Context(), s.o.Store, c, req.Invite, map[string]string{"request_id": RequestID(r.Context())})
	if errors.Is(err, ca.ErrAlreadyEnrolled) {
		return &httpError{status: http.StatusConflict, code: "already-enrolled", msg: "TOTP is already enrolled; an admin must reset it"}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		URI string `json:"uri"`
	}{totpURI(secret, c.User)})
	return nil
}

// tokenCacheTTL is how long a role token is served from memory. Role tokens
// only obtain user certificates, and the transaction recording a certificate
// checks the token again (store.BatchItem.TokenID), so a revocation takes
// effect at once for issuance; the cache only spares a read per request.
const tokenCacheTTL = 5 * time.Second

// maxCachedTokens bounds the cache (only tokens that exist are cached).
const maxCachedTokens = 10000

type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken
}

type cachedToken struct {
	t      *store.Token
	loaded time.Time
}

// get returns token id, from cache for role tokens.
func (c *tokenCache) get(ctx context.Context, st store.ServiceStore, id string) (*store.Token, error) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && time.Since(e.loaded) < tokenCacheTTL {
		return e.t, nil
	}
	t, err := st.GetToken(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Kind == store.TokenRole {
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxCachedTokens {
			c.m = map[string]cachedToken{}
		}
		c.m[id] = cachedToken{t: t, loaded: time.Now()}
		c.mu.Unlock()
	}
	return t, nil
}
