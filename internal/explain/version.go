package explain

import (
	"fmt"
	"regexp"
	"strconv"
)

// Version is the OpenSSH release whose rules Explain replays. The zero
// value means DefaultVersion.
//
// What changes with the release, as far as certificates go:
//
//   - 9.4: KRL signature sections are skipped instead of verified, and
//     extension sections that are not critical are ignored (krl.c);
//     before, both made the KRL fail to load.
//   - the default CASignatureAlgorithms of 10.5 has
//     webauthn-sk-ecdsa-sha2-nistp256@openssh.com, 9.2's has not (Explain
//     uses 10.5's from 10.0 on; the release between that added it is not
//     pinned down here).
//   - 10.1: DSA is gone: a certificate of a DSA key or from a DSA CA
//     cannot be parsed, and ssh-dss is no signature algorithm any more.
//   - 10.4: ssh-mldsa44-ed25519@openssh.com is a signature algorithm.
//   - 10.3: RevokedKeys takes several files; a host certificate without
//     principals is refused, and the ssh client matches host certificate
//     principals as patterns (sshkey.c sshkey_cert_check_authority,
//     match_pattern), so "*.corp" is valid for web1.corp.
type Version struct {
	Major, Minor int
}

// DefaultVersion is Debian 12's OpenSSH, 9.2.
var DefaultVersion = Version{Major: 9, Minor: 2}

var versionRE = regexp.MustCompile(`^(?:OpenSSH_)?(\d+)\.(\d+)(?:p\d+)?\b`)

// anyVersionRE finds a version in the output of sshd -V or ssh -V.
var anyVersionRE = regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`)

// ParseVersion reads "9.2", "10.5", "10.5p1" or "OpenSSH_10.5p1".
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return Version{}, fmt.Errorf("explain: OpenSSH version %q: want a version such as 9.2 or 10.5", s)
	}
	return versionOf(m[1], m[2])
}

// VersionFromOutput finds the version in what `sshd -V` or `ssh -V`
// prints ("OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 ..."; older
// sshd print it inside their usage message).
func VersionFromOutput(out string) (Version, error) {
	m := anyVersionRE.FindStringSubmatch(out)
	if m == nil {
		return Version{}, fmt.Errorf("explain: no OpenSSH version in %q", truncate(out, 120))
	}
	return versionOf(m[1], m[2])
}

func versionOf(major, minor string) (Version, error) {
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil || a < 1 || a > 99 || b < 0 || b > 99 {
		return Version{}, fmt.Errorf("explain: OpenSSH version %s.%s is out of range", major, minor)
	}
	return Version{Major: a, Minor: b}, nil
}

// orDefault returns v, or DefaultVersion for the zero value.
func (v Version) orDefault() Version {
	if v == (Version{}) {
		return DefaultVersion
	}
	return v
}

// AtLeast reports whether v (or DefaultVersion, for the zero value) is
// major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	v = v.orDefault()
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// String returns "OpenSSH 9.2".
func (v Version) String() string {
	v = v.orDefault()
	return fmt.Sprintf("OpenSSH %d.%d", v.Major, v.Minor)
}

// strictKRL: before 9.4, KRL signature and extension sections make the
// whole KRL fail to load.
func (v Version) strictKRL() bool { return !v.AtLeast(9, 4) }

// severalRevokedKeys: RevokedKeys takes several files.
func (v Version) severalRevokedKeys() bool { return v.AtLeast(10, 3) }

// hostPrincipalPatterns: the client matches host certificate principals
// as patterns and refuses an empty principal list.
func (v Version) hostPrincipalPatterns() bool { return v.AtLeast(10, 3) }

// noDSA: DSA keys and CAs cannot be parsed.
func (v Version) noDSA() bool { return v.AtLeast(10, 1) }
