// Package sqlstore implements store.Store over database/sql for both SQLite
// and PostgreSQL; the differences (placeholders, schema, locking) are carried
// by a Dialect. It knows nothing of certificates beyond their records.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// Dialect holds what differs between SQL engines.
type Dialect struct {
	Name string
	// Rebind rewrites '?' placeholders for the engine.
	Rebind func(string) string
	// BeginWrite starts a transaction that serialises writers.
	BeginWrite func(ctx context.Context, db *sql.DB) (*sql.Tx, error)
	// LockAudit is run inside a write transaction before the audit head is read
	// (e.g. SELECT ... FOR UPDATE); empty when BeginWrite already serialises.
	LockAudit string
	// DriverCachesStatements: the driver keeps statements prepared by their
	// text (pgx does), so batches may use INSERTs of any row count; else a
	// few fixed shapes are prepared once (see insertShapes).
	DriverCachesStatements bool
	// IsUniqueViolation reports a unique-constraint error.
	IsUniqueViolation func(error) bool
}

// DB is a store.Store over database/sql.
type DB struct {
	db *sql.DB
	d  Dialect

	// stmts holds the prepared statements of the write path, by '?' query
	// (see prepareAll); nil until prepared.
	stmts atomic.Pointer[map[string]*sql.Stmt]

	// challengesSwept is when PutChallenge last dropped expired challenges
	// (Unix nanoseconds).
	challengesSwept atomic.Int64

	mu      sync.Mutex
	onAudit []func(audit.Entry)
	sealed  map[*sql.Tx][]audit.Entry // entries of open transactions, while onAudit is set
}

// OnAudit makes the store call fn with every audit entry it appends, sealed
// (sequence number and hash set), once the entry's transaction has
// committed; entries of transactions that roll back are never reported. It
// serves mirrors such as the audit file and the head kept outside the
// database. Each call adds a listener, called in the order added; nil
// removes them all. fn is called from the writing goroutine and must be
// safe for concurrent use.
func (s *DB) OnAudit(fn func(audit.Entry)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		s.onAudit = nil
		return
	}
	s.onAudit = append(s.onAudit[:len(s.onAudit):len(s.onAudit)], fn)
}

// noteSealed remembers ev until tx ends, when someone listens.
func (s *DB) noteSealed(tx *sql.Tx, ev audit.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.onAudit) == 0 {
		return
	}
	if s.sealed == nil {
		s.sealed = map[*sql.Tx][]audit.Entry{}
	}
	s.sealed[tx] = append(s.sealed[tx], ev)
}

// takeSealed forgets tx's entries and returns them with the listeners.
func (s *DB) takeSealed(tx *sql.Tx) ([]audit.Entry, []func(audit.Entry)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.sealed[tx]
	delete(s.sealed, tx)
	return evs, s.onAudit
}

// New wraps an open, migrated database.
func New(db *sql.DB, d Dialect) *DB { return &DB{db: db, d: d} }

// SQL returns the underlying handle (for tests that tamper with rows).
func (s *DB) SQL() *sql.DB { return s.db }

// Close closes the database.
func (s *DB) Close() error {
	if m := s.stmts.Swap(nil); m != nil {
		for _, st := range *m {
			st.Close()
		}
	}
	return s.db.Close()
}

func (s *DB) q(query string) string { return s.d.Rebind(query) }

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UTC().UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// write runs fn in a serialised write transaction and commits it.
func (s *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.prepareAll(ctx)
	tx, err := s.d.BeginWrite(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		s.takeSealed(tx)
		return err
	}
	if err := tx.Commit(); err != nil {
		s.takeSealed(tx)
		return fmt.Errorf("store: commit: %w", err)
	}
	evs, listeners := s.takeSealed(tx)
	for _, ev := range evs {
		for _, fn := range listeners {
			fn(ev)
		}
	}
	return nil
}

