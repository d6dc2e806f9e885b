package explain

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// runHost replays what the OpenSSH client does with a host certificate
// the server presents (sshconnect.c check_host_key): the RevokedHostKeys
// file, then the known_hosts lookup for a @cert-authority line trusting
// the CA for this host and @revoked lines, then check_host_cert:
// sshkey_cert_check_authority(key, want_host 1, require_principal 0,
// wildcard 0, host) in 9.2, and from 10.3 on with wildcard 1 and an empty
// principal list refused; no critical options, and the CA signature
// algorithm, which the client checks last.
func (r *runner) runHost(algs []string) *refusal {
	if ref := r.checkSignature(); ref != nil {
		return r.fail("signature", ref)
	}
	r.pass("signature", "the CA signature over the certificate verifies (%s)", r.cert.Signature.Format)
	if ref := r.checkRevokedHost(); ref != nil {
		return r.fail("revoked-keys", ref)
	}
	if ref := r.checkKnownHosts(); ref != nil {
		return r.fail("known-hosts", ref)
	}
	c := r.cert
	if c.CertType != ssh.HostCert {
		return r.fail("certificate-type", &refusal{
			check:  CheckWrongCertType,
			reason: fmt.Sprintf("this is a user certificate (for %s), but a server must present a host certificate (ssh logs \"Certificate invalid: not a host certificate\")", listOrNone(c.ValidPrincipals)),
			fix:    "sign the server's host key as a host certificate: sshca sign host (or ssh-keygen -s CA -h), and point HostCertificate at it",
		})
	}
	r.pass("certificate-type", "a host certificate")
	if ref := r.checkValidity(); ref != nil {
		return r.fail("validity", ref)
	}
	name := r.in.Host
	patterns := r.version.hostPrincipalPatterns()
	switch {
	case len(c.ValidPrincipals) == 0 && patterns:
		return r.fail("principal-list", &refusal{
			check:  CheckEmptyPrincipals,
			reason: fmt.Sprintf("the host certificate lists no principals, which %s refuses (ssh logs \"Certificate lacks principal list\"); OpenSSH before 10.3 accepted it for any host name", r.version),
			fix:    fmt.Sprintf("re-sign the host key with its names as principals (sshca sign host --principals %s,...)", name),
		})
	case len(c.ValidPrincipals) == 0:
		r.note("the host certificate lists no principals, which %s accepts for any host name; OpenSSH 10.3 and later refuse it", r.version)
		r.pass("principal-list", "no principals: valid for any host name in %s", r.version)
	case contains(c.ValidPrincipals, name):
		r.pass("principal-list", "%q is one of the certificate's principals", name)
	case patterns && matchesAnyPattern(name, c.ValidPrincipals) != "":
		r.pass("principal-list", "%q matches the certificate's principal pattern %q (%s matches host certificate principals as patterns)", name, matchesAnyPattern(name, c.ValidPrincipals), r.version)
	default:
		how := fmt.Sprintf("%s compares them exactly", r.version)
		if patterns {
			how = fmt.Sprintf("%s matches them as patterns, and none matches", r.version)
		} else if matchesAnyPattern(name, c.ValidPrincipals) != "" {
			how += fmt.Sprintf("; the principal %q is a pattern that OpenSSH 10.3 and later would match", matchesAnyPattern(name, c.ValidPrincipals))
		}
		return r.fail("principal-list", &refusal{
			check: CheckNoPrincipal,
			reason: fmt.Sprintf("the host name %q is not one of the certificate's principals (%s); %s (ssh logs \"Certificate invalid: name is not a listed principal\")",
				name, listOrNone(c.ValidPrincipals), how),
			fix: fmt.Sprintf("connect with one of the certificate's names, set HostKeyAlias, or re-sign the host key with %q among its principals (sshca sign host --principals ...)", name),
		})
	}
	if len(c.CriticalOptions) > 0 {
		return r.fail("certificate-options", &refusal{
			check:  CheckInvalidOptions,
			reason: fmt.Sprintf("the host certificate has critical options (%s); ssh refuses any critical option on a host certificate", strings.Join(sortedKeys(c.CriticalOptions), ", ")),
			fix:    "re-sign the host key without critical options",
		})
	}
	r.pass("certificate-options", "no critical options")
	if ref := r.checkSigAlg(algs); ref != nil {
		ref.reason = strings.Replace(ref.reason, "; sshd checks this before anything else about the certificate", "; the ssh client checks this last", 1)
		ref.reason = strings.Replace(ref.reason, "the default CASignatureAlgorithms", "the ssh client's default CASignatureAlgorithms", 1)
		return r.fail("ca-signature-algorithm", ref)
	}
	r.pass("ca-signature-algorithm", "%s is in the client's CASignatureAlgorithms", c.Signature.Format)
	return nil
}

