package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func newTokenCreateCommand() *command {
	var roles, name, ttl, principals string
	var admin, enroll bool
	return &command{
		name:    "token create",
		summary: "create an API token for automation (the secret is printed once; only its hash is stored)",
		usage:   "--name N (--role R[,R2] | --admin | --enroll --role HOSTROLE --principals h1,h2) [--ttl D]",
		example: `  sshca token create --role deploy --name ci-deploy --ttl 30d > ci.token
  sshca token create --admin --name oncall --ttl 7d
  sshca token create --enroll --role servers --principals app-01.corp,10.0.1.10 --ttl 1h`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "token name, shown in the audit log and in key IDs")
			fs.StringVar(&roles, "role", "", "comma-separated roles the token may use")
			fs.StringVar(&ttl, "ttl", "30d", "lifetime")
			fs.BoolVar(&admin, "admin", false, "an admin token (revocations)")
			fs.BoolVar(&enroll, "enroll", false, "a one-time host enrollment token bound to --principals")
			fs.StringVar(&principals, "principals", "", "with --enroll: the host names and addresses it may certify")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			d, err := config.ParseDuration(ttl)
			if err != nil || d <= 0 {
				return usagef("token create: --ttl %q is not a positive duration", ttl)
			}
			kind := store.TokenRole
			switch {
			case admin && enroll:
				return usagef("token create: --admin and --enroll exclude each other")
			case admin:
				kind = store.TokenAdmin
				if roles != "" {
					return usagef("token create: admin tokens carry no roles")
				}
			case enroll:
				kind = store.TokenEnroll
				if principals == "" {
					return usagef("token create: --enroll needs --principals (the host's names)")
				}
			default:
				if roles == "" {
					return usagef("token create: give --role (or --admin / --enroll)")
				}
			}
			if principals != "" && !enroll {
				return usagef("token create: --principals only applies with --enroll")
			}
			plist := splitList(principals)
			if name == "" && enroll && len(plist) > 0 {
				name = "enroll-" + plist[0] + "-" + time.Now().UTC().Format("20060102T150405")
			}
			if err := policy.ValidPrincipal(name); err != nil || len(name) > 64 {
				return usagef("token create: --name must be 1-64 characters without spaces, commas or wildcards")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			rlist := splitList(roles)
			for _, r := range rlist {
				role, ok := h.Config.Roles[r]
				if !ok || role == nil {
					t := policy.UserCert
					if enroll {
						t = policy.HostCert
					}
					return withHint(fmt.Errorf("unknown role %q", r), rolesHint(h.Config.Roles, t))
				}
				if enroll && role.Type != policy.HostCert {
					return fmt.Errorf("enrollment tokens need a host role; %q is a %s role", r, role.Type)
				}
				if !enroll && role.Type == policy.HostCert {
					// The service gives host certificates to enrollment tokens only.
					return withHint(fmt.Errorf("%q is a host role; role tokens obtain user certificates only", r),
						"for a server, use `sshca token create --enroll --role "+r+" --principals HOST,...`")
				}
			}
			if enroll {
				if len(rlist) != 1 {
					return usagef("token create: --enroll needs exactly one --role (a host role)")
				}
				roleDef := h.Config.PolicyRoles()[rlist[0]]
				for _, p := range plist {
					if _, err := policy.Decide(map[string]policy.Role{rlist[0]: roleDef}, e.caller(), policy.Request{Type: policy.HostCert, Role: rlist[0], Principals: []string{p}}); err != nil {
						return err
					}
				}
			}
			secret, tok, err := ca.NewToken(name, kind, rlist, plist, e.actor(), time.Now(), d)
			if err != nil {
				return err
			}
			ev := audit.Entry{Time: time.Now(), Actor: e.actor(), Action: audit.ActionToken, Outcome: "ok", Reason: "token created",
				Details: map[string]string{"token": tok.ID, "name": name, "kind": kind, "roles": strings.Join(rlist, ","), "principals": strings.Join(plist, ","),
					"expires": tok.ExpiresAt.UTC().Format(time.RFC3339)}}
			if err := h.Store.CreateToken(e.ctx, tok, ev); err != nil {
				if errors.Is(err, store.ErrExists) {
					return withHint(fmt.Errorf("a token named %q exists", name), "choose another --name, or revoke the old one first")
				}
				return err
			}
			fmt.Fprintln(e.stdout, secret)
			fmt.Fprintf(e.stderr, "token %s (%s, id %s) expires %s; store the secret now, it is not shown again\n", name, kind, tok.ID, tok.ExpiresAt.UTC().Format(time.RFC3339))
			return nil
		},
	}
}
