package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testRoles mirrors the example policy of product.md §4, plus roles that
// exercise templates and broken role data.
func testRoles() map[string]Role {
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("p%d", i)
	}
	roles := map[string]Role{
		"deploy": {
			Type:          UserCert,
			Principals:    []string{"role-deploy", "ci"},
			DefaultTTL:    8 * time.Hour,
			MaxTTL:        12 * time.Hour,
			Extensions:    []string{"permit-pty", "permit-port-forwarding"},
			SourceAddress: []string{"10.0.0.0/8", "192.168.0.0/16"},
		},
		"rsync": {
			Type:         UserCert,
			Principals:   []string{"role-rsync"},
			DefaultTTL:   48 * time.Hour,
			MaxTTL:       48 * time.Hour,
			ForceCommand: "/usr/local/bin/rsync-wrapper",
		},
		"servers": {
			Type:       HostCert,
			Principals: []string{"*.corp", "10.0.1.0/24", "2001:db8::/32", "app-??.lan"},
			DefaultTTL: 52 * 7 * 24 * time.Hour,
			MaxTTL:     52 * 7 * 24 * time.Hour,
		},
		"hostext": { // host role carrying user-only data: never granted
			Type:          HostCert,
			Principals:    []string{"*"},
			DefaultTTL:    time.Hour,
			MaxTTL:        time.Hour,
			Extensions:    []string{"permit-pty"},
			SourceAddress: []string{"10.0.0.0/8"},
			ForceCommand:  "/bin/true",
		},
		"personal": {
			Type:       UserCert,
			Principals: []string{"{{.User}}", "grp-{{.Groups}}", "ops", "bad,literal", "{{.Nope}}"},
			// "admins" is never allow-listed: a user in that IdP group
			// must not get grp-admins.
			TemplateGroups: []string{"dev", "ops"},
			DefaultTTL:     time.Hour,
			MaxTTL:         8 * time.Hour,
			Extensions:     []string{"permit-pty"},
		},
		"selfonly": {
			Type:       UserCert,
			Principals: []string{"{{.User}}"},
			DefaultTTL: time.Hour,
			MaxTTL:     time.Hour,
		},
		"nodefault": {
			Type:       UserCert,
			Principals: []string{"x"},
			MaxTTL:     time.Hour,
		},
		"many": {
			Type:       UserCert,
			Principals: many,
			DefaultTTL: time.Hour,
			MaxTTL:     time.Hour,
		},
		"badsrc": {
			Type:          UserCert,
			Principals:    []string{"x"},
			DefaultTTL:    time.Hour,
			MaxTTL:        time.Hour,
			SourceAddress: []string{"10.0.0.1/8"},
		},
		"badext": {
			Type:       UserCert,
			Principals: []string{"x"},
			DefaultTTL: time.Hour,
			MaxTTL:     time.Hour,
			Extensions: []string{"permit pty"},
		},
	}
	for name, r := range roles {
		r.Name = name
		roles[name] = r
	}
	return roles
}

func hosts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("h%d.corp", i)
	}
	return out
}

