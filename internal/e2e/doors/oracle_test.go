package doors_test

import (
	"fmt"
	"path"
	"slices"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The oracle: what each request should get, worked out in this file from
// the policy text (the YAML below, read with a plain YAML decoder into the
// test's own types) and the rules as docs/api.md and docs/security.md state
// them. It never calls package policy or package config: if the doors agree
// with each other but not with this file, one of the two readings of the
// documentation is wrong.

// beforePolicy is in force when the certificates that are renewed later are
// obtained: every role is open to every test person, nothing needs a second
// factor, lifetimes are long, roles grant more principals and one role
// (legacy) exists that today's policy removed.
const beforePolicy = `backdate: 5m
service:
  rate_limit: 1000000
  anonymous_rate_limit: 1000000
roles:
  deploy:
    type: user
    principals: [deploy, ci, root]
    default_ttl: 30m
    max_ttl: 24h
    allow:
      users: [alice, carol, erin]
      groups: [deployers, contractors]
  secure:
    type: user
    principals: [secure]
    max_ttl: 24h
    allow:
      users: [alice, carol, erin]
      groups: [deployers, contractors]
  frozen:
    type: user
    principals: [frozen]
    max_ttl: 24h
    allow:
      users: [alice, carol, erin]
      groups: [deployers, contractors]
  brief:
    type: user
    principals: [brief]
    max_ttl: 24h
    allow:
      users: [alice, carol, erin]
      groups: [deployers, contractors]
  break-glass:
    type: user
    principals: [root]
    max_ttl: 24h
    allow:
      users: [alice, carol, erin]
      groups: [deployers, contractors]
  legacy:
    type: user
    principals: [legacy]
    max_ttl: 24h
    allow:
      users: [alice, carol, erin]
      groups: [deployers, contractors]
  servers:
    type: host
    principals: ["*.corp", "*.example"]
    max_ttl: 48h
`

// todayPolicy is the policy of the matrix: every fresh request is decided
// under it, and every renewal of a certificate obtained under beforePolicy
// too. Against beforePolicy: mallory's group lost deploy and secure, secure
// gained require_mfa, frozen forbids renewal, brief bounds a lineage to an
// hour, break-glass renews CLI-signed certificates, legacy is gone, deploy
// lost principal root, servers lost *.example, and lifetimes shrank. Local
// users (of the SSH front door) are allowed roles only today.
const todayPolicy = `backdate: 5m
service:
  rate_limit: 1000000
  anonymous_rate_limit: 1000000
roles:
  deploy:
    type: user
    principals: [deploy, ci]
    default_ttl: 30m
    max_ttl: 1h
    allow:
      users: [alice]
      groups: [deployers]
      local_users: [lena]
      local_groups: [ops]
  secure:
    type: user
    principals: [secure]
    default_ttl: 30m
    max_ttl: 1h
    require_mfa: true
    allow:
      users: [alice, carol, erin]
      groups: [deployers]
      local_users: [lena, tess]
  frozen:
    type: user
    principals: [frozen]
    max_ttl: 1h
    renewal: none
    allow:
      users: [alice]
  brief:
    type: user
    principals: [brief]
    max_ttl: 1h
    max_session: 1h
    allow:
      users: [alice]
  break-glass:
    type: user
    principals: [root]
    max_ttl: 1h
    renewal: any
    allow:
      users: [alice]
  servers:
    type: host
    principals: ["*.corp"]
    max_ttl: 24h
`

// totpEnrolled are the people with an enrolled TOTP authenticator, by
// factorID.
var totpEnrolled = map[string]bool{"carol": true, "local:tess": true}

// factorID names whose TOTP authenticator a caller's code is checked
// against: a local user's is their own, never the same-named person's
// (docs/security.md).
func factorID(c caller) string {
	if c.kind == "local" {
		return "local:" + c.user
	}
	return c.user
}

// roleModel is what the oracle knows of a role.
type roleModel struct {
	typ        string
	principals []string
	defaultTTL time.Duration
	maxTTL     time.Duration
	maxSession time.Duration
	requireMFA bool
	renewal    string
	users      []string
	groups     []string
	localUsers []string
	localGrps  []string
}

type policyModel struct {
	backdate time.Duration
	roles    map[string]roleModel
}

// readPolicy reads a policy text with a plain YAML decoder.
func readPolicy(t *testing.T, text string) policyModel {
	t.Helper()
	var doc struct {
		Backdate string `yaml:"backdate"`
		Roles    map[string]struct {
			Type       string   `yaml:"type"`
			Principals []string `yaml:"principals"`
			DefaultTTL string   `yaml:"default_ttl"`
			MaxTTL     string   `yaml:"max_ttl"`
			MaxSession string   `yaml:"max_session"`
			RequireMFA bool     `yaml:"require_mfa"`
			Renewal    string   `yaml:"renewal"`
			Allow      struct {
				Users       []string `yaml:"users"`
				Groups      []string `yaml:"groups"`
				LocalUsers  []string `yaml:"local_users"`
				LocalGroups []string `yaml:"local_groups"`
			} `yaml:"allow"`
		} `yaml:"roles"`
	}
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("policy text: %v", err)
	}
	d := func(s string) time.Duration {
		if s == "" {
			return 0
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("policy text: duration %q: %v", s, err)
		}
		return v
	}
	p := policyModel{backdate: d(doc.Backdate), roles: map[string]roleModel{}}
	for name, r := range doc.Roles {
		m := roleModel{typ: r.Type, principals: r.Principals, defaultTTL: d(r.DefaultTTL), maxTTL: d(r.MaxTTL),
			maxSession: d(r.MaxSession), requireMFA: r.RequireMFA, renewal: r.Renewal, users: r.Allow.Users, groups: r.Allow.Groups,
			localUsers: r.Allow.LocalUsers, localGrps: r.Allow.LocalGroups}
		if m.defaultTTL == 0 {
			m.defaultTTL = m.maxTTL // README: default_ttl defaults to max_ttl
		}
		if m.renewal == "" {
			m.renewal = "service"
		}
		if m.maxSession == 0 && m.typ == "user" {
			m.maxSession = 7 * 24 * time.Hour // docs/api.md: default 7 days for user roles, none for host roles
		}
		p.roles[name] = m
	}
	return p
}