// auditHeadForUpdate locks (where the dialect needs it) and reads the audit
// head inside tx: the last entry (nil while the log is empty) and whether the
// head row exists.
func (s *DB) auditHeadForUpdate(ctx context.Context, tx *sql.Tx) (prev *audit.Entry, haveHead bool, err error) {
	if s.d.LockAudit != "" {
		if _, err := tx.ExecContext(ctx, s.d.LockAudit); err != nil {
			return nil, false, fmt.Errorf("store: lock audit head: %w", err)
		}
	}
	// The schema inserts the head row with seq 0 ("no entry yet") so that
	// writers always have a row to lock; a missing row is tolerated for
	// databases created before that.
	var seq int64
	var hash string
	err = s.queryRowCached(ctx, tx, auditHeadSQL).Scan(&seq, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("store: read audit head: %w", err)
	case seq > 0:
		return &audit.Entry{Seq: uint64(seq), Hash: hash}, true, nil
	}
	return nil, true, nil
}

const auditHeadSQL = `SELECT seq, hash FROM audit_head WHERE id = 1`

const updateHeadSQL = `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`

// setAuditHead points the head row at last.
func (s *DB) setAuditHead(ctx context.Context, tx *sql.Tx, haveHead bool, last *audit.Entry) error {
	var err error
	if !haveHead {
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)`), int64(last.Seq), last.Hash)
	} else {
		_, err = s.execCached(ctx, tx, updateHeadSQL, int64(last.Seq), last.Hash)
	}
	if err != nil {
		return fmt.Errorf("store: update audit head: %w", err)
	}
	return nil
}

// sealNow seals ev after prev, stamping it with the current time if it has none.
func sealNow(ev *audit.Entry, prev *audit.Entry) (details string) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	return audit.SealDetails(ev, prev)
}

// appendAudit seals ev after the current head and inserts it, inside tx.
func (s *DB) appendAudit(ctx context.Context, tx *sql.Tx, ev audit.Entry) (audit.Entry, error) {
	evs := []audit.Entry{ev}
	if err := s.appendAudits(ctx, tx, evs); err != nil {
		return ev, err
	}
	return evs[0], nil
}

// Append adds ev to the audit chain.
func (s *DB) Append(ctx context.Context, ev audit.Entry) (audit.Entry, error) {
	var out audit.Entry
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.appendAudit(ctx, tx, ev)
		return err
	})
	return out, err
}

// AuditHead returns the last sequence number and hash recorded in the head
// row, or 0 and "" while the log is empty.
func (s *DB) AuditHead(ctx context.Context) (uint64, string, error) {
	var seq int64
	var hash string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT seq, hash FROM audit_head WHERE id = 1`)).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("store: read audit head: %w", err)
	}
	if seq <= 0 {
		// The seq-0 row the schema inserts stands for an empty log.
		return 0, "", nil
	}
	return uint64(seq), hash, nil
}

