package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// maxRowsPerInsert bounds the rows of one multi-row INSERT (13 parameters
// each; SQLite allows 32,766 parameters per statement, PostgreSQL 65,535).
const maxRowsPerInsert = 200

// reserveSQL moves the serial counter on by n and returns its new value.
const reserveSQL = `UPDATE serial_counter SET next = next + ? WHERE id = 1 RETURNING next`

// ReserveSerials reserves n serials and returns the first.
func (s *DB) ReserveSerials(ctx context.Context, n int) (uint64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("store: reserve %d serials", n)
	}
	var first uint64
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		first, err = s.reserve(ctx, tx, n)
		return err
	})
	return first, err
}

func (s *DB) reserve(ctx context.Context, tx *sql.Tx, n int) (uint64, error) {
	var next int64
	if err := tx.QueryRowContext(ctx, s.q(reserveSQL), n).Scan(&next); err != nil {
		return 0, fmt.Errorf("store: reserve serials: %w", err)
	}
	first := next - int64(n)
	if first <= 0 {
		return 0, fmt.Errorf("store: serial counter gave invalid serial %d", first)
	}
	return uint64(first), nil
}

// CommitBatch records a batch of issued certificates and audit entries in
// one transaction: one commit (one fsync) for the whole batch.
func (s *DB) CommitBatch(ctx context.Context, items []store.BatchItem) ([]error, error) {
	errs := make([]error, len(items))
	err := s.write(ctx, func(tx *sql.Tx) error {
		clear(errs)
		if err := s.checkBatch(ctx, tx, items, errs); err != nil {
			return err
		}
		var certs []*store.CertRecord
		var evs []audit.Entry
		for i := range items {
			if errs[i] != nil {
				continue
			}
			ev := items[i].Event
			if c := items[i].Cert; c != nil {
				if c.Serial == 0 || c.Cert == "" {
					return fmt.Errorf("store: batch item %d: certificate without serial or body", i)
				}
				ev.Serial = c.Serial
				certs = append(certs, c)
			}
			evs = append(evs, ev)
		}
		if err := s.insertCerts(ctx, tx, certs); err != nil {
			return err
		}
		return s.appendAudits(ctx, tx, evs)
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// checkBatch sets errs[i] for items whose CA key or token is no longer valid.
func (s *DB) checkBatch(ctx context.Context, tx *sql.Tx, items []store.BatchItem, errs []error) error {
	keyOK := map[string]bool{}
	type tok struct{ revoked, expires int64 }
	toks := map[string]*tok{}
	for i, it := range items {
		if c := it.Cert; c != nil {
			k := c.CAType + "\x00" + c.CAFingerprint
			ok, seen := keyOK[k]
			if !seen {
				var n int
				err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM ca_keys WHERE ca_type = ? AND fingerprint = ? AND state = 'active'`),
					c.CAType, c.CAFingerprint).Scan(&n)
				if err != nil {
					return fmt.Errorf("store: check CA key: %w", err)
				}
				ok = n > 0
				keyOK[k] = ok
			}
			if !ok {
				errs[i] = fmt.Errorf("store: %s CA key %s: %w", c.CAType, c.CAFingerprint, store.ErrCAKeyNotActive)
				continue
			}
		}
		if it.TokenID != "" {
			t, seen := toks[it.TokenID]
			if !seen {
				t = &tok{}
				err := tx.QueryRowContext(ctx, s.q(`SELECT revoked_us, expires_us FROM tokens WHERE id = ?`), it.TokenID).Scan(&t.revoked, &t.expires)
				if errors.Is(err, sql.ErrNoRows) {
					t = nil
				} else if err != nil {
					return fmt.Errorf("store: check token: %w", err)
				}
				toks[it.TokenID] = t
			}
			if t == nil || t.revoked != 0 || micros(it.Event.Time) >= t.expires {
				errs[i] = fmt.Errorf("store: token %s: %w", it.TokenID, store.ErrTokenInvalid)
			}
		}
	}
	return nil
}

// insertCerts inserts signed certificates with their reserved serials.
func (s *DB) insertCerts(ctx context.Context, tx *sql.Tx, certs []*store.CertRecord) error {
	for len(certs) > 0 {
		n := min(len(certs), maxRowsPerInsert)
		chunk := certs[:n]
		certs = certs[n:]
		var b strings.Builder
		b.WriteString(`INSERT INTO certs (serial, ca_type, ca_fp, role, key_id, principals, valid_after, valid_before, subject_fp, subject_type, requester, issued_us, cert) VALUES `)
		args := make([]any, 0, 13*n)
		for i, c := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			princ, err := json.Marshal(c.Principals)
			if err != nil {
				return fmt.Errorf("store: encode principals: %w", err)
			}
			args = append(args, int64(c.Serial), c.CAType, c.CAFingerprint, c.Role, c.KeyID, string(princ), c.ValidAfter.Unix(), c.ValidBefore.Unix(),
				c.SubjectFingerprint, c.SubjectType, c.Requester, micros(c.IssuedAt), c.Cert)
		}
		if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("store: insert certificates: serial already recorded: %w", store.ErrExists)
			}
			return fmt.Errorf("store: insert certificates: %w", err)
		}
	}
	return nil
}

// appendAudits seals evs after the current head, in order, and inserts them.
func (s *DB) appendAudits(ctx context.Context, tx *sql.Tx, evs []audit.Entry) error {
	if len(evs) == 0 {
		return nil
	}
	prev, haveHead, err := s.auditHeadForUpdate(ctx, tx)
	if err != nil {
		return err
	}
	for i := range evs {
		sealNow(&evs[i], prev)
		prev = &evs[i]
	}
	for rest := evs; len(rest) > 0; {
		n := min(len(rest), maxRowsPerInsert)
		chunk := rest[:n]
		rest = rest[n:]
		var b strings.Builder
		b.WriteString(`INSERT INTO audit (seq, time_us, actor, action, role, serial, key_id, outcome, reason, details, prev_hash, hash) VALUES `)
		args := make([]any, 0, 12*n)
		for i, ev := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
			args = append(args, int64(ev.Seq), micros(ev.Time), ev.Actor, ev.Action, ev.Role, int64(ev.Serial), ev.KeyID, ev.Outcome, ev.Reason,
				detailsJSON(ev.Details), ev.PrevHash, ev.Hash)
		}
		if _, err := tx.ExecContext(ctx, s.q(b.String()), args...); err != nil {
			return fmt.Errorf("store: insert audit entries: %w", err)
		}
	}
	if err := s.setAuditHead(ctx, tx, haveHead, prev); err != nil {
		return err
	}
	for _, ev := range evs {
		s.noteSealed(tx, ev)
	}
	return nil
}