// checkRevokedHost is the RevokedHostKeys check (sshkey_check_revoked on
// the host key only; a KRL or key list also covers its CA).
func (r *runner) checkRevokedHost() *refusal {
	files := r.in.Server.RevokedKeys
	for i := range files {
		if ref := r.revokedBy(&files[i], r.cert, false); ref != nil {
			ref.reason = strings.ReplaceAll(ref.reason, "RevokedKeys", "RevokedHostKeys")
			ref.reason = strings.ReplaceAll(ref.reason, "sshd then refuses every public key and certificate", "ssh then refuses every host key")
			ref.fix = "issue a new host certificate (sshca sign host); " + ref.fix
			return ref
		}
	}
	if len(files) == 0 {
		r.pass("revoked-keys", "RevokedHostKeys none")
	} else {
		r.pass("revoked-keys", "neither the host key nor its CA is revoked by %s", fileNames(files))
	}
	return nil
}

// knownHost is one known_hosts line that applies to the host.
type knownHost struct {
	file    string
	n       int
	marker  string
	key     ssh.PublicKey
	pattern string
}

// checkKnownHosts is the known_hosts part of check_host_key: load the
// lines whose host patterns match (hostfile.c load_hostkeys), find a
// @cert-authority line holding the CA (check_hostkeys_by_key_or_type),
// and refuse if a @revoked line holds the key or the CA
// (check_key_not_revoked). For a port other than 22 ssh looks up
// "[host]:port"; when that finds nothing (HOST_NEW) and no HostKeyAlias is
// set, it checks again under the bare host name ("checking without port
// identifier"), where @cert-authority and @revoked lines for the bare name
// decide.
func (r *runner) checkKnownHosts() *refusal {
	lookup := r.in.Host
	withPort := r.in.Port != 0 && r.in.Port != 22
	if withPort {
		lookup = "[" + r.in.Host + "]:" + strconv.Itoa(r.in.Port)
	}
	found, others, ref := r.lookupKnownHosts(lookup)
	if ref != nil {
		return ref
	}
	if found != "" {
		r.pass("known-hosts", "%s trusts the CA %s for %q", found, fingerprint(r.cert.SignatureKey), lookup)
		return nil
	}
	tried := fmt.Sprintf("%q", lookup)
	if withPort {
		var more []string
		found, more, ref = r.lookupKnownHosts(r.in.Host)
		if ref != nil {
			ref.reason += fmt.Sprintf(" (nothing matched %q, so ssh checked again without the port)", lookup)
			return ref
		}
		if found != "" {
			r.pass("known-hosts", "%s trusts the CA %s for %q (nothing matched %q, so ssh checked again without the port)", found, fingerprint(r.cert.SignatureKey), r.in.Host, lookup)
			return nil
		}
		tried = fmt.Sprintf("%q, nor %q (ssh checks again without the port)", lookup, r.in.Host)
		others = more // the lines for other hosts are those matching neither name
	}
	ca := r.cert.SignatureKey
	reason := fmt.Sprintf("no @cert-authority line of the known_hosts files (%s) trusts the CA %s for %s", knownHostsNames(r.in.Server.KnownHosts), fingerprint(ca), tried)
	if len(others) > 0 {
		reason += fmt.Sprintf("; the CA is trusted for other hosts at %s, whose patterns do not match", strings.Join(others, ", "))
	}
	reason += "; ssh then falls back to the plain host key, which must be in known_hosts itself"
	return &refusal{
		check:  CheckCANotTrusted,
		reason: reason,
		fix:    fmt.Sprintf("add a line \"@cert-authority %s %s\" to known_hosts (sshca ca show --type host --known-hosts PATTERN prints it)", lookup, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca)))),
	}
}

