package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/sqlstore"
	"github.com/sshca/sshca/internal/witness"
)

func newStoreMigrateCommand() *command {
	var to, from string
	return &command{
		name:    "store migrate",
		summary: "copy the CA's whole state (certificates, serial counter, CA keys, revocations, tokens, TOTP, hosts, audit log) from its database into an empty one, and verify the copy",
		usage:   "--to postgres://...|sqlite[:PATH] [--from postgres://...|sqlite[:PATH]]",
		example: `  sshca --home ./ca store migrate --to 'postgres://sshca@db.example.com/sshca?sslmode=verify-full'
  sshca --home ./ca store migrate --to sqlite        # back from PostgreSQL into the home's sshca.db
  sshca --home ./ca store migrate --to sqlite:/srv/copy.db
  sshca --home ./ca store migrate --from sqlite --to postgres://sshca@db/sshca   # sshca.yaml already names the new database`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&to, "to", "", "the empty target: a postgres:// `URL`, sqlite (the home's sshca.db) or sqlite:PATH")
			fs.StringVar(&from, "from", "", "the `source` in the same forms (default: the database the home uses)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			target, err := parseStoreTarget("--to", to)
			if err != nil {
				return err
			}
			if target.sqlitePath == "" && target.url == "" {
				target.sqlitePath = filepath.Join(e.home, home.DBFile)
			}
			var src migrateSource
			var sourceURL, sourcePath string
			if from == "" {
				h, err := e.openHome("")
				if err != nil {
					return err
				}
				defer h.Close()
				sourceURL = firstNonEmpty(e.database, h.Config.Database)
				if sourceURL == "" {
					sourcePath = filepath.Join(e.home, home.DBFile)
				}
				d, ok := h.Store.(migrateSource)
				if !ok {
					return errors.New("store migrate: this store cannot be exported")
				}
				src = d
			} else {
				st, err := parseStoreTarget("--from", from)
				if err != nil {
					return err
				}
				if st.sqlitePath == "" && st.url == "" {
					st.sqlitePath = filepath.Join(e.home, home.DBFile)
				}
				if _, err := os.Stat(filepath.Join(e.home, home.ConfigFile)); err != nil {
					return fmt.Errorf("%s is not an sshca home (no %s)", e.home, home.ConfigFile)
				}
				if st.sqlitePath != "" {
					if _, err := os.Stat(st.sqlitePath); err != nil {
						return fmt.Errorf("store migrate: --from: %w", err)
					}
				}
				db, _, err := openStoreTarget(e.ctx, st)
				if err != nil {
					return err
				}
				defer db.Close()
				if keys, err := db.ListCAKeys(e.ctx, "user"); err != nil {
					return err
				} else if len(keys) == 0 {
					return fmt.Errorf("store migrate: --from %s: %w", st, home.ErrNoCA)
				}
				src, sourceURL, sourcePath = db, st.url, st.sqlitePath
			}
			if sourcePath != "" && target.sqlitePath != "" && sameFile(target.sqlitePath, sourcePath) {
				return usagef("store migrate: the target is the source database %s", target.sqlitePath)
			}
			if sourceURL != "" && target.url == sourceURL {
				return usagef("store migrate: the target is the source database")
			}
			dst, cleanup, err := openStoreTarget(e.ctx, target)
			if err != nil {
				return err
			}
			committed := false
			defer func() {
				dst.Close()
				if !committed {
					cleanup()
				}
			}()

			imp, err := dst.BeginImport(e.ctx)
			if errors.Is(err, store.ErrNotEmpty) {
				return withHint(fmt.Errorf("store migrate: %s: %w", target, err), target.notEmptyHint())
			}
			if err != nil {
				return fmt.Errorf("store migrate: %s: %w", target, err)
			}
			defer imp.Rollback() //nolint:errcheck // a no-op after Commit
			var snapHead int64
			exported, err := src.Export(e.ctx, func(r store.DumpRecord) error {
				if r.Table == "audit_head" && len(r.Row) == 3 {
					snapHead, _ = r.Row[1].(int64)
				}
				return imp.Add(e.ctx, r)
			})
			if err != nil {
				return fmt.Errorf("store migrate: %w", err)
			}
			if _, err := imp.Commit(e.ctx); err != nil {
				return fmt.Errorf("store migrate: %w", err)
			}
			committed = true
			report, err := verifyCopy(e.ctx, dst, filepath.Join(e.home, home.HeadFile), exported)
			if err != nil {
				return withHint(fmt.Errorf("store migrate: the copy in %s does not verify: %w", target, err),
					"run `sshca audit verify` on the source; the target now holds the bad copy and is not in use: empty it before trying again")
			}
			if seq, _, err := src.AuditHead(e.ctx); err == nil && int64(seq) > snapHead {
				return withHint(fmt.Errorf("store migrate: the source changed during the copy (audit entry %d was written after the snapshot, which ends at %d)", seq, snapHead),
					"stop every `sshca serve` and command using this CA, empty the target ("+target.emptyHow()+") and run store migrate again")
			}

			source := "SQLite " + sourcePath
			if sourceURL != "" {
				source = home.RedactURL(sourceURL)
			}
			fmt.Fprintf(e.stdout, "Copied the CA from %s to %s:\n  %s\n", source, target, formatCounts(exported))
			for _, line := range report {
				fmt.Fprintf(e.stdout, "  %s\n", line)
			}
			fmt.Fprintln(e.stdout, "The source is unchanged. To switch this home to the copy:")
			cfgPath := filepath.Join(e.home, home.ConfigFile)
			switch {
			case target.url != "":
				fmt.Fprintf(e.stdout, "  1. stop `sshca serve` (and anything else using this CA)\n")
				fmt.Fprintf(e.stdout, "  2. set `database: %s` in %s (or pass --database / set SSHCA_DATABASE)\n", pastableURL(target.url), cfgPath)
				fmt.Fprintf(e.stdout, "  3. give every replica a copy of this home's sshca.yaml and keys/ (CA keys and keys/%s), then start `sshca serve`\n", home.SecretsKeyFile)
				if sourceURL == "" {
					fmt.Fprintf(e.stdout, "  %s is no longer written once you switch; keep it as a backup\n", filepath.Join(e.home, home.DBFile))
				}
			case sameFile(target.sqlitePath, filepath.Join(e.home, home.DBFile)):
				fmt.Fprintf(e.stdout, "  stop `sshca serve`, remove the `database:` line from %s (and unset SSHCA_DATABASE), then start it again\n", cfgPath)
			default:
				fmt.Fprintf(e.stdout, "  a home uses the SQLite file %s in its directory: move %s there and remove any `database:` line from its sshca.yaml\n", home.DBFile, target.sqlitePath)
			}
			return nil
		},
	}
}

