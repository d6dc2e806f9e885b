// Package config defines sshca.yaml, the CA administrator's policy file:
// its schema, a strict decoder whose errors name the path of the offending
// key, Validate, which checks every field and reports it by path, and the
// conversion of roles into policy.Role values.
//
// It never decides a request (package policy does), never touches CA keys
// and never writes files.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/policy"
)

// Config is the content of sshca.yaml.
type Config struct {
	// Backdate is subtracted from the start of every certificate's
	// validity to absorb clock skew; 0 to 1h, 5m by default.
	Backdate Duration `yaml:"backdate"`
	// Database is an optional PostgreSQL URL; without it the embedded
	// SQLite database of the home directory is used.
	Database string `yaml:"database,omitempty"`
	// Roles maps role names to what they grant and to whom (policy.Role is
	// the one role type: this file decodes straight into it).
	Roles map[string]*policy.Role `yaml:"roles"`
	// RetireGrace is how long a retiring CA key stays published after the
	// last certificate it signed expired (default 1h).
	RetireGrace Duration `yaml:"retire_grace,omitempty"`
	// Service configures `sshca serve`.
	Service *Service `yaml:"service,omitempty"`
	// OIDC configures single sign-on for people.
	OIDC *OIDC `yaml:"oidc,omitempty"`
	// Accounts maps a server's system accounts to the principals that may
	// log in as them; `sshca sync` writes one principals file per account.
	Accounts map[string][]string `yaml:"accounts,omitempty"`
}

// Service configures the certificate service.
type Service struct {
	// Listen is the address to listen on (default 127.0.0.1:8443).
	Listen string `yaml:"listen,omitempty"`
	// TLSCert and TLSKey are PEM files; without them a self-signed
	// certificate is created in the home on first start.
	TLSCert string `yaml:"tls_cert,omitempty"`
	TLSKey  string `yaml:"tls_key,omitempty"`
	// RateLimit is the number of certificate requests per minute one
	// identity may make (default 60).
	RateLimit int `yaml:"rate_limit,omitempty"`
	// AnonymousRateLimit is the number of requests per minute that one
	// source address may make without a valid credential (failed sign-ins,
	// renewal challenges) before they are refused unrecorded (default 600).
	AnonymousRateLimit int `yaml:"anonymous_rate_limit,omitempty"`
	// AuditFile, when set, also receives every audit entry as a JSON line.
	AuditFile string `yaml:"audit_file,omitempty"`
	// SSHListen, when set, starts the SSH front door (docs/frontdoor.md)
	// on this address: local users (sshca user add) get certificates over
	// plain ssh. Off by default.
	SSHListen string `yaml:"ssh_listen,omitempty"`
	// SSHHostRole is the host role under which the front door's host key
	// is certified by sshca's own host CA; required with ssh_listen.
	SSHHostRole string `yaml:"ssh_host_role,omitempty"`
	// SSHHostNames are the front door's host names, the principals of its
	// host certificate; required with ssh_listen.
	SSHHostNames []string `yaml:"ssh_host_names,omitempty"`
	// Console, when set, serves the admin console under /ui/ (see Console).
	Console *Console `yaml:"console,omitempty"`
}

// OIDC configures the identity provider whose ID tokens the service accepts.
type OIDC struct {
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	Audience string `yaml:"audience,omitempty"` // default client_id
	// UserClaim names the ID token claim that is the identity matched by
	// roles' allow.users and put in key IDs; default "sub". sub is the safe
	// choice: the issuer never reassigns it and users cannot edit it (OpenID
	// Connect Core 1.0 section 5.7). "email" is accepted only from tokens
	// whose email_verified is true, since an unverified address is whatever
	// the user typed. Other claims (preferred_username, name, upn) are used
	// as the issuer sends them; at many issuers users can edit them and so
	// take over another person's name, so choose one only if the issuer
	// does not allow that. Whatever the claim, its value must be a valid
	// principal or the token is refused.
	UserClaim   string `yaml:"user_claim,omitempty"`
	GroupsClaim string `yaml:"groups_claim,omitempty"` // default groups
}

// Limits of the file.
const (
	// DefaultBackdate is the backdate of a file that does not set one.
	DefaultBackdate = 5 * time.Minute
	// MaxBackdate is the largest backdate accepted.
	MaxBackdate = time.Hour
	// maxFileSize bounds the input so that a wrong path (a log file, a
	// disk image) fails quickly.
	maxFileSize = 1 << 20
)

// Default returns the configuration of an empty file: backdate 5m and no
// roles.
func Default() *Config {
	return &Config{Backdate: Duration(DefaultBackdate), Roles: map[string]*policy.Role{}}
}

