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
//
// The log is read once, a page at a time, and folded as it goes into what
// the comparisons need (ca.ConsistencyLog, the hash of the entry the head
// file names, and the hash of every entry only when there is an audit file
// to compare): a log of millions is never held whole.
func verifyAudit(e *env, h *home.Home, auditFile string, explicit bool) ([]string, error) {
	st := h.Store
	headPath := filepath.Join(h.Dir, home.HeadFile)
	head, headErr := witness.ReadHead(headPath)
	headCheck := audit.HeadCheck{Seq: head.Seq, Hash: head.Hash, Where: headPath}
	// How many entries there are is a hint, for room made once rather than
	// as the log is read (the log may grow meanwhile, or the head row lie):
	// room not yet used costs address space, not memory.
	var hint int
	if n, _, err := st.AuditHead(e.ctx); err == nil {
		hint = int(min(n, 1<<24))
	}
	var cons ca.ConsistencyLog
	cons.Grow(hint)
	var hashes *audit.Hashes
	if auditFile != "" {
		hashes = &audit.Hashes{}
		hashes.Grow(hint)
	}
	lastSeq, lastHash, entryAt, err := readVerifiedLog(e.ctx, st, func(en audit.Entry) {
		cons.Add(en)
		headCheck.Add(en.Seq, en.Hash)
		if hashes != nil {
			hashes.Append(en.Hash)
		}
	})
	if err != nil {
		return nil, err
	}
	seq, hash, err := st.AuditHead(e.ctx)
	if err != nil {
		return nil, err
	}
	if seq != lastSeq || hash != lastHash {
		if seq > lastSeq {
			return nil, &audit.VerifyError{Seq: lastSeq + 1, Reason: fmt.Sprintf("missing: the log ends at entry %d but %d entries were written", lastSeq, seq)}
		}
		return nil, errors.New("audit: the head record does not match the last entry")
	}
	report := []string{fmt.Sprintf("audit log intact: %d entries", lastSeq)}

	// The chain and the head row can be rewritten together; what was
	// recorded outside the database cannot.
	var errs []error
	if headErr != nil {
		errs = append(errs, headErr)
	} else if err := headCheck.Result(); err != nil {
		errs = append(errs, err)
	} else if head.Seq == 0 {
		report = append(report, fmt.Sprintf("head outside the database: none recorded yet (%s)", headPath))
	} else {
		report = append(report, fmt.Sprintf("head outside the database: entry %d matches (%s)", head.Seq, headPath))
	}
	if auditFile != "" {
		line, err := compareAuditFile(auditFile, *hashes, explicit)
		if err != nil {
			errs = append(errs, err)
		} else if line != "" {
			report = append(report, line)
		}
	}
	problems, err := cons.Check(e.ctx, st, entryAt)
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
var auditPage = 2_000

// auditPager is a store that reads its log a page at a time.
type auditPager interface {
	AuditAfter(ctx context.Context, seq uint64, limit int) ([]audit.Entry, error)
}

// readVerifiedLog reads the whole audit log a page at a time, verifying the
// chain as it goes, and gives each entry to add, in order. It returns the
// number and hash of the last entry and how to read an entry again (for
// the consistency check's few second looks): a long log is never held.
func readVerifiedLog(ctx context.Context, st store.ServiceStore, add func(audit.Entry)) (lastSeq uint64, lastHash string, at ca.EntryFunc, err error) {
	pager, ok := st.(auditPager)
	if !ok {
		all, err := st.AuditEntries(ctx, store.AuditFilter{})
		if err != nil {
			return 0, "", nil, err
		}
		if err := audit.Verify(all); err != nil {
			return 0, "", nil, err
		}
		for _, e := range all {
			add(e)
		}
		if n := len(all); n > 0 {
			lastSeq, lastHash = all[n-1].Seq, all[n-1].Hash
		}
		return lastSeq, lastHash, ca.EntriesAt(all), nil
	}
	seq, hash := uint64(0), audit.GenesisHash
	for {
		page, err := pager.AuditAfter(ctx, seq, auditPage)
		if err != nil {
			return 0, "", nil, err
		}
		if len(page) == 0 {
			if seq > 0 {
				lastHash = hash
			}
			return seq, lastHash, entryAt(pager), nil
		}
		if err := audit.VerifyFrom(seq, hash, page); err != nil {
			return 0, "", nil, err
		}
		for _, e := range page {
			add(e)
		}
		last := page[len(page)-1]
		seq, hash = last.Seq, last.Hash
	}
}

// entryAt reads one entry of a verified log again. The entry must still
// be the one verified (its hash computed from its contents); the caller
// compares what it needs of it with what it kept.
func entryAt(pager auditPager) ca.EntryFunc {
	return func(ctx context.Context, seq uint64) (audit.Entry, error) {
		if seq == 0 {
			return audit.Entry{}, errors.New("audit: entry 0 does not exist")
		}
		page, err := pager.AuditAfter(ctx, seq-1, 1)
		if err != nil {
			return audit.Entry{}, err
		}
		if len(page) != 1 || page[0].Seq != seq || audit.ComputeHash(page[0]) != page[0].Hash {
			return audit.Entry{}, fmt.Errorf("audit: entry %d changed or went away while it was being verified", seq)
		}
		return page[0], nil
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
	m := audit.NewMirrorCheck(log)
	if err := audit.EachLine(f, func(e audit.Entry) error { m.Add(e); return nil }); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	n, err := m.Result()
	if err != nil {
		return "", fmt.Errorf("%w (audit file %s)", err, path)
	}
	if n == 0 {
		return fmt.Sprintf("audit file %s: empty", path), nil
	}
	return fmt.Sprintf("audit file %s: %d entries, all in the database, and every entry since the file's first is in the file", path, n), nil
}
