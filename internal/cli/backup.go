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
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlstore"
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

func newRestoreCommand() *command {
	var in, passFile string
	return &command{
		name: "restore",
		summary: "bring a CA back from a backup archive into a new home (and an empty database): " +
			"refuses to overwrite a home, verifies the audit log and every row, keeps the serial counter",
		usage: "--in FILE --passphrase-file F [--home NEWDIR] [--database postgres://...]",
		example: `  sshca --home ./ca-restored restore --in ca-2026-11-02.sshca-backup --passphrase-file backup.pass
  sshca --home /var/lib/sshca restore --in sshca.bak --passphrase-file backup.pass --database 'postgres://sshca@db2/sshca'`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&in, "in", "", "the archive `file` written by sshca backup")
			fs.StringVar(&passFile, "passphrase-file", "", "its passphrase, in this `file` (or $SSHCA_BACKUP_PASSPHRASE_FILE)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if in == "" {
				return usagef("restore: --in is required")
			}
			pass, err := e.backupPassphrase("restore", passFile, false)
			if err != nil {
				return err
			}
			f, err := os.Open(in)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			defer f.Close()
			r, err := newRestorer(e.home)
			if err != nil {
				return err
			}
			ok := false
			defer func() {
				if !ok {
					r.abort()
				}
			}()
			var target storeTarget
			var imp store.Import
			sum, err := backup.Read(e.ctx, f, pass, backup.Handler{
				File: r.writeFile,
				Dump: func(rec store.DumpRecord) error {
					if imp == nil {
						t, terr := r.target(e.database)
						if terr != nil {
							return terr
						}
						i, ierr := r.begin(e, t)
						if ierr != nil {
							return ierr
						}
						target, imp = t, i
					}
					return imp.Add(e.ctx, rec)
				},
			})
			if errors.Is(err, backup.ErrPassphrase) {
				return withHint(fmt.Errorf("restore: %s: %w", in, err), "give the --passphrase-file the backup was written with")
			}
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if imp == nil {
				return errors.New("restore: the archive holds no database")
			}
			if _, err := imp.Commit(e.ctx); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			r.committed = true
			report, err := verifyCopy(e.ctx, r.db, filepath.Join(r.dir, home.HeadFile), sum.Counts)
			if err != nil {
				return fmt.Errorf("restore: the restored CA does not verify: %w", err)
			}
			if err := r.checkKeyFiles(e); err != nil {
				return err
			}
			ok = true
			r.db.Close()
			abs, _ := filepath.Abs(r.dir)
			fmt.Fprintf(e.stdout, "Restored the CA into %s from %s (a backup of a %s store taken %s) into %s:\n  %s\n",
				abs, in, sum.Manifest.Backend, sum.Manifest.Created.Format(time.RFC3339), target, formatCounts(sum.Counts))
			for _, line := range report {
				fmt.Fprintf(e.stdout, "  %s\n", line)
			}
			if target.url != "" && target.url != r.cfgDatabase {
				fmt.Fprintf(e.stdout, "Set `database: %s` in %s (or keep passing --database / SSHCA_DATABASE).\n",
					pastableURL(target.url), filepath.Join(abs, home.ConfigFile))
			}
			fmt.Fprintf(e.stdout, "Next: sshca --home %s audit verify\n", r.dir)
			return nil
		},
	}
}

// restorer writes a restored home, and removes it if the restore fails.
type restorer struct {
	dir        string
	createdDir bool
	written    []string
	db         *sqlstore.DB
	imp        store.Import
	cleanup    func()
	committed  bool
	// cfgDatabase is the database the restored sshca.yaml names.
	cfgDatabase string
}

// newRestorer makes the new home's directory: one that does not exist,
// or an empty one; never a live home.
func newRestorer(dir string) (*restorer, error) {
	r := &restorer{dir: dir}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		r.createdDir = true
	case err != nil:
		return nil, fmt.Errorf("restore: %w", err)
	case len(ents) > 0:
		return nil, withHint(fmt.Errorf("restore: %s is not empty", dir), "restore never overwrites a CA home; give --home a new or empty directory")
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return r, nil
}

