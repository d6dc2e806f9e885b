package explain

import (
	"errors"
	"fmt"
	"strings"
)

// defaultCASigAlgs92 is SSH_ALLOWED_CA_SIGALGS of OpenSSH 9.2
// (myproposal.h), as `sshd -T` prints it. ssh-rsa (SHA-1) left it in
// OpenSSH 8.2.
const defaultCASigAlgs92 = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521," +
	"sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256"

// defaultCASigAlgs105 is the same for OpenSSH 10.5.
const defaultCASigAlgs105 = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521," +
	"sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,webauthn-sk-ecdsa-sha2-nistp256@openssh.com," +
	"rsa-sha2-512,rsa-sha2-256"

// allSigAlgs92 is what OpenSSH 9.2 supports, `ssh -Q sig`
// (sshkey_alg_list(0, 1, 1, ',')); patterns select from it.
const allSigAlgs92 = "ssh-ed25519,sk-ssh-ed25519@openssh.com,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384," +
	"ecdsa-sha2-nistp521,sk-ecdsa-sha2-nistp256@openssh.com,webauthn-sk-ecdsa-sha2-nistp256@openssh.com," +
	"ssh-dss,ssh-rsa,rsa-sha2-256,rsa-sha2-512"

// allSigAlgs105 is the same for OpenSSH 10.5: no ssh-dss (10.1), and
// ML-DSA (10.4).
const allSigAlgs105 = "ssh-ed25519,sk-ssh-ed25519@openssh.com,ssh-mldsa44-ed25519@openssh.com,ecdsa-sha2-nistp256," +
	"ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ecdsa-sha2-nistp256@openssh.com,webauthn-sk-ecdsa-sha2-nistp256@openssh.com," +
	"ssh-rsa,rsa-sha2-256,rsa-sha2-512"

// sigAlgs returns the default CASignatureAlgorithms and every supported
// signature algorithm of a release.
func (v Version) sigAlgs() (defaults, all string) {
	switch {
	case !v.AtLeast(10, 0):
		return defaultCASigAlgs92, allSigAlgs92
	case !v.AtLeast(10, 1):
		return defaultCASigAlgs105, allSigAlgs92
	case !v.AtLeast(10, 4):
		return defaultCASigAlgs105, strings.Replace(allSigAlgs105, "ssh-mldsa44-ed25519@openssh.com,", "", 1)
	}
	return defaultCASigAlgs105, allSigAlgs105
}

// CASignatureAlgorithms returns the CA signature algorithms OpenSSH 9.2's
// sshd allows for a CASignatureAlgorithms value; see
// CASignatureAlgorithmsOf.
func CASignatureAlgorithms(value string) ([]string, error) {
	return CASignatureAlgorithmsOf(value, DefaultVersion)
}

// CASignatureAlgorithmsOf returns the CA signature algorithms the sshd of
// release v allows for a CASignatureAlgorithms value, assembled as
// kex_assemble_names does: "" gives the default; "+list" appends to it,
// "-list" removes what matches the patterns of list from it (removing
// everything leaves the default, as sshd -T shows), "^list" prepends; a
// plain list replaces it. Except with "-", each entry may be a
// wildcard pattern and is replaced by the supported algorithms it matches.
func CASignatureAlgorithmsOf(value string, v Version) ([]string, error) {
	algs, err := assembleCASigAlgs(value, v)
	if err != nil {
		return nil, fmt.Errorf("explain: CASignatureAlgorithms %q: %w", value, err)
	}
	return algs, nil
}

func assembleCASigAlgs(value string, v Version) ([]string, error) {
	defaultCASigAlgs, allSigAlgs := v.sigAlgs()
	if value == "" {
		return strings.Split(defaultCASigAlgs, ","), nil
	}
	var list string
	switch value[0] {
	case '+':
		list = namesCat(defaultCASigAlgs, value[1:])
	case '-':
		out := filterDenylist(defaultCASigAlgs, value[1:])
		if len(out) == 0 {
			// sshd assembles the list again when it rereads its
			// configuration, and an empty list then becomes the default
			// (as sshd -T shows).
			return strings.Split(defaultCASigAlgs, ","), nil
		}
		return out, nil
	case '^':
		list = namesCat(value[1:], defaultCASigAlgs)
	default:
		list = value
	}
	var out []string
	for _, pat := range strings.Split(list, ",") {
		if strings.HasPrefix(pat, "!") {
			return nil, errors.New("negated patterns are not allowed here")
		}
		for _, alg := range strings.Split(allSigAlgs, ",") {
			if matchPatternList(alg, pat, false) == 1 && !contains(out, alg) {
				out = append(out, alg)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no supported algorithm matches")
	}
	return out, nil
}

// namesCat is kex.c kex_names_cat: a followed by the names of b not in a.
func namesCat(a, b string) string {
	names := strings.Split(a, ",")
	for _, n := range strings.Split(b, ",") {
		if n != "" && !contains(names, n) {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

// filterDenylist is match.c match_filter_denylist: the names of list that
// match no pattern of the comma-separated patterns.
func filterDenylist(list, patterns string) []string {
	out := []string{}
	for _, n := range strings.Split(list, ",") {
		if matchPatternList(n, patterns, false) != 1 {
			out = append(out, n)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
