// Package policy decides what a certificate may contain. Given the roles of
// the configuration, the requester's identity and a request, Decide grants a
// principal list, a lifetime, critical options and extensions, or refuses
// with a *DenyError that names the rule that was broken.
//
// The package is pure. It never reads files, talks to the network, looks at
// the clock, keeps state or signs anything: it judges a requested validity
// window against the request's Now, while serials and signatures belong to
// the authority (package ca).
package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// CertType is the kind of certificate, with the wire values of
// ssh.UserCert and ssh.HostCert.
type CertType uint32

// Certificate types.
const (
	UserCert CertType = 1
	HostCert CertType = 2
)

// String returns "user", "host" or "type N".
func (t CertType) String() string {
	switch t {
	case UserCert:
		return "user"
	case HostCert:
		return "host"
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// UnmarshalText reads "user" or "host" (the type: field of a role).
func (t *CertType) UnmarshalText(b []byte) error {
	switch string(b) {
	case "user":
		*t = UserCert
	case "host":
		*t = HostCert
	default:
		return fmt.Errorf(`policy: certificate type %s: must be "user" or "host"`, quote(string(b)))
	}
	return nil
}

// MarshalText writes "user" or "host".
func (t CertType) MarshalText() ([]byte, error) {
	if t != UserCert && t != HostCert {
		return nil, fmt.Errorf("policy: certificate type %d", uint32(t))
	}
	return []byte(t.String()), nil
}

// MaxPrincipals is the largest number of principals a certificate may carry
// (SSHKEY_CERT_MAX_PRINCIPALS in OpenSSH's sshkey.h).
const MaxPrincipals = 256

// Critical option names that a role can grant.
const (
	OptionForceCommand   = "force-command"
	OptionSourceAddress  = "source-address"
	OptionVerifyRequired = "verify-required"
)

// Rule names carried by DenyError.Rule. They are stable machine names meant
// for audit records, metrics and API error codes.
const (
	RuleUnknownRole          = "unknown-role"
	RuleCertTypeMismatch     = "cert-type-mismatch"
	RuleBadTTL               = "bad-ttl"
	RuleTTLExceedsMax        = "ttl-exceeds-max"
	RuleBadPrincipal         = "bad-principal"
	RulePrincipalNotAllowed  = "principal-not-allowed"
	RuleHostPrincipalNoMatch = "host-principal-no-match"
	RuleEmptyPrincipals      = "empty-principals"
	RuleTooManyPrincipals    = "too-many-principals"
	RuleBadRole              = "bad-role"
	RuleBadValidity          = "bad-validity"
)

// Bounds of a requested validity window (Request.ValidAfter/ValidBefore).
const (
	// MaxWindowLead is how far in the future a window may start: far
	// enough to issue a certificate for next month's maintenance window,
	// near enough that a not-yet-valid credential is not kept for long.
	MaxWindowLead = 31 * 24 * time.Hour
	// MaxWindowBackdate is how far in the past a window may start
	// (ssh-keygen -V -5m:+1w): backdating is for clocks that run behind.
	// The part before the request does not count against max_ttl.
	MaxWindowBackdate = 24 * time.Hour
)

// Role is one role of the policy file (the roles: section of sshca.yaml,
// decoded by package config) and everything it allows: what a certificate
// may contain, who may obtain one, and how it may be renewed. Name is the
// key of the role in the file.
type Role struct {
	Name string   `yaml:"-"`
	Type CertType `yaml:"type"`
	// Principals are, for user roles, literal principals or templates such
	// as "{{.User}}" (see ExpandTemplate); for host roles, host-name globs
	// ("*.corp", "app-??.corp"), IP addresses and CIDRs ("10.0.1.0/24").
	Principals []string      `yaml:"principals"`
	DefaultTTL time.Duration `yaml:"default_ttl"` // = MaxTTL when omitted
	MaxTTL     time.Duration `yaml:"max_ttl"`
	// Extensions is exactly the set of extensions granted (user roles only).
	Extensions []string `yaml:"extensions,omitempty"`
	// SourceAddress becomes the source-address critical option, joined
	// with "," (user roles only).
	SourceAddress []string `yaml:"source_address,omitempty"`
	// ForceCommand becomes the force-command critical option when not
	// empty (user roles only).
	ForceCommand string `yaml:"force_command,omitempty"`
	// VerifyRequired becomes the verify-required critical option (user
	// roles only): sshd then accepts the certificate of a FIDO (sk) key
	// only with signatures that assert user verification (a PIN or a
	// biometric), not a touch alone; other key types ignore it.
	VerifyRequired bool `yaml:"verify_required,omitempty"`
	// Allow lists the people (users and groups of the identity provider)
	// who may use the role through the service; API tokens are scoped to
	// roles when they are created, and the admin at the CLI may use all.
	Allow *Allow `yaml:"allow,omitempty"`
	// RequireMFA demands a second factor: the identity provider's
	// multi-factor sign-in or a TOTP code. Tokens cannot provide one.
	RequireMFA bool `yaml:"require_mfa,omitempty"`
	// TemplateGroups is the allow-list of groups that "{{.Groups}}"
	// templates expand to; groups outside it yield no principal, and an
	// empty list lets no group through.
	TemplateGroups []string `yaml:"template_groups,omitempty"`
	// MaxSession bounds a lineage of renewals, counted from the first
	// authentication (default DefaultMaxSession for user roles, unbounded
	// for host roles).
	MaxSession time.Duration `yaml:"max_session,omitempty"`
	// Renewal is RenewService (default), RenewAny or RenewNone.
	Renewal string `yaml:"renewal,omitempty"`
	// WildcardPrincipals lets a host role issue host certificates whose
	// principals are patterns ("*.corp", "web-??.corp") inside the role's
	// own glob patterns. Only OpenSSH 10.3 and later clients match them;
	// older clients and other SSH implementations compare principals
	// exactly and refuse such a certificate, and one certificate vouches
	// for every host it matches. Host roles only; off by default.
	WildcardPrincipals bool `yaml:"wildcard_principals,omitempty"`
}

// Identity is who asks for a certificate. It may be the zero value, for
// example when an administrator signs offline with the CLI; templates that
// need a user name or groups then expand to nothing.
type Identity struct {
	User   string
	Groups []string
}

// Request is what the requester asks for.
type Request struct {
	Type CertType
	// Role asked for. An enrollment token scoped to a single role implies it.
	Role string
	// Principals asked for. When empty, a user certificate gets all of the
	// role's principals (templates expanded over the identity, templates
	// that cannot expand skipped); a host certificate gets the host names
	// of the enrollment token, or is refused, because hosts must name
	// themselves.
	Principals []string
	// TTL is the requested lifetime; 0 means the role's DefaultTTL.
	TTL time.Duration
	// ValidAfter and ValidBefore ask for a validity window, like
	// ssh-keygen -V: zero ValidAfter means from Now; zero ValidBefore means
	// ValidAfter plus TTL (or the role's DefaultTTL). TTL and ValidBefore
	// exclude each other. The window may start at most MaxWindowBackdate
	// ago and MaxWindowLead ahead, must end after Now, and the part of it
	// from Now (or its start, if later) on is bounded by max_ttl.
	ValidAfter, ValidBefore time.Time
	// Now is the time of the decision (token expiry, session bounds).
	Now time.Time
	// Renew is set when the request renews a certificate; the Caller is
	// then the identity of its lineage, and Principals are ignored: the
	// renewal asks for the renewed certificate's principals again.
	Renew *Renewal
}

// Grant is what a certificate may contain. Principals is never empty and
// holds no duplicates; CriticalOptions and Extensions are never nil, and
// extension values are empty (flags).
type Grant struct {
	Role       string
	Type       CertType
	Principals []string
	TTL        time.Duration
	// ValidAfter and ValidBefore are the validity window asked for and
	// granted; both zero when none was asked for (the certificate is then
	// valid from now for TTL).
	ValidAfter, ValidBefore time.Time
	CriticalOptions         map[string]string
	Extensions              map[string]string
	// Because is the access rule that allowed the request, for the audit
	// log: "allow.groups: ops", "token ci scoped to role deploy", ...
	Because string
}

// DenyError is a refusal by the policy. Rule is one of the Rule constants;
// Msg is a short sentence safe to show to the requester.
type DenyError struct {
	Rule string
	Msg  string
}

// Error returns the message prefixed with "policy: ".
func (e *DenyError) Error() string { return "policy: " + e.Msg }

func deny(rule, format string, args ...any) *DenyError {
	return &DenyError{Rule: rule, Msg: fmt.Sprintf(format, args...)}
}

// Decide is the access decision of every door: it applies roles to a
// request from caller c, deciding whether c may use the role at all (allow
// lists, token scope and state, second factor, renewal and session bounds)
// and what the certificate may contain (principals, lifetime, options,
// extensions). It returns a Grant, or a *DenyError naming the rule for every
// refusal.
func Decide(roles map[string]Role, c Caller, req Request) (*Grant, error) {
	if req.Role == "" && c.Kind == CallerEnroll && c.Token != nil && len(c.Token.Roles) == 1 {
		// An enrollment token names its role; the host need not repeat it.
		req.Role = c.Token.Roles[0]
	}
	role, ok := roles[req.Role]
	switch {
	case req.Role == "":
		return nil, deny(RuleUnknownRole, "no role given: name the role to use")
	case !ok:
		return nil, deny(RuleUnknownRole, "unknown role %s", quote(req.Role))
	}
	if req.Type != UserCert && req.Type != HostCert {
		return nil, deny(RuleCertTypeMismatch, "unknown certificate type %d", uint32(req.Type))
	}
	if req.Renew != nil {
		req.Principals = req.Renew.Principals
	} else if len(req.Principals) == 0 && c.Kind == CallerEnroll && c.Token != nil {
		req.Principals = c.Token.Principals
	}
	// Who may use the role comes first: a caller learns nothing of a role
	// it may not use.
	because, why := access(req.Role, role, c, req)
	if why != nil {
		return nil, why
	}
	if role.Type != req.Type {
		return nil, deny(RuleCertTypeMismatch, "role %s issues %s certificates, not %s certificates",
			quote(req.Role), role.Type, req.Type)
	}

	ttl := req.TTL
	if ttl == 0 {
		ttl = role.DefaultTTL
	}
	if ttl <= 0 {
		return nil, deny(RuleBadTTL, "lifetime %s must be positive", ttl)
	}
	if ttl > role.MaxTTL {
		return nil, deny(RuleTTLExceedsMax, "lifetime %s exceeds max_ttl %s of role %s", ttl, role.MaxTTL, quote(req.Role))
	}
	var from, until time.Time
	if !req.ValidAfter.IsZero() || !req.ValidBefore.IsZero() {
		var why *DenyError
		if from, until, why = window(req, role, ttl); why != nil {
			return nil, why
		}
		ttl = until.Sub(later(from, req.Now))
	}
	if req.Renew != nil {
		// A renewal never outlives the session it came from.
		if end := sessionEnd(role, c); !end.IsZero() && req.Now.Add(ttl).After(end) {
			ttl = end.Sub(req.Now).Truncate(time.Second)
			if ttl < time.Minute {
				return nil, deny(RuleSessionExpired, "the sign-in behind this certificate ends in under a minute; authenticate again")
			}
		}
	}

	var principals []string
	var err *DenyError
	if req.Type == UserCert {
		principals, err = userPrincipals(req.Role, role, c.Identity, req.Principals)
	} else {
		principals, err = hostPrincipals(req.Role, role, req.Principals)
	}
	if err != nil {
		return nil, err
	}

	g := &Grant{
		Role:            req.Role,
		Type:            req.Type,
		Principals:      principals,
		TTL:             ttl,
		ValidAfter:      from,
		ValidBefore:     until,
		CriticalOptions: map[string]string{},
		Extensions:      map[string]string{},
		Because:         because,
	}
	if req.Type == HostCert {
		// The ssh client refuses a host certificate with any critical
		// option, and no extension is defined for host certificates.
		return g, nil
	}
	if err := roleOptions(req.Role, role, g); err != nil {
		return nil, err
	}
	return g, nil
}

// window checks a requested validity window against the role; ttl is the
// lifetime asked for (or the role's default), which a window without an end
// lasts from its start.
func window(req Request, role Role, ttl time.Duration) (from, until time.Time, why *DenyError) {
	const layout = time.RFC3339
	switch {
	case req.Renew != nil:
		return from, until, deny(RuleBadValidity, "a renewal cannot choose its validity window")
	case req.TTL != 0 && !req.ValidBefore.IsZero():
		return from, until, deny(RuleBadValidity, "give a lifetime or the end of the validity window, not both")
	}
	from, until = req.ValidAfter, req.ValidBefore
	if from.IsZero() {
		from = req.Now
	}
	if until.IsZero() {
		until = from.Add(ttl)
	}
	switch {
	case !until.After(req.Now):
		return from, until, deny(RuleBadValidity, "the validity window ends at %s, in the past", until.UTC().Format(layout))
	case !until.After(from):
		return from, until, deny(RuleBadValidity, "the validity window %s to %s ends before it starts", from.UTC().Format(layout), until.UTC().Format(layout))
	case from.Before(req.Now.Add(-MaxWindowBackdate)):
		return from, until, deny(RuleBadValidity, "the validity window starts at %s, more than %s ago", from.UTC().Format(layout), MaxWindowBackdate)
	case from.After(req.Now.Add(MaxWindowLead)):
		return from, until, deny(RuleBadValidity, "the validity window starts at %s, more than %d days ahead", from.UTC().Format(layout), MaxWindowLead/(24*time.Hour))
	}
	if d := until.Sub(later(from, req.Now)); d > role.MaxTTL {
		since := "its start"
		if from.Before(req.Now) {
			since = "now"
		}
		return from, until, deny(RuleTTLExceedsMax, "validity window %s to %s lasts %s from %s, beyond max_ttl %s of role %s",
			from.UTC().Format(layout), until.UTC().Format(layout), d.Round(time.Second), since, role.MaxTTL, quote(req.Role))
	}
	return from, until, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// userPrincipals checks the requested principals against the role's
// expansion, or returns the whole expansion when none are requested.
func userPrincipals(name string, role Role, id Identity, requested []string) ([]string, *DenyError) {
	var allowed []string
	// Only allow-listed groups reach templates: group names come from the
	// identity provider, which the requester may influence.
	tid := Identity{User: id.User}
	for _, g := range id.Groups {
		if slices.Contains(role.TemplateGroups, g) {
			tid.Groups = append(tid.Groups, g)
		}
	}
	for _, p := range role.Principals {
		exp, err := ExpandTemplate(p, tid)
		if err != nil {
			continue // cannot expand for this identity: grants nothing
		}
		allowed = append(allowed, exp...)
	}
	allowedSet := make(map[string]bool, len(allowed))
	for _, p := range allowed {
		allowedSet[p] = true
	}

	if len(requested) == 0 {
		out := dedup(allowed)
		if len(out) == 0 {
			return nil, deny(RuleEmptyPrincipals, "role %s grants no principals to this identity", quote(name))
		}
		if len(out) > MaxPrincipals {
			return nil, tooMany(len(out))
		}
		return out, nil
	}
	out := dedup(requested)
	if len(out) > MaxPrincipals {
		return nil, tooMany(len(out))
	}
	for _, p := range out {
		if why := principalProblem(p); why != "" {
			return nil, deny(RuleBadPrincipal, "invalid principal %s: %s", quote(p), why)
		}
		if !allowedSet[p] {
			return nil, deny(RulePrincipalNotAllowed, "principal %s not allowed in role %s", quote(p), quote(name))
		}
	}
	return out, nil
}

// hostPrincipals checks that every requested host principal is a concrete
// host name or IP address matching one of the role's patterns, or, for a
// role with WildcardPrincipals, a pattern inside one of them.
func hostPrincipals(name string, role Role, requested []string) ([]string, *DenyError) {
	if len(requested) == 0 {
		return nil, deny(RuleEmptyPrincipals, "a host certificate must name its host principals")
	}
	out := dedup(requested)
	if len(out) > MaxPrincipals {
		return nil, tooMany(len(out))
	}
	for _, p := range out {
		if role.WildcardPrincipals && hasWildcard(p) {
			if why := wildcardHostProblem(p); why != "" {
				return nil, deny(RuleBadPrincipal, "invalid wildcard host principal %s: %s", quote(p), why)
			}
			if !wildcardCovered(role.Principals, p) {
				return nil, deny(RuleHostPrincipalNoMatch, "wildcard host principal %s is not inside a host-name pattern of role %s", quote(p), quote(name))
			}
			continue
		}
		if why := hostNameProblem(p); why != "" {
			if why == "contains a wildcard" {
				why += fmt.Sprintf(" (OpenSSH before 10.3 does not match wildcard host principals; role %s does not set wildcard_principals)", quote(name))
			}
			return nil, deny(RuleBadPrincipal, "invalid host principal %s: %s", quote(p), why)
		}
		matched := false
		for _, pat := range role.Principals {
			if MatchHostPattern(pat, p) {
				matched = true
				break
			}
		}
		if !matched {
			return nil, deny(RuleHostPrincipalNoMatch, "host principal %s matches no pattern of role %s", quote(p), quote(name))
		}
	}
	return out, nil
}

// roleOptions copies the role's critical options and extensions into g,
// refusing role data that OpenSSH would reject.
func roleOptions(name string, role Role, g *Grant) *DenyError {
	if len(role.SourceAddress) > 0 {
		for _, a := range role.SourceAddress {
			if why := sourceAddressProblem(a); why != "" {
				return deny(RuleBadRole, "role %s has invalid source address %s: %s", quote(name), quote(a), why)
			}
		}
		g.CriticalOptions[OptionSourceAddress] = strings.Join(role.SourceAddress, ",")
	}
	if role.ForceCommand != "" {
		if strings.ContainsRune(role.ForceCommand, 0) || !utf8.ValidString(role.ForceCommand) {
			return deny(RuleBadRole, "role %s has an invalid force command", quote(name))
		}
		g.CriticalOptions[OptionForceCommand] = role.ForceCommand
	}
	if role.VerifyRequired {
		g.CriticalOptions[OptionVerifyRequired] = ""
	}
	for _, e := range role.Extensions {
		if e == "" || charProblem(e) != "" {
			return deny(RuleBadRole, "role %s has invalid extension %s", quote(name), quote(e))
		}
		g.Extensions[e] = ""
	}
	return nil
}

// sourceAddressProblem says why a is not something sshd accepts in a
// source-address list: an address or a network prefix without host bits.
// It returns "" when a is fine.
func sourceAddressProblem(a string) string {
	if strings.Contains(a, "/") {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return "not a CIDR prefix"
		}
		if p.Masked() != p {
			return "host bits set (network is " + p.Masked().String() + ")"
		}
		return ""
	}
	ip, err := netip.ParseAddr(a)
	if err != nil || ip.Zone() != "" {
		return "not an IP address or CIDR prefix"
	}
	return ""
}

// ValidSourceAddress reports whether a is an entry that sshd accepts in a
// source-address list: an IP address or a CIDR prefix with no host bits
// set. It returns nil when a is valid.
func ValidSourceAddress(a string) error {
	if why := sourceAddressProblem(a); why != "" {
		return fmt.Errorf("policy: invalid source address %s: %s", quote(a), why)
	}
	return nil
}

func tooMany(n int) *DenyError {
	return deny(RuleTooManyPrincipals, "%d principals, at most %d allowed", n, MaxPrincipals)
}

// dedup returns the distinct strings of in, in first-seen order.
func dedup(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// quote quotes s for a message, shortening it so that hostile input cannot
// flood logs.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}
