package explain

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

const fixTrustCA = "add the CA's public key to the TrustedUserCAKeys file (sshca ca show --type user prints every key to trust), or get a certificate from a CA this server trusts"

// checkTrustedCA is the start of user_cert_trusted_ca: the CA must be in
// TrustedUserCAKeys (sshkey_in_file(ca, file, strict_type 1, check_ca 0),
// which stops at the first line that is not a key).
func (r *runner) checkTrustedCA() *refusal {
	f := r.in.Server.TrustedUserCAKeys
	ca := r.cert.SignatureKey
	signed := fmt.Sprintf("the certificate was signed by the CA %s", fingerprint(ca))
	if f == nil {
		return &refusal{
			check:  CheckCANotTrusted,
			reason: signed + ", but sshd has TrustedUserCAKeys none, so it trusts no user CA",
			fix:    "set TrustedUserCAKeys to a file holding the CA's public key (sshca ca show --type user > /etc/ssh/sshca_user_ca.pub)",
		}
	}
	if f.Err != nil {
		return &refusal{
			check:  CheckCANotTrusted,
			reason: fmt.Sprintf("%s, but the TrustedUserCAKeys file %s cannot be read (%v), so sshd trusts no user CA", signed, f.Path, f.Err),
			fix:    fixTrustCA,
		}
	}
	var trusted, certLines []string
	found, stop := 0, ""
	keyLines(f.Data, func(n int, line string) bool {
		pub, err := parseKeyLine(line)
		if err != nil {
			stop = fmt.Sprintf("; sshd stops reading the file at line %d, which is not a public key (%v), so no key after it counts", n, err)
			return false
		}
		if bytes.Equal(pub.Marshal(), ca.Marshal()) {
			found = n
			return false
		}
		if _, isCert := pub.(*ssh.Certificate); isCert && samePlainKey(pub, ca) {
			certLines = append(certLines, fmt.Sprint(n))
		}
		trusted = append(trusted, fingerprint(pub))
		return true
	})
	if found > 0 {
		r.pass("trusted-ca", "the CA %s is on line %d of %s", fingerprint(ca), found, f.Path)
		return nil
	}
	list := "it lists no key"
	if len(trusted) > 0 {
		list = "it trusts " + strings.Join(trusted, ", ")
	}
	extra := stop
	if len(certLines) > 0 {
		extra += fmt.Sprintf("; line %s holds a certificate of the CA key rather than the plain key, which sshd does not accept here", strings.Join(certLines, ", "))
	}
	return &refusal{
		check:  CheckCANotTrusted,
		reason: fmt.Sprintf("%s, which is not in the TrustedUserCAKeys file %s (%s)%s", signed, f.Path, list, extra),
		fix:    fixTrustCA,
	}
}

// principalLine is one non-comment line of a principals file.
type principalLine struct {
	n      int
	name   string
	opts   *authOptions
	optErr error
}

// parsePrincipals reads a principals file as auth_process_principals and
// auth_check_principals_line (auth2-pubkeyfile.c) do: leading blanks
// skipped, everything from '#' dropped, blank lines skipped, trailing
// blanks trimmed (a CR is not), and with inner blanks the last word is the
// principal and the line starts with options.
func parsePrincipals(data []byte, tz *time.Location) []principalLine {
	var out []principalLine
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimLeft(raw, " \t")
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		if line == "" {
			continue
		}
		line = strings.TrimRight(line, " \t")
		if line == "" {
			// OpenSSH keeps one blank here and compares it as a principal.
			line = " "
		}
		pl := principalLine{n: i + 1, name: line}
		optText := ""
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			sp = strings.LastIndexByte(line, '\t')
		}
		if sp >= 0 {
			optText = line
			pl.name = strings.TrimLeft(line[sp:], " \t")
		}
		pl.opts, pl.optErr = parseAuthOptions(optText, tz)
		out = append(out, pl)
	}
	return out
}

