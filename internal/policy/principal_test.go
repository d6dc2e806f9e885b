package policy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/testkit"
)

func TestValidPrincipal(t *testing.T) {
	tests := []struct {
		name string
		p    string
		why  string // "" when valid
	}{
		{name: "ok/simple", p: "role-deploy"},
		{name: "ok/email-like", p: "alice@example.com"},
		{name: "ok/utf8", p: "jürgen"},
		{name: "ok/255-bytes", p: strings.Repeat("a", 255)},
		{name: "ok/braces-are-plain-text", p: "a{b}"},
		{name: "fail/empty", p: "", why: "empty"},
		{name: "fail/256-bytes", p: strings.Repeat("a", 256), why: "longer than 255 bytes"},
		{name: "fail/space", p: "a b", why: "contains whitespace"},
		{name: "fail/nbsp", p: "a\u00a0b", why: "contains whitespace"},
		{name: "fail/tab", p: "a\tb", why: "contains a control character"},
		{name: "fail/nul", p: "a\x00b", why: "contains a control character"},
		{name: "fail/newline", p: "a\n", why: "contains a control character"},
		{name: "fail/del", p: "a\x7f", why: "contains a control character"},
		{name: "fail/zero-width-space", p: "ro\u200bot", why: "contains an invisible formatting character"},
		{name: "fail/comma", p: "a,b", why: "contains a comma"},
		{name: "fail/hash", p: "admin#x", why: "contains '#' (a comment in principals files)"},
		{name: "fail/star", p: "*", why: "contains a wildcard"},
		{name: "fail/question", p: "ro?t", why: "contains a wildcard"},
		{name: "fail/bad-utf8", p: "a\xffb", why: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidPrincipal(tt.p)
			if tt.why == "" {
				if err != nil {
					t.Fatalf("ValidPrincipal(%q) = %v", tt.p, err)
				}
				return
			}
			var de *DenyError
			if !errors.As(err, &de) || de.Rule != RuleBadPrincipal {
				t.Fatalf("ValidPrincipal(%q) = %v, want bad-principal", tt.p, err)
			}
			if !strings.HasSuffix(err.Error(), ": "+tt.why) {
				t.Errorf("error %q does not end in %q", err, tt.why)
			}
		})
	}
}

