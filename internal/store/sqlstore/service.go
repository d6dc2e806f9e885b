package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

const tokenCols = `id, name, kind, roles, principals, hash, created_by, created_us, expires_us, revoked_us, used_us`

func scanToken(sc interface{ Scan(...any) error }) (store.Token, error) {
	var t store.Token
	var roles, princ string
	var c, e, r, u int64
	if err := sc.Scan(&t.ID, &t.Name, &t.Kind, &roles, &princ, &t.Hash, &t.CreatedBy, &c, &e, &r, &u); err != nil {
		return t, err
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt, t.UsedAt = fromMicros(c), fromMicros(e), fromMicros(r), fromMicros(u)
	if err := json.Unmarshal([]byte(roles), &t.Roles); err != nil {
		return t, fmt.Errorf("store: token %s: bad roles: %w", t.ID, err)
	}
	if err := json.Unmarshal([]byte(princ), &t.Principals); err != nil {
		return t, fmt.Errorf("store: token %s: bad principals: %w", t.ID, err)
	}
	return t, nil
}

// CreateToken stores a new token (its hash only).
func (s *DB) CreateToken(ctx context.Context, t store.Token, ev audit.Entry) error {
	roles, _ := json.Marshal(nonNil(t.Roles))
	princ, _ := json.Marshal(nonNil(t.Principals))
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0)`),
			t.ID, t.Name, t.Kind, string(roles), string(princ), t.Hash, t.CreatedBy, micros(t.CreatedAt), micros(t.ExpiresAt))
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("store: token %q: %w", t.Name, store.ErrExists)
			}
			return fmt.Errorf("store: insert token: %w", err)
		}
		if err := s.sealToken(ctx, tx, t.ID, &ev); err != nil {
			return err
		}
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// GetToken returns a token by ID.
func (s *DB) GetToken(ctx context.Context, id string) (*store.Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: token %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get token: %w", err)
	}
	return &t, nil
}

// ListTokens lists every token, oldest first.
func (s *DB) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY created_us, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	defer rows.Close()
	var out []store.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken marks a token revoked (idempotent for an already revoked one).
func (s *DB) RevokeToken(ctx context.Context, id string, at time.Time, ev audit.Entry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE tokens SET revoked_us = ? WHERE id = ? AND revoked_us = 0`), micros(at), id)
		if err != nil {
			return fmt.Errorf("store: revoke token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM tokens WHERE id = ?`), id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("store: token %s: %w", id, store.ErrNotFound)
			}
			return nil
		}
		if err := s.sealToken(ctx, tx, id, &ev); err != nil {
			return err
		}
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

// ConsumeToken marks a one-time token used.
func (s *DB) ConsumeToken(ctx context.Context, id string, at time.Time, ev audit.Entry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE tokens SET used_us = ? WHERE id = ? AND used_us = 0`), micros(at), id)
		if err != nil {
			return fmt.Errorf("store: consume token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: token %s: %w", id, store.ErrConflict)
		}
		if err := s.sealToken(ctx, tx, id, &ev); err != nil {
			return err
		}
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

// A TOTP secret is kept in the totp.secret column as text, in one of two
// forms: base64 of the raw secret (clear: written by releases before
// secrets were encrypted, and by a DB used without a secrets key, as the
// conformance tests do), or totpSealedPrefix and base64 of the secret
// sealed under a key outside the database (EncryptedDB).
const totpSealedPrefix = "aes256gcm:"

// PutTOTP enrolls identity. A bare DB stores the secret in clear; sshca
// itself opens stores through EncryptTOTP, whose PutTOTP encrypts it.
func (s *DB) PutTOTP(ctx context.Context, identity string, secret []byte, ev audit.Entry) error {
	return s.putTOTP(ctx, identity, base64.StdEncoding.EncodeToString(secret), ev)
}

// putTOTP inserts identity's row with the secret column as given.
func (s *DB) putTOTP(ctx context.Context, identity, column string, ev audit.Entry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO totp (identity, secret, last_step, created_us) VALUES (?, ?, 0, ?)`),
			identity, column, micros(time.Now()))
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("store: TOTP for %s: %w", identity, store.ErrExists)
			}
			return fmt.Errorf("store: insert TOTP: %w", err)
		}
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

// GetTOTP returns identity's secret and last used step. A bare DB reads
// secrets stored in clear only; an encrypted one needs EncryptedDB.
func (s *DB) GetTOTP(ctx context.Context, identity string) ([]byte, uint64, error) {
	col, last, err := s.getTOTP(ctx, identity)
	if err != nil {
		return nil, 0, err
	}
	if strings.HasPrefix(col, totpSealedPrefix) {
		return nil, 0, fmt.Errorf("store: TOTP secret of %s is encrypted, and this store was opened without the secrets key", identity)
	}
	b, err := decodeClearTOTP(identity, col)
	if err != nil {
		return nil, 0, err
	}
	return b, last, nil
}

