package config

import (
	"strings"
	"testing"
)

// TestFrontDoorKeys checks service.ssh_listen, ssh_host_role and
// ssh_host_names, and roles' allow.local_users / local_groups.
func TestFrontDoorKeys(t *testing.T) {
	const roles = `
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    allow:
      local_users: [alice]
      local_groups: [ops]
  bastion:
    type: host
    principals: [ca.corp]
    max_ttl: 24h
`
	tests := []struct {
		name, service, wantErr string
	}{
		{"ok/off", "", ""},
		{"ok/on", "  ssh_listen: 0.0.0.0:2222\n  ssh_host_role: bastion\n  ssh_host_names: [ca.corp]\n", ""},
		{"fail/bad-listen", "  ssh_listen: 2222\n  ssh_host_role: bastion\n  ssh_host_names: [ca.corp]\n", "service.ssh_listen: must be host:port"},
		{"fail/no-role", "  ssh_listen: :2222\n  ssh_host_names: [ca.corp]\n", "service.ssh_host_role: name the host role"},
		{"fail/unknown-role", "  ssh_listen: :2222\n  ssh_host_role: nope\n  ssh_host_names: [ca.corp]\n", `service.ssh_host_role: unknown role "nope"`},
		{"fail/user-role", "  ssh_listen: :2222\n  ssh_host_role: deploy\n  ssh_host_names: [ca.corp]\n", `service.ssh_host_role: role "deploy" is not a host role`},
		{"fail/no-names", "  ssh_listen: :2222\n  ssh_host_role: bastion\n", "service.ssh_host_names: name the front door's host names"},
		{"fail/role-without-listen", "  ssh_host_role: bastion\n", "service.ssh_listen: ssh_host_role and ssh_host_names need ssh_listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "backdate: 5m\n"
			if tt.service != "" {
				src += "service:\n" + tt.service
			}
			c, err := Parse([]byte(src + roles))
			if err == nil {
				err = c.Validate()
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				r := c.PolicyRoles()["deploy"]
				if r.Allow == nil || len(r.Allow.LocalUsers) != 1 || r.Allow.LocalGroups[0] != "ops" {
					t.Fatalf("allow %+v", r.Allow)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
