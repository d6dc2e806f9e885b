package config

import (
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/policy"
)

// TestRoleAccessFields: the access and renewal fields of a role decode into
// the one policy.Role and are validated by path.
func TestRoleAccessFields(t *testing.T) {
	base := "roles:\n  r:\n    type: user\n    principals: [p]\n    max_ttl: 1h\n"
	c, err := Parse([]byte(base + "    allow: {users: [alice], groups: [ops]}\n    require_mfa: true\n    renewal: any\n    max_session: 3d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := c.PolicyRoles()["r"]
	if r.Name != "r" || r.Type != policy.UserCert || !r.RequireMFA || r.Renewal != policy.RenewAny || r.MaxSession != 72*time.Hour ||
		r.Allow == nil || r.Allow.Users[0] != "alice" || r.Allow.Groups[0] != "ops" || r.DefaultTTL != time.Hour {
		t.Errorf("decoded role %+v", r)
	}
	for _, tc := range []struct{ name, add, want string }{
		{"fail/renewal", "    renewal: sometimes\n", "roles.r.renewal: renewal \"sometimes\": use service, any or none"},
		{"fail/max-session-duration", "    max_session: forever\n", "roles.r.max_session"},
		{"fail/type", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base + tc.add
			if tc.name == "fail/type" {
				in = strings.Replace(base, "type: user", "type: users", 1)
				tc.want = `roles.r.type: must be "user" or "host"`
			}
			c, err := Parse([]byte(in))
			if err == nil {
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
