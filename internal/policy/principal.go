package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxPrincipalLen bounds one principal. OpenSSH has no explicit limit, but
// principals end up as user and host names, which are far shorter.
const maxPrincipalLen = 255

// ValidPrincipal reports whether p can be a certificate principal: not
// empty, at most 255 bytes of valid UTF-8, and free of control and
// invisible characters, whitespace, commas (ssh-keygen -n and
// principals="..." split on them) and wildcards ('*', '?'). It returns nil
// or a *DenyError with rule bad-principal.
func ValidPrincipal(p string) error {
	if why := principalProblem(p); why != "" {
		return deny(RuleBadPrincipal, "invalid principal %s: %s", quote(p), why)
	}
	return nil
}

// principalProblem says why p is not a valid principal, or "".
func principalProblem(p string) string {
	switch {
	case p == "":
		return "empty"
	case len(p) > maxPrincipalLen:
		return fmt.Sprintf("longer than %d bytes", maxPrincipalLen)
	case strings.ContainsRune(p, '#'):
		// sshd cuts an AuthorizedPrincipalsFile line at '#': "admin#x"
		// would grant "admin" on the server.
		return "contains '#' (a comment in principals files)"
	}
	return charProblem(p)
}

// charProblem says which forbidden character s contains, or "".
func charProblem(s string) string {
	// Most principals are ASCII: judged byte by byte, as charProblemRunes
	// judges them (TestCharProblemASCII).
	problem := ""
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			return charProblemRunes(s)
		case problem != "":
		case c < 0x20 || c == 0x7f:
			problem = "contains a control character"
		case c == ' ':
			problem = "contains whitespace"
		case c == ',':
			problem = "contains a comma"
		case c == '*' || c == '?':
			problem = "contains a wildcard"
		}
	}
	return problem
}

// charProblemRunes is charProblem for any string.
func charProblemRunes(s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			return "contains a control character"
		case unicode.IsSpace(r):
			return "contains whitespace"
		case unicode.Is(unicode.Cf, r):
			return "contains an invisible formatting character"
		case r == ',':
			return "contains a comma"
		case r == '*' || r == '?':
			return "contains a wildcard"
		}
	}
	return ""
}

// hostNameProblem says why p is not a concrete host principal (a DNS-style
// host name or an IP address without zone), or "".
func hostNameProblem(p string) string {
	if why := principalProblem(p); why != "" {
		return why
	}
	if ip, err := netip.ParseAddr(p); err == nil {
		if ip.Zone() != "" {
			return "IPv6 zone not allowed"
		}
		return ""
	}
	if strings.Contains(p, ":") {
		return "not a valid IP address"
	}
	if strings.Trim(p, "0123456789.") == "" {
		return "looks like an IP address but is not one"
	}
	if len(p) > 253 {
		return "host name longer than 253 bytes"
	}
	for label := range strings.SplitSeq(p, ".") {
		if label == "" {
			return "empty label in host name"
		}
		if len(label) > 63 {
			return "host name label longer than 63 bytes"
		}
		if label[0] == '-' {
			return "host name label starts with '-'"
		}
		for i := 0; i < len(label); i++ {
			if !isHostChar(label[i]) {
				return fmt.Sprintf("host names use letters, digits, '-' and '_', not %q", label[i])
			}
		}
	}
	return ""
}

func isHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// ValidHostPattern reports whether p is a usable host-role principal: an
// IP address, a CIDR prefix without host bits (IPv4 or IPv6), or a glob of
// host-name characters with '*' and '?'. It returns nil when p is valid.
func ValidHostPattern(p string) error {
	if why := hostPatternProblem(p); why != "" {
		return fmt.Errorf("policy: invalid host pattern %s: %s", quote(p), why)
	}
	return nil
}

func hostPatternProblem(p string) string {
	switch {
	case p == "":
		return "empty"
	case len(p) > maxPrincipalLen:
		return fmt.Sprintf("longer than %d bytes", maxPrincipalLen)
	}
	if strings.Contains(p, "/") {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return "not a CIDR prefix"
		}
		if pfx.Masked() != pfx {
			return "host bits set (network is " + pfx.Masked().String() + ")"
		}
		return ""
	}
	if ip, err := netip.ParseAddr(p); err == nil {
		if ip.Zone() != "" {
			return "IPv6 zone not allowed"
		}
		return ""
	}
	if strings.Contains(p, ":") {
		return "not a valid IP address"
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !isHostChar(c) && c != '.' && c != '*' && c != '?' {
			return fmt.Sprintf("host patterns use letters, digits, '.', '-', '_', '*' and '?', not %q", c)
		}
	}
	return ""
}

// MatchHostPattern reports whether the host principal name matches
// pattern. A CIDR pattern matches IP addresses inside it (IPv4-mapped IPv6
// addresses count as IPv4); an IP pattern matches the same address in any
// spelling; any other pattern is a glob, compared ASCII case-insensitively,
// where '*' matches any run of characters (dots included, as in OpenSSH's
// match_pattern) and '?' exactly one.
func MatchHostPattern(pattern, name string) bool {
	if strings.Contains(pattern, "/") {
		pfx, err := netip.ParsePrefix(pattern)
		if err != nil {
			return false
		}
		ip, err := netip.ParseAddr(name)
		if err != nil || ip.Zone() != "" {
			return false
		}
		return pfx.Contains(ip) || pfx.Contains(ip.Unmap())
	}
	if pip, err := netip.ParseAddr(pattern); err == nil {
		if ip, err := netip.ParseAddr(name); err == nil {
			return pip.Zone() == "" && ip.Zone() == "" && pip.Unmap() == ip.Unmap()
		}
	}
	return glob(pattern, name)
}

// glob matches name against pattern with '*' and '?', ignoring ASCII case.
// It backtracks only to the last '*', so it runs in O(len(pattern) *
// len(name)) at worst.
func glob(pattern, name string) bool {
	px, nx := 0, 0
	starP, starN := -1, 0
	for nx < len(name) {
		if px < len(pattern) {
			switch c := pattern[px]; {
			case c == '*':
				starP, starN = px, nx
				px++
				continue
			case c == '?' || lower(c) == lower(name[nx]):
				px++
				nx++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		px, nx = starP+1, starN
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