// FieldError is a problem with one field, named by its dotted path such as
// "roles.deploy.max_ttl" or "roles.deploy.principals[1]". Line is the line
// in the file when known (0 otherwise).
type FieldError struct {
	Path string
	Line int
	Msg  string
}

// Error returns "path: msg", followed by " (line N)" when the line is known.
func (e *FieldError) Error() string {
	s := e.Path + ": " + e.Msg
	if e.Line > 0 {
		s += fmt.Sprintf(" (line %d)", e.Line)
	}
	return s
}

// Parse decodes sshca.yaml strictly: unknown keys, duplicate keys, YAML
// merge keys, explicit tags, values of the wrong kind, bad durations,
// several documents or a top level that is not a mapping are errors. Each problem is
// reported as "config: path: message (line N)", all of them joined with
// errors.Join. Parse fills defaults (backdate, and default_ttl = max_ttl
// when omitted) but does not Validate.
func Parse(data []byte) (*Config, error) {
	c, errs := parse(data)
	if len(errs) > 0 {
		return nil, prefixAll("config: ", errs)
	}
	return c, nil
}

// Load reads the file at path, parses and validates it. Every error is
// prefixed with "config: " and the file name.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, errs := parse(data)
	if len(errs) == 0 {
		errs = c.validate()
	}
	if len(errs) > 0 {
		return nil, prefixAll("config: "+path+": ", errs)
	}
	return c, nil
}

// prefixAll puts prefix in front of each error, so that every line of a
// joined error says where it comes from.
func prefixAll(prefix string, errs []error) error {
	wrapped := make([]error, len(errs))
	for i, e := range errs {
		wrapped[i] = fmt.Errorf("%s%w", prefix, e)
	}
	if len(wrapped) == 1 {
		return wrapped[0]
	}
	return errors.Join(wrapped...)
}

// Validate checks every field. It returns nil or the errors.Join of one
// *FieldError per problem, in a stable order.
func (c *Config) Validate() error {
	return errors.Join(c.validate()...)
}

// validator collects field errors.
type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// addErr records a policy error under path, without the package prefix
// (the path already says where the problem is).
func (v *validator) addErr(path string, err error) {
	v.add(path, "%s", strings.TrimPrefix(err.Error(), "policy: "))
}

func (c *Config) validate() []error {
	var v validator
	switch b := time.Duration(c.Backdate); {
	case b < 0:
		v.add("backdate", "must be >= 0")
	case b > MaxBackdate:
		v.add("backdate", "must be at most %s", Duration(MaxBackdate))
	}
	if c.Database != "" {
		validateDatabase(&v, c.Database)
	}
	c.validateService(&v)
	if c.RetireGrace < 0 {
		v.add("retire_grace", "must be >= 0")
	}
	names := make([]string, 0, len(c.Roles))
	for name := range c.Roles {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := "roles." + pathKey(name)
		if !validRoleName(name) {
			v.add(path, "invalid role name: use 1 to 64 lower-case letters, digits, '_' and '-', starting with a letter or digit")
		}
		r := c.Roles[name]
		if r == nil {
			v.add(path, "missing role definition")
			continue
		}
		validateRole(&v, path, r)
	}
	return v.errs
}

// validRoleName reports whether name matches ^[a-z0-9][a-z0-9_-]{0,63}$.
func validRoleName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func validateDatabase(v *validator, db string) {
	u, err := url.Parse(db)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		v.add("database", "must be a postgres:// URL")
		return
	}
	_, hasPassword := u.User.Password()
	if hasPassword || u.Query().Has("password") {
		v.add("database", "must not contain a password; put it in a passfile (passfile=... or PGPASSFILE)")
	}
}

// knownExtensions are the extensions OpenSSH defines (PROTOCOL.certkeys).
func knownExtension(e string) bool {
	switch e {
	case "no-touch-required", "permit-X11-forwarding", "permit-agent-forwarding",
		"permit-port-forwarding", "permit-pty", "permit-user-rc":
		return true
	}
	return false
}

const extensionList = "no-touch-required, permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc"