// caller is who asks, as a row of the matrix describes them.
type caller struct {
	kind   string // admin, person, local (a local user at the SSH front door), token (an API token that is not an enrollment token), enroll
	user   string
	groups []string
	amr    []string
	// totp is a TOTP code sent with the request (and with the renewal):
	// "" none, "valid" the current code of the person's authenticator (any
	// well-formed code when they have none), "bad" a wrong code.
	totp string
	// API tokens: kind, scope, host names, and state ("", "expired",
	// "revoked", "used", or "revoked-after-use": revoked right after a
	// request it made succeeded): at request time for fresh requests; for
	// renewals, what happened to the token after it obtained the certificate.
	tokKind       string
	tokRoles      []string
	tokPrincipals []string
	tokState      string
}

// ask is one request as the oracle sees it.
type ask struct {
	c          caller
	typ        string // user, host
	role       string
	principals []string
	ttl        time.Duration
	totp       string // as caller.totp
	credState  string // the token's state at decision time
	renew      *renewAsk
}

// renewAsk marks a renewal of a certificate.
type renewAsk struct {
	principals []string      // the renewed certificate's
	authAge    time.Duration // since the lineage's first authentication
}

// verdict is the oracle's answer.
type verdict struct {
	allow      bool
	rule       string // refusal: the rule
	frag       string // refusal: a piece of its message
	role       string
	principals []string // allowed: exactly these
	ttl        time.Duration
	// renewalOnly says why a renewal's verdict may differ from the verdict of
	// a fresh request by the same caller ("" when it may not).
	renewalOnly string
	// status is the HTTP status of a refusal by the door itself, before
	// any decision (0: a decision's refusal, 403 or 401 over HTTP).
	status int
}