// getTOTP returns identity's secret column as stored, and its last step.
func (s *DB) getTOTP(ctx context.Context, identity string) (string, uint64, error) {
	var col string
	var last int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT secret, last_step FROM totp WHERE identity = ?`), identity).Scan(&col, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, fmt.Errorf("store: TOTP for %s: %w", identity, store.ErrNotFound)
	}
	if err != nil {
		return "", 0, fmt.Errorf("store: get TOTP: %w", err)
	}
	return col, uint64(last), nil
}

// decodeClearTOTP decodes a secret column stored in clear.
func decodeClearTOTP(identity, col string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(col)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("store: TOTP for %s: bad secret", identity)
	}
	return b, nil
}

// AdvanceTOTP records a used step; a step not above the last is a replay.
func (s *DB) AdvanceTOTP(ctx context.Context, identity string, step uint64) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE totp SET last_step = ? WHERE identity = ? AND last_step < ?`), int64(step), identity, int64(step))
	if err != nil {
		return fmt.Errorf("store: advance TOTP: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: TOTP step %d for %s: %w", step, identity, store.ErrConflict)
	}
	return nil
}

// DeleteTOTP removes an enrollment (admin reset).
func (s *DB) DeleteTOTP(ctx context.Context, identity string, ev audit.Entry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM totp WHERE identity = ?`), identity)
		if err != nil {
			return fmt.Errorf("store: delete TOTP: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: TOTP for %s: %w", identity, store.ErrNotFound)
		}
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

// challengeSweep is how often PutChallenge drops long-expired challenges
// (an expired one can never be taken; dropping it only keeps the table
// small, and costs a scan of it).
const challengeSweep = time.Minute

// PutChallenge stores a renewal challenge, in one transaction with the
// dropping of challenges expired an hour ago when that is due.
func (s *DB) PutChallenge(ctx context.Context, id string, expires time.Time) error {
	now := time.Now()
	last := s.challengesSwept.Load()
	sweep := now.UnixNano()-last >= int64(challengeSweep) && s.challengesSwept.CompareAndSwap(last, now.UnixNano())
	return s.write(ctx, func(tx *sql.Tx) error {
		if sweep {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM challenges WHERE expires_us < ?`), micros(now.Add(-time.Hour))); err != nil {
				return fmt.Errorf("store: expire challenges: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO challenges (id, expires_us) VALUES (?, ?)`), id, micros(expires)); err != nil {
			return fmt.Errorf("store: insert challenge: %w", err)
		}
		return nil
	})
}

// TakeChallenge consumes a challenge that has not expired.
func (s *DB) TakeChallenge(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM challenges WHERE id = ? AND expires_us >= ?`), id, micros(now))
	if err != nil {
		return fmt.Errorf("store: take challenge: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: challenge: %w", store.ErrNotFound)
	}
	return nil
}

// ReportHost upserts a host's report.
func (s *DB) ReportHost(ctx context.Context, h store.Host) error {
	keys, _ := json.Marshal(nonNil(h.CAKeys))
	stale := 0
	if h.Stale {
		stale = 1
	}
	args := []any{micros(h.LastSeen), int64(h.KRLVersion), string(keys), micros(h.HostCertExpiry), stale, h.Detail, h.HostCertCA, h.Name}
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE hosts SET last_seen_us = ?, krl_version = ?, ca_keys = ?, cert_expiry_us = ?, stale = ?, detail = ?, host_cert_ca = ? WHERE name = ?`), args...)
	if err != nil {
		return fmt.Errorf("store: report host: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO hosts (last_seen_us, krl_version, ca_keys, cert_expiry_us, stale, detail, host_cert_ca, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`), args...)
	if err != nil && s.d.IsUniqueViolation(err) {
		_, err = s.db.ExecContext(ctx, s.q(`UPDATE hosts SET last_seen_us = ?, krl_version = ?, ca_keys = ?, cert_expiry_us = ?, stale = ?, detail = ?, host_cert_ca = ? WHERE name = ?`), args...)
	}
	if err != nil {
		return fmt.Errorf("store: report host: %w", err)
	}
	return nil
}

// ListHosts lists reported hosts by name.
func (s *DB) ListHosts(ctx context.Context) ([]store.Host, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, last_seen_us, krl_version, ca_keys, cert_expiry_us, stale, detail, host_cert_ca FROM hosts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list hosts: %w", err)
	}
	defer rows.Close()
	var out []store.Host
	for rows.Next() {
		var h store.Host
		var seen, kv, exp, stale int64
		var keys string
		if err := rows.Scan(&h.Name, &seen, &kv, &keys, &exp, &stale, &h.Detail, &h.HostCertCA); err != nil {
			return nil, fmt.Errorf("store: scan host: %w", err)
		}
		h.LastSeen, h.KRLVersion, h.HostCertExpiry, h.Stale = fromMicros(seen), uint64(kv), fromMicros(exp), stale != 0
		if err := json.Unmarshal([]byte(keys), &h.CAKeys); err != nil {
			return nil, fmt.Errorf("store: host %s: bad CA keys", h.Name)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

var _ store.ServiceStore = (*DB)(nil)
