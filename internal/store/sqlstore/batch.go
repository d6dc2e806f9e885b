package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/jsonenc"
	"github.com/sshca/sshca/internal/store"
)

// insertShapes are the row counts of the multi-row INSERT statements a batch
// is cut into, largest first. A few fixed shapes keep every statement in the
// prepared-statement cache (SQLite allows 32,766 parameters per statement,
// PostgreSQL 65,535; 64 rows of 14 columns is 896).
var insertShapes = []int{64, 16, 4, 1}

// maxInsertRows bounds the rows of one INSERT.
const maxInsertRows = 64

// shape returns how many of n remaining rows the next INSERT takes: the
// largest cached shape not above n, or — for engines whose driver caches
// statements itself (PostgreSQL through pgx), where every statement is a
// network round trip — all of them, up to maxInsertRows.
func (s *DB) shape(n int) int {
	if s.d.DriverCachesStatements {
		return min(n, maxInsertRows)
	}
	for _, k := range insertShapes {
		if k <= n {
			return k
		}
	}
	return 1
}

// multiRow returns head followed by n parenthesised groups of cols placeholders.
func multiRow(head string, cols, n int) string {
	group := "(" + strings.Repeat("?, ", cols-1) + "?)"
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(group)
	}
	return b.String()
}

const (
	insertCertHead  = `INSERT INTO certs (serial, ca_type, ca_fp, role, key_id, principals, valid_after, valid_before, subject_fp, subject_type, requester, issued_us, cert, lineage) VALUES `
	insertAuditHead = `INSERT INTO audit (seq, time_us, actor, action, role, serial, key_id, outcome, reason, details, prev_hash, hash) VALUES `
)

// cachedQueries are the statements of the write path kept prepared.
func cachedQueries() []string {
	q := []string{reserveSQL, updateHeadSQL, serialNextSQL, auditHeadSQL, krlVersionSQL, caKeyActiveSQL, renewedRevokedSQL, tokenStateSQL, probeRevokedSQL, commonCheckSQL}
	for _, n := range insertShapes {
		q = append(q, multiRow(insertCertHead, 14, n), multiRow(insertAuditHead, 12, n))
	}
	return q
}

// prepareAll prepares the cached statements once. It runs before a write
// transaction begins, never inside one: preparing on the pool from inside a
// transaction could wait for a connection held by a writer queued behind
// this very transaction's lock.
func (s *DB) prepareAll(ctx context.Context) {
	if s.d.DriverCachesStatements || s.stmts.Load() != nil {
		return
	}
	m := map[string]*sql.Stmt{}
	closeAll := func() {
		for _, st := range m {
			st.Close()
		}
	}
	for _, q := range cachedQueries() {
		st, err := s.db.PrepareContext(ctx, s.q(q))
		if err != nil {
			// Not fatal: the statements then run unprepared.
			closeAll()
			return
		}
		m[q] = st
	}
	// Statements are closed outside any lock: closing takes the
	// connection's lock, which a running transaction may hold.
	if !s.stmts.CompareAndSwap(nil, &m) {
		closeAll()
	}
}

