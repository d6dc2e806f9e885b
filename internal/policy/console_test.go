package policy

import (
	"errors"
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
