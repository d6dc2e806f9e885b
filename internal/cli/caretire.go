package cli

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/sshca/sshca/internal/ca"
)

func newCARetireCommand() *command {
	var caType string
	var force bool
	return &command{
		name:    "ca retire",
		summary: "stop publishing a retiring CA key (refused while certificates it signed are valid, unless --force)",
		usage:   "--type user|host [--force] GEN",
		example: `  sshca ca retire --type user 1`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&caType, "type", "", "which CA: user or host")
			fs.BoolVar(&force, "force", false, "retire even though certificates it signed are still valid (they stop working)")
		},
		minArgs: 1, maxArgs: 1,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if caType != "user" && caType != "host" {
				return usagef("ca retire: --type must be user or host")
			}
			gen, err := strconv.Atoi(args[0])
			if err != nil || gen <= 0 {
				return usagef("ca retire: generation %q is not a positive number", args[0])
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			err = ca.Retire(e.ctx, h.Store, caType, gen, force, h.Config.RetireGraceOrDefault(), e.actor(), time.Now())
			if errors.Is(err, ca.ErrUnexpired) {
				return withHint(err, "wait, or --force (logins with those certificates then fail)")
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "retired %s CA generation %d; it is no longer published\n", caType, gen)
			return nil
		},
	}
}