func validateRole(v *validator, path string, r *policy.Role) {
	isUser, isHost := r.Type == policy.UserCert, r.Type == policy.HostCert
	if !isUser && !isHost {
		v.add(path+".type", `must be "user" or "host"`)
	}
	if r.MaxSession < 0 {
		v.add(path+".max_session", "must be > 0")
	}
	if err := policy.ValidRenewal(r.Renewal); err != nil {
		v.addErr(path+".renewal", err)
	}

	maxTTL, defTTL := r.MaxTTL, r.DefaultTTL
	if maxTTL <= 0 {
		v.add(path+".max_ttl", "must be > 0")
	}
	switch {
	case defTTL <= 0 && maxTTL > 0:
		v.add(path+".default_ttl", "must be > 0")
	case maxTTL > 0 && defTTL > maxTTL:
		v.add(path+".default_ttl", "must not exceed max_ttl (%s)", Duration(r.MaxTTL))
	}

	if len(r.Principals) == 0 {
		v.add(path+".principals", "must not be empty")
	}
	if isUser && len(r.Principals) > policy.MaxPrincipals {
		v.add(path+".principals", "has %d entries; a certificate holds at most %d", len(r.Principals), policy.MaxPrincipals)
	}
	seen := map[string]int{}
	for i, p := range r.Principals {
		ppath := fmt.Sprintf("%s.principals[%d]", path, i)
		if j, dup := seen[p]; dup {
			v.add(ppath, "duplicate of principals[%d]", j)
			continue
		}
		seen[p] = i
		switch {
		case isUser:
			if err := policy.ValidTemplate(p); err != nil {
				v.addErr(ppath, err)
			}
		case isHost:
			if err := policy.ValidHostPattern(p); err != nil {
				v.addErr(ppath, err)
			}
		}
	}

	if r.WildcardPrincipals && !isHost {
		v.add(path+".wildcard_principals", "only for host roles")
	}
	if isHost {
		if r.WildcardPrincipals && !slices.ContainsFunc(r.Principals, isHostGlob) {
			v.add(path+".wildcard_principals", "needs a host-name glob in principals (such as \"*.corp\") for the wildcard principals to lie inside")
		}
		if len(r.Extensions) > 0 {
			v.add(path+".extensions", "not allowed for host roles")
		}
		if len(r.SourceAddress) > 0 {
			v.add(path+".source_address", "not allowed for host roles (ssh refuses host certificates with critical options)")
		}
		if r.ForceCommand != "" {
			v.add(path+".force_command", "not allowed for host roles (ssh refuses host certificates with critical options)")
		}
		if r.VerifyRequired {
			v.add(path+".verify_required", "not allowed for host roles (ssh refuses host certificates with critical options)")
		}
		return
	}

	seen = map[string]int{}
	for i, e := range r.Extensions {
		epath := fmt.Sprintf("%s.extensions[%d]", path, i)
		if j, dup := seen[e]; dup {
			v.add(epath, "duplicate of extensions[%d]", j)
			continue
		}
		seen[e] = i
		if knownExtension(e) {
			continue
		}
		if at := strings.IndexByte(e, '@'); at > 0 && at < len(e)-1 && policy.ValidPrincipal(e) == nil {
			continue // vendor extension: name@domain
		}
		msg := fmt.Sprintf("unknown extension %s (OpenSSH defines %s; vendor extensions look like name@example.com)", quote(e), extensionList)
		for _, k := range strings.Split(extensionList, ", ") {
			if strings.EqualFold(k, e) {
				msg = fmt.Sprintf("unknown extension %s; did you mean %q?", quote(e), k)
			}
		}
		v.add(epath, "%s", msg)
	}

	seen = map[string]int{}
	for i, a := range r.SourceAddress {
		apath := fmt.Sprintf("%s.source_address[%d]", path, i)
		if j, dup := seen[a]; dup {
			v.add(apath, "duplicate of source_address[%d]", j)
			continue
		}
		seen[a] = i
		if err := policy.ValidSourceAddress(a); err != nil {
			v.addErr(apath, err)
		}
	}

	if strings.ContainsAny(r.ForceCommand, "\x00\r\n") {
		v.add(path+".force_command", "must not contain NUL or line breaks")
	}
}

// PolicyRoles returns the roles by name, each with its Name set. Nil
// roles are left out; call Validate first.
func (c *Config) PolicyRoles() map[string]policy.Role {
	out := make(map[string]policy.Role, len(c.Roles))
	for name, r := range c.Roles {
		if r == nil {
			continue
		}
		role := *r
		role.Name = name
		role.Principals = slices.Clone(r.Principals)
		role.Extensions = slices.Clone(r.Extensions)
		role.SourceAddress = slices.Clone(r.SourceAddress)
		role.TemplateGroups = slices.Clone(r.TemplateGroups)
		if r.Allow != nil {
			role.Allow = &policy.Allow{Users: slices.Clone(r.Allow.Users), Groups: slices.Clone(r.Allow.Groups),
				LocalUsers: slices.Clone(r.Allow.LocalUsers), LocalGroups: slices.Clone(r.Allow.LocalGroups)}
		}
		out[name] = role
	}
	return out
}

// pathKey writes a map key for a field path: bare when it is a plain
// name, quoted otherwise.
func pathKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return quote(k)
		}
	}
	return k
}

// quote quotes s for a message, shortened so that hostile input cannot
// flood a terminal or a log.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// Service defaults.
const (
	DefaultListen    = "127.0.0.1:8443"
	DefaultRateLimit = 60
	// DefaultAnonymousRateLimit bounds requests without a valid credential
	// per source address and minute.
	DefaultAnonymousRateLimit = 600
)

