// Package sqlite opens sshca's embedded store: a SQLite database file (pure Go
// driver) in WAL mode with a busy timeout, so admin commands can run while the
// service holds the same file. It only opens and migrates; the queries live in
// sqlstore.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store/sqlstore"
)

var schema = []string{
	`CREATE TABLE IF NOT EXISTS certs (
		serial INTEGER PRIMARY KEY AUTOINCREMENT,
		ca_type TEXT NOT NULL,
		ca_fp TEXT NOT NULL,
		role TEXT NOT NULL,
		key_id TEXT NOT NULL,
		principals TEXT NOT NULL,
		valid_after INTEGER NOT NULL,
		valid_before INTEGER NOT NULL,
		subject_fp TEXT NOT NULL,
		subject_type TEXT NOT NULL,
		requester TEXT NOT NULL,
		issued_us INTEGER NOT NULL,
		cert TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX IF NOT EXISTS certs_key_id ON certs (key_id)`,
	// Serials are reserved in blocks from this counter (store.ReserveSerials)
	// and certificates inserted with them; a database from before the counter
	// starts it above every serial AUTOINCREMENT ever handed out.
	`CREATE TABLE IF NOT EXISTS serial_counter (id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL)`,
	`INSERT OR IGNORE INTO serial_counter (id, next) VALUES (1, MAX(
		COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'certs'), 0),
		COALESCE((SELECT MAX(serial) FROM certs), 0)) + 1)`,
	`CREATE INDEX IF NOT EXISTS certs_valid_before ON certs (valid_before)`,
	// What CA rotation asks of each generation (store.GenerationStats: how
	// many certificates it signed, the last to expire) reads this index
	// instead of every certificate with its body.
	`CREATE INDEX IF NOT EXISTS certs_ca_expiry ON certs (ca_type, ca_fp, valid_before)`,
	// No index on subject_fp: nothing looks certificates up by subject, and
	// an index on a random hash dirties a random page per certificate, which
	// is most of what a group commit writes.
	`DROP INDEX IF EXISTS certs_subject_fp`,
	`CREATE TABLE IF NOT EXISTS ca_keys (
		ca_type TEXT NOT NULL,
		generation INTEGER NOT NULL,
		state TEXT NOT NULL,
		key_type TEXT NOT NULL,
		fingerprint TEXT NOT NULL,
		public_key TEXT NOT NULL,
		signer TEXT NOT NULL,
		file TEXT NOT NULL,
		created_us INTEGER NOT NULL,
		updated_us INTEGER NOT NULL,
		PRIMARY KEY (ca_type, generation)
	)`,
	`CREATE TABLE IF NOT EXISTS revocations (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		ca_type TEXT NOT NULL,
		kind TEXT NOT NULL,
		lo INTEGER NOT NULL,
		hi INTEGER NOT NULL,
		key_id TEXT NOT NULL,
		value TEXT NOT NULL,
		reason TEXT NOT NULL,
		actor TEXT NOT NULL,
		created_us INTEGER NOT NULL,
		expires_us INTEGER NOT NULL,
		UNIQUE (ca_type, kind, lo, hi, key_id, value)
	)`,
	`CREATE TABLE IF NOT EXISTS krl_versions (ca_type TEXT PRIMARY KEY, version INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS audit (
		seq INTEGER PRIMARY KEY,
		time_us INTEGER NOT NULL,
		actor TEXT NOT NULL,
		action TEXT NOT NULL,
		role TEXT NOT NULL,
		serial INTEGER NOT NULL,
		key_id TEXT NOT NULL,
		outcome TEXT NOT NULL,
		reason TEXT NOT NULL,
		details TEXT NOT NULL,
		prev_hash TEXT NOT NULL,
		hash TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS audit_serial ON audit (serial)`,
	`CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL)`,
	// Seq 0 is "no entry yet" (sqlstore treats it as an empty log); keeping the
	// row present from the start gives every backend a head row to lock.
	`CREATE TABLE IF NOT EXISTS tokens (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		kind TEXT NOT NULL,
		roles TEXT NOT NULL,
		principals TEXT NOT NULL,
		hash TEXT NOT NULL,
		created_by TEXT NOT NULL,
		created_us INTEGER NOT NULL,
		expires_us INTEGER NOT NULL,
		revoked_us INTEGER NOT NULL DEFAULT 0,
		used_us INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE IF NOT EXISTS totp (identity TEXT PRIMARY KEY, secret TEXT NOT NULL, last_step INTEGER NOT NULL DEFAULT 0, created_us INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS challenges (id TEXT PRIMARY KEY, expires_us INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS hosts (
		name TEXT PRIMARY KEY,
		last_seen_us INTEGER NOT NULL,
		krl_version INTEGER NOT NULL,
		ca_keys TEXT NOT NULL,
		cert_expiry_us INTEGER NOT NULL,
		stale INTEGER NOT NULL,
		detail TEXT NOT NULL
	)`,
	`INSERT OR IGNORE INTO audit_head (id, seq, hash) VALUES (1, 0, '` + audit.GenesisHash + `')`,
	// Local users of the SSH front door (PostgreSQL migration 6).
	`CREATE TABLE IF NOT EXISTS local_users (name TEXT PRIMARY KEY, groups_json TEXT NOT NULL, created_by TEXT NOT NULL, created_us INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS local_user_keys (fingerprint TEXT PRIMARY KEY, name TEXT NOT NULL, public_key TEXT NOT NULL, added_us INTEGER NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS local_user_keys_name ON local_user_keys (name)`,
}