// migrateSource is the store a copy is taken from.
type migrateSource interface {
	store.Dumper
	AuditHead(ctx context.Context) (uint64, string, error)
}

// storeTarget is where store migrate or restore puts a copy.
type storeTarget struct {
	url        string // PostgreSQL
	sqlitePath string // SQLite file; both empty: the home's sshca.db
}

func (t storeTarget) String() string {
	if t.url != "" {
		return home.RedactURL(t.url)
	}
	return "SQLite " + t.sqlitePath
}

func (t storeTarget) notEmptyHint() string {
	if t.url != "" {
		return "store migrate copies into an empty database only: create a new one (`createdb -O sshca sshca`) or drop this one's tables"
	}
	return "store migrate copies into a new database only: move " + t.sqlitePath + " aside (with its -wal and -shm files) or choose another path"
}

func (t storeTarget) emptyHow() string {
	if t.url != "" {
		return "drop and re-create the database"
	}
	return "remove " + t.sqlitePath + " and its -wal and -shm files"
}

func parseStoreTarget(flagName, to string) (storeTarget, error) {
	switch {
	case to == "":
		return storeTarget{}, usagef("store migrate: %s is required (postgres://... or sqlite[:PATH])", flagName)
	case strings.HasPrefix(to, "postgres://"), strings.HasPrefix(to, "postgresql://"):
		return storeTarget{url: to}, nil
	case to == "sqlite" || to == "sqlite:":
		return storeTarget{}, nil
	case strings.HasPrefix(to, "sqlite:"):
		p := strings.TrimPrefix(to, "sqlite:")
		p = strings.TrimPrefix(p, "//")
		return storeTarget{sqlitePath: p}, nil
	}
	return storeTarget{}, usagef("store migrate: %s %q: want a postgres:// URL, sqlite or sqlite:PATH", flagName, to)
}

