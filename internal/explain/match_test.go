package explain

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		s, pattern string
		want       bool
	}{
		{"ssh-rsa", "ssh-rsa", true}, {"ssh-rsa", "ssh-*", true}, {"ssh-rsa", "*", true}, {"", "*", true},
		{"ssh-rsa", "ssh-?sa", true}, {"ssh-rsa", "*rsa", true}, {"rsa-sha2-512", "rsa-*-512", true},
		{"abc", "a*b*c", true}, {"aXbYc", "a*b*c", true}, {"a*b", "a*b", true},
		{"ssh-rsa", "ssh-", false}, {"ssh-rsa", "rsa", false}, {"ssh-rsa", "ssh-rsa?", false}, {"", "?", false},
		{"abcab", "*ab*ab", true}, {"abcac", "*ab*ab", false},
	} {
		name := "ok/"
		if !tc.want {
			name = "fail/"
		}
		t.Run(name+tc.s+"~"+tc.pattern, func(t *testing.T) {
			if got := matchPattern(tc.s, tc.pattern); got != tc.want {
				t.Errorf("matchPattern(%q, %q) = %v", tc.s, tc.pattern, got)
			}
		})
	}
}

func TestMatchCIDRList(t *testing.T) {
	v4 := netip.MustParseAddr("127.0.0.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name string
		addr netip.Addr
		list string
		want int
	}{
		{"ok/single", v4, "127.0.0.1", 1},
		{"ok/net", v4, "127.0.0.0/8", 1},
		{"ok/second", v4, "10.0.0.0/8,127.0.0.0/24", 1},
		{"ok/zero", v4, "0.0.0.0/0", 1},
		{"ok/v6", v6, "2001:db8::/32", 1},
		{"ok/syntax-only", netip.Addr{}, "10.0.0.0/8,::1", 0},
		{"fail/outside", v4, "10.0.0.0/8", 0},
		{"fail/family", v4, "::/0", 0},
		{"fail/mapped-net", v4, "::ffff:127.0.0.0/104", 0},
		{"fail/host-bits", v4, "127.0.0.1/8", -1},
		{"fail/mask-too-long", v4, "127.0.0.1/33", -1},
		{"fail/empty-entry", v4, "127.0.0.1,", -1},
		{"fail/hostname", v4, "localhost", -1},
		{"fail/wildcard", v4, "127.0.0.*", -1},
		{"fail/space", v4, "127.0.0.1, 10.0.0.0/8", -1},
		{"fail/bad-mask", v4, "127.0.0.0/x", -1},
		{"fail/invalid-after-match", v4, "127.0.0.1,bogus", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := matchCIDRList(tc.addr, tc.list)
			if got != tc.want {
				t.Errorf("matchCIDRList(%v, %q) = %d (%s), want %d", tc.addr, tc.list, got, why, tc.want)
			}
			if (got < 0) != (why != "") {
				t.Errorf("result %d with explanation %q", got, why)
			}
		})
	}
}

func TestMatchHostAndIP(t *testing.T) {
	a := netip.MustParseAddr("192.168.1.5")
	for _, tc := range []struct {
		name, patterns string
		want           int
	}{
		{"ok/cidr", "192.168.0.0/16", 1},
		{"ok/wildcard", "192.168.1.*", 1},
		{"ok/list", "10.0.0.0/8,192.168.1.5", 1},
		{"fail/negated", "192.168.0.0/16,!192.168.1.5", 0},
		{"fail/negated-wildcard", "*,!192.168.1.*", 0},
		{"fail/no-match", "10.*", 0},
		{"fail/bad-mask", "192.168.1.5/16", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchHostAndIP(a, tc.patterns); got != tc.want {
				t.Errorf("matchHostAndIP(%v, %q) = %d, want %d", a, tc.patterns, got, tc.want)
			}
		})
	}
}