// checkPrincipalsFile is the AuthorizedPrincipalsFile part of
// user_cert_trusted_ca: a line must name one of the certificate's
// principals; its options apply later. It returns the matching line's
// options, or nil without a principals file.
func (r *runner) checkPrincipalsFile() (*authOptions, *refusal) {
	f := r.in.Server.AuthorizedPrincipals
	user := r.in.User
	if f == nil {
		r.pass("principals-file", "AuthorizedPrincipalsFile none: the login name %q must be one of the certificate's principals", user)
		return nil, nil
	}
	certP := r.cert.ValidPrincipals
	msg := "Certificate does not contain an authorized principal"
	if f.Err != nil {
		reason := fmt.Sprintf("the AuthorizedPrincipalsFile for %q, %s, cannot be read (%v), so sshd allows no certificate for this account (%q)", user, f.Path, f.Err, msg)
		return nil, r.principalRefusal(reason, fmt.Sprintf("create %s with one principal per line, e.g. one of the certificate's: %s", f.Path, listOrNone(certP)))
	}
	var allowed, ignored []string
	var crlf bool
	for _, pl := range parsePrincipals(f.Data, r.in.Server.TimeZone) {
		if strings.HasSuffix(pl.name, "\r") {
			crlf = true
		}
		if pl.optErr != nil {
			ignored = append(ignored, fmt.Sprintf("line %d (%q) is ignored for its bad options: %v", pl.n, pl.name, pl.optErr))
			continue
		}
		allowed = append(allowed, pl.name)
		for _, p := range certP {
			if p == pl.name {
				r.pass("principals-file", "line %d of %s allows the certificate's principal %q", pl.n, f.Path, p)
				return pl.opts, nil
			}
		}
	}
	if len(certP) == 0 {
		return nil, &refusal{
			check:  CheckEmptyPrincipals,
			reason: fmt.Sprintf("the certificate lists no principals at all, so none can match the AuthorizedPrincipalsFile %s (sshd logs %q); OpenSSH 10.3 and later refuse such certificates outright", f.Path, msg),
			fix:    "get a certificate that names a principal (sshca never issues one without); the account allows: " + listOrNone(allowed),
		}
	}
	reason := fmt.Sprintf("none of the certificate's principals (%s) is allowed for %q by %s, which allows %s", listOrNone(certP), user, f.Path, listOrNone(allowed))
	if len(ignored) > 0 {
		reason += "; " + strings.Join(ignored, "; ")
	}
	if crlf {
		reason += "; the file has Windows line endings (CR LF), and sshd takes the CR as part of the principal"
	}
	return nil, r.principalRefusal(reason+fmt.Sprintf(" (sshd logs %q)", msg),
		fmt.Sprintf("add one of the certificate's principals to %s, or get a certificate with a principal the account allows (%s)", f.Path, listOrNone(allowed)))
}

func (r *runner) principalRefusal(reason, fix string) *refusal {
	if len(r.cert.ValidPrincipals) == 0 {
		return &refusal{check: CheckEmptyPrincipals, reason: "the certificate lists no principals; " + reason, fix: fix}
	}
	return &refusal{check: CheckNoPrincipal, reason: reason, fix: fix}
}

func listOrNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// checkAuthority is sshkey_cert_check_authority(key, want_host 0,
// require_principal 1, wildcard 0, now, name) (sshkey.c): a user
// certificate, valid now, with principals, including the login name when
// no principals file is configured. It records its own steps.
func (r *runner) checkAuthority() *refusal {
	c := r.cert
	if c.CertType != ssh.UserCert {
		return r.fail("certificate-type", &refusal{
			check:  CheckWrongCertType,
			reason: fmt.Sprintf("this is a host certificate (it certifies a server's key, for %s), but logging in needs a user certificate (sshd logs \"Certificate invalid: not a user certificate\")", listOrNone(c.ValidPrincipals)),
			fix:    "use a user certificate: sshca sign user (or ssh-keygen -s without -h); host certificates belong in sshd's HostCertificate",
		})
	}
	r.pass("certificate-type", "a user certificate")
	if ref := r.checkValidity(); ref != nil {
		return r.fail("validity", ref)
	}
	if len(c.ValidPrincipals) == 0 {
		return r.fail("principal-list", &refusal{
			check:  CheckEmptyPrincipals,
			reason: "the certificate lists no principals (sshd logs \"Certificate lacks principal list\"); old OpenSSH read an empty list as \"any user\", which is why sshd refuses it",
			fix:    fmt.Sprintf("get a certificate that names the account %q as a principal (sshca never issues one without)", r.in.User),
		})
	}
	if r.in.Server.AuthorizedPrincipals == nil {
		for _, p := range c.ValidPrincipals {
			if p == r.in.User {
				r.pass("principal-list", "the login name %q is one of the certificate's principals", r.in.User)
				return nil
			}
		}
		return r.fail("principal-list", &refusal{
			check: CheckNoPrincipal,
			reason: fmt.Sprintf("without an AuthorizedPrincipalsFile the login name must be one of the certificate's principals, and %q is not: the certificate lists %s (sshd logs \"Certificate invalid: name is not a listed principal\")",
				r.in.User, listOrNone(c.ValidPrincipals)),
			fix: fmt.Sprintf("log in as one of %s, get a certificate with the principal %q, or configure AuthorizedPrincipalsFile to map principals (roles) to accounts", listOrNone(c.ValidPrincipals), r.in.User),
		})
	}
	r.pass("principal-list", "the certificate lists principals; the principals file decided which account they may use")
	return nil
}

