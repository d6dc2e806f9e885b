package policy

import (
	"errors"
	"testing"
	"time"
)

// TestAccess covers who may use a role: each caller kind, the second
// factor, token state and scope, and renewals.
func TestAccess(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	roles := map[string]Role{
		"deploy": {Name: "deploy", Type: UserCert, Principals: []string{"role-deploy"}, DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour,
			Allow: &Allow{Users: []string{"alice"}, Groups: []string{"ops"}, LocalUsers: []string{"lou"}, LocalGroups: []string{"local-ops"}}},
		"secure": {Name: "secure", Type: UserCert, Principals: []string{"role-secure"}, DefaultTTL: time.Hour, MaxTTL: time.Hour,
			Allow: &Allow{Users: []string{"alice"}, LocalUsers: []string{"lou"}}, RequireMFA: true},
		"cli-renewable": {Name: "cli-renewable", Type: UserCert, Principals: []string{"p"}, DefaultTTL: time.Hour, MaxTTL: time.Hour, Renewal: RenewAny},
		"no-renew": {Name: "no-renew", Type: UserCert, Principals: []string{"p"}, DefaultTTL: time.Hour, MaxTTL: time.Hour,
			Allow: &Allow{Users: []string{"alice"}}, Renewal: RenewNone},
		"short-session": {Name: "short-session", Type: UserCert, Principals: []string{"p"}, DefaultTTL: time.Hour, MaxTTL: time.Hour,
			Allow: &Allow{Users: []string{"alice"}}, MaxSession: 2 * time.Hour},
		"servers": {Name: "servers", Type: HostCert, Principals: []string{"*.corp"}, DefaultTTL: 24 * time.Hour, MaxTTL: 24 * time.Hour},
	}
	alice := Caller{Kind: CallerPerson, Identity: Identity{User: "alice"}, AuthTime: now}
	aliceMFA := alice
	aliceMFA.MFA = true
	gina := Caller{Kind: CallerPerson, Identity: Identity{User: "gina", Groups: []string{"staff", "ops"}}, AuthTime: now}
	mallory := Caller{Kind: CallerPerson, Identity: Identity{User: "mallory", Groups: []string{"ops-not"}}, AuthTime: now}
	tok := func(kind string, roles []string, mod func(*Token)) Caller {
		tk := &Token{ID: "0123456789abcdef", Name: "ci", Kind: kind, Roles: roles, Principals: []string{"web1.corp"}, ExpiresAt: now.Add(time.Hour)}
		if mod != nil {
			mod(tk)
		}
		return TokenCaller(tk, now)
	}
	admin := Caller{Kind: CallerAdmin, Identity: Identity{User: "root"}}
	lou := Caller{Kind: CallerLocal, Identity: Identity{User: "lou"}, AuthTime: now}
	louMFA := lou
	louMFA.MFA = true
	// A local user named like an identity provider's user, and in a group
	// named like one of its groups, gains nothing from either.
	localAlice := Caller{Kind: CallerLocal, Identity: Identity{User: "alice", Groups: []string{"ops"}}, AuthTime: now}
	localOps := Caller{Kind: CallerLocal, Identity: Identity{User: "lee", Groups: []string{"local-ops"}}, AuthTime: now}
	renew := &Renewal{Serial: 7, KeyID: "k", Principals: []string{"role-deploy"}}
	renewP := &Renewal{Serial: 7, KeyID: "k", Principals: []string{"p"}}
	old := func(c Caller, age time.Duration) Caller { c.AuthTime = now.Add(-age); return c }
	tests := []struct {
		name     string
		c        Caller
		req      Request
		wantRule string // "" = allowed
		because  string
	}{
		{name: "ok/person-by-user", c: alice, req: Request{Type: UserCert, Role: "deploy"}, because: "allow.users: alice"},
		{name: "ok/person-by-group", c: gina, req: Request{Type: UserCert, Role: "deploy"}, because: "allow.groups: ops"},
		{name: "fail/person-not-allowed", c: mallory, req: Request{Type: UserCert, Role: "deploy"}, wantRule: RuleRoleNotAllowed},
		{name: "fail/person-no-allow-list", c: alice, req: Request{Type: UserCert, Role: "cli-renewable"}, wantRule: RuleRoleNotAllowed},
		{name: "fail/person-mfa-missing", c: alice, req: Request{Type: UserCert, Role: "secure"}, wantRule: RuleMFARequired},
		{name: "ok/person-mfa", c: aliceMFA, req: Request{Type: UserCert, Role: "secure"}, because: "allow.users: alice, with a second factor"},
		{name: "ok/local-by-user", c: lou, req: Request{Type: UserCert, Role: "deploy"}, because: "allow.local_users: lou"},
		{name: "ok/local-by-group", c: localOps, req: Request{Type: UserCert, Role: "deploy"}, because: "allow.local_groups: local-ops"},
		{name: "fail/local-named-like-person", c: localAlice, req: Request{Type: UserCert, Role: "deploy"}, wantRule: RuleRoleNotAllowed},
		{name: "fail/local-mfa-missing", c: lou, req: Request{Type: UserCert, Role: "secure"}, wantRule: RuleMFARequired},
		{name: "ok/local-mfa", c: louMFA, req: Request{Type: UserCert, Role: "secure"}, because: "allow.local_users: lou, with a second factor"},
		{name: "fail/local-no-allow-list", c: lou, req: Request{Type: UserCert, Role: "cli-renewable"}, wantRule: RuleRoleNotAllowed},
		{name: "fail/person-named-like-local", c: Caller{Kind: CallerPerson, Identity: Identity{User: "lou", Groups: []string{"local-ops"}}, AuthTime: now}, req: Request{Type: UserCert, Role: "deploy"}, wantRule: RuleRoleNotAllowed},
		{name: "ok/admin-any-role", c: admin, req: Request{Type: UserCert, Role: "secure"}, because: "admin at the CA"},
		{name: "ok/role-token", c: tok(TokenRole, []string{"deploy"}, nil), req: Request{Type: UserCert, Role: "deploy"}},
		{name: "fail/role-token-other-role", c: tok(TokenRole, []string{"deploy"}, nil), req: Request{Type: UserCert, Role: "no-renew"}, wantRule: RuleRoleNotAllowed},
		{name: "fail/role-token-mfa-role", c: tok(TokenRole, []string{"secure"}, nil), req: Request{Type: UserCert, Role: "secure"}, wantRule: RuleMFARequired},
		{name: "fail/role-token-host-cert", c: tok(TokenRole, []string{"servers"}, nil), req: Request{Type: HostCert, Role: "servers", Principals: []string{"web1.corp"}}, wantRule: RuleRoleNotAllowed},
		{name: "fail/admin-token", c: tok(TokenAdmin, []string{"deploy"}, nil), req: Request{Type: UserCert, Role: "deploy"}, wantRule: RuleRoleNotAllowed},
		{name: "fail/host-token", c: tok(TokenHost, []string{"servers"}, nil), req: Request{Type: HostCert, Role: "servers", Principals: []string{"web1.corp"}}, wantRule: RuleRoleNotAllowed},
		{name: "fail/token-expired", c: tok(TokenRole, []string{"deploy"}, func(t *Token) { t.ExpiresAt = now }), req: Request{Type: UserCert, Role: "deploy"}, wantRule: RuleTokenExpired},
		{name: "fail/token-revoked", c: tok(TokenRole, []string{"deploy"}, func(t *Token) { t.RevokedAt = now.Add(-time.Second) }), req: Request{Type: UserCert, Role: "deploy"}, wantRule: RuleTokenRevoked},
		{name: "ok/enroll", c: tok(TokenEnroll, []string{"servers"}, nil), req: Request{Type: HostCert}, because: "token ci scoped to role servers"},
		{name: "fail/enroll-other-host", c: tok(TokenEnroll, []string{"servers"}, nil), req: Request{Type: HostCert, Role: "servers", Principals: []string{"web2.corp"}}, wantRule: RulePrincipalNotAllowed},
		{name: "fail/enroll-used", c: tok(TokenEnroll, []string{"servers"}, func(t *Token) { t.UsedAt = now }), req: Request{Type: HostCert, Role: "servers"}, wantRule: RuleTokenUsed},
		{name: "fail/enroll-user-cert", c: tok(TokenEnroll, []string{"servers"}, nil), req: Request{Type: UserCert, Role: "servers"}, wantRule: RuleRoleNotAllowed},
		{name: "fail/unknown-caller", c: Caller{Kind: "ghost"}, req: Request{Type: UserCert, Role: "deploy"}, wantRule: RuleUnknownCaller},
		{name: "fail/no-role", c: alice, req: Request{Type: UserCert}, wantRule: RuleUnknownRole},

		// Renewals: today's policy, the lineage's identity.
		{name: "ok/renew-person", c: old(alice, time.Hour), req: Request{Type: UserCert, Role: "deploy", Renew: renew}},
		{name: "ok/renew-by-group", c: old(gina, time.Hour), req: Request{Type: UserCert, Role: "deploy", Renew: renew}},
		{name: "fail/renew-removed-from-allow", c: old(mallory, time.Hour), req: Request{Type: UserCert, Role: "deploy", Renew: renew}, wantRule: RuleRoleNotAllowed},
		{name: "fail/renew-mfa-without-fresh-factor", c: old(alice, time.Hour), req: Request{Type: UserCert, Role: "secure", Renew: &Renewal{Principals: []string{"role-secure"}}}, wantRule: RuleMFARequired},
		{name: "ok/renew-mfa-with-fresh-factor", c: old(aliceMFA, time.Hour), req: Request{Type: UserCert, Role: "secure", Renew: &Renewal{Principals: []string{"role-secure"}}}},
		{name: "fail/renew-token-expired", c: tok(TokenRole, []string{"deploy"}, func(t *Token) { t.ExpiresAt = now.Add(-time.Minute) }), req: Request{Type: UserCert, Role: "deploy", Renew: renew}, wantRule: RuleTokenExpired},
		{name: "fail/renew-token-revoked", c: tok(TokenRole, []string{"deploy"}, func(t *Token) { t.RevokedAt = now }), req: Request{Type: UserCert, Role: "deploy", Renew: renew}, wantRule: RuleTokenRevoked},
		{name: "ok/renew-enrolled-host-spent-expired-token", c: tok(TokenEnroll, []string{"servers"}, func(t *Token) { t.UsedAt, t.ExpiresAt = now.Add(-time.Hour), now.Add(-time.Minute) }),
			req: Request{Type: HostCert, Role: "servers", Renew: &Renewal{Principals: []string{"web1.corp"}}}},
		{name: "fail/renew-enrolled-host-token-revoked", c: tok(TokenEnroll, []string{"servers"}, func(t *Token) { t.UsedAt, t.RevokedAt = now.Add(-time.Hour), now }),
			req: Request{Type: HostCert, Role: "servers", Renew: &Renewal{Principals: []string{"web1.corp"}}}, wantRule: RuleTokenRevoked},
		{name: "fail/renew-cli-signed", c: admin, req: Request{Type: UserCert, Role: "deploy", Renew: renew}, wantRule: RuleRenewalForbidden},
		{name: "ok/renew-cli-signed-role-allows", c: old(admin, time.Hour), req: Request{Type: UserCert, Role: "cli-renewable", Renew: renewP}},
		{name: "fail/renew-role-forbids", c: old(alice, time.Hour), req: Request{Type: UserCert, Role: "no-renew", Renew: renewP}, wantRule: RuleRenewalForbidden},
		{name: "fail/renew-session-over", c: old(alice, 8*24*time.Hour), req: Request{Type: UserCert, Role: "deploy", Renew: renew}, wantRule: RuleSessionExpired},
		{name: "fail/renew-short-session-over", c: old(alice, 2*time.Hour+time.Second), req: Request{Type: UserCert, Role: "short-session", Renew: renewP}, wantRule: RuleSessionExpired},
		{name: "fail/renew-principal-dropped-from-role", c: old(alice, time.Hour), req: Request{Type: UserCert, Role: "deploy", Renew: &Renewal{Principals: []string{"root"}}}, wantRule: RulePrincipalNotAllowed},
		{name: "fail/renew-unknown-role", c: old(alice, time.Hour), req: Request{Type: UserCert, Role: "gone", Renew: renew}, wantRule: RuleUnknownRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Now = now
			g, err := Decide(roles, tt.c, tt.req)
			if tt.wantRule != "" {
				var de *DenyError
				if !errors.As(err, &de) || de.Rule != tt.wantRule {
					t.Fatalf("Decide() = %+v, %v; want rule %s", g, err, tt.wantRule)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide() error = %v", err)
			}
			if tt.because != "" && g.Because != tt.because {
				t.Errorf("Because = %q, want %q", g.Because, tt.because)
			}
			if tt.req.Renew != nil && len(g.Principals) != len(tt.req.Renew.Principals) {
				t.Errorf("renewal principals %v, want %v", g.Principals, tt.req.Renew.Principals)
			}
		})
	}
}

