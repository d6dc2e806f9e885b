package explain

import (
	"net/netip"
	"strconv"
	"strings"
)

// matchPattern is match.c match_pattern: s matches pattern, where '*'
// matches any run of characters and '?' any one character. It uses the
// greedy algorithm with one backtracking point, which gives the same
// answers as OpenSSH's recursion in linear space and quadratic time.
func matchPattern(s, pattern string) bool {
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == s[si]):
			si++
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// matchPatternList is match.c match_pattern_list: 1 if s matches a
// positive pattern of the comma-separated list, -1 if it matches a negated
// one ("!pat"), 0 otherwise. With lower, the patterns are lower-cased
// (the caller lower-cases s).
func matchPatternList(s, list string, lower bool) int {
	got := 0
	for _, sub := range strings.Split(list, ",") {
		negated := strings.HasPrefix(sub, "!")
		if negated {
			sub = sub[1:]
		}
		// match_pattern_list gives up on a sub-pattern of 1024 bytes or more.
		if len(sub) >= 1023 {
			return 0
		}
		if lower {
			sub = strings.ToLower(sub)
		}
		if matchPattern(s, sub) {
			if negated {
				return -1
			}
			got = 1
		}
	}
	return got
}

// parseCIDR is addr.c addr_pton_cidr: "addr" or "addr/len", where the
// address has no bits set beyond the mask. It returns -1 for a parse
// error and -2 for an inconsistent mask, like OpenSSH.
//
// OpenSSH parses the address with getaddrinfo(AI_NUMERICHOST), which on
// glibc also takes shorthand IPv4 forms such as "127.1"; this does not.
func parseCIDR(s string) (netip.Prefix, int) {
	if len(s) >= 64 {
		return netip.Prefix{}, -1
	}
	a, mask, hasMask := strings.Cut(s, "/")
	bits := -1
	if hasMask {
		if mask == "" || mask[0] < '0' || mask[0] > '9' {
			return netip.Prefix{}, -1
		}
		n, err := strconv.ParseUint(mask, 10, 32)
		if err != nil || n > 128 {
			return netip.Prefix{}, -1
		}
		bits = int(n)
	}
	addr, err := netip.ParseAddr(a)
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, -1
	}
	if bits < 0 {
		bits = addr.BitLen()
	}
	if bits > addr.BitLen() {
		return netip.Prefix{}, -2
	}
	p := netip.PrefixFrom(addr, bits)
	if p.Masked().Addr() != addr {
		return netip.Prefix{}, -2
	}
	return p, 0
}

// validCIDRChars is addrmatch.c VALID_CIDR_CHARS.
const validCIDRChars = "0123456789abcdefABCDEF.:/"

// matchCIDRList is addrmatch.c addr_match_cidr_list, which judges a
// certificate's source-address: with a valid addr, 1 if it is inside one
// of the comma-separated networks, 0 if not; -1 if the list is malformed
// (with an invalid addr, only the list's syntax is checked). why says
// what is malformed.
func matchCIDRList(addr netip.Addr, list string) (result int, why string) {
	ret := 0
	for _, entry := range strings.Split(list, ",") {
		if entry == "" {
			return -1, "empty entry in the list"
		}
		// INET6_ADDRSTRLEN + 3
		if len(entry) > 46+3 {
			return -1, "entry " + strconv.Quote(truncate(entry, 100)) + " is too long"
		}
		if strings.IndexFunc(entry, func(c rune) bool { return !strings.ContainsRune(validCIDRChars, c) }) >= 0 {
			return -1, "entry " + strconv.Quote(entry) + " contains characters other than hex digits, '.', ':' and '/'"
		}
		p, r := parseCIDR(entry)
		switch r {
		case -1:
			return -1, "entry " + strconv.Quote(entry) + " is not an address or network"
		case -2:
			return -1, "entry " + strconv.Quote(entry) + " has bits set beyond its mask length (write the network address, e.g. 10.0.0.0/8)"
		}
		if addr.IsValid() && addr.Is4() == p.Addr().Is4() && p.Contains(addr) {
			ret = 1
		}
	}
	return ret, ""
}

// matchAddrList is addrmatch.c addr_match_list, used for from= patterns:
// entries are networks or wildcard patterns, "!" negates. It returns 1 on
// a match, 0 on none, -1 on a negated match, -2 on an invalid entry.
func matchAddrList(addr netip.Addr, list string) int {
	ret := 0
	ip := addr.String()
	for _, entry := range strings.Split(list, ",") {
		neg := strings.HasPrefix(entry, "!")
		if neg {
			entry = entry[1:]
		}
		if entry == "" {
			return -2
		}
		p, r := parseCIDR(entry)
		found := false
		switch r {
		case -2:
			return -2
		case 0:
			found = addr.Is4() == p.Addr().Is4() && p.Contains(addr)
		default:
			found = matchPattern(ip, entry)
		}
		if found {
			if neg {
				return -1
			}
			ret = 1
		}
	}
	return ret
}

// matchHostAndIP is match.c match_host_and_ip for a client known only by
// its address: sshd with UseDNS no (the default) uses the address as the
// host name too.
func matchHostAndIP(addr netip.Addr, patterns string) int {
	mip := matchAddrList(addr, patterns)
	switch mip {
	case -2:
		return -1
	case -1:
		return 0
	}
	mhost := matchPatternList(strings.ToLower(addr.String()), patterns, true)
	if mhost == -1 {
		return 0
	}
	if mhost == 0 && mip == 0 {
		return 0
	}
	return 1
}
