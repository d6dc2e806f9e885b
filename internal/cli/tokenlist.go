package cli

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sshca/sshca/internal/api"
)

func newTokenListCommand() *command {
	var asJSON bool
	return &command{
		name:    "token list",
		summary: "list API tokens (never their secrets)",
		usage:   "[--json]",
		example: `  sshca token list
  sshca token list --json | jq -r 'select(.status == "active") | .name'`,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print one JSON token object per line (docs/json.md)")
		},
		maxArgs: 0,
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
			now := time.Now()
			if asJSON {
				out := make([]api.Token, len(toks))
				for i, t := range toks {
					out[i] = tokenJSON(t, t.Status(now))
				}
				return printJSON(e, out...)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tKIND\tROLES\tPRINCIPALS\tEXPIRES\tSTATUS")
			for _, t := range toks {
				status := t.Status(now)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Kind, strings.Join(t.Roles, ","), strings.Join(t.Principals, ","),
					t.ExpiresAt.UTC().Format(time.RFC3339), status)
			}
			return tw.Flush()
		},
	}
}
