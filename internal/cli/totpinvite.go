package cli

import (
	"crypto/rand"
	"flag"
	"fmt"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/policy"
)

// newTOTPInviteCommand issues a one-time TOTP enrollment code for a person:
// the only way someone without an MFA sign-in may enroll a second factor.
func newTOTPInviteCommand() *command {
	var ttl string
	return &command{
		name:    "totp invite",
		summary: "issue a one-time code with which a person enrolls a TOTP second factor",
		usage:   "[--ttl D] USER",
		example: `  sshca totp invite alice              # prints the code once; give it to alice out of band
  sshca totp invite --ttl 2h bob

A second factor is enrolled only with a second factor: a person who signs in
with a password alone enrolls TOTP by POST /v1/totp/enroll with
{"invite": CODE}. The code works once, for that person only, until it expires.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ttl, "ttl", "24h", "how long the code stays valid")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			user := args[0]
			if err := policy.ValidPrincipal(user); err != nil {
				return usagef("totp invite: %q is not a usable user name: %v", user, err)
			}
			d, err := config.ParseDuration(ttl)
			if err != nil || d <= 0 || d > 30*24*time.Hour {
				return usagef("totp invite: --ttl must be a duration between 1s and 30d")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			now := time.Now()
			var nb [4]byte
			if _, err := rand.Read(nb[:]); err != nil {
				return err
			}
			name := fmt.Sprintf("totp-invite-%x", nb)
			code, tok, err := ca.NewToken(name, ca.TokenTOTPInvite, nil, []string{user}, e.actor(), now, d)
			if err != nil {
				return err
			}
			ev := audit.Entry{Time: now, Actor: e.actor(), Action: audit.ActionToken, Outcome: "ok", Reason: "token created",
				Details: map[string]string{"token": tok.ID, "name": name, "kind": tok.Kind, "principals": user,
					"expires": tok.ExpiresAt.UTC().Format(time.RFC3339)}}
			if err := h.Store.CreateToken(e.ctx, tok, ev); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, code)
			fmt.Fprintf(e.stderr, "one-time TOTP enrollment code for %s, valid until %s; it is shown only now\n", user, tok.ExpiresAt.UTC().Format(time.RFC3339))
			return nil
		},
	}
}