// TestRenewalNeverOutlivesSession: a renewal's lifetime ends with the
// session it came from.
func TestRenewalNeverOutlivesSession(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	roles := map[string]Role{"r": {Name: "r", Type: UserCert, Principals: []string{"p"}, DefaultTTL: 8 * time.Hour, MaxTTL: 8 * time.Hour,
		Allow: &Allow{Users: []string{"a"}}, MaxSession: 24 * time.Hour}}
	c := Caller{Kind: CallerPerson, Identity: Identity{User: "a"}, AuthTime: now.Add(-22 * time.Hour)}
	g, err := Decide(roles, c, Request{Type: UserCert, Role: "r", Now: now, Renew: &Renewal{Principals: []string{"p"}}})
	if err != nil {
		t.Fatal(err)
	}
	if g.TTL != 2*time.Hour {
		t.Errorf("TTL %s, want the 2h left of the session", g.TTL)
	}
	c.AuthTime = now.Add(-24*time.Hour + 30*time.Second)
	if _, err := Decide(roles, c, Request{Type: UserCert, Role: "r", Now: now, Renew: &Renewal{Principals: []string{"p"}}}); err == nil {
		t.Error("a renewal 30s before the session ends was allowed")
	}
}

// TestGroupTemplatesRenew: principals from {{.Groups}} survive renewal
// because the lineage keeps the groups.
func TestGroupTemplatesRenew(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	roles := map[string]Role{"r": {Name: "r", Type: UserCert, Principals: []string{"grp-{{.Groups}}"}, DefaultTTL: time.Hour, MaxTTL: time.Hour,
		Allow: &Allow{Groups: []string{"ops"}}, TemplateGroups: []string{"ops"}}}
	c := Caller{Kind: CallerPerson, Identity: Identity{User: "a", Groups: []string{"ops"}}, AuthTime: now.Add(-time.Hour)}
	g, err := Decide(roles, c, Request{Type: UserCert, Role: "r", Now: now})
	if err != nil || len(g.Principals) != 1 || g.Principals[0] != "grp-ops" {
		t.Fatalf("fresh: %+v %v", g, err)
	}
	if _, err := Decide(roles, c, Request{Type: UserCert, Role: "r", Now: now, Renew: &Renewal{Principals: g.Principals}}); err != nil {
		t.Fatalf("renewal with the lineage's groups: %v", err)
	}
}

