package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.yaml.in/yaml/v3"

	"github.com/sshca/sshca/internal/policy"
)

// FuzzParse checks that Parse and Validate never panic, that Parse returns
// either a config or an error, and that a valid config survives a round
// trip through yaml.Marshal and can be handed to policy.Decide.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		Example,
		"roles: {}\n",
		"backdate: 0\nroles:\n",
		"roles:\n  deploy:\n    type: user\n    max_tl: 8h\n",
		"roles:\n  x:\n    type: user\n    max_ttl: 8x\n",
		"roles:\n  a: &r {type: user, principals: [x], max_ttl: 1h}\n  b: *r\n",
		"roles:\n  x:\n    <<: {type: user}\n",
		"roles:\n  x: {type: user}\n  x: {type: host}\n",
		"a: &a [x, x]\nb: &b [*a, *a]\nroles: {x: {principals: *b}}\n",
		"backdate: 5m\n---\nroles: {}\n",
		"- a\n",
		"roles: [\n",
		"roles:\n  ? [a]\n  : b\n",
		"roles:\n  h:\n    type: host\n    principals: ['*.corp', 10.0.1.0/24, '2001:db8::/32']\n    max_ttl: 52w\n    default_ttl: 1w2d\n",
		"roles:\n  u:\n    type: user\n    principals: ['{{.User}}', 'g-{{.Groups}}']\n    max_ttl: 1h\n    force_command: \"\"\n",
		"database: postgres://db/sshca\nroles: {}\n",
		"backdate: !!binary aGVsbG8=\n",
		"roles: !!map {}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse() = %v, %v", c, err)
		}
		if err != nil {
			return
		}
		if c.Roles == nil {
			t.Fatal("Parse() returned nil Roles")
		}
		if c.Validate() != nil {
			return
		}
		roles := c.PolicyRoles()
		for name, r := range roles {
			req := policy.Request{Type: r.Type, Role: name}
			if r.Type == policy.HostCert {
				req.Principals = []string{"h.corp"}
			}
			g, err := policy.Decide(roles, policy.Caller{Kind: policy.CallerAdmin, Identity: policy.Identity{User: "u", Groups: []string{"g"}}}, req)
			if err == nil && (len(g.Principals) == 0 || g.TTL > r.MaxTTL) {
				t.Fatalf("grant %+v breaks role %+v", g, r)
			}
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(c)) error = %v\n%s", err, out)
		}
		if diff := cmp.Diff(c, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s\n%s", diff, out)
		}
	})
}
