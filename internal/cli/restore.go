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
