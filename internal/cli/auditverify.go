package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/witness"
)

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
