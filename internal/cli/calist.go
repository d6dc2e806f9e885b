package cli

import (
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/ca"
)

func caTypes(t string) ([]string, error) {
	switch t {
	case "":
		return []string{"user", "host"}, nil
	case "user", "host":
		return []string{t}, nil
	}
	return nil, usagef("--type must be user or host")
}

func newCAListCommand() *command {
	var caType string
	var asJSON bool
	return &command{
		name:    "ca list",
		summary: "list CA key generations with their state, fingerprint and last certificate expiry",
		usage:   "[--type user|host] [--json]",
		example: `  sshca ca list
  sshca ca list --type user --json`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&caType, "type", "", "only the user or host CA")
			fs.BoolVar(&asJSON, "json", false, "print one JSON CA key object per line (docs/json.md)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			types, err := caTypes(caType)
			if err != nil {
				return err
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			if err := autoRetire(e, h); err != nil {
				return err
			}
			if asJSON {
				var out []api.CAKey
				for _, t := range types {
					gens, err := ca.Generations(e.ctx, h.Store, t)
					if err != nil {
						return err
					}
					for _, g := range gens {
						out = append(out, caKeyJSON(g))
					}
				}
				return printJSON(e, out...)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CA\tGEN\tSTATE\tTYPE\tSIGNER\tFINGERPRINT\tCREATED\tCERTS\tLAST CERT EXPIRES")
			for _, t := range types {
				gens, err := ca.Generations(e.ctx, h.Store, t)
				if err != nil {
					return err
				}
				for _, g := range gens {
					last := "-"
					if !g.LastExpiry.IsZero() {
						last = g.LastExpiry.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t, g.Generation, g.State, g.KeyType, g.Signer, g.Fingerprint,
						g.CreatedAt.UTC().Format(time.RFC3339), g.Issued, last)
				}
			}
			return tw.Flush()
		},
	}
}
