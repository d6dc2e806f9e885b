package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// Sealer encrypts and authenticates the secrets a store keeps, under a key
// kept outside the database; *sealbox.Box is one. additional binds a sealed
// value to where it belongs: it is authenticated, never stored.
type Sealer interface {
	Seal(plaintext, additional []byte) ([]byte, error)
	Open(sealed, additional []byte) ([]byte, error)
}

// EncryptedDB is a DB that keeps TOTP secrets encrypted (sealed by a
// Sealer, AES-256-GCM in sshca) instead of in clear, each bound to its
// identity, so that reading the database, a backup of it or a replica's
// copy does not give anyone codes, and a secret copied onto another
// identity's row does not open. Everything else is the DB's.
type EncryptedDB struct {
	*DB
	sealer Sealer
}

// EncryptTOTP returns db with its TOTP secrets encrypted by sealer.
//
// Secrets stored in clear (by an sshca from before secrets were encrypted)
// are handled by migrate. When migrate is set (the caller has just created
// the key, so no secret can have been encrypted yet), every one is
// encrypted now, in one transaction that also appends *migrate to the
// audit log with their number (when there were any); the number is
// returned. When migrate is nil, a secret in clear is refused when read:
// with the key in place, sshca writes none, so one is an edit made to the
// database by someone without the key, and encrypting it would launder it.
func EncryptTOTP(ctx context.Context, db *DB, sealer Sealer, migrate *audit.Entry) (*EncryptedDB, int, error) {
	e := &EncryptedDB{DB: db, sealer: sealer}
	if migrate == nil {
		return e, 0, nil
	}
	n := 0
	err := db.write(ctx, func(tx *sql.Tx) error {
		n = 0
		rows, err := tx.QueryContext(ctx, db.q(`SELECT identity, secret FROM totp`))
		if err != nil {
			return fmt.Errorf("store: read TOTP secrets: %w", err)
		}
		type row struct{ identity, col string }
		var clear []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.identity, &r.col); err != nil {
				rows.Close()
				return fmt.Errorf("store: read TOTP secrets: %w", err)
			}
			if !strings.HasPrefix(r.col, totpSealedPrefix) {
				clear = append(clear, r)
			}
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("store: read TOTP secrets: %w", err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: read TOTP secrets: %w", err)
		}
		for _, r := range clear {
			secret, err := decodeClearTOTP(r.identity, r.col)
			if err != nil {
				return err
			}
			col, err := e.seal(r.identity, secret)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, db.q(`UPDATE totp SET secret = ? WHERE identity = ? AND secret = ?`), col, r.identity, r.col); err != nil {
				return fmt.Errorf("store: encrypt TOTP secret of %s: %w", r.identity, err)
			}
			n++
		}
		if n == 0 {
			return nil
		}
		ev := *migrate
		if ev.Time.IsZero() {
			ev.Time = time.Now()
		}
		ev.Details = map[string]string{"totp_secrets_encrypted": strconv.Itoa(n)}
		for k, v := range migrate.Details {
			ev.Details[k] = v
		}
		_, err = db.appendAudit(ctx, tx, ev)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return e, n, nil
}

// totpAdditional binds a sealed TOTP secret to its identity.
func totpAdditional(identity string) []byte {
	return []byte("sshca totp secret\x00" + identity)
}

// seal returns the secret column for identity's secret.
func (s *EncryptedDB) seal(identity string, secret []byte) (string, error) {
	sealed, err := s.sealer.Seal(secret, totpAdditional(identity))
	if err != nil {
		return "", fmt.Errorf("store: encrypt TOTP secret of %s: %w", identity, err)
	}
	return totpSealedPrefix + base64.StdEncoding.EncodeToString(sealed), nil
}

// PutTOTP enrolls identity with its secret encrypted.
func (s *EncryptedDB) PutTOTP(ctx context.Context, identity string, secret []byte, ev audit.Entry) error {
	col, err := s.seal(identity, secret)
	if err != nil {
		return err
	}
	return s.putTOTP(ctx, identity, col, ev)
}

// GetTOTP returns identity's secret, decrypted, and its last used step. A
// secret that does not open (changed, sealed for another identity or under
// another key) or that is stored in clear is an error, never a secret.
func (s *EncryptedDB) GetTOTP(ctx context.Context, identity string) ([]byte, uint64, error) {
	col, last, err := s.getTOTP(ctx, identity)
	if err != nil {
		return nil, 0, err
	}
	b64, ok := strings.CutPrefix(col, totpSealedPrefix)
	if !ok {
		return nil, 0, fmt.Errorf("store: TOTP secret of %s is stored in clear although this store encrypts them (reset it with `sshca totp reset`): %w", identity, store.ErrTampered)
	}
	sealed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, 0, fmt.Errorf("store: TOTP for %s: bad secret: %w", identity, store.ErrTampered)
	}
	secret, err := s.sealer.Open(sealed, totpAdditional(identity))
	if err != nil {
		return nil, 0, fmt.Errorf("store: TOTP secret of %s does not open (changed, or copied from another identity or database): %w", identity, errors.Join(store.ErrTampered, err))
	}
	return secret, last, nil
}

// HasEncryptedTOTP reports whether any TOTP secret is stored encrypted:
// then the key that encrypted it exists somewhere, and a home without it
// must not make a new one.
func (s *DB) HasEncryptedTOTP(ctx context.Context) (bool, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM totp WHERE secret LIKE ?`), totpSealedPrefix+"%").Scan(&n); err != nil {
		return false, fmt.Errorf("store: count TOTP secrets: %w", err)
	}
	return n > 0, nil
}
