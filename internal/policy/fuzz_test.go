package policy

import (
	"errors"
	"path"
	"slices"
	"strings"
	"testing"
	"time"
)

// splitList turns "a|b|c" into a list; "" is an empty list.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "|")
}

// FuzzDecide checks the safety properties of Decide over random roles,
// identities and requests: a grant never holds a principal outside the
// role's expansion and the request, never an empty or oversized principal
// list, never a lifetime above max_ttl, and never an option or extension
// the role lacks.
func FuzzDecide(f *testing.F) {
	type seed struct {
		roleType, reqType                  uint8
		rolePrincipals, user, groups, reqP string
		ttl, defTTL, maxTTL                int64
		exts, src, fc                      string
	}
	h := int64(time.Hour)
	for _, s := range []seed{
		{1, 1, "role-deploy|ci", "", "", "", 0, 8 * h, 12 * h, "permit-pty|permit-port-forwarding", "10.0.0.0/8|192.168.0.0/16", ""},
		{1, 1, "role-deploy|ci", "", "", "ci|root", 0, 8 * h, 12 * h, "", "", ""},
		{1, 1, "{{.User}}|grp-{{.Groups}}|ops", "alice", "dev|ops|dev", "", 2 * h, h, 8 * h, "permit-pty", "", "/bin/true"},
		{1, 1, "{{.User}}|{{.Bad}}|a,b", "", "", "{{.User}}", 0, h, h, "", "", ""},
		{1, 1, "x", "", "", "x", 12*h + 1, h, 12 * h, "", "", ""},
		{1, 2, "x", "", "", "x", 0, h, h, "", "", ""},
		{2, 2, "*.corp|10.0.1.0/24|2001:db8::/32", "", "", "web.corp|10.0.1.5|2001:db8::1|WEB.corp", 0, h, 2 * h, "permit-pty", "10.0.0.0/8", "/bin/sh"},
		{2, 2, "*.corp", "", "", "*.corp|evil.example", 0, h, h, "", "", ""},
		{2, 2, "*", "", "", "", 0, h, h, "", "", ""},
		{1, 1, "x", "", "", "", -1, h, h, "", "10.0.0.1/8", ""},
	} {
		f.Add(s.roleType, s.reqType, s.rolePrincipals, s.user, s.groups, s.reqP, s.ttl, s.defTTL, s.maxTTL, s.exts, s.src, s.fc)
	}
	f.Fuzz(func(t *testing.T, roleType, reqType uint8, rolePrincipals, user, groups, reqP string, ttl, defTTL, maxTTL int64, exts, src, fc string) {
		role := Role{
			Name:          "r",
			Type:          CertType(roleType % 4),
			Principals:    splitList(rolePrincipals),
			DefaultTTL:    time.Duration(defTTL),
			MaxTTL:        time.Duration(maxTTL),
			Extensions:    splitList(exts),
			SourceAddress: splitList(src),
			ForceCommand:  fc,
		}
		id := Identity{User: user, Groups: splitList(groups)}
		req := Request{Type: CertType(reqType % 4), Role: "r", Principals: splitList(reqP), TTL: time.Duration(ttl)}

		g, err := Decide(map[string]Role{"r": role}, Caller{Kind: CallerAdmin, Identity: id}, req)
		if err != nil {
			var de *DenyError
			if !errors.As(err, &de) || de.Rule == "" || de.Msg == "" {
				t.Fatalf("error %v is not a *DenyError with a rule", err)
			}
			if g != nil {
				t.Fatalf("grant %+v returned with error %v", g, err)
			}
			return
		}

		if g.Type != req.Type || g.Type != role.Type || g.Role != "r" {
			t.Fatalf("grant type/role %v/%q for request %v on role %v", g.Type, g.Role, req.Type, role.Type)
		}
		if g.TTL <= 0 || g.TTL > role.MaxTTL || (req.TTL != 0 && g.TTL != req.TTL) {
			t.Fatalf("TTL %v (requested %v, max %v)", g.TTL, req.TTL, role.MaxTTL)
		}
		if len(g.Principals) == 0 || len(g.Principals) > MaxPrincipals {
			t.Fatalf("%d principals granted", len(g.Principals))
		}
		seen := map[string]bool{}
		for _, p := range g.Principals {
			if seen[p] {
				t.Fatalf("duplicate principal %q", p)
			}
			seen[p] = true
			if err := ValidPrincipal(p); err != nil {
				t.Fatalf("granted invalid principal: %v", err)
			}
			if len(req.Principals) > 0 && !slices.Contains(req.Principals, p) {
				t.Fatalf("principal %q granted but not requested", p)
			}
		}

		if g.Type == HostCert {
			for _, p := range g.Principals {
				if !slices.ContainsFunc(role.Principals, func(pat string) bool { return MatchHostPattern(pat, p) }) {
					t.Fatalf("host principal %q matches no role pattern", p)
				}
			}
			if len(g.CriticalOptions) != 0 || len(g.Extensions) != 0 {
				t.Fatalf("host grant has options %v / extensions %v", g.CriticalOptions, g.Extensions)
			}
			return
		}

		expansion := map[string]bool{}
		for _, tmpl := range role.Principals {
			ps, err := ExpandTemplate(tmpl, id)
			if err != nil {
				continue
			}
			for _, p := range ps {
				expansion[p] = true
			}
		}
		for _, p := range g.Principals {
			if !expansion[p] {
				t.Fatalf("principal %q not in the role's expansion %v", p, expansion)
			}
		}
		for k, v := range g.CriticalOptions {
			switch {
			case k == OptionSourceAddress && v == strings.Join(role.SourceAddress, ",") && len(role.SourceAddress) > 0:
			case k == OptionForceCommand && v == role.ForceCommand && v != "":
			case k == OptionVerifyRequired && v == "" && role.VerifyRequired:
			default:
				t.Fatalf("critical option %q=%q not from the role", k, v)
			}
		}
		for k, v := range g.Extensions {
			if v != "" || !slices.Contains(role.Extensions, k) {
				t.Fatalf("extension %q=%q not from the role", k, v)
			}
		}
		for _, e := range role.Extensions {
			if _, ok := g.Extensions[e]; !ok {
				t.Fatalf("role extension %q not granted", e)
			}
		}
	})
}

