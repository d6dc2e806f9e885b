package frontdoor

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/testkit"
)

// TestMatrix is the front door's authorization matrix: local users ×
// roles × requests, each run through the front door and through the domain
// door (ca.Authority.Sign with the caller the front door should build),
// which must agree with each other and with the expected rule. The second
// factor here is an sk key's user presence (TOTP codes are one per 30
// seconds; TestTOTP and TestOpenSSH cover them).
func TestMatrix(t *testing.T) {
	d := startDoor(t, Limits{CertsPerMinute: 1000})
	type user struct {
		name   string
		groups []string
		sk     bool
	}
	users := map[string]user{
		"alice":    {name: "alice"},
		"alice-sk": {name: "alicesk", sk: true},
		"dee":      {name: "dee", groups: []string{"deployers"}},
		"dee-sk":   {name: "deesk", groups: []string{"deployers"}, sk: true},
		"zed":      {name: "zed", groups: []string{"ops"}},
		"mimic":    {name: "carol", groups: []string{"dev"}}, // an IdP user's name and group: nothing
	}
	// alicesk is allowed like alice: same roles by name.
	signers := map[string]ssh.Signer{}
	for k, u := range users {
		var s ssh.Signer
		if u.sk {
			s = newSKSigner(t, ssh.KeyAlgoSKED25519, flagUP)
		} else {
			s = testkit.NewSigner(t)
		}
		signers[k] = s
		d.addUser(t, u.name, u.groups, s.PublicKey())
	}
	d.h.Authority.Roles["secure"].Allow.LocalUsers = append(d.h.Authority.Roles["secure"].Allow.LocalUsers, "alicesk")
	d.h.Authority.Roles["deploy"].Allow.LocalUsers = append(d.h.Authority.Roles["deploy"].Allow.LocalUsers, "alicesk")

	rows := []struct {
		user, args string
		want       string // "" = issued, else the rule
	}{
		{"alice", "--role deploy", ""},
		{"alice", "--role deploy --principals alice", ""},
		{"alice", "--role deploy --principals role-deploy,alice --ttl 1h", ""},
		{"alice", "--role deploy --principals root", policy.RulePrincipalNotAllowed},
		{"alice", "--role deploy --principals dee", policy.RulePrincipalNotAllowed},
		{"alice", "--role deploy --ttl 61m", policy.RuleTTLExceedsMax},
		{"alice", "--role secure", policy.RuleMFARequired},
		{"alice", "--role touchless", policy.RuleMFARequired},
		{"alice", "--role sso", policy.RuleRoleNotAllowed},
		{"alice", "--role servers", policy.RuleRoleNotAllowed},
		{"alice", "--role nope", policy.RuleUnknownRole},
		{"alice-sk", "--role secure", ""},
		{"alice-sk", "--role touchless", policy.RuleRoleNotAllowed}, // allows alice and bob by name only
		{"alice-sk", "--role deploy --principals alicesk", ""},
		{"dee", "--role deploy", ""},
		{"dee", "--role deploy --principals role-deploy", ""},
		{"dee", "--role secure", policy.RuleRoleNotAllowed},
		{"dee-sk", "--role secure", policy.RuleRoleNotAllowed}, // a factor opens no role
		{"zed", "--role deploy", policy.RuleRoleNotAllowed},
		{"mimic", "--role sso", policy.RuleRoleNotAllowed},
		{"mimic", "--role deploy", policy.RuleRoleNotAllowed},
	}
	ruleRE := regexp.MustCompile(`\[([a-z-]+)\]\n$`)
	for _, r := range rows {
		t.Run(r.user+" "+r.args, func(t *testing.T) {
			u := users[r.user]
			// The front door.
			c, err := d.dial(t, ssh.PublicKeys(signers[r.user]))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			out, stderr, code := run(t, c, "cert "+r.args)
			door := ""
			if code != 0 {
				m := ruleRE.FindStringSubmatch(stderr)
				if m == nil {
					t.Fatalf("front door: exit %d without a rule: %q", code, stderr)
				}
				door = m[1]
			} else if parseCert(t, out) == nil {
				t.Fatal("no certificate")
			}
			// The domain door, with the caller the front door should build.
			req := ca.Request{Caller: policy.Caller{Kind: policy.CallerLocal, Identity: policy.Identity{User: u.name, Groups: u.groups}, MFA: u.sk, AuthTime: time.Now()},
				Type: policy.UserCert, PublicKey: signers[r.user].PublicKey()}
			fs, _ := flagSet("cert")
			fs.StringVar(&req.Role, "role", "", "")
			pr := fs.String("principals", "", "")
			ttl := fs.Duration("ttl", 0, "")
			if err := fs.Parse(strings.Fields(r.args)); err != nil {
				t.Fatal(err)
			}
			if *pr != "" {
				req.Principals = strings.Split(*pr, ",")
			}
			req.TTL = *ttl
			_, err = d.h.Authority.Sign(t.Context(), req)
			domain := ""
			var de *policy.DenyError
			if errors.As(err, &de) {
				domain = de.Rule
			} else if err != nil {
				t.Fatal(err)
			}
			if door != domain || door != r.want {
				t.Fatalf("front door %q, domain %q, want %q (stderr %q)", door, domain, r.want, stderr)
			}
		})
	}
}
