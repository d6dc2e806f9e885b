package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWildcardHostPrincipals: a host role issues pattern principals only
// when it opts in, and only inside its own glob patterns.
func TestWildcardHostPrincipals(t *testing.T) {
	year := 52 * 7 * 24 * time.Hour
	role := func(name string, wild bool, patterns ...string) Role {
		return Role{Name: name, Type: HostCert, Principals: patterns, DefaultTTL: year, MaxTTL: year, WildcardPrincipals: wild}
	}
	roles := map[string]Role{
		"plain": role("plain", false, "*.corp", "10.0.1.0/24"),
		"wild":  role("wild", true, "*.corp", "app-??.lan", "10.0.1.0/24", "192.168.1.*", "db.example"),
		"all":   role("all", true, "*"),
	}
	tests := []struct {
		name       string
		role       string
		principals []string
		wantRule   string
		wantMsg    string // substring of Error()
	}{
		{name: "ok/suffix", role: "wild", principals: []string{"*.corp"}},
		{name: "ok/narrower", role: "wild", principals: []string{"web-*.corp"}},
		{name: "ok/deeper", role: "wild", principals: []string{"*.eu.corp"}},
		{name: "ok/question-inside-star", role: "wild", principals: []string{"web?.corp"}},
		{name: "ok/question-inside-question", role: "wild", principals: []string{"app-0?.lan"}},
		{name: "ok/upper-case", role: "wild", principals: []string{"*.CORP"}},
		{name: "ok/ip-glob-pattern", role: "wild", principals: []string{"192.168.1.*"}},
		{name: "ok/mixed-with-names", role: "wild", principals: []string{"*.corp", "web1.corp", "10.0.1.7"}},
		{name: "ok/star-role", role: "all", principals: []string{"*.example.org"}},
		{name: "fail/not-opted-in", role: "plain", principals: []string{"*.corp"}, wantRule: RuleBadPrincipal,
			wantMsg: `contains a wildcard (OpenSSH before 10.3 does not match wildcard host principals; role "plain" does not set wildcard_principals)`},
		{name: "fail/outside-patterns", role: "wild", principals: []string{"*.example.com"}, wantRule: RuleHostPrincipalNoMatch,
			wantMsg: `wildcard host principal "*.example.com" is not inside a host-name pattern of role "wild"`},
		{name: "fail/wider-than-pattern", role: "wild", principals: []string{"*.corp.*"}, wantRule: RuleHostPrincipalNoMatch},
		{name: "fail/no-literal-label", role: "wild", principals: []string{"*corp"}, wantRule: RuleBadPrincipal, wantMsg: "no label is free of wildcards"},
		{name: "fail/star-wider-than-question", role: "wild", principals: []string{"app-*.lan"}, wantRule: RuleHostPrincipalNoMatch},
		{name: "fail/not-inside-cidr", role: "wild", principals: []string{"10.0.1.*"}, wantRule: RuleHostPrincipalNoMatch},
		{name: "fail/not-inside-literal", role: "wild", principals: []string{"db.exampl?"}, wantRule: RuleHostPrincipalNoMatch},
		{name: "fail/every-host", role: "all", principals: []string{"*"}, wantRule: RuleBadPrincipal, wantMsg: "no label is free of wildcards"},
		{name: "fail/every-host-dotted", role: "all", principals: []string{"*.*"}, wantRule: RuleBadPrincipal},
		{name: "fail/empty-label", role: "wild", principals: []string{"*..corp"}, wantRule: RuleBadPrincipal},
		{name: "fail/bracket", role: "all", principals: []string{"[a].corp*"}, wantRule: RuleBadPrincipal},
		{name: "fail/negation", role: "all", principals: []string{"!*.corp"}, wantRule: RuleBadPrincipal},
		{name: "fail/comma", role: "all", principals: []string{"*.a,b.corp"}, wantRule: RuleBadPrincipal},
		{name: "fail/names-still-checked", role: "wild", principals: []string{"*.corp", "web1.example"}, wantRule: RuleHostPrincipalNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(roles, Caller{Kind: CallerAdmin}, Request{Type: HostCert, Role: tt.role, Principals: tt.principals})
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if diff := cmp.Diff(tt.principals, got.Principals); diff != "" {
					t.Errorf("principals (-want +got):\n%s", diff)
				}
				return
			}
			var de *DenyError
			if !errors.As(err, &de) || de.Rule != tt.wantRule {
				t.Fatalf("Decide = %v, %v; want rule %s", got, err, tt.wantRule)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Error() = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// TestGlobCovers checks the inclusion test against brute force: when
// globCovers says yes, every sample the inner pattern matches must match
// the outer one.
func TestGlobCovers(t *testing.T) {
	tests := []struct {
		outer, inner string
		want         bool
	}{
		{"*.corp", "*.corp", true},
		{"*.corp", "a*.corp", true},
		{"*.corp", "*.b.corp", true},
		{"*", "a?b*", true},
		{"a?c", "abc", true},
		{"a?c", "a?c", true},
		{"a?c", "a*c", false},
		{"*.corp", "*corp", false},
		{"web-*", "web*", false},
		{"*a*b*", "xa?b", true},
		{"x.corp", "x.corp", true},
		{"a*", "*", false},
	}
	samples := []string{"", "a", "b", "c", "abc", "axc", "abbc", "ac", "xab", "xa.b", "web-1", "web1", "x.corp", "a.corp", "corp", "xcorp", "a.b.corp", "ab.corp"}
	for _, tt := range tests {
		t.Run(tt.outer+"⊇"+tt.inner, func(t *testing.T) {
			got := globCovers(tt.outer, tt.inner)
			if got != tt.want {
				t.Errorf("globCovers(%q, %q) = %v, want %v", tt.outer, tt.inner, got, tt.want)
			}
			if !got {
				return
			}
			for _, s := range samples {
				if glob(tt.inner, s) && !glob(tt.outer, s) {
					t.Errorf("%q matches %q but not %q", s, tt.inner, tt.outer)
				}
			}
		})
	}
}

// FuzzGlobCovers checks that globCovers never claims an inclusion that a
// string contradicts.
func FuzzGlobCovers(f *testing.F) {
	f.Add("*.corp", "a*.corp", "ab.corp")
	f.Add("a?c", "a*c", "abbc")
	f.Add("*a*", "?a?", "bab")
	f.Fuzz(func(t *testing.T, outer, inner, s string) {
		if len(outer) > 40 || len(inner) > 40 || len(s) > 40 {
			return
		}
		if globCovers(outer, inner) && glob(inner, s) && !glob(outer, s) {
			t.Errorf("globCovers(%q, %q) but %q matches only the inner pattern", outer, inner, s)
		}
	})
}