func TestParseAuthOptions(t *testing.T) {
	for _, tc := range []struct {
		name, opts string
		check      func(o *authOptions) bool
		err        string
	}{
		{name: "ok/none", opts: "", check: func(o *authOptions) bool { return o.pty && o.from == nil }},
		{name: "ok/from", opts: `from="10.0.0.0/8,!10.1.*"`, check: func(o *authOptions) bool { return o.from != nil && *o.from == "10.0.0.0/8,!10.1.*" }},
		{name: "ok/case-insensitive", opts: `FROM="a",No-Pty`, check: func(o *authOptions) bool { return o.from != nil && !o.pty }},
		{name: "ok/restrict-pty", opts: "restrict,pty", check: func(o *authOptions) bool { return o.restricted && o.pty }},
		{name: "ok/command-escaped-quote", opts: `command="echo \"hi\""`, check: func(o *authOptions) bool { return *o.command == `echo "hi"` }},
		{name: "ok/stops-at-blank", opts: `no-pty role-a`, check: func(o *authOptions) bool { return !o.pty }},
		{name: "ok/expiry-utc", opts: `expiry-time="20300101Z"`, check: func(o *authOptions) bool {
			return o.validBefore == uint64(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
		}},
		{name: "ok/earliest-expiry", opts: `expiry-time="20300101Z",expiry-time="202901011200Z"`, check: func(o *authOptions) bool { return o.expiryText == "202901011200Z" }},
		{name: "ok/permits", opts: `permitopen="host:22",permitlisten="8080",permitopen="[::1]:*",tunnel="any",environment="A_B=c"`},
		{name: "ok/flags", opts: "cert-authority,no-touch-required,verify-required,agent-forwarding,no-x11-forwarding,user-rc,no-port-forwarding",
			check: func(o *authOptions) bool { return o.certAuthority }},
		{name: "fail/unknown", opts: "bogus", err: "unknown key option"},
		{name: "fail/prefix-only", opts: "ptyx", err: "unknown key option"},
		{name: "fail/trailing-comma", opts: "no-pty,", err: "unexpected end-of-options"},
		{name: "fail/unquoted", opts: "from=10.0.0.1", err: "missing start quote"},
		{name: "fail/unterminated", opts: `command="ls`, err: "missing end quote"},
		{name: "fail/two-commands", opts: `command="a",command="b"`, err: "multiple"},
		{name: "fail/bad-expiry", opts: `expiry-time="2030"`, err: "invalid expires time"},
		{name: "fail/bad-env", opts: `environment="A-B=c"`, err: "invalid environment"},
		{name: "fail/bad-port", opts: `permitopen="host:0"`, err: "invalid permission port"},
		{name: "fail/bad-tunnel", opts: `tunnel="x"`, err: "invalid tun device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseAuthOptions(tc.opts, time.UTC)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil && !tc.check(o) {
				t.Errorf("options %q parsed as %+v", tc.opts, o)
			}
		})
	}
}

func TestParsePrincipals(t *testing.T) {
	data := "# comment\n\n   role-a\nrole-b # note\nfrom=\"10.*\" role-c\t\nbad opt role-d\nrole-e\r\n\tx\ty\n"
	got := parsePrincipals([]byte(data), time.UTC)
	want := []struct {
		n       int
		name    string
		options bool
	}{
		{3, "role-a", true}, {4, "role-b", true}, {5, "role-c", true}, {6, "role-d", false}, {7, "role-e\r", true}, {8, "y", false},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d lines %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i].n != w.n || got[i].name != w.name || (got[i].optErr == nil) != w.options {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], w)
		}
	}
}

func TestParseKeyLine(t *testing.T) {
	f := getFixture(t)
	l := strings.TrimSpace(line(f.ca.PublicKey()))
	fields := strings.Fields(l)
	for _, tc := range []struct {
		name, line string
		ok         bool
	}{
		{"ok/plain", l, true},
		{"ok/comment", l + " a comment", true},
		{"ok/short-name", "ED25519 " + fields[1], true},
		{"ok/tabs", fields[0] + "\t\t" + fields[1], true},
		{"fail/type-only", fields[0], false},
		{"fail/options", "cert-authority " + l, false},
		{"fail/wrong-type", "ssh-rsa " + fields[1], false},
		{"fail/bad-base64", fields[0] + " !!!", false},
		{"fail/not-a-key", "hello world", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseKeyLine(tc.line)
			if (err == nil) != tc.ok {
				t.Errorf("parseKeyLine(%q) err = %v, want ok=%v", tc.line, err, tc.ok)
			}
		})
	}
}
