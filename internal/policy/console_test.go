package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMayAdministerConsole(t *testing.T) {
	admins := ConsoleAdmins{Users: []string{"alice"}, Groups: []string{"sshca-admins"}}
	for _, tc := range []struct {
		name string
		c    Caller
		ok   bool
	}{
		{name: "ok/user", c: Caller{Kind: CallerConsole, Identity: Identity{User: "alice"}}, ok: true},
		{name: "ok/group", c: Caller{Kind: CallerConsole, Identity: Identity{User: "bob", Groups: []string{"dev", "sshca-admins"}}}, ok: true},
		{name: "fail/not-listed", c: Caller{Kind: CallerConsole, Identity: Identity{User: "bob", Groups: []string{"dev"}}}},
		{name: "fail/empty-user", c: Caller{Kind: CallerConsole}},
		{name: "fail/person-not-console", c: Caller{Kind: CallerPerson, Identity: Identity{User: "alice"}}},
		{name: "fail/admin-token", c: Caller{Kind: CallerToken, Identity: Identity{User: "alice"}, Token: &Token{Kind: TokenAdmin, ExpiresAt: time.Now().Add(time.Hour)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := MayAdministerConsole(tc.c, admins)
			if tc.ok != (err == nil) {
				t.Fatalf("MayAdministerConsole = %v, want ok=%v", err, tc.ok)
			}
			var de *DenyError
			if err != nil && (!errors.As(err, &de) || de.Rule != RuleAdminOnly) {
				t.Fatalf("error %v is not an admin-only denial", err)
			}
		})
	}
	// A console session obtains no certificate.
	c := Caller{Kind: CallerConsole, Identity: Identity{User: "alice"}}
	if got := c.Actor(); got != "console:alice" {
		t.Fatalf("Actor = %q", got)
	}
}

func TestMayUseLoginLink(t *testing.T) {
	now := time.Now()
	ok := Token{Kind: TokenConsoleLink, Principals: []string{"alice"}, ExpiresAt: now.Add(time.Minute)}
	for _, tc := range []struct {
		name string
		edit func(t *Token)
		want string
	}{
		{name: "ok/fresh", edit: func(*Token) {}},
		{name: "fail/used", edit: func(t *Token) { t.UsedAt = now.Add(-time.Second) }, want: "already used"},
		{name: "fail/revoked", edit: func(t *Token) { t.RevokedAt = now.Add(-time.Second) }, want: "revoked"},
		{name: "fail/expired", edit: func(t *Token) { t.ExpiresAt = now }, want: "expired"},
		{name: "fail/other-kind", edit: func(t *Token) { t.Kind = TokenAdmin }, want: "not a console login link"},
		{name: "fail/no-user", edit: func(t *Token) { t.Principals = nil }, want: "not a console login link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := ok
			tc.edit(&tok)
			err := MayUseLoginLink(&tok, now)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("MayUseLoginLink = %v, want %q", err, tc.want)
			}
		})
	}
}
