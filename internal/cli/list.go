package cli

import (
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/store"
)

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
			fs.BoolVar(&active, "active", false, "only certificates valid now and not revoked")
			fs.StringVar(&caType, "type", "", "only user or host certificates")
			fs.BoolVar(&asJSON, "json", false, "print one JSON certificate object per line (docs/json.md)")
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
			// The certificates are streamed: what the command holds is the
			// revocations and, for the table, its text.
			types := []string{"user", "host"}
			if caType != "" {
				types = []string{caType}
			}
			rx, err := ca.LoadRevocations(e.ctx, h.Store, types...)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			if !asJSON {
				fmt.Fprintln(tw, "SERIAL\tTYPE\tROLE\tKEY ID\tPRINCIPALS\tVALID UNTIL\tSTATUS")
			}
			err = h.Store.EachCert(e.ctx, f, func(c store.CertRecord) error {
				r, isRevoked := rx.Revoked(&c)
				if active && isRevoked {
					return nil
				}
				if asJSON {
					var rev *store.Revocation
					if isRevoked {
						rev = &r
					}
					return printJSON(e, certOfRecord(c, rev, now))
				}
				status := "valid"
				switch {
				case isRevoked:
					// Revoked comes first: an expired certificate that was
					// revoked was revoked, and the inventory says why.
					status = revokedStatus(r)
				case c.Cert == "":
					status = "unsigned"
				case !now.Before(c.ValidBefore):
					status = "expired"
				case now.Before(c.ValidAfter):
					status = "not yet valid"
				}
				_, err := fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Serial, c.CAType, c.Role, c.KeyID,
					strings.Join(c.Principals, ","), c.ValidBefore.UTC().Format(time.RFC3339), status)
				return err
			})
			if err != nil {
				return err
			}
			if asJSON {
				return nil
			}
			return tw.Flush()
		},
	}
}

// revokedStatus is the STATUS of a revoked certificate: what revoked it,
// when, by whom and why.
func revokedStatus(r store.Revocation) string {
	s := fmt.Sprintf("revoked (by %s%s at %s by %s", r.Kind, revokedTarget(r), r.CreatedAt.UTC().Format(time.RFC3339), r.Actor)
	if r.Reason != "" {
		s += fmt.Sprintf(": %q", r.Reason)
	}
	return s + ")"
}

func revokedTarget(r store.Revocation) string {
	switch r.Kind {
	case store.RevokeSerial:
		if r.Lo == r.Hi {
			return fmt.Sprintf(" %d", r.Lo)
		}
		return fmt.Sprintf(" %d-%d", r.Lo, r.Hi)
	case store.RevokeKeyID:
		return fmt.Sprintf(" %q", r.KeyID)
	}
	return ""
}