// openStoreTarget opens the target store; cleanup removes what opening
// created (a new SQLite file), for when the copy fails.
func openStoreTarget(ctx context.Context, t storeTarget) (*sqlstore.DB, func(), error) {
	if t.url != "" {
		db, err := postgres.Open(ctx, t.url)
		if err != nil {
			return nil, nil, err
		}
		return db, func() {}, nil
	}
	_, statErr := os.Stat(t.sqlitePath)
	created := errors.Is(statErr, os.ErrNotExist)
	if created {
		if err := os.MkdirAll(filepath.Dir(t.sqlitePath), 0o700); err != nil {
			return nil, nil, err
		}
	}
	db, err := sqlite.Open(ctx, t.sqlitePath)
	cleanup := func() {
		if created {
			for _, f := range sqlite.Files(t.sqlitePath) {
				_ = os.Remove(f)
			}
		}
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return db, cleanup, nil
}

func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(fa, fb)
	}
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	return aa == ab
}

// pastableURL is a database URL to paste into sshca.yaml, which refuses
// passwords: the password, if any, is left out.
func pastableURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.User(u.User.Username())
		}
	}
	q := u.Query()
	if q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// copyStore is what verifyCopy reads.
type copyStore interface {
	ca.ConsistencyStore
	AuditEntries(ctx context.Context, f store.AuditFilter) ([]audit.Entry, error)
	AuditHead(ctx context.Context) (uint64, string, error)
	Counts(ctx context.Context) (store.DumpCounts, error)
}

// verifyCopy checks a copied store as audit verify checks a home's: the
// chain, its head row, the head recorded outside the database (headPath),
// every row against its audit seal; and that it holds the rows want
// counts. It returns the lines to report.
func verifyCopy(ctx context.Context, st copyStore, headPath string, want store.DumpCounts) ([]string, error) {
	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		return nil, err
	}
	if err := audit.Verify(entries); err != nil {
		return nil, err
	}
	seq, hash, err := st.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	var lastSeq uint64
	var lastHash string
	if n := len(entries); n > 0 {
		lastSeq, lastHash = entries[n-1].Seq, entries[n-1].Hash
	}
	if seq != lastSeq || hash != lastHash {
		return nil, errors.New("audit: the head record does not match the last entry")
	}
	report := []string{fmt.Sprintf("audit verify on the copy: chain intact (%d entries)", len(entries))}
	head, err := witness.ReadHead(headPath)
	if err != nil {
		return nil, err
	}
	if err := audit.CheckHead(entries, head.Seq, head.Hash, headPath); err != nil {
		return nil, err
	}
	if head.Seq > 0 {
		report = append(report, fmt.Sprintf("head outside the database: entry %d matches (%s)", head.Seq, headPath))
	}
	problems, err := ca.CheckConsistency(ctx, st, entries)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("audit: the log is intact but the database does not match it: %s", strings.Join(problems, "; "))
	}
	report = append(report, "every certificate, revocation, CA key and token row matches its audit seal")
	got, err := st.Counts(ctx)
	if err != nil {
		return nil, err
	}
	var diff []string
	for _, t := range sortedCountKeys(want, got) {
		if want[t] != got[t] {
			diff = append(diff, fmt.Sprintf("%s: %d in the source, %d in the copy", t, want[t], got[t]))
		}
	}
	if len(diff) > 0 {
		return nil, fmt.Errorf("row counts differ: %s", strings.Join(diff, "; "))
	}
	report = append(report, "row counts equal in every table")
	return report, nil
}

func sortedCountKeys(ms ...store.DumpCounts) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// formatCounts prints a dump's row counts, the important tables first.
func formatCounts(c store.DumpCounts) string {
	order := []string{"certs", "revocations", "ca_keys", "tokens", "totp", "hosts", "krl_versions", "audit"}
	var parts []string
	for _, t := range order {
		parts = append(parts, fmt.Sprintf("%s %d", t, c[t]))
	}
	for _, t := range sortedCountKeys(c) {
		found := false
		for _, o := range order {
			found = found || o == t
		}
		if !found {
			parts = append(parts, fmt.Sprintf("%s %d", t, c[t]))
		}
	}
	return strings.Join(parts, ", ")
}

// hintEmptyStore adds to home.ErrNoCA how to bring the CA's state there.
func hintEmptyStore(err error) error {
	if !errors.Is(err, home.ErrNoCA) {
		return err
	}
	return withHint(err, "to move this CA's state there from the home's SQLite file, run `sshca store migrate --from sqlite --to URL` "+
		"(or restore a backup: `sshca restore --in FILE --database URL --home NEWDIR`); for a new CA, run `sshca init --database URL` in a new home")
}
