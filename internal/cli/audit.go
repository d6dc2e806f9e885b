package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/witness"
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

func newAuditVerifyCommand() *command {
	var file string
	return &command{
		name: "audit verify",
		summary: "check the audit log's hash chain, its tail against the head kept outside the database and the audit file, " +
			"and that certificates, revocations, CA keys and tokens in the database match it",
		usage: "[--file F]",
		example: `  sshca audit verify
  sshca audit verify --file /var/log/sshca/audit.jsonl   # a copy shipped back from the SIEM`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&file, "file", "", "compare the log with this audit file (JSON lines; default: service.audit_file of sshca.yaml, if set)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			explicit := file != ""
			if !explicit {
				file = home.AuditFilePath(h.Dir, h.Config)
			}
			report, err := verifyAudit(e, h, file, explicit)
			if err != nil {
				return withHint(err, "the audit log or the database was modified outside sshca; restore the database from a backup and investigate")
			}
			for _, line := range report {
				fmt.Fprintln(e.stdout, line)
			}
			return nil
		},
	}
}

// verifyAudit checks the chain and that it ends where the head record says,
// then the log against what was kept outside the database (the home's head
// file and the audit file, when there is one) and the state tables against
// the log. On success it returns the lines to print and moves the home's
// head file to the last entry verified.
func verifyAudit(e *env, h *home.Home, auditFile string, explicit bool) ([]string, error) {
	st := h.Store
	log, entries, err := readVerifiedLog(e.ctx, st)
	if err != nil {
		return nil, err
	}
	seq, hash, err := st.AuditHead(e.ctx)
	if err != nil {
		return nil, err
	}
	var lastSeq uint64
	var lastHash string
	if n := len(log); n > 0 {
		lastSeq, lastHash = uint64(n), log[n-1]
	}
	if seq != lastSeq || hash != lastHash {
		if seq > lastSeq {
			return nil, &audit.VerifyError{Seq: lastSeq + 1, Reason: fmt.Sprintf("missing: the log ends at entry %d but %d entries were written", lastSeq, seq)}
		}
		return nil, errors.New("audit: the head record does not match the last entry")
	}
	report := []string{fmt.Sprintf("audit log intact: %d entries", len(log))}

	// The chain and the head row can be rewritten together; what was
	// recorded outside the database cannot.
	var errs []error
	headPath := filepath.Join(h.Dir, home.HeadFile)
	if head, err := witness.ReadHead(headPath); err != nil {
		errs = append(errs, err)
	} else if err := audit.CheckHeadHashes(log, head.Seq, head.Hash, headPath); err != nil {
		errs = append(errs, err)
	} else if head.Seq == 0 {
		report = append(report, fmt.Sprintf("head outside the database: none recorded yet (%s)", headPath))
	} else {
		report = append(report, fmt.Sprintf("head outside the database: entry %d matches (%s)", head.Seq, headPath))
	}
	if auditFile != "" {
		line, err := compareAuditFile(auditFile, log, explicit)
		if err != nil {
			errs = append(errs, err)
		} else if line != "" {
			report = append(report, line)
		}
	}
	problems, err := ca.CheckConsistency(e.ctx, st, entries)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		errs = append(errs, fmt.Errorf("audit: the log is intact but the database does not match it: %s", strings.Join(problems, "; ")))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := h.Witness.Advance(e.ctx, witness.Head{Seq: lastSeq, Hash: lastHash}); err != nil {
		return nil, err
	}
	return report, nil
}

// auditPage is how many entries audit verify reads at a time (a variable
// for the tests, which verify across many page boundaries).
var auditPage = 10_000

// readVerifiedLog reads the whole audit log a page at a time, verifying the
// chain as it goes, and returns the hash of every entry (entry i at index
// i-1) and each entry as the consistency check needs it
// (ca.ForConsistency): a long log is never held whole.
func readVerifiedLog(ctx context.Context, st store.ServiceStore) (audit.Hashes, []audit.Entry, error) {
	pager, ok := st.(interface {
		AuditAfter(ctx context.Context, seq uint64, limit int) ([]audit.Entry, error)
	})
	if !ok {
		all, err := st.AuditEntries(ctx, store.AuditFilter{})
		if err != nil {
			return nil, nil, err
		}
		if err := audit.Verify(all); err != nil {
			return nil, nil, err
		}
		log := audit.HashesOf(all)
		for i := range all {
			all[i] = ca.ForConsistency(all[i])
		}
		return log, all, nil
	}
	var log audit.Hashes
	var entries []audit.Entry
	seq, hash := uint64(0), audit.GenesisHash
	for {
		page, err := pager.AuditAfter(ctx, seq, auditPage)
		if err != nil {
			return nil, nil, err
		}
		if len(page) == 0 {
			return log, entries, nil
		}
		if err := audit.VerifyFrom(seq, hash, page); err != nil {
			return nil, nil, err
		}
		for _, e := range page {
			log = append(log, e.Hash)
			entries = append(entries, ca.ForConsistency(e))
		}
		last := page[len(page)-1]
		seq, hash = last.Seq, last.Hash
	}
}

// compareAuditFile checks the audit file at path against the database's
// log. A configured file that does not exist yet has nothing to compare; one
// named with --file must exist.
func compareAuditFile(path string, log audit.Hashes, explicit bool) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return fmt.Sprintf("audit file %s: not written yet", path), nil
	}
	if err != nil {
		return "", fmt.Errorf("audit file: %w", err)
	}
	defer f.Close()
	var m audit.MirrorCheck
	if err := audit.EachLine(f, func(e audit.Entry) error { m.Add(e); return nil }); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	n, err := m.Result(log)
	if err != nil {
		return "", fmt.Errorf("%w (audit file %s)", err, path)
	}
	if n == 0 {
		return fmt.Sprintf("audit file %s: empty", path), nil
	}
	return fmt.Sprintf("audit file %s: %d entries, all in the database, and every entry since the file's first is in the file", path, n), nil
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