// skewHint is the largest distance from a validity bound that is blamed on
// clocks rather than on the certificate.
const skewHint = 15 * time.Minute

func (r *runner) checkValidity() *refusal {
	c := r.cert
	at := r.now
	after, before := c.ValidAfter, c.ValidBefore
	window := fmt.Sprintf("valid from %s to %s", certTime(after), certTime(before))
	if at.Unix() < 0 || uint64(at.Unix()) < after {
		d := unixTime(after).Sub(at)
		reason := fmt.Sprintf("the certificate is not valid yet: it becomes valid at %s, %s after the time checked (%s); it is %s", certTime(after), humanDuration(d), at.UTC().Format(time.RFC3339), window)
		fix := "wait until it becomes valid, or get a certificate valid now"
		if d <= skewHint {
			reason += fmt.Sprintf(". So small a gap usually means clock skew: the server's clock is %s or more behind the CA's, or the certificate was not backdated (sshca backdates by 5 minutes)", humanDuration(d))
			fix = "synchronise the clocks (NTP: timedatectl status, chronyc tracking) on the server and the CA; get a certificate backdated for skew"
		}
		return &refusal{check: CheckNotYetValid, reason: reason, fix: fix}
	}
	if uint64(at.Unix()) >= before {
		d := at.Sub(unixTime(before))
		reason := fmt.Sprintf("the certificate expired at %s, %s before the time checked (%s); it was %s", certTime(before), humanDuration(d), at.UTC().Format(time.RFC3339), window)
		if d <= skewHint {
			reason += ". If it should still be valid, the server's clock may be ahead (clock skew)"
		}
		return &refusal{
			check:  CheckExpired,
			reason: reason,
			fix:    "get a new certificate (sshca login renews it; or sshca sign user)",
		}
	}
	left := "it never expires"
	if before != ssh.CertTimeInfinity {
		left = fmt.Sprintf("it expires in %s", humanDuration(unixTime(before).Sub(at)))
	}
	r.pass("validity", "%s; %s", window, left)
	return nil
}

// certOptions are a user certificate's options as sshauthopt_from_cert
// (auth-options.c) reads them.
type certOptions struct {
	forceCommand      *string
	sourceAddress     *string
	verifyRequired    bool
	extensions        map[string]bool
	unknownExtensions []string
}

// knownExtension reports whether sshd 9.2 knows an extension
// (cert_option_list).
func knownExtension(name string) bool {
	switch name {
	case "no-touch-required", "permit-X11-forwarding", "permit-agent-forwarding",
		"permit-port-forwarding", "permit-pty", "permit-user-rc":
		return true
	}
	return false
}