func TestValidHostPattern(t *testing.T) {
	tests := []struct {
		name string
		p    string
		want string // "" when valid, else the full message
	}{
		{name: "ok/glob", p: "*.corp"},
		{name: "ok/question-marks", p: "app-??.corp"},
		{name: "ok/star-alone", p: "*"},
		{name: "ok/ipv4-cidr", p: "10.0.1.0/24"},
		{name: "ok/ipv6-cidr", p: "2001:db8::/32"},
		{name: "ok/ipv4-address", p: "10.0.1.5"},
		{name: "ok/ipv6-address", p: "2001:db8::5"},
		{name: "ok/underscore", p: "_srv.corp"},
		{name: "fail/empty", p: "", want: `policy: invalid host pattern "": empty`},
		{name: "fail/host-bits", p: "10.0.1.5/24", want: `policy: invalid host pattern "10.0.1.5/24": host bits set (network is 10.0.1.0/24)`},
		{name: "fail/bad-mask", p: "10.0.1.0/33", want: `policy: invalid host pattern "10.0.1.0/33": not a CIDR prefix`},
		{name: "fail/zone", p: "fe80::1%eth0", want: `policy: invalid host pattern "fe80::1%eth0": IPv6 zone not allowed`},
		{name: "fail/bad-ipv6", p: "2001:db8:::1", want: `policy: invalid host pattern "2001:db8:::1": not a valid IP address`},
		{name: "fail/negation", p: "!evil.corp", want: `policy: invalid host pattern "!evil.corp": host patterns use letters, digits, '.', '-', '_', '*' and '?', not '!'`},
		{name: "fail/comma-list", p: "a.corp,b.corp", want: `policy: invalid host pattern "a.corp,b.corp": host patterns use letters, digits, '.', '-', '_', '*' and '?', not ','`},
		{name: "fail/space", p: "a corp", want: `policy: invalid host pattern "a corp": host patterns use letters, digits, '.', '-', '_', '*' and '?', not ' '`},
		{name: "fail/too-long", p: strings.Repeat("a", 256), want: `policy: invalid host pattern "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"...: longer than 255 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidHostPattern(tt.p)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("ValidHostPattern(%q) = %q, want %q", tt.p, got, tt.want)
			}
		})
	}
}

func TestValidSourceAddress(t *testing.T) {
	for _, ok := range []string{"10.0.0.0/8", "10.0.0.1", "::1", "2001:db8::/32", "0.0.0.0/0", "::ffff:10.0.0.1"} {
		t.Run("ok/"+ok, func(t *testing.T) {
			if err := ValidSourceAddress(ok); err != nil {
				t.Error(err)
			}
		})
	}
	for _, bad := range []string{"", "10.0.0.1/8", "10.0.0.0/33", "fe80::1%eth0", "*", "10.0.0.0/8,10.1.0.0/16", " 10.0.0.1", "host.corp"} {
		t.Run("fail/"+bad, func(t *testing.T) {
			if err := ValidSourceAddress(bad); err == nil {
				t.Errorf("ValidSourceAddress(%q) = nil", bad)
			}
		})
	}
}

func TestMatchHostPattern(t *testing.T) {
	tests := []struct {
		name, pattern, host string
		want                bool
	}{
		{"ok/star-suffix", "*.corp", "web.corp", true},
		{"ok/star-crosses-dots", "*.corp", "a.b.corp", true},
		{"ok/case-insensitive-name", "*.corp", "WEB.CORP", true},
		{"ok/case-insensitive-pattern", "*.Corp", "web.corp", true},
		{"ok/question-marks", "app-??.corp", "app-01.corp", true},
		{"ok/star-middle", "web*.corp", "web.corp", true},
		{"ok/several-stars", "*a*b*", "xxaxxbxx", true},
		{"ok/exact", "db.corp", "db.corp", true},
		{"ok/glob-on-ip", "10.0.1.*", "10.0.1.9", true},
		{"ok/cidr4", "10.0.1.0/24", "10.0.1.200", true},
		{"ok/cidr4-mapped", "10.0.1.0/24", "::ffff:10.0.1.200", true},
		{"ok/cidr6", "2001:db8::/32", "2001:db8:1::1", true},
		{"ok/ip-any-spelling", "2001:db8::1", "2001:DB8:0::1", true},
		{"ok/everything", "*", "x", true},
		{"fail/star-needs-dot", "*.corp", "corp", false},
		{"fail/suffix-only", "*.corp", "web.corp.evil", false},
		{"fail/question-exactly-one", "app-??.corp", "app-1.corp", false},
		{"fail/question-not-three", "app-??.corp", "app-123.corp", false},
		{"fail/cidr-outside", "10.0.1.0/24", "10.0.2.1", false},
		{"fail/cidr-name", "10.0.1.0/24", "web.corp", false},
		{"fail/cidr-family", "2001:db8::/32", "10.0.1.1", false},
		{"fail/cidr-zone", "fe80::/10", "fe80::1%eth0", false},
		{"fail/bad-cidr", "10.0.1.0/33", "10.0.1.1", false},
		{"fail/empty-pattern", "", "x", false},
		{"fail/ip-differs", "10.0.1.5", "10.0.1.50", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchHostPattern(tt.pattern, tt.host); got != tt.want {
				t.Errorf("MatchHostPattern(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
			}
		})
	}
}

// TestMatchHostPatternOpenSSH compares the glob semantics with OpenSSH's
// match_pattern, reached through "Host" blocks of ssh_config and ssh -G.
// ssh -G does not fold case, so the names here are lower case.
func TestMatchHostPatternOpenSSH(t *testing.T) {
	ssh := testkit.RequireTool(t, "ssh")
	pairs := []struct{ pattern, host string }{
		{"*.corp", "web.corp"},
		{"*.corp", "a.b.corp"},
		{"*.corp", "corp"},
		{"*.corp", "web.corpx"},
		{"app-??.corp", "app-01.corp"},
		{"app-??.corp", "app-1.corp"},
		{"app-??.corp", "app-001.corp"},
		{"web*", "web"},
		{"*a*b*", "xxaxxbxx"},
		{"*a*b*", "xxbxxaxx"},
		{"a*a*a", "aaaa"},
		{"a*a*a", "aa"},
		{"10.0.1.*", "10.0.1.9"},
		{"10.0.1.?", "10.0.1.19"},
		{"*", "anything.example"},
	}
	dir := t.TempDir()
	for _, p := range pairs {
		t.Run(p.pattern+"~"+p.host, func(t *testing.T) {
			cfg := filepath.Join(dir, "config")
			if err := os.WriteFile(cfg, []byte("Host "+p.pattern+"\n  User matched\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(t.Context(), ssh, "-F", cfg, "-G", p.host).Output()
			if err != nil {
				t.Fatalf("ssh -G: %v", err)
			}
			want := strings.Contains(string(out), "\nuser matched\n")
			if got := MatchHostPattern(p.pattern, p.host); got != want {
				t.Errorf("MatchHostPattern(%q, %q) = %v, OpenSSH says %v", p.pattern, p.host, got, want)
			}
		})
	}
}
