package cli

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

func newTOTPResetCommand() *command {
	var reason string
	return &command{
		name:    "totp reset",
		summary: "remove a user's TOTP enrollment (lost phone) so they can enroll again",
		usage:   "[--reason TEXT] USER",
		example: `  sshca totp reset --reason "new phone" alice@example.com`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&reason, "reason", "", "why (recorded in the audit log)")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			ev := audit.Entry{Time: time.Now(), Actor: e.actor(), Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp reset",
				Details: map[string]string{"user": args[0], "why": reason}}
			if err := h.Store.DeleteTOTP(e.ctx, args[0], ev); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("%s has no TOTP enrollment", args[0])
				}
				return err
			}
			fmt.Fprintf(e.stdout, "removed the TOTP enrollment of %s; give them a code to enroll again: sshca totp invite %s\n", args[0], args[0])
			return nil
		},
	}
}