// checkCertOptions is sshauthopt_from_cert: cert_option_list over the
// critical options (unknown ones refuse) and the extensions (unknown ones
// are ignored).
func (r *runner) checkCertOptions() (*certOptions, *refusal) {
	c := r.cert
	o := &certOptions{extensions: map[string]bool{}}
	invalid := func(format string, args ...any) (*certOptions, *refusal) {
		return nil, &refusal{
			check:  CheckInvalidOptions,
			reason: fmt.Sprintf(format, args...) + " (sshd logs \"Invalid certificate options\")",
			fix:    "get a certificate without that option; sshd 9.2 knows the critical options force-command, source-address and verify-required",
		}
	}
	for _, name := range sortedKeys(c.CriticalOptions) {
		val := c.CriticalOptions[name]
		switch name {
		case "verify-required":
			if val != "" {
				return invalid("the critical option verify-required carries data, which sshd refuses")
			}
			o.verifyRequired = true
		case "force-command", "source-address":
			// x/crypto writes an empty value as a flag without data, which
			// sshd cannot read as a string.
			if val == "" || strings.IndexByte(val, 0) >= 0 {
				return invalid("the critical option %s has no usable value", name)
			}
			v := val
			if name == "force-command" {
				o.forceCommand = &v
				continue
			}
			if res, why := matchCIDRList(netip.Addr{}, v); res < 0 {
				return invalid("the certificate's source-address %q is malformed: %s", v, why)
			}
			o.sourceAddress = &v
		default:
			return invalid("the certificate has the critical option %q, which sshd does not support", name)
		}
	}
	for _, name := range sortedKeys(c.Extensions) {
		if !knownExtension(name) {
			o.unknownExtensions = append(o.unknownExtensions, name)
			continue
		}
		if c.Extensions[name] != "" {
			return invalid("the extension %s carries data (%q), which sshd refuses", name, c.Extensions[name])
		}
		o.extensions[name] = true
	}
	detail := "critical options: " + strings.Join(sortedKeys(c.CriticalOptions), ", ")
	if len(c.CriticalOptions) == 0 {
		detail = "no critical options"
	}
	if o.verifyRequired {
		r.note("verify-required: a FIDO (sk) key must sign with user verification (PIN); for other keys sshd ignores it")
	}
	r.pass("certificate-options", "%s; extensions: %s", detail, strings.Join(sortedKeys(c.Extensions), ", "))
	return o, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkSourceAddress is auth_authorise_keyopts on the certificate's
// options: addr_match_cidr_list(remote_ip, source-address).
func (r *runner) checkSourceAddress(o *certOptions) *refusal {
	if o.sourceAddress == nil {
		r.pass("source-address", "the certificate has no source-address restriction")
		return nil
	}
	list := *o.sourceAddress
	if !r.in.From.IsValid() {
		r.note("the certificate is limited to source-address %s; the client address was not given, so this was not checked", list)
		r.pass("source-address", "not checked (client address unknown): source-address %s", list)
		return nil
	}
	if res, _ := matchCIDRList(r.in.From, list); res == 1 {
		r.pass("source-address", "%s is inside source-address %s", r.in.From, list)
		return nil
	}
	return &refusal{
		check:  CheckSourceAddress,
		reason: fmt.Sprintf("the client address %s is not in the certificate's source-address list %s (sshd logs \"not from a permitted source address\")", r.in.From, list),
		fix:    fmt.Sprintf("log in from an address in %s (mind NAT, proxies and jump hosts: sshd sees the address of the last hop), or get a certificate whose source-address includes %s", list, r.in.From),
	}
}

// checkPrincipalsOptions is auth_authorise_keyopts on the matching
// principals line's options, then sshauthopt_merge with the certificate's.
func (r *runner) checkPrincipalsOptions(p *authOptions, c *certOptions) *refusal {
	path := r.in.Server.AuthorizedPrincipals.Path
	line := func(format string, args ...any) *refusal {
		return &refusal{
			check:  CheckPrincipalsOptions,
			reason: fmt.Sprintf("the matching line of %s refuses the login: ", path) + fmt.Sprintf(format, args...) + " (sshd logs \"Refused by certificate principals options\")",
			fix:    fmt.Sprintf("change the options of that line in %s", path),
		}
	}
	if now := r.now.Unix(); p.validBefore != 0 && now > 0 && p.validBefore < uint64(now) {
		return line("its expiry-time=%q passed %s ago", p.expiryText, humanDuration(r.now.Sub(unixTime(p.validBefore))))
	}
	if p.principals != nil && !p.certAuthority {
		return line("it has principals=, which is only valid with cert-authority")
	}
	if p.certAuthority {
		return line("it has cert-authority, which is not valid in a principals file")
	}
	if p.from != nil {
		if !r.in.From.IsValid() {
			r.note("the principals line is limited to from=%q; the client address was not given, so this was not checked", *p.from)
		} else if matchHostAndIP(r.in.From, *p.from) != 1 {
			return line("the client address %s does not match its from=%q", r.in.From, *p.from)
		}
	}
	if p.command != nil && c.forceCommand != nil && *p.command != *c.forceCommand {
		return &refusal{
			check:  CheckForceCommand,
			reason: fmt.Sprintf("the certificate forces the command %q and the matching line of %s forces %q; sshd refuses when both force different commands (\"forced command options do not match\")", *c.forceCommand, path, *p.command),
			fix:    "make the command= of the principals line equal to the certificate's force-command, or drop one of them",
		}
	}
	r.pass("principals-options", "the options of the matching principals line allow the login")
	return nil
}

// humanDuration prints d rounded to the second, with days for long ones.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	if d >= 48*time.Hour {
		days := d / (24 * time.Hour)
		rest := (d % (24 * time.Hour)).Round(time.Hour)
		if rest == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, rest/time.Hour)
	}
	h, m, sec := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	var b strings.Builder
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if sec > 0 || b.Len() == 0 {
		fmt.Fprintf(&b, "%ds", sec)
	}
	return b.String()
}

// unixTime converts a certificate time, saturating beyond Go's range.
func unixTime(v uint64) time.Time {
	if v > math.MaxInt64/2 {
		return time.Unix(math.MaxInt64/2, 0)
	}
	return time.Unix(int64(v), 0)
}

// certTime formats a certificate time as ssh-keygen -L does, but in UTC.
func certTime(v uint64) string {
	switch v {
	case 0:
		return "the beginning"
	case ssh.CertTimeInfinity:
		return "forever"
	}
	if v > math.MaxInt64/2 {
		return fmt.Sprintf("%d (far future)", v)
	}
	return time.Unix(int64(v), 0).UTC().Format(time.RFC3339)
}