func TestDecide(t *testing.T) {
	alice := Identity{User: "alice", Groups: []string{"dev", "ops", "dev", "admins"}}
	year := 52 * 7 * 24 * time.Hour
	none := map[string]string{}
	tests := []struct {
		name     string
		id       Identity
		req      Request
		want     *Grant
		wantRule string
		wantMsg  string // exact Error(), when set
	}{
		{
			name: "ok/user-all-principals-by-default",
			req:  Request{Type: UserCert, Role: "deploy"},
			want: &Grant{Role: "deploy", Type: UserCert, Principals: []string{"role-deploy", "ci"}, TTL: 8 * time.Hour,
				CriticalOptions: map[string]string{"source-address": "10.0.0.0/8,192.168.0.0/16"},
				Extensions:      map[string]string{"permit-pty": "", "permit-port-forwarding": ""}},
		},
		{
			name: "ok/user-subset-deduplicated-in-request-order",
			req:  Request{Type: UserCert, Role: "deploy", Principals: []string{"ci", "role-deploy", "ci"}, TTL: time.Hour},
			want: &Grant{Role: "deploy", Type: UserCert, Principals: []string{"ci", "role-deploy"}, TTL: time.Hour,
				CriticalOptions: map[string]string{"source-address": "10.0.0.0/8,192.168.0.0/16"},
				Extensions:      map[string]string{"permit-pty": "", "permit-port-forwarding": ""}},
		},
		{
			name: "ok/ttl-exactly-max",
			req:  Request{Type: UserCert, Role: "deploy", Principals: []string{"ci"}, TTL: 12 * time.Hour},
			want: &Grant{Role: "deploy", Type: UserCert, Principals: []string{"ci"}, TTL: 12 * time.Hour,
				CriticalOptions: map[string]string{"source-address": "10.0.0.0/8,192.168.0.0/16"},
				Extensions:      map[string]string{"permit-pty": "", "permit-port-forwarding": ""}},
		},
		{
			name: "ok/force-command-no-extensions",
			req:  Request{Type: UserCert, Role: "rsync"},
			want: &Grant{Role: "rsync", Type: UserCert, Principals: []string{"role-rsync"}, TTL: 48 * time.Hour,
				CriticalOptions: map[string]string{"force-command": "/usr/local/bin/rsync-wrapper"}, Extensions: none},
		},
		{
			name: "ok/templates-expanded-bad-ones-skipped",
			id:   alice,
			req:  Request{Type: UserCert, Role: "personal"},
			want: &Grant{Role: "personal", Type: UserCert, Principals: []string{"alice", "grp-dev", "grp-ops", "ops"}, TTL: time.Hour,
				CriticalOptions: none, Extensions: map[string]string{"permit-pty": ""}},
		},
		{
			name: "ok/template-principal-requested",
			id:   alice,
			req:  Request{Type: UserCert, Role: "personal", Principals: []string{"grp-ops", "alice"}},
			want: &Grant{Role: "personal", Type: UserCert, Principals: []string{"grp-ops", "alice"}, TTL: time.Hour,
				CriticalOptions: none, Extensions: map[string]string{"permit-pty": ""}},
		},
		{
			name: "ok/zero-identity-gets-literals-only",
			req:  Request{Type: UserCert, Role: "personal"},
			want: &Grant{Role: "personal", Type: UserCert, Principals: []string{"ops"}, TTL: time.Hour,
				CriticalOptions: none, Extensions: map[string]string{"permit-pty": ""}},
		},
		{
			name: "ok/host-glob-cidr-ipv6-question-mark",
			req: Request{Type: HostCert, Role: "servers", TTL: year,
				Principals: []string{"web1.corp", "WEB2.Corp", "10.0.1.7", "::ffff:10.0.1.8", "2001:db8::1", "app-01.lan", "web1.corp"}},
			want: &Grant{Role: "servers", Type: HostCert, TTL: year,
				Principals:      []string{"web1.corp", "WEB2.Corp", "10.0.1.7", "::ffff:10.0.1.8", "2001:db8::1", "app-01.lan"},
				CriticalOptions: none, Extensions: none},
		},
		{
			name: "ok/host-role-options-never-granted",
			req:  Request{Type: HostCert, Role: "hostext", Principals: []string{"db.example.org"}},
			want: &Grant{Role: "hostext", Type: HostCert, Principals: []string{"db.example.org"}, TTL: time.Hour,
				CriticalOptions: none, Extensions: none},
		},
		{
			name: "ok/host-256-principals",
			req:  Request{Type: HostCert, Role: "servers", Principals: hosts(256)},
			want: &Grant{Role: "servers", Type: HostCert, Principals: hosts(256), TTL: year, CriticalOptions: none, Extensions: none},
		},
		{
			name:     "fail/unknown-role",
			req:      Request{Type: UserCert, Role: "admin"},
			wantRule: RuleUnknownRole,
			wantMsg:  `policy: unknown role "admin"`,
		},
		{
			name:     "fail/user-request-on-host-role",
			req:      Request{Type: UserCert, Role: "servers", Principals: []string{"root"}},
			wantRule: RuleCertTypeMismatch,
			wantMsg:  `policy: role "servers" issues host certificates, not user certificates`,
		},
		{
			name:     "fail/host-request-on-user-role",
			req:      Request{Type: HostCert, Role: "deploy", Principals: []string{"web.corp"}},
			wantRule: RuleCertTypeMismatch,
		},
		{
			name:     "fail/unknown-cert-type",
			req:      Request{Type: 3, Role: "deploy"},
			wantRule: RuleCertTypeMismatch,
		},
		{
			name:     "fail/ttl-exceeds-max-by-1ns",
			req:      Request{Type: UserCert, Role: "deploy", TTL: 12*time.Hour + 1},
			wantRule: RuleTTLExceedsMax,
			wantMsg:  `policy: lifetime 12h0m0.000000001s exceeds max_ttl 12h0m0s of role "deploy"`,
		},
		{
			name:     "fail/negative-ttl",
			req:      Request{Type: UserCert, Role: "deploy", TTL: -time.Second},
			wantRule: RuleBadTTL,
		},
		{
			name:     "fail/role-without-default-ttl",
			req:      Request{Type: UserCert, Role: "nodefault"},
			wantRule: RuleBadTTL,
		},
		{
			name:     "fail/principal-not-in-role",
			req:      Request{Type: UserCert, Role: "deploy", Principals: []string{"ci", "root"}},
			wantRule: RulePrincipalNotAllowed,
			wantMsg:  `policy: principal "root" not allowed in role "deploy"`,
		},
		{
			name:     "fail/principal-with-comma",
			req:      Request{Type: UserCert, Role: "deploy", Principals: []string{"ci,root"}},
			wantRule: RuleBadPrincipal,
			wantMsg:  `policy: invalid principal "ci,root": contains a comma`,
		},
		{
			name:     "fail/empty-principal-string",
			req:      Request{Type: UserCert, Role: "deploy", Principals: []string{""}},
			wantRule: RuleBadPrincipal,
		},
		{
			name:     "fail/literal-comma-role-principal-not-grantable",
			req:      Request{Type: UserCert, Role: "personal", Principals: []string{"bad,literal"}},
			wantRule: RuleBadPrincipal,
		},
		{
			name:     "fail/template-text-is-not-a-principal",
			id:       alice,
			req:      Request{Type: UserCert, Role: "personal", Principals: []string{"{{.User}}"}},
			wantRule: RulePrincipalNotAllowed,
		},
		{
			name:     "fail/other-users-name",
			id:       alice,
			req:      Request{Type: UserCert, Role: "personal", Principals: []string{"bob"}},
			wantRule: RulePrincipalNotAllowed,
		},
		{
			name:     "fail/group-not-held",
			id:       alice,
			req:      Request{Type: UserCert, Role: "personal", Principals: []string{"grp-admin"}},
			wantRule: RulePrincipalNotAllowed,
		},
		{
			name:     "fail/zero-identity-no-principals",
			req:      Request{Type: UserCert, Role: "selfonly"},
			wantRule: RuleEmptyPrincipals,
		},
		{
			name:     "fail/user-with-comma-cannot-expand",
			id:       Identity{User: "a,b"},
			req:      Request{Type: UserCert, Role: "selfonly"},
			wantRule: RuleEmptyPrincipals,
		},
		{
			name:     "fail/role-with-300-principals",
			req:      Request{Type: UserCert, Role: "many"},
			wantRule: RuleTooManyPrincipals,
			wantMsg:  "policy: 300 principals, at most 256 allowed",
		},
		{
			name:     "fail/host-without-principals",
			req:      Request{Type: HostCert, Role: "servers"},
			wantRule: RuleEmptyPrincipals,
		},
		{
			name:     "fail/host-257-principals",
			req:      Request{Type: HostCert, Role: "servers", Principals: hosts(257)},
			wantRule: RuleTooManyPrincipals,
		},
		{
			name:     "fail/host-outside-glob",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"web.corp", "evil.example"}},
			wantRule: RuleHostPrincipalNoMatch,
			wantMsg:  `policy: host principal "evil.example" matches no pattern of role "servers"`,
		},
		{
			name:     "fail/host-bare-suffix",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"corp"}},
			wantRule: RuleHostPrincipalNoMatch,
		},
		{
			name:     "fail/host-outside-cidr",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"10.0.2.1"}},
			wantRule: RuleHostPrincipalNoMatch,
		},
		{
			name:     "fail/host-question-mark-counts",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"app-001.lan"}},
			wantRule: RuleHostPrincipalNoMatch,
		},
		{
			name:     "fail/host-wildcard-principal",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"*.corp"}},
			wantRule: RuleBadPrincipal,
		},
		{
			name:     "fail/host-ipv6-zone",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"2001:db8::1%eth0"}},
			wantRule: RuleBadPrincipal,
		},
		{
			name:     "fail/host-empty-label",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"a..corp"}},
			wantRule: RuleBadPrincipal,
		},
		{
			name:     "fail/host-not-an-ip",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"10.0.1.256"}},
			wantRule: RuleBadPrincipal,
		},
		{
			name:     "fail/host-leading-hyphen",
			req:      Request{Type: HostCert, Role: "servers", Principals: []string{"-oProxyCommand.corp"}},
			wantRule: RuleBadPrincipal,
		},
		{
			name:     "fail/bad-source-address-in-role",
			req:      Request{Type: UserCert, Role: "badsrc"},
			wantRule: RuleBadRole,
		},
		{
			name:     "fail/bad-extension-in-role",
			req:      Request{Type: UserCert, Role: "badext"},
			wantRule: RuleBadRole,
		},
	}
	roles := testRoles()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decide(roles, Caller{Kind: CallerAdmin, Identity: tt.id}, tt.req)
			if tt.wantRule != "" {
				var de *DenyError
				if !errors.As(err, &de) {
					t.Fatalf("Decide() = %+v, %v; want *DenyError %s", got, err, tt.wantRule)
				}
				if got != nil {
					t.Errorf("Decide() returned grant %+v with error", got)
				}
				if de.Rule != tt.wantRule {
					t.Errorf("rule = %q, want %q (%v)", de.Rule, tt.wantRule, err)
				}
				if tt.wantMsg != "" && err.Error() != tt.wantMsg {
					t.Errorf("Error() = %q, want %q", err.Error(), tt.wantMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide() error = %v", err)
			}
			if got.Because != "admin at the CA" {
				t.Errorf("Because = %q, want the admin rule", got.Because)
			}
			got.Because = ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecideDoesNotAliasInputs checks that changing a grant cannot change
// the role or the request it came from.
func TestDecideDoesNotAliasInputs(t *testing.T) {
	roles := testRoles()
	req := Request{Type: UserCert, Role: "deploy", Principals: []string{"ci"}}
	g, err := Decide(roles, Caller{Kind: CallerAdmin}, req)
	if err != nil {
		t.Fatal(err)
	}
	g.Principals[0] = "root"
	if req.Principals[0] != "ci" {
		t.Errorf("request principals changed to %q", req.Principals)
	}
	g2, err := Decide(roles, Caller{Kind: CallerAdmin}, Request{Type: UserCert, Role: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	g2.Principals[0] = "root"
	if got := roles["deploy"].Principals[0]; got != "role-deploy" {
		t.Errorf("role principals changed to %q", got)
	}
}

func TestDenyErrorQuotesHostileInput(t *testing.T) {
	long := strings.Repeat("é", 100) + "\n"
	_, err := Decide(testRoles(), Caller{Kind: CallerAdmin}, Request{Type: UserCert, Role: long})
	if err == nil {
		t.Fatal("Decide() succeeded for an unknown role")
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") || len(msg) > 120 {
		t.Errorf("message not sanitised: %q", msg)
	}
}

func TestTemplateGroupsAllowList(t *testing.T) {
	roles := map[string]Role{"personal": {Type: UserCert, Principals: []string{"grp-{{.Groups}}"}, TemplateGroups: []string{"dev"},
		DefaultTTL: time.Hour, MaxTTL: time.Hour}}
	id := Identity{User: "mallory", Groups: []string{"dev", "admins"}}
	g, err := Decide(roles, Caller{Kind: CallerAdmin, Identity: id}, Request{Type: UserCert, Role: "personal"})
	if err != nil || len(g.Principals) != 1 || g.Principals[0] != "grp-dev" {
		t.Fatalf("all principals = %v, %v; want only grp-dev", g, err)
	}
	_, err = Decide(roles, Caller{Kind: CallerAdmin, Identity: id}, Request{Type: UserCert, Role: "personal", Principals: []string{"grp-admins"}})
	var de *DenyError
	if !errors.As(err, &de) || de.Rule != RulePrincipalNotAllowed {
		t.Fatalf("grp-admins: %v, want principal-not-allowed", err)
	}
	_, err = Decide(roles, Caller{Kind: CallerAdmin, Identity: Identity{User: "x", Groups: []string{"admins"}}}, Request{Type: UserCert, Role: "personal"})
	if !errors.As(err, &de) || de.Rule != RuleEmptyPrincipals {
		t.Fatalf("no allowed group: %v, want empty-principals", err)
	}
}
