package config

import (
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/testkit"

	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSourceAddressOpenSSH asks ssh-keygen, which checks source-address
// with the same addr_match_cidr_list as sshd, about every entry: whatever
// Validate accepts, OpenSSH must accept too, since sshd refuses a whole
// certificate whose source-address it cannot parse.
func TestSourceAddressOpenSSH(t *testing.T) {
	keygen := testkit.RequireTool(t, "ssh-keygen")
	dir := t.TempDir()
	for _, name := range []string{"ca", "user"} {
		out, err := exec.CommandContext(t.Context(), keygen, "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", filepath.Join(dir, name)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	sign := func(option string) bool {
		cmd := exec.CommandContext(t.Context(), keygen, "-q", "-s", filepath.Join(dir, "ca"), "-I", "id", "-n", "p",
			"-O", "source-address="+option, filepath.Join(dir, "user.pub"))
		return cmd.Run() == nil
	}

	tests := []struct {
		name  string
		entry string
		// stricter: Validate refuses what OpenSSH accepts, on purpose.
		stricter bool
	}{
		{name: "ok/ipv4-prefix", entry: "10.0.0.0/8"},
		{name: "ok/ipv4-address", entry: "192.168.1.7"},
		{name: "ok/ipv4-any", entry: "0.0.0.0/0"},
		{name: "ok/ipv6-prefix", entry: "2001:db8::/32"},
		{name: "ok/ipv6-address", entry: "::1"},
		{name: "ok/ipv6-host-prefix", entry: "2001:db8::1/128"},
		{name: "ok/ipv4-mapped", entry: "::ffff:10.0.0.1"},
		{name: "fail/host-bits", entry: "10.0.0.1/8"},
		{name: "fail/ipv6-host-bits", entry: "2001:db8::1/32"},
		{name: "fail/mask-too-long", entry: "10.0.0.0/33"},
		{name: "fail/zone", entry: "fe80::1%eth0"},
		{name: "fail/wildcard", entry: "10.0.*"},
		{name: "fail/host-name", entry: "gw.corp"},
		{name: "fail/leading-space", entry: " 10.0.0.0/8"},
		{name: "fail/empty", entry: ""},
		{name: "fail/leading-zero-mask", entry: "10.0.0.0/08", stricter: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Roles: map[string]*policy.Role{"r": {
				Type: policy.UserCert, Principals: []string{"p"}, MaxTTL: time.Hour, DefaultTTL: time.Hour,
				SourceAddress: []string{tt.entry},
			}}}
			ours := c.Validate() == nil
			theirs := sign(tt.entry)
			switch {
			case ours && !theirs:
				t.Fatalf("Validate accepts source address %q, ssh-keygen refuses it", tt.entry)
			case tt.stricter && ours:
				t.Errorf("Validate accepts %q, meant to refuse it", tt.entry)
			case !tt.stricter && ours != theirs:
				t.Errorf("Validate accepts %q: %v; ssh-keygen: %v", tt.entry, ours, theirs)
			case strings.HasPrefix(tt.name, "ok/") != ours:
				t.Errorf("Validate accepts %q: %v, want %v", tt.entry, ours, !ours)
			}
		})
	}

	t.Run("ok/example-joined-list", func(t *testing.T) {
		c, err := Parse([]byte(Example))
		if err != nil {
			t.Fatal(err)
		}
		opt := c.PolicyRoles()["deploy"].SourceAddress
		if !sign(strings.Join(opt, ",")) {
			t.Errorf("ssh-keygen refuses source-address=%s", strings.Join(opt, ","))
		}
	})
}
