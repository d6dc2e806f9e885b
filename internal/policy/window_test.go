package policy

import (
	"errors"
	"testing"
	"time"
)

func TestDecideValidityWindow(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	roles := testRoles()
	week := Role{Type: UserCert, Principals: []string{"ci"}, DefaultTTL: time.Hour, MaxTTL: 7 * 24 * time.Hour}
	roles["week"] = week
	admin := Caller{Kind: CallerAdmin, Identity: Identity{User: "root"}}
	tests := []struct {
		name                string
		role                string
		from, until         time.Time
		ttl                 time.Duration
		renew               bool
		rule                string // "" = allowed
		wantFrom, wantUntil time.Time
	}{
		{name: "ok/keygen-seed -5m:+1w", role: "week", from: now.Add(-5 * time.Minute), until: now.Add(7 * 24 * time.Hour),
			wantFrom: now.Add(-5 * time.Minute), wantUntil: now.Add(7 * 24 * time.Hour)},
		{name: "ok/from only: default ttl", role: "week", from: now.Add(time.Hour), wantFrom: now.Add(time.Hour), wantUntil: now.Add(2 * time.Hour)},
		{name: "ok/from with ttl", role: "week", from: now.Add(time.Hour), ttl: 3 * time.Hour, wantFrom: now.Add(time.Hour), wantUntil: now.Add(4 * time.Hour)},
		{name: "ok/until only: from now", role: "deploy", until: now.Add(12 * time.Hour), wantFrom: now, wantUntil: now.Add(12 * time.Hour)},
		{name: "ok/future window of max_ttl", role: "deploy", from: now.Add(30 * 24 * time.Hour), until: now.Add(30*24*time.Hour + 12*time.Hour),
			wantFrom: now.Add(30 * 24 * time.Hour), wantUntil: now.Add(30*24*time.Hour + 12*time.Hour)},
		{name: "ok/backdated a day", role: "deploy", from: now.Add(-24 * time.Hour), until: now.Add(time.Hour),
			wantFrom: now.Add(-24 * time.Hour), wantUntil: now.Add(time.Hour)},
		{name: "fail/longer than max_ttl", role: "deploy", from: now, until: now.Add(12*time.Hour + time.Second), rule: RuleTTLExceedsMax},
		{name: "fail/future window longer than max_ttl", role: "deploy", from: now.Add(time.Hour), until: now.Add(14 * time.Hour), rule: RuleTTLExceedsMax},
		{name: "fail/from with ttl beyond max", role: "deploy", from: now.Add(time.Hour), ttl: 13 * time.Hour, rule: RuleTTLExceedsMax},
		{name: "fail/entirely in the past", role: "deploy", from: now.Add(-2 * time.Hour), until: now.Add(-time.Hour), rule: RuleBadValidity},
		{name: "fail/ends now", role: "deploy", until: now, rule: RuleBadValidity},
		{name: "fail/ends before it starts", role: "deploy", from: now.Add(2 * time.Hour), until: now.Add(time.Hour), rule: RuleBadValidity},
		{name: "fail/starts too far ahead", role: "deploy", from: now.Add(MaxWindowLead + time.Second), rule: RuleBadValidity},
		{name: "fail/starts too long ago", role: "deploy", from: now.Add(-MaxWindowBackdate - time.Second), until: now.Add(time.Hour), rule: RuleBadValidity},
		{name: "fail/ttl and until", role: "deploy", until: now.Add(time.Hour), ttl: time.Hour, rule: RuleBadValidity},
		{name: "fail/renewal with a window", role: "deploy", until: now.Add(time.Hour), renew: true, rule: RuleRenewalForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := Request{Type: UserCert, Role: tc.role, TTL: tc.ttl, ValidAfter: tc.from, ValidBefore: tc.until, Now: now}
			if tc.renew {
				req.Renew = &Renewal{Serial: 1, KeyID: "x", Principals: []string{"ci"}}
			}
			g, err := Decide(roles, admin, req)
			if tc.rule != "" {
				var de *DenyError
				if !errors.As(err, &de) || de.Rule != tc.rule {
					t.Fatalf("Decide = %v, %v; want rule %s", g, err, tc.rule)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !g.ValidAfter.Equal(tc.wantFrom) || !g.ValidBefore.Equal(tc.wantUntil) {
				t.Fatalf("window %s..%s, want %s..%s", g.ValidAfter, g.ValidBefore, tc.wantFrom, tc.wantUntil)
			}
		})
	}
	// No window asked for: none granted, as before.
	g, err := Decide(roles, admin, Request{Type: UserCert, Role: "deploy", Now: now})
	if err != nil || !g.ValidAfter.IsZero() || !g.ValidBefore.IsZero() || g.TTL != 8*time.Hour {
		t.Fatalf("no window: %+v, %v", g, err)
	}
}
