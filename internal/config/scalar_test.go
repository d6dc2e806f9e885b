package config

import (
	"strings"
	"testing"
)

// TestParseIntAndBool covers the number and boolean fields of the service
// section and of roles (service.rate_limit, roles.*.require_mfa).
func TestParseIntAndBool(t *testing.T) {
	const head = "roles:\n  r:\n    type: user\n    principals: [p]\n    max_ttl: 1h\n"
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{"ok/rate-limit", "service:\n  rate_limit: 5\n" + head, ""},
		{"ok/require-mfa", head + "    require_mfa: true\n", ""},
		{"fail/rate-limit-string", "service:\n  rate_limit: many\n" + head, "service.rate_limit: must be a whole number"},
		{"fail/rate-limit-float", "service:\n  rate_limit: 1.5\n" + head, "service.rate_limit: must be a whole number"},
		{"fail/rate-limit-list", "service:\n  rate_limit: [1]\n" + head, "service.rate_limit: must be a whole number"},
		{"fail/require-mfa-yes", head + "    require_mfa: yes\n", "roles.r.require_mfa: must be true or false"},
		{"fail/require-mfa-number", head + "    require_mfa: 1\n", "roles.r.require_mfa: must be true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(tc.yaml, "rate_limit") && c.Service.RateLimit != 5 {
					t.Errorf("rate_limit = %d", c.Service.RateLimit)
				}
				if strings.Contains(tc.yaml, "require_mfa") && !c.Roles["r"].RequireMFA {
					t.Error("require_mfa not set")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}