func TestMayEnrollTOTP(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	p := Caller{Kind: CallerPerson, Identity: Identity{User: "carol"}}
	pm := p
	pm.MFA = true
	inv := func(user string, mod func(*Token)) *Token {
		t := &Token{Kind: "totp-invite", Principals: []string{user}, ExpiresAt: now.Add(time.Hour)}
		if mod != nil {
			mod(t)
		}
		return t
	}
	tests := []struct {
		name     string
		c        Caller
		invite   *Token
		wantRule string
	}{
		{"fail/one-factor", p, nil, RuleMFARequired},
		{"ok/mfa-sign-in", pm, nil, ""},
		{"ok/invite", p, inv("carol", nil), ""},
		{"fail/invite-for-someone-else", p, inv("dave", nil), RuleEnrollmentCode},
		{"fail/invite-expired", p, inv("carol", func(t *Token) { t.ExpiresAt = now }), RuleEnrollmentCode},
		{"fail/invite-used", p, inv("carol", func(t *Token) { t.UsedAt = now }), RuleEnrollmentCode},
		{"fail/invite-revoked", p, inv("carol", func(t *Token) { t.RevokedAt = now }), RuleEnrollmentCode},
		{"ok/local-invite", Caller{Kind: CallerLocal, Identity: Identity{User: "carol"}}, inv("local:carol", nil), ""},
		{"fail/local-with-persons-invite", Caller{Kind: CallerLocal, Identity: Identity{User: "carol"}}, inv("carol", nil), RuleEnrollmentCode},
		{"fail/person-with-locals-invite", p, inv("local:carol", nil), RuleEnrollmentCode},
		{"fail/token-caller", Caller{Kind: CallerToken, Identity: Identity{User: "ci"}, MFA: true}, nil, RuleOIDCOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := MayEnrollTOTP(tt.c, tt.invite, now)
			if tt.wantRule == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var de *DenyError
			if !errors.As(err, &de) || de.Rule != tt.wantRule {
				t.Fatalf("MayEnrollTOTP = %v, want rule %s", err, tt.wantRule)
			}
		})
	}
}
