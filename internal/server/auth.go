package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/totp"
)

// TokenPrefix starts every API token: sshca_<id>_<secret>.
const TokenPrefix = "sshca_"

// NewToken makes a token's secret string and the record to store.
func NewToken(name, kind string, roles, principals []string, createdBy string, now time.Time, ttl time.Duration) (string, store.Token, error) {
	var idb [8]byte
	var sec [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", store.Token{}, err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return "", store.Token{}, err
	}
	id := hex.EncodeToString(idb[:])
	secret := base64.RawURLEncoding.EncodeToString(sec[:])
	t := store.Token{ID: id, Name: name, Kind: kind, Roles: roles, Principals: principals, Hash: hashSecret(secret),
		CreatedBy: createdBy, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	return TokenPrefix + id + "_" + secret, t, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// caller is an authenticated requester.
type caller struct {
	kind     string // "token" or "oidc"
	actor    string // for the audit log: "token:ci-deploy", "oidc:alice"
	identity policy.Identity
	token    *store.Token
	mfa      bool
}

func unauthorized(msg string, err error) error {
	return &httpError{status: http.StatusUnauthorized, code: "unauthorized", msg: msg, err: err}
}

func forbidden(code, format string, a ...any) error {
	return &httpError{status: http.StatusForbidden, code: code, msg: fmt.Sprintf(format, a...)}
}

// authenticate identifies the caller from the Authorization header.
func (s *Server) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, unauthorized("missing Authorization: Bearer credential", nil)
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return nil, unauthorized("Authorization must be a Bearer credential", nil)
	}
	if len(cred) > maxTokenBytes {
		return nil, unauthorized("credential too long", nil)
	}
	if strings.HasPrefix(cred, TokenPrefix) {
		return s.authToken(r.Context(), cred)
	}
	if s.o.OIDC == nil {
		return nil, unauthorized("invalid credential (SSO is not configured on this service)", nil)
	}
	id, err := s.o.OIDC.Verify(r.Context(), cred)
	if err != nil {
		return nil, unauthorized("invalid ID token", err)
	}
	if err := policy.ValidPrincipal(id.User); err != nil {
		// The identity names certificates and audit entries; refuse odd ones.
		return nil, unauthorized("ID token identity is not usable", err)
	}
	return &caller{kind: "oidc", actor: "oidc:" + id.User, identity: policy.Identity{User: id.User, Groups: id.Groups}, mfa: id.MFA}, nil
}

func (s *Server) authToken(ctx context.Context, cred string) (*caller, error) {
	rest := strings.TrimPrefix(cred, TokenPrefix)
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 || secret == "" {
		return nil, unauthorized("malformed API token", nil)
	}
	t, err := s.tokens.get(ctx, s.o.Store, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, unauthorized("unknown API token", nil)
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(t.Hash)) != 1 {
		return nil, unauthorized("invalid API token", nil)
	}
	now := s.now()
	switch {
	case !t.RevokedAt.IsZero():
		return nil, unauthorized("API token "+t.Name+" was revoked", nil)
	case !now.Before(t.ExpiresAt):
		return nil, unauthorized("API token "+t.Name+" expired", nil)
	case t.Kind == store.TokenEnroll && !t.UsedAt.IsZero():
		return nil, unauthorized("enrollment token "+t.Name+" was already used", nil)
	}
	return &caller{kind: "token", actor: "token:" + t.Name, identity: policy.Identity{User: t.Name}, token: t}, nil
}

// authorizeRole checks that c may use role for a certificate of type t,
// including the second factor. totpCode may be empty.
func (s *Server) authorizeRole(ctx context.Context, c *caller, roleName string, t policy.CertType, totpCode string) error {
	role, ok := s.o.Config.Roles[roleName]
	if !ok || role == nil {
		return &policy.DenyError{Rule: policy.RuleUnknownRole, Msg: fmt.Sprintf("unknown role %q", roleName)}
	}
	switch c.kind {
	case "token":
		tk := c.token
		switch tk.Kind {
		case store.TokenRole, store.TokenEnroll:
			if !slices.Contains(tk.Roles, roleName) {
				return forbidden("role-not-allowed", "token %s may not use role %q", tk.Name, roleName)
			}
			if tk.Kind == store.TokenEnroll && t != policy.HostCert {
				return forbidden("role-not-allowed", "enrollment tokens only obtain host certificates")
			}
			// A host certificate lets its holder impersonate servers; only a
			// one-time enrollment token bound to host names may obtain one.
			if tk.Kind == store.TokenRole && t == policy.HostCert {
				return forbidden("role-not-allowed", "role tokens only obtain user certificates; host certificates need an enrollment token")
			}
		default:
			return forbidden("role-not-allowed", "%s tokens cannot request certificates", tk.Kind)
		}
		if role.RequireMFA {
			return forbidden("mfa-required", "role %q requires a second factor; API tokens cannot provide one", roleName)
		}
		return nil
	case "oidc":
		if !allowedBy(role.Allow, c.identity) {
			return forbidden("role-not-allowed", "%s may not use role %q", c.identity.User, roleName)
		}
		if role.RequireMFA && !c.mfa {
			if totpCode == "" {
				return forbidden("mfa-required", "role %q requires a second factor: sign in with MFA or give a TOTP code", roleName)
			}
			if err := s.checkTOTP(ctx, c.identity.User, totpCode); err != nil {
				return err
			}
		}
		return nil
	}
	return forbidden("role-not-allowed", "unknown caller")
}

func allowedBy(a *config.Allow, id policy.Identity) bool {
	if a == nil {
		return false
	}
	if slices.Contains(a.Users, id.User) {
		return true
	}
	for _, g := range id.Groups {
		if slices.Contains(a.Groups, g) {
			return true
		}
	}
	return false
}

func (s *Server) checkTOTP(ctx context.Context, user, code string) error {
	secret, last, err := s.o.Store.GetTOTP(ctx, user)
	if errors.Is(err, store.ErrNotFound) {
		return forbidden("mfa-required", "no TOTP enrolled for %s; enroll with POST /v1/totp/enroll", user)
	}
	if err != nil {
		return err
	}
	step, err := totp.Verify(secret, code, s.now(), last)
	if err != nil {
		return forbidden("mfa-failed", "TOTP code rejected")
	}
	if err := s.o.Store.AdvanceTOTP(ctx, user, step); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return forbidden("mfa-failed", "TOTP code already used")
		}
		return err
	}
	return nil
}

func (s *Server) handleTOTPEnroll(w http.ResponseWriter, r *http.Request) error {
	c, err := s.authenticate(r)
	if err != nil {
		return s.refuse(r, "unauthenticated", audit.ActionAdmin, err)
	}
	if c.kind != "oidc" {
		return s.refuse(r, c.actor, audit.ActionAdmin, forbidden("oidc-only", "TOTP enrollment is for people signed in with SSO"))
	}
	secret, err := totp.NewSecret(rand.Reader)
	if err != nil {
		return err
	}
	ev := audit.Entry{Time: s.now(), Actor: c.actor, Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp enrolled",
		Details: map[string]string{"request_id": RequestID(r.Context())}}
	if err := s.o.Store.PutTOTP(r.Context(), c.identity.User, secret, ev); err != nil {
		if errors.Is(err, store.ErrExists) {
			return s.refuse(r, c.actor, audit.ActionAdmin, &httpError{status: http.StatusConflict, code: "already-enrolled", msg: "TOTP is already enrolled; an admin must reset it"})
		}
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		URI string `json:"uri"`
	}{totp.URI(secret, "sshca", c.identity.User)})
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
