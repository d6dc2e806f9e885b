package policy

import (
	"fmt"
	"slices"
	"time"
)

// Who may obtain a certificate. Every door — the CLI, the HTTPS API, host
// enrollment, renewal, and any door added later — turns its input into a
// Caller and a Request and asks Decide; the rules below are the whole access
// policy, and no door adds rules of its own.

// Caller kinds.
const (
	// CallerAdmin is the CA administrator at the CLI on the CA host: whoever
	// can read the CA keys may use every role.
	CallerAdmin = "admin"
	// CallerPerson is a person signed in through the identity provider.
	CallerPerson = "person"
	// CallerToken is automation holding a role token.
	CallerToken = "token"
	// CallerEnroll is a host holding a one-time enrollment token.
	CallerEnroll = "enroll"
	// CallerLocal is a local user: a person without an identity provider,
	// registered by the admin (sshca user add) with SSH keys and groups,
	// who authenticates at the SSH front door with one of those keys. MFA
	// is what that connection proved: a TOTP code, or a FIDO (sk) key's
	// signature with user presence.
	CallerLocal = "local"
)

// Renewal modes of a role (Role.Renewal).
const (
	// RenewService (the default) lets certificates issued by the service —
	// to people, role tokens and enrolled hosts — be renewed.
	RenewService = "service"
	// RenewAny also lets certificates signed by the admin at the CLI be
	// renewed by whoever holds their key.
	RenewAny = "any"
	// RenewNone forbids renewal: every certificate needs a fresh request.
	RenewNone = "none"
)

// DefaultMaxSession bounds a lineage of renewals of a user role that sets no
// max_session: a week after the first authentication, the person or token
// must authenticate again. Host roles have no default bound: hosts renew by
// proof of possession, and revoking the host key or serial stops them.
const DefaultMaxSession = 7 * 24 * time.Hour

// Access rules carried by DenyError.Rule, beside the certificate rules of
// policy.go.
const (
	RuleRoleNotAllowed   = "role-not-allowed"
	RuleMFARequired      = "mfa-required"
	RuleTokenExpired     = "token-expired"
	RuleTokenRevoked     = "token-revoked"
	RuleTokenUsed        = "token-used"
	RuleRenewalForbidden = "renewal-forbidden"
	RuleSessionExpired   = "session-expired"
	RuleUnknownCaller    = "unknown-caller"
)

// Allow names the people who may use a role through the service: users
// and groups of the identity provider, and local users and their groups
// (sshca user add), which are separate names: a local user "alice" is not
// the identity provider's "alice".
type Allow struct {
	Users       []string `yaml:"users,omitempty"`
	Groups      []string `yaml:"groups,omitempty"`
	LocalUsers  []string `yaml:"local_users,omitempty"`
	LocalGroups []string `yaml:"local_groups,omitempty"`
}

// Token is what the decision needs of an API token: its scope and state as
// the store has them now.
type Token struct {
	ID         string
	Name       string
	Kind       string   // "role" or "enroll" obtain certificates
	Roles      []string // roles it may use
	Principals []string // enrollment tokens: the host names they may certify
	ExpiresAt  time.Time
	RevokedAt  time.Time // zero while valid
	UsedAt     time.Time // enrollment tokens: when consumed
}

// Token kinds that can obtain certificates.
const (
	TokenRole   = "role"
	TokenEnroll = "enroll"
)

// Caller is who asks, how strongly authenticated, and when.
type Caller struct {
	Kind string // one of the Caller constants
	// Identity is the user name (person), token name (token, enroll) or
	// admin account (admin), and the groups from the identity provider.
	Identity
	// MFA is true when this request carries a second factor: an identity
	// provider's multi-factor sign-in, or a TOTP code verified just now. A
	// renewal carries one only if it brings a fresh factor.
	MFA bool
	// AuthTime is when the caller authenticated; for a renewal, when the
	// lineage's first authentication happened.
	AuthTime time.Time
	// Token is the API token behind token and enroll callers, as stored now.
	Token *Token
}

// Actor names c in the audit log and in key IDs: "oidc:alice",
// "token:ci-deploy", "cli:root".
func (c Caller) Actor() string {
	switch c.Kind {
	case CallerPerson:
		return "oidc:" + c.User
	case CallerToken, CallerEnroll:
		return "token:" + c.User
	case CallerAdmin:
		return "cli:" + c.User
	case CallerLocal:
		return "local:" + c.User
	case CallerConsole:
		return "console:" + c.User
	case "":
		return "unauthenticated"
	}
	return "unknown:" + c.User
}

// FactorID is the name under which c's TOTP second factor is enrolled: the
// identity provider's user name for a person, "local:NAME" for a local
// user, so that neither can use the other's enrollment.
func (c Caller) FactorID() string {
	if c.Kind == CallerLocal {
		return "local:" + c.User
	}
	return c.User
}