// AuditHash returns the hash of entry seq; ErrNotFound if there is none.
func (s *DB) AuditHash(ctx context.Context, seq uint64) (string, error) {
	var hash string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT hash FROM audit WHERE seq = ?`), int64(seq)).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: audit entry %d: %w", seq, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: read audit entry %d: %w", seq, err)
	}
	return hash, nil
}

// AuditEntries returns audit entries in sequence order.
func (s *DB) AuditEntries(ctx context.Context, f store.AuditFilter) ([]audit.Entry, error) {
	var where []string
	var args []any
	if f.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, f.Actor)
	}
	if f.Role != "" {
		where, args = append(where, "role = ?"), append(args, f.Role)
	}
	if f.Serial != 0 {
		where, args = append(where, "serial = ?"), append(args, int64(f.Serial))
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time_us >= ?"), append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time_us < ?"), append(args, micros(f.Until))
	}
	query := `SELECT seq, time_us, actor, action, role, serial, key_id, outcome, reason, details, prev_hash, hash FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq"
	if f.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var seq, tus, serial int64
		var details string
		if err := rows.Scan(&seq, &tus, &e.Actor, &e.Action, &e.Role, &serial, &e.KeyID, &e.Outcome, &e.Reason, &details, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("store: scan audit: %w", err)
		}
		e.Seq, e.Time, e.Serial = uint64(seq), fromMicros(tus), uint64(serial)
		if details != "" {
			if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
				// Keep the entry; verification will flag it as changed.
				e.Details = map[string]string{"_corrupt": details}
			}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

const certCols = `serial, ca_type, ca_fp, role, key_id, principals, valid_after, valid_before, subject_fp, subject_type, requester, issued_us, cert, lineage`

func scanCert(sc interface{ Scan(...any) error }) (store.CertRecord, error) {
	var r store.CertRecord
	var serial, va, vb, issued int64
	var princ, lin string
	if err := sc.Scan(&serial, &r.CAType, &r.CAFingerprint, &r.Role, &r.KeyID, &princ, &va, &vb, &r.SubjectFingerprint, &r.SubjectType, &r.Requester, &issued, &r.Cert, &lin); err != nil {
		return r, err
	}
	if lin != "" {
		if err := json.Unmarshal([]byte(lin), &r.Lineage); err != nil {
			return r, fmt.Errorf("store: certificate %d: bad lineage: %w", serial, err)
		}
	}
	r.Serial = uint64(serial)
	r.ValidAfter, r.ValidBefore, r.IssuedAt = time.Unix(va, 0).UTC(), time.Unix(vb, 0).UTC(), fromMicros(issued)
	if err := json.Unmarshal([]byte(princ), &r.Principals); err != nil {
		return r, fmt.Errorf("store: certificate %d: bad principals: %w", serial, err)
	}
	return r, nil
}

// encodeLineage is the lineage column: JSON, or "" for none.
func encodeLineage(l store.Lineage) (string, error) {
	if l.Caller == "" && l.Identity == "" && l.Origin == 0 && l.Renews == 0 {
		return "", nil
	}
	l.AuthTime = l.AuthTime.UTC().Truncate(time.Microsecond)
	if b, ok := store.AppendLineageJSON(make([]byte, 0, 160), &l); ok {
		return string(b), nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("store: encode lineage: %w", err)
	}
	return string(b), nil
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// likeEscape escapes the LIKE wildcards of s with '!'.
func likeEscape(s string) string {
	return strings.NewReplacer(`!`, `!!`, `%`, `!%`, `_`, `!_`).Replace(s)
}

// GetCert returns one certificate record.
func (s *DB) GetCert(ctx context.Context, serial uint64) (*store.CertRecord, error) {
	r, err := scanCert(s.db.QueryRowContext(ctx, s.q(`SELECT `+certCols+` FROM certs WHERE serial = ?`), int64(serial)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: certificate %d: %w", serial, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get certificate %d: %w", serial, err)
	}
	return &r, nil
}

// ListCerts lists certificates in serial order.
func (s *DB) ListCerts(ctx context.Context, f store.CertFilter) ([]store.CertRecord, error) {
	var out []store.CertRecord
	err := s.EachCert(ctx, f, func(r store.CertRecord) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// EachCert calls fn for each certificate that f selects, in serial order,
// as it reads them: memory does not grow with the number of rows. An error
// from fn stops the scan and is returned.
func (s *DB) EachCert(ctx context.Context, f store.CertFilter, fn func(store.CertRecord) error) error {
	var where []string
	var args []any
	if f.KeyID != "" {
		where, args = append(where, "key_id = ?"), append(args, f.KeyID)
	}
	if f.CAType != "" {
		where, args = append(where, "ca_type = ?"), append(args, f.CAType)
	}
	if f.Serial != 0 {
		where, args = append(where, "serial = ?"), append(args, int64(f.Serial))
	}
	if f.SubjectFP != "" {
		where, args = append(where, "subject_fp = ?"), append(args, f.SubjectFP)
	}
	if f.Identity != "" {
		// The lineage column is JSON written by encodeLineage; the identity's
		// JSON string is followed by the next field or the end of the object.
		v := `%"identity":` + likeEscape(jsonString(f.Identity))
		// Rows from before lineages have only their requester ("oidc:NAME",
		// "token:NAME"), which a bare name matches too.
		where = append(where, `(requester IN (?, ?, ?) OR lineage LIKE ? ESCAPE '!' OR lineage LIKE ? ESCAPE '!')`)
		args = append(args, f.Identity, "oidc:"+f.Identity, "token:"+f.Identity, v+`,%`, v+`}`)
	}
	if !f.ActiveAt.IsZero() {
		where, args = append(where, "valid_after <= ? AND valid_before > ?"), append(args, f.ActiveAt.Unix(), f.ActiveAt.Unix())
	}
	query := `SELECT ` + certCols + ` FROM certs`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY serial"
	if f.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("store: list certificates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanCert(rows)
		if err != nil {
			return fmt.Errorf("store: scan certificate: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// MaxSerial returns the highest serial assigned so far.
func (s *DB) MaxSerial(ctx context.Context) (uint64, error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(serial) FROM certs`).Scan(&v); err != nil {
		return 0, fmt.Errorf("store: max serial: %w", err)
	}
	return uint64(v.Int64), nil
}

// AddCAKey records a CA key generation.
func (s *DB) AddCAKey(ctx context.Context, k store.CAKey, ev audit.Entry) error {
	now := time.Now()
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO ca_keys (ca_type, generation, state, key_type, fingerprint, public_key, signer, file, created_us, updated_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			k.CAType, k.Generation, k.State, k.KeyType, k.Fingerprint, k.PublicKey, k.Signer, k.File, micros(k.CreatedAt), micros(k.CreatedAt))
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("store: %s CA generation %d: %w", k.CAType, k.Generation, store.ErrExists)
			}
			return fmt.Errorf("store: insert CA key: %w", err)
		}
		row, err := s.readCAKey(ctx, tx, k.CAType, k.Generation)
		if err != nil {
			return err
		}
		sealInto(&ev, store.CAKeyRowKey(k.CAType, k.Generation), &row)
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

const caKeyCols = `ca_type, generation, state, key_type, fingerprint, public_key, signer, file, created_us, updated_us`

func scanCAKey(sc interface{ Scan(...any) error }) (store.CAKey, error) {
	var k store.CAKey
	var c, u int64
	if err := sc.Scan(&k.CAType, &k.Generation, &k.State, &k.KeyType, &k.Fingerprint, &k.PublicKey, &k.Signer, &k.File, &c, &u); err != nil {
		return k, err
	}
	k.CreatedAt, k.UpdatedAt = fromMicros(c), fromMicros(u)
	return k, nil
}

// readCAKey reads one CA key generation back inside tx.
func (s *DB) readCAKey(ctx context.Context, tx *sql.Tx, caType string, gen int) (store.CAKey, error) {
	k, err := scanCAKey(tx.QueryRowContext(ctx, s.q(`SELECT `+caKeyCols+` FROM ca_keys WHERE ca_type = ? AND generation = ?`), caType, gen))
	if err != nil {
		return k, fmt.Errorf("store: read %s CA generation %d: %w", caType, gen, err)
	}
	return k, nil
}

// SetCAKeyStates updates generation states atomically.
func (s *DB) SetCAKeyStates(ctx context.Context, caType string, states map[int]string, ev audit.Entry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		for gen, st := range states {
			res, err := tx.ExecContext(ctx, s.q(`UPDATE ca_keys SET state = ?, updated_us = ? WHERE ca_type = ? AND generation = ?`), st, micros(time.Now()), caType, gen)
			if err != nil {
				return fmt.Errorf("store: update CA key: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("store: %s CA generation %d: %w", caType, gen, store.ErrNotFound)
			}
		}
		var active int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM ca_keys WHERE ca_type = ? AND state = 'active'`), caType).Scan(&active); err != nil {
			return fmt.Errorf("store: count active CA keys: %w", err)
		}
		if active != 1 {
			return fmt.Errorf("store: %s CA would have %d active keys: %w", caType, active, store.ErrConflict)
		}
		for gen := range states {
			k, err := s.readCAKey(ctx, tx, caType, gen)
			if err != nil {
				return err
			}
			sealInto(&ev, store.CAKeyRowKey(caType, gen), &k)
		}
		_, err := s.appendAudit(ctx, tx, ev)
		return err
	})
}

// ListCAKeys lists the generations of caType in generation order.
func (s *DB) ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+caKeyCols+` FROM ca_keys WHERE ca_type = ? ORDER BY generation`), caType)
	if err != nil {
		return nil, fmt.Errorf("store: list CA keys: %w", err)
	}
	defer rows.Close()
	var out []store.CAKey
	for rows.Next() {
		k, err := scanCAKey(rows)
		if err != nil {
			return nil, fmt.Errorf("store: scan CA key: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// KRLVersion returns caType's KRL version counter.
const krlVersionSQL = `SELECT version FROM krl_versions WHERE ca_type = ?`

func (s *DB) KRLVersion(ctx context.Context, caType string) (uint64, error) {
	var v int64
	var row *sql.Row
	if m := s.stmts.Load(); m != nil && (*m)[krlVersionSQL] != nil {
		row = (*m)[krlVersionSQL].QueryRowContext(ctx, caType)
	} else {
		row = s.db.QueryRowContext(ctx, s.q(krlVersionSQL), caType)
	}
	err := row.Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: KRL version: %w", err)
	}
	return uint64(v), nil
}

var _ store.Store = (*DB)(nil)

// withDetails returns a copy of d with extra added (the caller's map is not changed).
func withDetails(d, extra map[string]string) map[string]string {
	out := make(map[string]string, len(d)+len(extra))
	for k, v := range d {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// GenerationStats returns, by CA key fingerprint, how many certificates of
// caType each key signed and the latest expiry of those that still hold it
// back: a host certificate renewed by a later certificate (one with a body
// whose lineage renews it) is left out of the expiry, though counted. It
// reads no certificate bodies: one aggregate, and for host certificates a
// scan of the renewals (and, when there are any, of serials and expiries).
func (s *DB) GenerationStats(ctx context.Context, caType string) (map[string]store.GenerationStat, error) {
	out := map[string]store.GenerationStat{}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT ca_fp, COUNT(*), MAX(valid_before) FROM certs WHERE ca_type = ? GROUP BY ca_fp`), caType)
	if err != nil {
		return nil, fmt.Errorf("store: generation stats: %w", err)
	}
	for rows.Next() {
		var fp string
		var n, last int64
		if err := rows.Scan(&fp, &n, &last); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: generation stats: %w", err)
		}
		out[fp] = store.GenerationStat{Issued: int(n), LastExpiry: time.Unix(last, 0).UTC()}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: generation stats: %w", err)
	}
	if caType != "host" {
		return out, nil
	}
	renewed := map[uint64]bool{}
	rows, err = s.db.QueryContext(ctx, s.q(`SELECT lineage FROM certs WHERE ca_type = ? AND cert <> '' AND lineage LIKE '%"renews":%'`), caType)
	if err != nil {
		return nil, fmt.Errorf("store: generation stats: renewals: %w", err)
	}
	for rows.Next() {
		var lin string
		if err := rows.Scan(&lin); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: generation stats: renewals: %w", err)
		}
		var l store.Lineage
		if err := json.Unmarshal([]byte(lin), &l); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: generation stats: lineage: %w", err)
		}
		if l.Renews != 0 {
			renewed[l.Renews] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: generation stats: renewals: %w", err)
	}
	if len(renewed) == 0 {
		return out, nil
	}
	last := map[string]int64{}
	rows, err = s.db.QueryContext(ctx, s.q(`SELECT serial, ca_fp, valid_before FROM certs WHERE ca_type = ?`), caType)
	if err != nil {
		return nil, fmt.Errorf("store: generation stats: expiries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var serial, vb int64
		var fp string
		if err := rows.Scan(&serial, &fp, &vb); err != nil {
			return nil, fmt.Errorf("store: generation stats: expiries: %w", err)
		}
		if renewed[uint64(serial)] {
			continue
		}
		if l, ok := last[fp]; !ok || vb > l {
			last[fp] = vb
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: generation stats: expiries: %w", err)
	}
	for fp, st := range out {
		st.LastExpiry = time.Time{}
		if vb, ok := last[fp]; ok {
			st.LastExpiry = time.Unix(vb, 0).UTC()
		}
		out[fp] = st
	}
	return out, nil
}
