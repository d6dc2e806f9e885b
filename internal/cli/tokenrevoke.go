package cli

import (
	"flag"
	"fmt"
	"time"

	"github.com/sshca/sshca/internal/audit"
)

func newTokenRevokeCommand() *command {
	return &command{
		name:    "token revoke",
		summary: "revoke an API token by name or ID (it stops working at once)",
		usage:   "NAME|ID",
		example: `  sshca token revoke ci-deploy`,
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			toks, err := h.Store.ListTokens(e.ctx)
			if err != nil {
				return err
			}
			for _, t := range toks {
				if t.Name == args[0] || t.ID == args[0] {
					ev := audit.Entry{Time: time.Now(), Actor: e.actor(), Action: audit.ActionToken, Outcome: "ok", Reason: "token revoked",
						Details: map[string]string{"token": t.ID, "name": t.Name}}
					if err := h.Store.RevokeToken(e.ctx, t.ID, time.Now(), ev); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "revoked token %s (%s)\n", t.Name, t.ID)
					return nil
				}
			}
			return fmt.Errorf("no token named %q", args[0])
		},
	}
}
