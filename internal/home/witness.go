package home

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlstore"
	"github.com/sshca/sshca/internal/witness"
)

// HeadFile is the home's record of the last audit entry this machine saw
// committed, kept outside the database (see package witness).
const HeadFile = "audit.head"

// AuditFilePath returns the audit file of cfg (service.audit_file), a
// relative path taken from the home dir; "" when none is configured.
func AuditFilePath(dir string, cfg *config.Config) string {
	if cfg == nil {
		return ""
	}
	f := cfg.ServiceOrDefault().AuditFile
	if f == "" || filepath.IsAbs(f) {
		return f
	}
	return filepath.Join(dir, f)
}

// openWitness makes db copy every entry it commits to the audit file of cfg
// and move the home's head file, whichever command commits it.
func openWitness(dir string, cfg *config.Config, db *sqlstore.DB, notice func(string)) (*witness.Witness, error) {
	w, err := witness.Open(witness.Options{
		HeadFile:  filepath.Join(dir, HeadFile),
		AuditFile: AuditFilePath(dir, cfg),
		Lookup: func(ctx context.Context, seq uint64) (string, error) {
			h, err := db.AuditHash(ctx, seq)
			if errors.Is(err, store.ErrNotFound) {
				return "", nil
			}
			return h, err
		},
		Notice: notice,
	})
	if err != nil {
		return nil, err
	}
	db.OnAudit(w.Record)
	return w, nil
}