// validateFrontDoor checks the SSH front door's keys of the service section.
func (c *Config) validateFrontDoor(v *validator, s *Service) {
	if s.SSHListen == "" {
		if s.SSHHostRole != "" || len(s.SSHHostNames) > 0 {
			v.add("service.ssh_listen", "ssh_host_role and ssh_host_names need ssh_listen")
		}
		return
	}
	if _, _, err := net.SplitHostPort(s.SSHListen); err != nil {
		v.add("service.ssh_listen", "must be host:port, e.g. 0.0.0.0:2222")
	}
	switch r := c.Roles[s.SSHHostRole]; {
	case s.SSHHostRole == "":
		v.add("service.ssh_host_role", "name the host role that certifies the front door's host key")
	case r == nil:
		v.add("service.ssh_host_role", "unknown role %q", s.SSHHostRole)
	case r.Type != policy.HostCert:
		v.add("service.ssh_host_role", "role %q is not a host role", s.SSHHostRole)
	}
	if len(s.SSHHostNames) == 0 {
		v.add("service.ssh_host_names", "name the front door's host names (its host certificate's principals)")
	}
}

// ServiceOrDefault returns the service section with defaults filled in.
func (c *Config) ServiceOrDefault() Service {
	s := Service{}
	if c.Service != nil {
		s = *c.Service
	}
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.RateLimit == 0 {
		s.RateLimit = DefaultRateLimit
	}
	if s.AnonymousRateLimit == 0 {
		s.AnonymousRateLimit = DefaultAnonymousRateLimit
	}
	return s
}

func (c *Config) validateService(v *validator) {
	if s := c.Service; s != nil {
		if s.Listen != "" {
			if _, _, err := net.SplitHostPort(s.Listen); err != nil {
				v.add("service.listen", "must be host:port, e.g. 127.0.0.1:8443")
			}
		}
		if (s.TLSCert == "") != (s.TLSKey == "") {
			v.add("service.tls_cert", "tls_cert and tls_key go together")
		}
		if s.RateLimit < 0 {
			v.add("service.rate_limit", "must be >= 0")
		}
		if s.AnonymousRateLimit < 0 {
			v.add("service.anonymous_rate_limit", "must be >= 0")
		}
		c.validateFrontDoor(v, s)
		validateConsole(v, s.Console)
	}
	if o := c.OIDC; o != nil {
		u, err := url.Parse(o.Issuer)
		switch {
		case o.Issuer == "" || err != nil || u.Host == "":
			v.add("oidc.issuer", "must be the issuer URL, e.g. https://idp.example.com")
		case u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())):
			v.add("oidc.issuer", "must use https (http only for 127.0.0.1/localhost)")
		}
		if o.ClientID == "" {
			v.add("oidc.client_id", "must not be empty")
		}
	}
	for name, r := range c.Roles {
		if r == nil {
			continue
		}
		path := "roles." + pathKey(name)
		for i, g := range r.TemplateGroups {
			if err := policy.ValidPrincipal(g); err != nil {
				v.addErr(fmt.Sprintf("%s.template_groups[%d]", path, i), err)
			}
		}
		if r.Allow != nil && r.Type == policy.HostCert {
			v.add(path+".allow", "host roles are used with enrollment tokens, not SSO users")
		}
	}
	for acct, ps := range c.Accounts {
		path := "accounts." + pathKey(acct)
		if !validAccount(acct) {
			v.add(path, "invalid account name: letters, digits, '.', '_' and '-', not starting with '-' or '.'")
		}
		if len(ps) == 0 {
			v.add(path, "must list at least one principal")
		}
		for i, p := range ps {
			if err := policy.ValidPrincipal(p); err != nil {
				v.addErr(fmt.Sprintf("%s[%d]", path, i), err)
			}
		}
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// isHostGlob reports whether a host-role pattern is a host-name glob
// (not an address or CIDR prefix), the only kind a wildcard host principal
// may lie inside.
func isHostGlob(p string) bool {
	return strings.ContainsAny(p, "*?") && !strings.Contains(p, "/")
}

// validAccount accepts POSIX-style account names.
func validAccount(a string) bool {
	if a == "" || len(a) > 32 || a[0] == '-' || a[0] == '.' {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// DefaultRetireGrace is RetireGrace when the file sets none.
const DefaultRetireGrace = time.Hour

// RetireGraceOrDefault returns RetireGrace, defaulted.
func (c *Config) RetireGraceOrDefault() time.Duration {
	if c.RetireGrace == 0 {
		return DefaultRetireGrace
	}
	return time.Duration(c.RetireGrace)
}