// FuzzMatchHostPattern compares the glob matcher with path.Match over
// patterns made of letters, dots and wildcards (where the two agree), and
// checks that matching never panics on anything.
func FuzzMatchHostPattern(f *testing.F) {
	for _, s := range [][2]string{
		{"*.corp", "web.corp"}, {"app-??.corp", "app-01.corp"}, {"*a*b*", "xaxbx"},
		{"a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaa"}, {"10.0.1.0/24", "10.0.1.1"}, {"**", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		got := MatchHostPattern(pattern, name)
		if strings.Trim(pattern, "abcxyz.*?-") != "" || strings.Trim(name, "abcxyzABC.-") != "" {
			return
		}
		want, err := path.Match(pattern, strings.ToLower(name))
		if err != nil {
			t.Fatalf("path.Match(%q): %v", pattern, err)
		}
		if got != want {
			t.Fatalf("MatchHostPattern(%q, %q) = %v, path.Match says %v", pattern, name, got, want)
		}
	})
}

// FuzzExpandTemplate checks that every expansion is a valid principal and
// that ValidTemplate accepts every template that expands.
func FuzzExpandTemplate(f *testing.F) {
	for _, s := range [][3]string{
		{"{{.User}}", "alice", ""}, {"grp-{{.Groups}}", "", "dev|ops"}, {"{{ .User }}@{{.Groups}}", "a", "b|b"},
		{"{{.User", "a", ""}, {"}}", "", ""}, {"{{printf}}", "", ""}, {"plain", "", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, tmpl, user, groups string) {
		got, err := ExpandTemplate(tmpl, Identity{User: user, Groups: splitList(groups)})
		if err != nil {
			var de *DenyError
			if !errors.As(err, &de) || de.Rule != RuleBadPrincipal {
				t.Fatalf("error %v is not a bad-principal *DenyError", err)
			}
			return
		}
		for _, p := range got {
			if err := ValidPrincipal(p); err != nil {
				t.Fatalf("expansion of %q: %v", tmpl, err)
			}
		}
		if len(got) > 0 {
			if err := ValidTemplate(tmpl); err != nil {
				t.Fatalf("ExpandTemplate(%q) = %q but ValidTemplate says %v", tmpl, got, err)
			}
		}
	})
}