// Dialect is the SQLite dialect for sqlstore.
var dialect = sqlstore.Dialect{
	Name:   "sqlite",
	Rebind: func(q string) string { return q },
	BeginWrite: func(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
		// The DSN sets _txlock=immediate, so BEGIN takes the write lock at once
		// and writers queue on the busy timeout instead of failing on upgrade.
		return db.BeginTx(ctx, nil)
	},
	IsUniqueViolation: func(err error) bool {
		var se *sqlite.Error
		if errors.As(err, &se) {
			return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
		}
		return strings.Contains(err.Error(), "UNIQUE constraint failed")
	},
}

// Open opens (creating if needed) the SQLite database at path and migrates it.
func Open(ctx context.Context, path string) (*sqlstore.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(15000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	// The database holds token hashes, TOTP secrets (encrypted) and the
	// audit chain: it is the owner's only, whoever creates it, under any
	// umask. SQLite gives its -wal, -shm and -journal files the database's
	// mode, so a private database keeps them private; files left broader
	// by an older sshca are tightened before and after opening.
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	if _, err := MakePrivate(path); err != nil {
		return nil, err
	}
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	for _, stmt := range schema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
		}
	}
	if err := addColumns(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	for _, stmt := range columnIndexes {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
		}
	}
	// The first connection has made the -wal and -shm files.
	if _, err := MakePrivate(path); err != nil {
		db.Close()
		return nil, err
	}
	return sqlstore.New(db, dialect), nil
}

// Files returns the database file at path and the files SQLite keeps
// beside it (write-ahead log, shared memory index, rollback journal).
func Files(path string) []string {
	return []string{path, path + "-wal", path + "-shm", path + "-journal"}
}

// Tightened is a file whose mode MakePrivate changed.
type Tightened struct {
	Path string
	Was  os.FileMode
}

// MakePrivate makes the database at path and each of its files that exist
// mode 0600 when group or others have any access to them, and returns the
// ones it changed. A file it cannot change (owned by someone else) is an
// error: the database must not be left readable.
func MakePrivate(path string) ([]Tightened, error) {
	var changed []Tightened
	for _, p := range Files(path) {
		fi, err := os.Stat(p) // a symlink (to another disk, say) is followed, as SQLite does
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return changed, fmt.Errorf("sqlite: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return changed, fmt.Errorf("sqlite: %s is not a regular file (%s)", p, fi.Mode().Type())
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return changed, fmt.Errorf("sqlite: %s has mode %04o and cannot be made private: %w", p, perm, err)
			}
			changed = append(changed, Tightened{Path: p, Was: perm})
		}
	}
	return changed, nil
}
