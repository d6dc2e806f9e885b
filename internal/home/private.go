package home

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/sealbox"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/sqlstore"
)

// SecretsKeyFile is the key, in KeyDir, that encrypts the secrets the
// database keeps (TOTP secrets): 32 random bytes, mode 0600. It lives with
// the CA keys, outside the database, so that a copy of the database (a
// backup, a replica, a stolen file) gives no one a second factor. Back it
// up with the CA keys; every replica sharing a PostgreSQL database needs
// the same file.
const SecretsKeyFile = "secrets.key"

// Modes of what a home holds: the home and keys/ are the owner's only, and
// so is every file of the database.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// makeDirPrivate gives an existing directory mode 0700 when group or
// others have any access to it, and says so through notice: a home made by
// `mkdir` (0755 under the usual umask) or by an older sshca is tightened,
// not refused, since nothing in it need be treated as leaked yet.
func makeDirPrivate(dir string, notice func(string)) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("home: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("home: %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, dirMode); err != nil {
			return fmt.Errorf("home: %s has mode %04o and cannot be made private: %w", dir, perm, err)
		}
		notice(fmt.Sprintf("%s had mode %04o; made it %04o (only its owner may enter a CA home)", dir, perm, dirMode))
	}
	return nil
}

// makeDBPrivate gives the SQLite database and its -wal, -shm and -journal
// files mode 0600 when they are broader, saying so through notice.
func makeDBPrivate(path string, notice func(string)) error {
	changed, err := sqlite.MakePrivate(path)
	for _, c := range changed {
		notice(fmt.Sprintf("%s had mode %04o; made it %04o (the database holds token hashes and the audit log)", c.Path, c.Was, fileMode))
	}
	return err
}

// secretsKeyPath is where dir keeps its secrets key.
func secretsKeyPath(dir string) string { return filepath.Join(dir, KeyDir, SecretsKeyFile) }

// readSecretsKey reads a secrets key, refusing one that group or others
// can read (like a CA key: it must then be treated as leaked) and one of
// the wrong size.
func readSecretsKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("secrets key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("secrets key %s has mode %04o; it must not be readable by group or others (chmod 600)", path, perm)
	}
	key, err := io.ReadAll(io.LimitReader(f, sealbox.KeySize+1))
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if len(key) != sealbox.KeySize {
		return nil, fmt.Errorf("secrets key %s is %d bytes, want %d", path, len(key), sealbox.KeySize)
	}
	return key, nil
}

// createSecretsKey writes a new secrets key at path, mode 0600, unless one
// appeared there first (another sshca process upgrading the same home),
// in which case that one is used and mine is false. The key is written in
// full to a temporary file and then linked into place, so no reader ever
// sees part of one.
func createSecretsKey(path string, rnd io.Reader) (key []byte, mine bool, err error) {
	key, err = sealbox.NewKey(rnd)
	if err != nil {
		return nil, false, err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+SecretsKeyFile+".tmp-*") // mode 0600
	if err != nil {
		return nil, false, fmt.Errorf("create secrets key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(key)
	if err == nil {
		err = f.Chmod(fileMode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("create secrets key: %w", err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		key, err := readSecretsKey(path)
		return key, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("create secrets key: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return nil, true, err
	}
	return key, true, nil
}

// encryptStore opens the home's secrets key and returns the store with its
// TOTP secrets encrypted under it (sqlstore.EncryptTOTP).
//
// A home from before secrets were encrypted has no key: one is created now
// and the secrets the database holds in clear are encrypted, in one
// audited transaction. A home without a key whose database already holds
// encrypted secrets (a replica set up before its key was copied, a key
// lost) is refused: a new key would not open them, and would split the
// replicas.
func encryptStore(ctx context.Context, dir string, db *sqlstore.DB, rnd io.Reader, notice func(string)) (*sqlstore.EncryptedDB, error) {
	path := secretsKeyPath(dir)
	key, err := readSecretsKey(path)
	created, mine := false, false
	if errors.Is(err, fs.ErrNotExist) {
		has, herr := db.HasEncryptedTOTP(ctx)
		if herr != nil {
			return nil, herr
		}
		if has {
			return nil, fmt.Errorf("the database holds TOTP secrets encrypted under a secrets key, but %s is missing: copy it from the home that created it (with the CA keys)", path)
		}
		if err := os.MkdirAll(filepath.Join(dir, KeyDir), dirMode); err != nil {
			return nil, fmt.Errorf("create home: %w", err)
		}
		key, mine, err = createSecretsKey(path, rnd)
		created = true // by this process or, at the same moment, by another: encrypt what is in clear
	}
	if err != nil {
		return nil, err
	}
	box, err := sealbox.New(key, rnd)
	if err != nil {
		return nil, err
	}
	var migrate *audit.Entry
	if created {
		migrate = &audit.Entry{Actor: "sshca", Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp secrets encrypted",
			Details: map[string]string{"secrets_key": box.KeyID()}}
	}
	st, n, err := sqlstore.EncryptTOTP(ctx, db, box, migrate)
	if err != nil {
		if mine {
			// Nothing was encrypted under the new key: remove it, so that the
			// next open creates one and encrypts the secrets in clear then,
			// instead of refusing them as edits.
			if has, herr := db.HasEncryptedTOTP(ctx); herr == nil && !has {
				_ = os.Remove(path)
			}
		}
		return nil, err
	}
	if mine {
		notice(fmt.Sprintf("created %s, which encrypts TOTP secrets in the database; back it up with the CA keys", path))
	}
	if n > 0 {
		notice(fmt.Sprintf("encrypted %d TOTP secrets that an older sshca stored in clear", n))
	}
	return st, nil
}