func (r *restorer) writeFile(f backup.File) error {
	rel := filepath.FromSlash(f.Path)
	if d := filepath.Dir(rel); d != "." {
		p := filepath.Join(r.dir, d)
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		} else if err == nil {
			r.written = append(r.written, p)
		}
	}
	// Private, like everything in a home, but public keys.
	mode := os.FileMode(0o600)
	if strings.HasSuffix(f.Path, ".pub") {
		mode = 0o644
	}
	p := filepath.Join(r.dir, rel)
	if err := writeNewFile(p, f.Data, mode); err != nil {
		return err
	}
	r.written = append(r.written, p)
	return nil
}

func writeNewFile(path string, data []byte, mode os.FileMode) error {
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Close()
		return err
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return os.Chmod(path, mode) // whatever the umask
}

// target decides where the database goes: --database, else the database
// the restored sshca.yaml names, else the home's SQLite file.
func (r *restorer) target(flagDB string) (storeTarget, error) {
	cfg, err := config.Load(filepath.Join(r.dir, home.ConfigFile))
	if err != nil {
		return storeTarget{}, fmt.Errorf("restored policy: %w", err)
	}
	r.cfgDatabase = cfg.Database
	if u := firstNonEmpty(flagDB, cfg.Database); u != "" {
		return storeTarget{url: u}, nil
	}
	return storeTarget{sqlitePath: filepath.Join(r.dir, home.DBFile)}, nil
}

func (r *restorer) begin(e *env, t storeTarget) (store.Import, error) {
	db, cleanup, err := openStoreTarget(e.ctx, t)
	if err != nil {
		if t.url != "" && e.database == "" {
			return nil, withHint(err, "the backup's sshca.yaml names this database; give --database URL of a new, empty one")
		}
		return nil, err
	}
	r.db, r.cleanup = db, cleanup
	imp, err := db.BeginImport(e.ctx)
	if errors.Is(err, store.ErrNotEmpty) {
		return nil, withHint(fmt.Errorf("%s: %w", t, err), "restore writes into an empty database only: give --database URL of a new one (`createdb -O sshca sshca2`)")
	}
	if err != nil {
		return nil, err
	}
	r.imp = imp
	return imp, nil
}

// checkKeyFiles refuses a restored home missing the key file of a CA
// generation servers still trust.
func (r *restorer) checkKeyFiles(e *env) error {
	for _, t := range []string{"user", "host"} {
		keys, err := r.db.ListCAKeys(e.ctx, t)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.Signer != "file" || k.State == store.StateRetired || k.State == store.StateRevoked {
				continue
			}
			if _, err := os.Stat(filepath.Join(r.dir, home.KeyDir, k.File)); err != nil {
				return fmt.Errorf("restore: the %s CA generation %d key file is not in the archive: %w", t, k.Generation, err)
			}
		}
	}
	return nil
}

// abort undoes a failed restore: the import is rolled back, and what was
// written (the directory, if restore made it) removed. A PostgreSQL
// import that committed before verification failed is left for the
// operator to inspect.
func (r *restorer) abort() {
	if r.imp != nil {
		_ = r.imp.Rollback()
	}
	if r.db != nil {
		r.db.Close()
		if !r.committed && r.cleanup != nil {
			r.cleanup()
		}
	}
	if r.createdDir {
		_ = os.RemoveAll(r.dir)
		return
	}
	for _, f := range sqliteFilesIn(r.dir) {
		_ = os.Remove(f)
	}
	for i := len(r.written) - 1; i >= 0; i-- {
		_ = os.Remove(r.written[i])
	}
}

func sqliteFilesIn(dir string) []string {
	var out []string
	for _, s := range []string{"", "-wal", "-shm", "-journal"} {
		out = append(out, filepath.Join(dir, home.DBFile+s))
	}
	return out
}
