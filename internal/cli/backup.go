package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/backup"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
)

// backupPassphrase reads the passphrase of a backup archive from --passphrase-file
// or $SSHCA_BACKUP_PASSPHRASE_FILE; a new archive needs a long one.
func (e *env) backupPassphrase(cmd, flagValue string, creating bool) ([]byte, error) {
	path := firstNonEmpty(flagValue, e.getenv("SSHCA_BACKUP_PASSPHRASE_FILE"))
	if path == "" {
		return nil, withHint(usagef("%s: --passphrase-file is required (the archive is encrypted with that passphrase)", cmd),
			"keep the passphrase apart from the archive, e.g. `openssl rand -base64 18 > backup.pass && chmod 600 backup.pass`")
	}
	if creating {
		return readNewPassphraseFile(path, false)
	}
	return readPassphraseFile(path)
}

func newBackupCommand() *command {
	var out, passFile string
	return &command{
		name: "backup",
		summary: "write one encrypted archive of the CA home: CA keys and secrets key as on disk, policy, TLS files, " +
			"a consistent snapshot of the database (SQLite or PostgreSQL) and the audit head",
		usage: "--out FILE --passphrase-file F",
		example: `  sshca --home ./ca backup --out ca-$(date +%F).sshca-backup --passphrase-file backup.pass
  SSHCA_BACKUP_PASSPHRASE_FILE=/etc/sshca/backup.pass sshca --home /var/lib/sshca backup --out /srv/backup/sshca.bak`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&out, "out", "", "write the archive to this `file` (never overwritten)")
			fs.StringVar(&passFile, "passphrase-file", "", "encrypt with the passphrase in this `file` (first line, at least 12 characters, mode 0600; or $SSHCA_BACKUP_PASSPHRASE_FILE)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if out == "" {
				return usagef("backup: --out is required")
			}
			pass, err := e.backupPassphrase("backup", passFile, true)
			if err != nil {
				return err
			}
			if _, err := os.Lstat(out); err == nil {
				return withHint(fmt.Errorf("backup: %s exists", out), "sshca never overwrites a backup; choose another --out")
			}
			h, err := e.openHome("")
			if err != nil {
				return err
			}
			defer h.Close()
			src, ok := h.Store.(store.Dumper)
			if !ok {
				return errors.New("backup: this store cannot be exported")
			}
			backend := "sqlite"
			if firstNonEmpty(e.database, h.Config.Database) != "" {
				backend = "postgres"
			}
			var exclude []string
			if af := home.AuditFilePath(h.Dir, h.Config); af != "" {
				if rel, err := filepath.Rel(h.Dir, af); err == nil && !strings.HasPrefix(rel, "..") {
					exclude = append(exclude, filepath.ToSlash(rel))
				}
			}
			sum, err := writeBackup(e, out, pass, backup.Options{Dir: h.Dir, Store: src, Backend: backend, Exclude: exclude, Now: time.Now()})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Wrote %s (encrypted, read back and checked): a backup of %s\n", out, h.Dir)
			fmt.Fprintf(e.stdout, "  files:    %s\n", strings.Join(sum.Files, ", "))
			fmt.Fprintf(e.stdout, "  database: %s snapshot: %s\n", backend, formatCounts(sum.Counts))
			for _, s := range sum.Skipped {
				if s != home.HeadFile {
					fmt.Fprintf(e.stdout, "  left out: %s\n", s)
				}
			}
			fmt.Fprintf(e.stdout, "Keep the passphrase apart from the archive. Restore with:\n  sshca restore --in %s --passphrase-file FILE --home NEWDIR [--database postgres://...]\n", out)
			return nil
		},
	}
}

// writeBackup writes the archive to a private temporary file beside out,
// reads it back, and links it into place (never replacing a file).
func writeBackup(e *env, out string, pass []byte, o backup.Options) (backup.Summary, error) {
	dir := filepath.Dir(out)
	f, err := os.CreateTemp(dir, ".sshca-backup-*")
	if err != nil {
		return backup.Summary{}, fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return backup.Summary{}, fmt.Errorf("backup: %w", err)
	}
	sum, err := backup.Write(e.ctx, f, pass, o)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return sum, err
	}
	// A backup never read back is a hope, not a backup.
	rf, err := os.Open(tmp)
	if err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	check, err := backup.Read(e.ctx, rf, pass, backup.Handler{})
	rf.Close()
	if err != nil {
		return sum, fmt.Errorf("backup: the archive does not read back: %w", err)
	}
	if formatCounts(check.Counts) != formatCounts(sum.Counts) || len(check.Files) != len(sum.Files) {
		return sum, errors.New("backup: the archive read back differs from what was written")
	}
	if err := os.Link(tmp, out); err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return sum, nil
}