// Renewal says that a request renews an existing certificate; the Caller
// is then the identity the certificate was issued to (its lineage).
type Renewal struct {
	Serial     uint64   // the certificate being renewed
	KeyID      string   // its key ID, kept by the renewal
	Principals []string // its principals, asked for again
}

// access decides whether c may use role for req, before anything about the
// certificate's content. It returns the rule that allowed the request (for
// the audit log) or a *DenyError.
func access(name string, role Role, c Caller, req Request) (string, *DenyError) {
	if r := req.Renew; r != nil {
		if why := renewal(name, role, c, req.Now); why != nil {
			return "", why
		}
	}
	var because string
	switch c.Kind {
	case CallerAdmin:
		because = "admin at the CA"
	case CallerPerson:
		switch {
		case role.Allow != nil && slices.Contains(role.Allow.Users, c.User):
			because = "allow.users: " + c.User
		default:
			for _, g := range c.Groups {
				if role.Allow != nil && slices.Contains(role.Allow.Groups, g) {
					because = "allow.groups: " + g
					break
				}
			}
		}
		if because == "" {
			return "", deny(RuleRoleNotAllowed, "%s may not use role %s", quote(c.User), quote(name))
		}
	case CallerLocal:
		switch {
		case role.Allow != nil && slices.Contains(role.Allow.LocalUsers, c.User):
			because = "allow.local_users: " + c.User
		default:
			for _, g := range c.Groups {
				if role.Allow != nil && slices.Contains(role.Allow.LocalGroups, g) {
					because = "allow.local_groups: " + g
					break
				}
			}
		}
		if because == "" {
			return "", deny(RuleRoleNotAllowed, "local user %s may not use role %s", quote(c.User), quote(name))
		}
	case CallerToken, CallerEnroll:
		t := c.Token
		if t == nil {
			return "", deny(RuleUnknownCaller, "no token behind this request")
		}
		if why := tokenState(t, c.Kind, req); why != nil {
			return "", why
		}
		switch {
		case c.Kind == CallerToken && t.Kind != TokenRole:
			return "", deny(RuleRoleNotAllowed, "%s tokens cannot request certificates", t.Kind)
		case !slices.Contains(t.Roles, name):
			return "", deny(RuleRoleNotAllowed, "token %s may not use role %s", t.Name, quote(name))
		case c.Kind == CallerToken && req.Type != UserCert:
			// A host certificate lets its holder impersonate servers; only a
			// one-time enrollment token bound to host names obtains one.
			return "", deny(RuleRoleNotAllowed, "role tokens only obtain user certificates; host certificates need an enrollment token")
		case c.Kind == CallerEnroll && (t.Kind != TokenEnroll || req.Type != HostCert):
			return "", deny(RuleRoleNotAllowed, "enrollment tokens only obtain host certificates")
		}
		if c.Kind == CallerEnroll {
			for _, p := range req.Principals {
				if !slices.Contains(t.Principals, p) {
					return "", deny(RulePrincipalNotAllowed, "enrollment token %s is not bound to host name %s", t.Name, quote(p))
				}
			}
		}
		because = "token " + t.Name + " scoped to role " + name
	default:
		return "", deny(RuleUnknownCaller, "unknown kind of caller %s", quote(c.Kind))
	}
	if role.RequireMFA && !c.MFA {
		switch {
		case req.Renew != nil:
			return "", deny(RuleMFARequired, "role %s requires a second factor; a renewal must bring a fresh one (a TOTP code)", quote(name))
		case c.Kind == CallerToken || c.Kind == CallerEnroll:
			return "", deny(RuleMFARequired, "role %s requires a second factor; API tokens cannot provide one", quote(name))
		case c.Kind == CallerPerson:
			return "", deny(RuleMFARequired, "role %s requires a second factor: sign in with MFA or give a TOTP code", quote(name))
		case c.Kind == CallerLocal:
			return "", deny(RuleMFARequired, "role %s requires a second factor: answer the TOTP prompt when connecting, or use a registered FIDO (sk) key", quote(name))
		}
		// The admin at the CA host holds the CA keys: the factor is moot.
	}
	if role.RequireMFA && c.MFA {
		because += ", with a second factor"
	}
	return because, nil
}

