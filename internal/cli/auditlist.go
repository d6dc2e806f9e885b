package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/store"
)

func newAuditListCommand() *command {
	var actor, role, action, since, until string
	var serial uint64
	var asJSON bool
	return &command{
		name:    "audit list",
		summary: "read the audit log",
		usage:   "[--actor A] [--role R] [--serial N] [--action A] [--since T] [--until T] [--json]",
		example: `  sshca audit list --role deploy --since 2026-11-01
  sshca audit list --serial 42 --json`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&actor, "actor", "", "only entries by this actor (e.g. cli:root, token:ci)")
			fs.StringVar(&role, "role", "", "only entries for this role")
			fs.Uint64Var(&serial, "serial", 0, "only entries about this certificate serial")
			fs.StringVar(&action, "action", "", "only this action (cert.issue, cert.deny, revoke, ...)")
			fs.StringVar(&since, "since", "", "only entries at or after this time (RFC 3339 or YYYY-MM-DD)")
			fs.StringVar(&until, "until", "", "only entries before this time")
			fs.BoolVar(&asJSON, "json", false, "print JSON lines")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			f := store.AuditFilter{Actor: actor, Role: role, Serial: serial, Action: action}
			var err error
			if f.Since, err = parseTimeFlag("since", since); err != nil {
				return err
			}
			if f.Until, err = parseTimeFlag("until", until); err != nil {
				return err
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			entries, err := h.Store.AuditEntries(e.ctx, f)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(e.stdout)
			for _, en := range entries {
				if asJSON {
					if err := enc.Encode(en); err != nil {
						return err
					}
					continue
				}
				line := fmt.Sprintf("%d %s %s %s %s", en.Seq, en.Time.UTC().Format(time.RFC3339), en.Actor, en.Action, en.Outcome)
				if en.Role != "" {
					line += " role=" + en.Role
				}
				if en.Serial != 0 {
					line += fmt.Sprintf(" serial=%d", en.Serial)
				}
				if en.KeyID != "" {
					line += fmt.Sprintf(" key_id=%q", en.KeyID)
				}
				if en.Reason != "" {
					line += fmt.Sprintf(" reason=%q", en.Reason)
				}
				for _, k := range sortedKeys(en.Details) {
					line += fmt.Sprintf(" %s=%q", k, en.Details[k])
				}
				fmt.Fprintln(e.stdout, line)
			}
			return nil
		},
	}
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, strings.TrimSpace(v), time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--%s: %q is not a time (use RFC 3339 or YYYY-MM-DD)", name, v)
}
