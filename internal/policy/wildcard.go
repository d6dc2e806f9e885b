package policy

import (
	"fmt"
	"strings"
)

// Wildcard host principals (Role.WildcardPrincipals).
//
// OpenSSH 10.3 and later match the principals of a host certificate as
// patterns (sshkey.c sshkey_cert_check_authority with wildcard_pattern,
// match.c match_pattern: '*' any run of characters, dots included, '?'
// exactly one); older releases, and other SSH implementations, compare
// them exactly, so a client before 10.3 refuses a certificate for
// "*.corp" when connecting to web1.corp. One such certificate vouches for
// every host its pattern matches, so a stolen host key with it can
// impersonate all of them: a role opts in explicitly, and the pattern must
// lie inside one of the role's own glob patterns.

// hasWildcard reports whether a principal is a pattern.
func hasWildcard(p string) bool { return strings.ContainsAny(p, "*?") }

// wildcardHostProblem says why p is not an acceptable wildcard host
// principal, or "": host-name characters, '.', '*' and '?', and at least
// one dot-separated label free of wildcards, so that "*", "*.*" or "?*"
// (every host) are refused even where a role's patterns would allow them.
func wildcardHostProblem(p string) string {
	if why := principalProblem(p); why != "" && why != "contains a wildcard" {
		return why
	}
	literal := false
	for label := range strings.SplitSeq(p, ".") {
		if label == "" {
			return "empty label in host pattern"
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isHostChar(c) && c != '*' && c != '?' {
				return fmt.Sprintf("host patterns use letters, digits, '-', '_', '*' and '?', not %q", c)
			}
		}
		if !hasWildcard(label) {
			literal = true
		}
	}
	if !literal {
		return "no label is free of wildcards, so it matches far too many hosts; name at least one, as in *.corp"
	}
	return ""
}

// wildcardCovered reports whether every host name that principal matches
// is also matched by one of the role's glob patterns. IP addresses and
// CIDR prefixes of the role cover no pattern: "10.0.1.*" also matches the
// name "10.0.1.5.example.net".
func wildcardCovered(rolePatterns []string, principal string) bool {
	for _, pat := range rolePatterns {
		if strings.Contains(pat, "/") || !hasWildcard(pat) {
			continue
		}
		if globCovers(pat, principal) {
			return true
		}
	}
	return false
}

// globCovers reports, conservatively, whether the glob outer matches every
// string that the glob inner matches (ASCII case-insensitively): inner is
// read as a sequence of tokens that outer must match, where outer's '*'
// swallows any run of tokens, outer's '?' one literal or '?' token, and a
// literal only the same literal. It never says yes wrongly; it may say no
// for exotic patterns, which then simply are not issued.
func globCovers(outer, inner string) bool {
	// memo[i][j]: outer[i:] covers inner[j:]; 0 unknown, 1 yes, 2 no.
	memo := make([][]byte, len(outer)+1)
	for i := range memo {
		memo[i] = make([]byte, len(inner)+1)
	}
	var covers func(i, j int) bool
	covers = func(i, j int) bool {
		if m := memo[i][j]; m != 0 {
			return m == 1
		}
		var ok bool
		switch {
		case i == len(outer):
			ok = j == len(inner)
		case outer[i] == '*':
			ok = covers(i+1, j) || j < len(inner) && covers(i, j+1)
		case j == len(inner):
			ok = false
		case outer[i] == '?':
			ok = inner[j] != '*' && covers(i+1, j+1)
		default:
			ok = inner[j] != '*' && inner[j] != '?' && lower(outer[i]) == lower(inner[j]) && covers(i+1, j+1)
		}
		memo[i][j] = 2
		if ok {
			memo[i][j] = 1
		}
		return ok
	}
	return covers(0, 0)
}