// execCached runs query (in '?' form) inside tx, as a statement prepared
// once per connection when prepareAll has cached it. Only statements that
// return no rows are cached: a cached query whose rows were not read to the
// end would stay active, and SQLite refuses to commit past an active write.
func (s *DB) execCached(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	var st *sql.Stmt
	if m := s.stmts.Load(); m != nil {
		st = (*m)[query]
	}
	if st == nil {
		return tx.ExecContext(ctx, s.q(query), args...)
	}
	return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

// queryRowCached is execCached for a query of one row: the row is read
// and its statement reset by Scan, so it never stays active.
func (s *DB) queryRowCached(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	var st *sql.Stmt
	if m := s.stmts.Load(); m != nil {
		st = (*m)[query]
	}
	if st == nil {
		return tx.QueryRowContext(ctx, s.q(query), args...)
	}
	return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

// The one-row queries of the write path, kept prepared.
const (
	serialNextSQL     = `SELECT next FROM serial_counter WHERE id = 1`
	caKeyActiveSQL    = `SELECT COUNT(*) FROM ca_keys WHERE ca_type = ? AND fingerprint = ? AND state = 'active'`
	renewedRevokedSQL = `SELECT COUNT(*) FROM revocations WHERE ca_type = ? AND kind = 'serial' AND lo <= ? AND hi >= ?`
	tokenStateSQL     = `SELECT revoked_us, expires_us FROM tokens WHERE id = ?`
	// probeRevokedSQL counts the key and key ID revocations that cover a
	// certificate (see store.RevocationProbe), each term a lookup of the
	// revocations' unique index (key revocations have no serials and no
	// key ID; key ID revocations no serials).
	probeRevokedSQL = `SELECT
		(SELECT COUNT(*) FROM revocations WHERE ca_type = ? AND kind = ? AND lo = 0 AND hi = 0 AND key_id = '' AND value = ?) +
		(SELECT COUNT(*) FROM revocations WHERE ca_type = ? AND kind = ? AND lo = 0 AND hi = 0 AND key_id = '' AND value = ?) +
		(SELECT COUNT(*) FROM revocations WHERE ca_type = ? AND kind = ? AND lo = 0 AND hi = 0 AND key_id = '' AND value = ?) +
		(SELECT COUNT(*) FROM revocations WHERE ca_type = ? AND kind = ? AND lo = 0 AND hi = 0 AND key_id = ? AND value IN ('', ?))`
)

// reserveSQL moves the serial counter on by n.
const reserveSQL = `UPDATE serial_counter SET next = next + ? WHERE id = 1`

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
	res, err := s.execCached(ctx, tx, reserveSQL, n)
	if err == nil {
		if k, _ := res.RowsAffected(); k != 1 {
			err = fmt.Errorf("serial counter row missing (%d rows)", k)
		}
	}
	if err == nil {
		err = s.queryRowCached(ctx, tx, serialNextSQL).Scan(&next)
	}
	if err != nil {
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
		var certEv []int // certs[j]'s entry is evs[certEv[j]]
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
				certEv = append(certEv, len(evs))
			}
			evs = append(evs, ev)
		}
		rows, err := s.insertCerts(ctx, tx, certs)
		if err != nil {
			return err
		}
		for j, k := range certEv {
			sealInto(&evs[k], store.CertRowKey(certs[j].Serial), &rows[j])
		}
		return s.appendAudits(ctx, tx, evs)
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// checkBatch sets errs[i] for items whose CA key or token is no longer
// valid, or whose revocation check is out of date.
func (s *DB) checkBatch(ctx context.Context, tx *sql.Tx, items []store.BatchItem, errs []error) error {
	keyOK := map[string]bool{}
	krlAt := map[string]uint64{} // CA type -> its KRL version now
	type tok struct{ revoked, expires int64 }
	toks := map[string]*tok{}
	// The common batch — one CA key, at most one token — is checked with one
	// statement (one round trip to a PostgreSQL server instead of three).
	if c, tokenID, ok := commonChecks(items); ok {
		var n, v, revoked, expires int64
		err := s.queryRowCached(ctx, tx, commonCheckSQL, c.CAType, c.CAFingerprint, c.CAType, tokenID, tokenID).Scan(&n, &v, &revoked, &expires)
		if err != nil {
			return fmt.Errorf("store: check batch: %w", err)
		}
		keyOK[c.CAType+"\x00"+c.CAFingerprint] = n > 0
		krlAt[c.CAType] = uint64(v)
		if tokenID != "" {
			toks[tokenID] = nil // no such token
			if revoked >= 0 {
				toks[tokenID] = &tok{revoked: revoked, expires: expires}
			}
		}
	}
	for i, it := range items {
		if c := it.Cert; c != nil {
			k := c.CAType + "\x00" + c.CAFingerprint
			ok, seen := keyOK[k]
			if !seen {
				var n int
				err := s.queryRowCached(ctx, tx, caKeyActiveSQL, c.CAType, c.CAFingerprint).Scan(&n)
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
			if it.CheckRevocations {
				v, seen := krlAt[c.CAType]
				if !seen {
					var n int64
					err := s.queryRowCached(ctx, tx, krlVersionSQL, c.CAType).Scan(&n)
					if err != nil && !errors.Is(err, sql.ErrNoRows) {
						return fmt.Errorf("store: check KRL version: %w", err)
					}
					v = uint64(n)
					krlAt[c.CAType] = v
				}
				if v != it.RevocationsAt {
					// Something was revoked since the check: is it this?
					p := it.Probe()
					var n int
					err := s.queryRowCached(ctx, tx, probeRevokedSQL, c.CAType, store.RevokeKey, p.KeyLine, c.CAType, store.RevokeSHA256, p.SHA256,
						c.CAType, store.RevokeSHA1, p.SHA1, c.CAType, store.RevokeKeyID, p.KeyID, p.CALine).Scan(&n)
					if err != nil {
						return fmt.Errorf("store: check revocations: %w", err)
					}
					if n > 0 {
						errs[i] = fmt.Errorf("store: %s KRL version %d, checked at %d, revokes the certificate: %w", c.CAType, v, it.RevocationsAt, store.ErrRevocationsChanged)
						continue
					}
				}
			}
			if r := c.Lineage.Renews; r != 0 {
				// A renewal checked its certificate against the KRL before
				// signing; a serial revocation (revoke --serial, --identity)
				// committed since must still stop it.
				var n int
				err := s.queryRowCached(ctx, tx, renewedRevokedSQL, c.CAType, int64(r), int64(r)).Scan(&n)
				if err != nil {
					return fmt.Errorf("store: check renewed certificate: %w", err)
				}
				if n > 0 {
					errs[i] = fmt.Errorf("store: renewed certificate %d: %w", r, store.ErrRenewedRevoked)
					continue
				}
			}
		}
		if it.TokenID != "" {
			t, seen := toks[it.TokenID]
			if !seen {
				t = &tok{}
				err := s.queryRowCached(ctx, tx, tokenStateSQL, it.TokenID).Scan(&t.revoked, &t.expires)
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

// commonCheckSQL reads, in one statement, whether a CA key is active, its
// CA type's KRL version (0 for none) and a token's revocation and expiry
// (-1 for no such token).
const commonCheckSQL = `SELECT
	(SELECT COUNT(*) FROM ca_keys WHERE ca_type = ? AND fingerprint = ? AND state = 'active'),
	COALESCE((SELECT version FROM krl_versions WHERE ca_type = ?), 0),
	COALESCE((SELECT revoked_us FROM tokens WHERE id = ?), -1),
	COALESCE((SELECT expires_us FROM tokens WHERE id = ?), -1)`

// commonChecks reports whether every certificate of items was signed by
// one CA key and at most one token is named, and returns them.
func commonChecks(items []store.BatchItem) (c *store.CertRecord, tokenID string, ok bool) {
	for _, it := range items {
		if it.Cert != nil {
			if c == nil {
				c = it.Cert
			} else if it.Cert.CAType != c.CAType || it.Cert.CAFingerprint != c.CAFingerprint {
				return nil, "", false
			}
		}
		if it.TokenID != "" {
			if tokenID != "" && it.TokenID != tokenID {
				return nil, "", false
			}
			tokenID = it.TokenID
		}
	}
	return c, tokenID, c != nil
}

// insertCerts inserts signed certificates with their reserved serials and
// returns them as they read back (for their row seals).
func (s *DB) insertCerts(ctx context.Context, tx *sql.Tx, certs []*store.CertRecord) ([]store.CertRecord, error) {
	stored := make([]store.CertRecord, 0, len(certs))
	for len(certs) > 0 {
		n := s.shape(len(certs))
		chunk := certs[:n]
		certs = certs[n:]
		args := make([]any, 0, 14*n)
		for _, c := range chunk {
			princ := jsonenc.Strings(nil, c.Principals)
			lin, err := encodeLineage(c.Lineage)
			if err != nil {
				return nil, err
			}
			row := len(args)
			args = append(args, int64(c.Serial), c.CAType, c.CAFingerprint, c.Role, c.KeyID, string(princ), c.ValidAfter.Unix(), c.ValidBefore.Unix(),
				c.SubjectFingerprint, c.SubjectType, c.Requester, micros(c.IssuedAt), c.Cert, lin)
			r, err := scanCert(argRow(args[row:]))
			if err != nil {
				return nil, err
			}
			stored = append(stored, r)
		}
		if _, err := s.execCached(ctx, tx, multiRow(insertCertHead, 14, n), args...); err != nil {
			if s.d.IsUniqueViolation(err) {
				return nil, fmt.Errorf("store: insert certificates: serial already recorded: %w", store.ErrExists)
			}
			return nil, fmt.Errorf("store: insert certificates: %w", err)
		}
	}
	return stored, nil
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
	details := make([]string, len(evs)) // as sealed: encoded once
	for i := range evs {
		details[i] = sealNow(&evs[i], prev)
		prev = &evs[i]
	}
	for done := 0; done < len(evs); {
		n := s.shape(len(evs) - done)
		chunk := evs[done : done+n]
		args := make([]any, 0, 12*n)
		for j, ev := range chunk {
			args = append(args, int64(ev.Seq), micros(ev.Time), ev.Actor, ev.Action, ev.Role, int64(ev.Serial), ev.KeyID, ev.Outcome, ev.Reason,
				details[done+j], ev.PrevHash, ev.Hash)
		}
		done += n
		if _, err := s.execCached(ctx, tx, multiRow(insertAuditHead, 12, n), args...); err != nil {
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