// credentialRules are refusals of a credential that is no longer one. At
// the HTTPS door such a token does not authenticate at all (401).
var credentialRules = []string{"token-expired", "token-revoked", "token-used"}

func isCredentialRule(rule string) bool { return slices.Contains(credentialRules, rule) }

// hasMFA reads an amr claim as docs/api.md does: "mfa", or methods of two
// factor categories (knowledge: pwd, pin, kba; possession: otp, hwk, swk,
// sc, sms, tel, pop; inherence: fpt, face, ...).
func hasMFA(amr []string) bool {
	kinds := map[string]string{"pwd": "know", "pin": "know", "kba": "know", "otp": "have", "hwk": "have", "swk": "have",
		"sc": "have", "sms": "have", "tel": "have", "pop": "have", "fpt": "are", "face": "are"}
	seen := map[string]bool{}
	for _, m := range amr {
		if m == "mfa" {
			return true
		}
		if k, ok := kinds[m]; ok {
			seen[k] = true
		}
	}
	return len(seen) >= 2
}

// decide is the oracle. The order of the checks is the documented one: a
// TOTP code given with a request is verified first (docs/security.md: Sign
// "verifies a TOTP code given with the request, asks the decision"); then
// the role must exist; then who may use it (renewal rules, allow lists,
// token state, kind and scope, enrollment host names), then the second
// factor — "a caller learns nothing of a role it may not use" —; then what
// the certificate may contain: type, lifetime, principals.
func (p policyModel) decide(a ask) verdict {
	deny := func(rule, frag string) verdict { return verdict{rule: rule, frag: frag} }
	c := a.c
	mfa := false
	if a.totp != "" {
		switch {
		case c.kind != "person" && c.kind != "local":
			return deny("mfa-required", "TOTP codes are for people")
		case !totpEnrolled[factorID(c)]:
			return deny("mfa-required", "no TOTP enrolled for "+factorID(c))
		case a.totp == "bad":
			return deny("mfa-failed", "TOTP code rejected")
		}
		mfa = true
	}
	name := a.role
	if name == "" && c.kind == "enroll" && len(c.tokRoles) == 1 {
		name = c.tokRoles[0] // an enrollment token names its role
	}
	r, ok := p.roles[name]
	if !ok {
		return deny("unknown-role", fmt.Sprintf("unknown role %q", name))
	}
	principals := a.principals
	switch {
	case a.renew != nil:
		principals = a.renew.principals // a renewal asks for its certificate's principals again
	case len(principals) == 0 && c.kind == "enroll":
		principals = c.tokPrincipals // a host enrolls as the names its token is bound to
	}
	renewalOnly := ""
	if a.renew != nil {
		switch {
		case r.renewal == "none":
			v := deny("renewal-forbidden", "does not allow renewal")
			v.renewalOnly = "renewal: none"
			return v
		case c.kind == "admin" && r.renewal != "any":
			v := deny("renewal-forbidden", "are not renewable")
			v.renewalOnly = "CLI-signed certificates renew only under renewal: any"
			return v
		case r.maxSession > 0 && a.renew.authAge > r.maxSession:
			v := deny("session-expired", "older than max_session")
			v.renewalOnly = "max_session"
			return v
		}
	}
	switch c.kind {
	case "admin":
		// The admin at the CA host may use every role.
	case "person":
		allowed := slices.Contains(r.users, c.user)
		for _, g := range c.groups {
			allowed = allowed || slices.Contains(r.groups, g)
		}
		if !allowed {
			return deny("role-not-allowed", fmt.Sprintf("%q may not use role %q", c.user, name))
		}
		if a.renew == nil && hasMFA(c.amr) {
			mfa = true
		} else if a.renew != nil && hasMFA(c.amr) && !mfa && r.requireMFA {
			renewalOnly = "a renewal brings no second factor unless it carries a fresh TOTP code"
		}
	case "local":
		// A local user is allowed by allow.local_users or
		// allow.local_groups only: the names and groups of the identity
		// provider's people are another namespace.
		allowed := slices.Contains(r.localUsers, c.user)
		for _, g := range c.groups {
			allowed = allowed || slices.Contains(r.localGrps, g)
		}
		if !allowed {
			return deny("role-not-allowed", fmt.Sprintf("local user %q may not use role %q", c.user, name))
		}
	case "token", "enroll":
		// An enrollment token binds only the enrollment: once spent, the
		// host's certificate renews by proof of possession until the token
		// is revoked (docs/api.md, token kinds).
		enrollRenewal := c.kind == "enroll" && a.renew != nil
		switch {
		case a.credState == "revoked" || a.credState == "revoked-after-use":
			return deny("token-revoked", "was revoked")
		case a.credState == "expired" && !enrollRenewal:
			return deny("token-expired", "expired at")
		case a.credState == "used" && !enrollRenewal:
			return deny("token-used", "already used")
		case a.credState != "" && enrollRenewal:
			renewalOnly = "an enrollment token binds only the enrollment"
		}
		switch {
		case c.kind == "token" && c.tokKind != "role":
			return deny("role-not-allowed", c.tokKind+" tokens cannot request certificates")
		case !slices.Contains(c.tokRoles, name):
			return deny("role-not-allowed", fmt.Sprintf("may not use role %q", name))
		case c.kind == "token" && a.typ != "user":
			return deny("role-not-allowed", "role tokens only obtain user certificates")
		case c.kind == "enroll" && a.typ != "host":
			return deny("role-not-allowed", "enrollment tokens only obtain host certificates")
		}
		if c.kind == "enroll" {
			for _, h := range principals {
				if !slices.Contains(c.tokPrincipals, h) {
					return deny("principal-not-allowed", fmt.Sprintf("is not bound to host name %q", h))
				}
			}
		}
	}
	if r.requireMFA && !mfa && c.kind != "admin" {
		v := deny("mfa-required", "requires a second factor")
		v.renewalOnly = renewalOnly
		return v
	}
	if r.typ != a.typ {
		return deny("cert-type-mismatch", fmt.Sprintf("issues %s certificates, not %s certificates", r.typ, a.typ))
	}
	ttl := a.ttl
	if ttl == 0 {
		ttl = r.defaultTTL
	}
	if ttl > r.maxTTL {
		return deny("ttl-exceeds-max", "exceeds max_ttl")
	}
	// A renewal never outlives its lineage's session; the renewals of this
	// matrix are hours into a week-long session, so nothing is cut.
	var got []string
	if r.typ == "user" {
		if len(principals) == 0 {
			got = slices.Clone(r.principals)
		}
		for _, q := range principals {
			if !slices.Contains(r.principals, q) {
				return deny("principal-not-allowed", fmt.Sprintf("principal %q not allowed in role %q", q, name))
			}
			if !slices.Contains(got, q) {
				got = append(got, q)
			}
		}
	} else {
		if len(principals) == 0 {
			return deny("empty-principals", "must name its host principals")
		}
		for _, h := range principals {
			matched := false
			for _, pat := range r.principals {
				if ok, _ := path.Match(pat, h); ok {
					matched = true
				}
			}
			if !matched {
				return deny("host-principal-no-match", fmt.Sprintf("host principal %q matches no pattern", h))
			}
			if !slices.Contains(got, h) {
				got = append(got, h)
			}
		}
	}
	return verdict{allow: true, role: name, principals: got, ttl: ttl, renewalOnly: renewalOnly}
}