// lookupKnownHosts is one check_key_in_hostkeys for the name lookup: the
// first @cert-authority line trusting the CA ("file:line", or ""), the
// @cert-authority lines holding the CA for names that do not match, and a
// refusal when a matching @revoked line holds the host key or the CA.
func (r *runner) lookupKnownHosts(lookup string) (string, []string, *refusal) {
	var lines []knownHost
	var others []string
	for _, f := range r.in.Server.KnownHosts {
		if f.Err != nil {
			r.noteOnce("known_hosts file %s cannot be read (%v); ssh skips it", f.Path, f.Err)
			continue
		}
		for _, kh := range parseKnownHosts(f) {
			if matchKnownHost(lookup, kh.pattern) {
				lines = append(lines, kh)
			} else if kh.marker == "@cert-authority" && samePlainKey(kh.key, r.cert.SignatureKey) {
				others = append(others, fmt.Sprintf("%s:%d (for %q)", kh.file, kh.n, kh.pattern))
			}
		}
	}
	ca := r.cert.SignatureKey
	found := ""
	for _, kh := range lines {
		if kh.marker == "@cert-authority" && samePlainKey(kh.key, ca) && found == "" {
			found = fmt.Sprintf("%s:%d", kh.file, kh.n)
		}
	}
	for _, kh := range lines {
		if kh.marker != "@revoked" {
			continue
		}
		switch {
		case samePlainKey(kh.key, r.cert):
			return "", nil, &refusal{
				check:  CheckRevokedKey,
				reason: fmt.Sprintf("%s:%d marks the host key %s @revoked for %q", kh.file, kh.n, fingerprint(r.cert.Key), lookup),
				fix:    "give the server a new host key and certify it (sshca sign host), then remove the @revoked line only if the old key is safe",
			}
		case samePlainKey(kh.key, ca):
			return "", nil, &refusal{
				check:  CheckRevokedCA,
				reason: fmt.Sprintf("%s:%d marks the CA key %s @revoked for %q, so no certificate it signed is accepted", kh.file, kh.n, fingerprint(ca), lookup),
				fix:    "certify the host key with the CA's current key (sshca ca list)",
			}
		}
	}
	return found, others, nil
}

func knownHostsNames(files []File) string {
	if len(files) == 0 {
		return "none given"
	}
	return fileNames(files)
}

// parseKnownHosts reads a known_hosts file (sshd.8, hostfile.c
// hostkeys_foreach_file): an optional marker, host patterns, a key; lines
// it cannot read are skipped, as ssh skips them.
func parseKnownHosts(f File) []knownHost {
	var out []knownHost
	for i, raw := range strings.Split(string(f.Data), "\n") {
		line := strings.TrimLeft(strings.TrimRight(raw, "\r"), " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		marker := ""
		if line[0] == '@' {
			sp := strings.IndexAny(line, " \t")
			if sp < 0 {
				continue
			}
			marker = line[:sp]
			if marker != "@cert-authority" && marker != "@revoked" {
				continue
			}
			line = strings.TrimLeft(line[sp:], " \t")
		}
		sp := strings.IndexAny(line, " \t")
		if sp < 0 {
			continue
		}
		pattern := line[:sp]
		key, err := parseKeyLine(strings.TrimLeft(line[sp:], " \t"))
		if err != nil {
			continue
		}
		out = append(out, knownHost{file: f.Path, n: i + 1, marker: marker, key: key, pattern: pattern})
	}
	return out
}

// matchKnownHost matches a host name against a known_hosts host field: a
// hashed name ("|1|salt|hmac", HMAC-SHA1 of the name keyed with the salt),
// or a comma-separated pattern list, compared without case, in which a
// negated match excludes (match.c match_hostname).
func matchKnownHost(host, field string) bool {
	if strings.HasPrefix(field, "|1|") {
		parts := strings.Split(field[3:], "|")
		if len(parts) != 2 {
			return false
		}
		salt, err1 := base64.StdEncoding.DecodeString(parts[0])
		want, err2 := base64.StdEncoding.DecodeString(parts[1])
		if err1 != nil || err2 != nil {
			return false
		}
		m := hmac.New(sha1.New, salt)
		m.Write([]byte(host))
		return hmac.Equal(m.Sum(nil), want)
	}
	return matchPatternList(strings.ToLower(host), field, true) == 1
}

// matchesAnyPattern returns the first principal that is a pattern ('*' or
// '?') matching name as match.c match_pattern does, or "".
func matchesAnyPattern(name string, principals []string) string {
	for _, p := range principals {
		if strings.ContainsAny(p, "*?") && matchPattern(name, p) {
			return p
		}
	}
	return ""
}

// noteOnce adds a note unless the same note is already there (a file that
// cannot be read is noted once, though ssh may look in it twice).
func (r *runner) noteOnce(format string, args ...any) {
	n := fmt.Sprintf(format, args...)
	if !slices.Contains(r.notes, n) {
		r.notes = append(r.notes, n)
	}
}
