package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sshca/sshca/internal/store"
)

func init() { register(newListCommand) }

func newListCommand() *command {
	var keyID, caType string
	var active, asJSON bool
	return &command{
		name:    "list",
		summary: "list issued certificates",
		usage:   "[--id KEYID] [--active] [--type user|host] [--json]",
		example: `  sshca list --active
  sshca list --id alice-2026-11-22 --json`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keyID, "id", "", "only certificates with this key ID")
			fs.BoolVar(&active, "active", false, "only certificates valid now")
			fs.StringVar(&caType, "type", "", "only user or host certificates")
			fs.BoolVar(&asJSON, "json", false, "print JSON lines")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if caType != "" && caType != "user" && caType != "host" {
				return usagef("list: --type must be user or host")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			f := store.CertFilter{KeyID: keyID, CAType: caType}
			now := time.Now()
			if active {
				f.ActiveAt = now
			}
			certs, err := h.Store.ListCerts(e.ctx, f)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				for _, c := range certs {
					c.Cert = ""
					if err := enc.Encode(c); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SERIAL\tTYPE\tROLE\tKEY ID\tPRINCIPALS\tVALID UNTIL\tSTATUS")
			for _, c := range certs {
				status := "valid"
				switch {
				case c.Cert == "":
					status = "unsigned"
				case !now.Before(c.ValidBefore):
					status = "expired"
				case now.Before(c.ValidAfter):
					status = "not yet valid"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Serial, c.CAType, c.Role, c.KeyID,
					strings.Join(c.Principals, ","), c.ValidBefore.UTC().Format(time.RFC3339), status)
			}
			return tw.Flush()
		},
	}
}