// tokenState refuses a token that is no longer usable. An enrollment token
// is spent by the enrollment it allows; the renewals of the host certificate
// it obtained are not bound to it any more, except that revoking it stops
// them.
func tokenState(t *Token, kind string, req Request) *DenyError {
	if !t.RevokedAt.IsZero() {
		return deny(RuleTokenRevoked, "API token %s was revoked", quote(t.Name))
	}
	if kind == CallerEnroll && req.Renew != nil {
		return nil
	}
	if !req.Now.Before(t.ExpiresAt) {
		return deny(RuleTokenExpired, "API token %s expired at %s", quote(t.Name), t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if kind == CallerEnroll && !t.UsedAt.IsZero() {
		return deny(RuleTokenUsed, "enrollment token %s was already used", quote(t.Name))
	}
	return nil
}

// renewal applies the role's renewal rules to a lineage.
func renewal(name string, role Role, c Caller, now time.Time) *DenyError {
	mode := role.RenewalMode()
	switch {
	case mode == RenewNone:
		return deny(RuleRenewalForbidden, "role %s does not allow renewal; request a new certificate", quote(name))
	case c.Kind == CallerAdmin && mode != RenewAny:
		return deny(RuleRenewalForbidden, "certificates signed at the CLI under role %s are not renewable (set renewal: any on the role to allow it)", quote(name))
	}
	if max := role.MaxSessionOrDefault(); max > 0 {
		if c.AuthTime.IsZero() || now.Sub(c.AuthTime) > max {
			return deny(RuleSessionExpired, "the sign-in behind this certificate is older than max_session %s of role %s; authenticate again", max, quote(name))
		}
	}
	return nil
}

// RenewalMode returns the role's renewal mode, defaulted.
func (r Role) RenewalMode() string {
	if r.Renewal == "" {
		return RenewService
	}
	return r.Renewal
}

// MaxSessionOrDefault returns how long after the first authentication a
// lineage of renewals may go on; 0 means unbounded.
func (r Role) MaxSessionOrDefault() time.Duration {
	switch {
	case r.MaxSession > 0:
		return r.MaxSession
	case r.MaxSession < 0, r.Type == HostCert:
		return 0
	}
	return DefaultMaxSession
}

// sessionEnd is when a renewal's lineage ends (zero: never).
func sessionEnd(role Role, c Caller) time.Time {
	if max := role.MaxSessionOrDefault(); max > 0 && !c.AuthTime.IsZero() {
		return c.AuthTime.Add(max)
	}
	return time.Time{}
}

// ValidRenewal checks a renewal mode name.
func ValidRenewal(s string) error {
	switch s {
	case "", RenewService, RenewAny, RenewNone:
		return nil
	}
	return fmt.Errorf("policy: renewal %s: use %s, %s or %s", quote(s), RenewService, RenewAny, RenewNone)
}

// Rules of TOTP enrollment.
const (
	RuleEnrollmentCode = "enrollment-code" // a bad, spent, expired or someone else's code
	RuleOIDCOnly       = "oidc-only"       // second factors are for people
)

// MayEnrollTOTP decides whether person c may enroll a TOTP second factor: a
// second factor is enrolled only with a second factor — a sign-in that
// already carried one — or with a one-time enrollment code (invite, nil if
// none) that an admin issued for this very person and that is unused and
// unexpired. One factor alone never suffices: a stolen password session
// must not become a permanent second factor.
func MayEnrollTOTP(c Caller, invite *Token, now time.Time) error {
	if c.Kind != CallerPerson && c.Kind != CallerLocal {
		return deny(RuleOIDCOnly, "TOTP enrollment is for people: signed in with SSO, or local users")
	}
	if invite == nil {
		if c.MFA {
			return nil
		}
		return deny(RuleMFARequired, "enrolling a second factor needs a second factor: sign in with MFA, or ask an admin for an enrollment code (sshca totp invite %s)", c.FactorID())
	}
	switch {
	case !slices.Contains(invite.Principals, c.FactorID()):
		return deny(RuleEnrollmentCode, "this enrollment code was issued for someone else")
	case !invite.RevokedAt.IsZero():
		return deny(RuleEnrollmentCode, "this enrollment code was revoked")
	case !invite.UsedAt.IsZero():
		return deny(RuleEnrollmentCode, "this enrollment code was already used")
	case !now.Before(invite.ExpiresAt):
		return deny(RuleEnrollmentCode, "this enrollment code expired at %s", invite.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// TokenCaller is the caller holding API token t: an enrollment token makes
// an enrolling host, any other token automation (whose kind then decides
// what it may do).
func TokenCaller(t *Token, now time.Time) Caller {
	kind := CallerToken
	if t.Kind == TokenEnroll {
		kind = CallerEnroll
	}
	return Caller{Kind: kind, Identity: Identity{User: t.Name}, AuthTime: now, Token: t}
}

// TokenUsable refuses a token that is no credential any more: revoked,
// expired, or an enrollment token already spent.
func TokenUsable(t *Token, now time.Time) error {
	kind := CallerToken
	if t.Kind == TokenEnroll {
		kind = CallerEnroll
	}
	if why := tokenState(t, kind, Request{Now: now}); why != nil {
		return why
	}
	return nil
}

// Token kinds beyond those that obtain certificates.
const (
	TokenAdmin = "admin" // may revoke
	TokenHost  = "host"  // an enrolled host's own credential
)

// RuleAdminOnly refuses an administrative request from a non-admin.
const RuleAdminOnly = "admin-only"

// MayAdminister decides whether c may record revocations through the
// service: only a usable admin token.
func MayAdminister(c Caller, now time.Time) error {
	if c.Token == nil || c.Token.Kind != TokenAdmin {
		return deny(RuleAdminOnly, "revocations need an admin token")
	}
	return TokenUsable(c.Token, now)
}
