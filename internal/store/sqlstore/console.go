package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// The admin console's read model (store.ConsoleStore). Every query is
// bounded by its page size: filters and sorts use the certs table's
// indexes (serial, key_id, valid_before) where they can, and a page stops
// at Limit+1 rows.

var _ store.ConsoleStore = (*DB)(nil)

// maxPage bounds a page whatever the caller asks.
const maxPage = 500

func pageLimit(n int) int {
	if n <= 0 || n > maxPage {
		return maxPage
	}
	return n
}

// maxListed bounds the serial ranges and key IDs that revokedCond lists
// in the query; beyond it, a scan of the revocations per certificate.
const maxListed = 500

// revokedCond is true for a certificate row covered by a serial or key ID
// revocation of its CA type, or whose subject or CA key is among the
// fingerprints given. Single-serial revocations (nearly all) are found by
// an index seek per certificate on the revocations' unique index; serial
// ranges and revoked key IDs, read first, are listed in the condition.
func (s *DB) revokedCond(ctx context.Context, keys, caKeys []string) (string, []any, error) {
	cond := `(EXISTS (SELECT 1 FROM revocations r WHERE r.ca_type = certs.ca_type AND r.kind = 'serial' AND r.lo = certs.serial AND r.hi = certs.serial)`
	var args []any
	list := func(query, generic string, each func(rows *sql.Rows) (string, []any, error)) error {
		rows, err := s.db.QueryContext(ctx, query)
		if err != nil {
			return fmt.Errorf("store: query certificates: %w", err)
		}
		defer rows.Close()
		var terms []string
		var targs []any
		for rows.Next() {
			if len(terms) == maxListed {
				cond += ` OR ` + generic
				return nil
			}
			t, a, err := each(rows)
			if err != nil {
				return fmt.Errorf("store: query certificates: %w", err)
			}
			terms, targs = append(terms, t), append(targs, a...)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: query certificates: %w", err)
		}
		for _, t := range terms {
			cond += ` OR ` + t
		}
		args = append(args, targs...)
		return nil
	}
	err := list(`SELECT ca_type, lo, hi FROM revocations WHERE kind = 'serial' AND lo < hi`,
		`EXISTS (SELECT 1 FROM revocations r WHERE r.ca_type = certs.ca_type AND r.kind = 'serial' AND r.lo <= certs.serial AND r.hi >= certs.serial)`,
		func(rows *sql.Rows) (string, []any, error) {
			var t string
			var lo, hi int64
			err := rows.Scan(&t, &lo, &hi)
			return `(ca_type = ? AND serial BETWEEN ? AND ?)`, []any{t, lo, hi}, err
		})
	if err != nil {
		return "", nil, err
	}
	err = list(`SELECT DISTINCT ca_type, key_id FROM revocations WHERE kind = 'key-id'`,
		`EXISTS (SELECT 1 FROM revocations r WHERE r.ca_type = certs.ca_type AND r.kind = 'key-id' AND r.key_id = certs.key_id)`,
		func(rows *sql.Rows) (string, []any, error) {
			var t, id string
			err := rows.Scan(&t, &id)
			return `(key_id = ? AND ca_type = ?)`, []any{id, t}, err
		})
	if err != nil {
		return "", nil, err
	}
	if len(keys) > 0 {
		cond += ` OR subject_fp IN (` + placeholders(len(keys)) + `)`
		for _, k := range keys {
			args = append(args, k)
		}
	}
	if len(caKeys) > 0 {
		cond += ` OR ca_fp IN (` + placeholders(len(caKeys)) + `)`
		for _, k := range caKeys {
			args = append(args, k)
		}
	}
	return cond + `)`, args, nil
}

// identityExpr is the lineage's identity, as the certs_identity index of
// each engine has it (SQLite: columnIndexes; PostgreSQL: migration 7).
func (s *DB) identityExpr() string {
	if s.d.Name == "postgres" {
		return `((NULLIF(lineage, '')::jsonb) ->> 'identity')`
	}
	return `json_extract(NULLIF(lineage, ''), '$.identity')`
}

// identityCond selects the certificates of identity as CertFilter.Identity
// does, through indexes: the lineage's identity, or the requester of a
// record from before lineages ("oidc:NAME", "token:NAME"). A "kind:name"
// identity also matches any requester of that name, which no index serves.
func (s *DB) identityCond(identity string) (string, []any) {
	cond := `(` + s.identityExpr() + ` = ? OR (lineage = '' AND requester IN (?, ?, ?))`
	args := []any{identity, identity, "oidc:" + identity, "token:" + identity}
	if strings.Contains(identity, ":") {
		cond += ` OR requester = ?`
		args = append(args, identity)
	}
	return cond + `)`, args
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// QueryCerts returns one page of certificates.
func (s *DB) QueryCerts(ctx context.Context, q store.CertQuery) (store.CertPage, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if q.Serial != 0 {
		add("serial = ?", int64(q.Serial))
	}
	if q.CAType != "" {
		add("ca_type = ?", q.CAType)
	}
	if q.Role != "" {
		add("role = ?", q.Role)
	}
	if q.KeyID != "" {
		if s.d.Name == "sqlite" {
			// Byte order: every key ID starting with the prefix sorts
			// before prefix+0xff (never a byte of UTF-8), so the key_id
			// index serves the range.
			add("key_id >= ? AND key_id < ?", q.KeyID, q.KeyID+"\xff")
		} else {
			add("key_id LIKE ? ESCAPE '!'", likeEscape(q.KeyID)+"%")
		}
	}
	if q.Principal != "" {
		// The principals column is a JSON array: the quoted name is a
		// substring of it exactly when the name is one of them. No index
		// serves this; a plain substring test is the cheapest scan.
		if s.d.Name == "postgres" {
			add("strpos(principals, ?) > 0", jsonString(q.Principal))
		} else {
			add("instr(principals, ?) > 0", jsonString(q.Principal))
		}
	}
	if q.Identity != "" {
		cond, a := s.identityCond(q.Identity)
		add(cond, a...)
	}
	now := q.Now.Unix()
	if q.Status != "" {
		rev, rargs, err := s.revokedCond(ctx, q.RevokedKeys, q.RevokedCAKeys)
		if err != nil {
			return store.CertPage{}, err
		}
		switch q.Status {
		case store.CertRevoked:
			add(rev, rargs...)
		case store.CertValid:
			add("valid_after <= ? AND valid_before > ? AND NOT "+rev, append([]any{now, now}, rargs...)...)
		case store.CertExpiring:
			add("valid_after <= ? AND valid_before > ? AND valid_before <= ? AND NOT "+rev,
				append([]any{now, now, q.Now.Add(q.Within).Unix()}, rargs...)...)
		case store.CertExpired:
			add("valid_before <= ? AND NOT "+rev, append([]any{now}, rargs...)...)
		default:
			return store.CertPage{}, fmt.Errorf("store: query certificates: unknown status %q", q.Status)
		}
	}
	order := "serial"
	switch q.Sort {
	case "", "serial":
	case "expires":
		order = "valid_before"
	case "key_id":
		order = "key_id"
	default:
		return store.CertPage{}, fmt.Errorf("store: query certificates: unknown sort %q", q.Sort)
	}
	dir := " ASC"
	if q.Desc {
		dir = " DESC"
	}
	query := `SELECT ` + certCols + ` FROM certs`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY " + order + dir
	if order != "serial" {
		query += ", serial" + dir
	}
	limit := pageLimit(q.Limit)
	query += " LIMIT " + strconv.Itoa(limit+1) + " OFFSET " + strconv.Itoa(max(q.Offset, 0))
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return store.CertPage{}, fmt.Errorf("store: query certificates: %w", err)
	}
	defer rows.Close()
	var p store.CertPage
	for rows.Next() {
		r, err := scanCert(rows)
		if err != nil {
			return store.CertPage{}, fmt.Errorf("store: scan certificate: %w", err)
		}
		if len(p.Certs) == limit {
			p.More = true
			break
		}
		p.Certs = append(p.Certs, r)
	}
	return p, rows.Err()
}

const hostCols = `name, last_seen_us, krl_version, ca_keys, cert_expiry_us, stale, detail, host_cert_ca`

func scanHost(sc interface{ Scan(...any) error }) (store.Host, error) {
	var h store.Host
	var seen, kv, exp, stale int64
	var keys string
	if err := sc.Scan(&h.Name, &seen, &kv, &keys, &exp, &stale, &h.Detail, &h.HostCertCA); err != nil {
		return h, err
	}
	h.LastSeen, h.KRLVersion, h.HostCertExpiry, h.Stale = fromMicros(seen), uint64(kv), fromMicros(exp), stale != 0
	if err := json.Unmarshal([]byte(keys), &h.CAKeys); err != nil {
		return h, fmt.Errorf("store: host %s: bad CA keys", h.Name)
	}
	return h, nil
}

// QueryHosts returns one page of hosts.
func (s *DB) QueryHosts(ctx context.Context, q store.HostQuery) (store.HostPage, error) {
	var where []string
	var args []any
	if q.Name != "" {
		where, args = append(where, "name LIKE ? ESCAPE '!'"), append(args, "%"+likeEscape(q.Name)+"%")
	}
	if q.BelowKRL != 0 {
		where, args = append(where, "krl_version < ?"), append(args, int64(q.BelowKRL))
	}
	if q.Stale {
		where = append(where, "stale <> 0")
	}
	if !q.SilentSince.IsZero() {
		where, args = append(where, "last_seen_us < ?"), append(args, micros(q.SilentSince))
	}
	if !q.CertBefore.IsZero() {
		where, args = append(where, "cert_expiry_us < ?"), append(args, micros(q.CertBefore))
	}
	order := "name"
	switch q.Sort {
	case "", "name":
	case "last_seen":
		order = "last_seen_us"
	case "krl":
		order = "krl_version"
	case "cert_expiry":
		order = "cert_expiry_us"
	default:
		return store.HostPage{}, fmt.Errorf("store: query hosts: unknown sort %q", q.Sort)
	}
	dir := " ASC"
	if q.Desc {
		dir = " DESC"
	}
	query := `SELECT ` + hostCols + ` FROM hosts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY " + order + dir
	if order != "name" {
		query += ", name"
	}
	limit := pageLimit(q.Limit)
	query += " LIMIT " + strconv.Itoa(limit+1) + " OFFSET " + strconv.Itoa(max(q.Offset, 0))
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return store.HostPage{}, fmt.Errorf("store: query hosts: %w", err)
	}
	defer rows.Close()
	var p store.HostPage
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return store.HostPage{}, fmt.Errorf("store: scan host: %w", err)
		}
		if len(p.Hosts) == limit {
			p.More = true
			break
		}
		p.Hosts = append(p.Hosts, h)
	}
	return p, rows.Err()
}

// SummarizeFleet aggregates the hosts table in a few grouped scans.
func (s *DB) SummarizeFleet(ctx context.Context, silentSince, certBefore time.Time) (store.FleetSummary, error) {
	var f store.FleetSummary
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*),
		COALESCE(SUM(CASE WHEN stale <> 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN last_seen_us < ? THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN cert_expiry_us < ? THEN 1 ELSE 0 END), 0) FROM hosts`),
		micros(silentSince), micros(certBefore)).Scan(&f.Total, &f.Stale, &f.Silent, &f.CertExpiring)
	if err != nil {
		return f, fmt.Errorf("store: summarize fleet: %w", err)
	}
	group := func(query string) ([]store.Count, error) {
		rows, err := s.db.QueryContext(ctx, query)
		if err != nil {
			return nil, fmt.Errorf("store: summarize fleet: %w", err)
		}
		defer rows.Close()
		var out []store.Count
		for rows.Next() {
			var c store.Count
			if err := rows.Scan(&c.Key, &c.N); err != nil {
				return nil, fmt.Errorf("store: summarize fleet: %w", err)
			}
			out = append(out, c)
		}
		return out, rows.Err()
	}
	if f.ByKRL, err = group(`SELECT CAST(krl_version AS TEXT), COUNT(*) FROM hosts GROUP BY krl_version ORDER BY krl_version DESC`); err != nil {
		return f, err
	}
	if f.ByHostCA, err = group(`SELECT host_cert_ca, COUNT(*) FROM hosts GROUP BY host_cert_ca ORDER BY COUNT(*) DESC, host_cert_ca`); err != nil {
		return f, err
	}
	return f, nil
}

const auditCols = `seq, time_us, actor, action, role, serial, key_id, outcome, reason, details, prev_hash, hash`

func scanAudit(sc interface{ Scan(...any) error }) (audit.Entry, error) {
	var e audit.Entry
	var seq, tus, serial int64
	var details string
	if err := sc.Scan(&seq, &tus, &e.Actor, &e.Action, &e.Role, &serial, &e.KeyID, &e.Outcome, &e.Reason, &details, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	e.Seq, e.Time, e.Serial = uint64(seq), fromMicros(tus), uint64(serial)
	if details != "" {
		if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
			// Keep the entry; verification flags it as changed.
			e.Details = map[string]string{"_corrupt": details}
		}
	}
	return e, nil
}

func (s *DB) auditRows(ctx context.Context, query string, args []any, limit int) ([]audit.Entry, bool, error) {
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: query audit: %w", err)
	}
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, false, fmt.Errorf("store: scan audit: %w", err)
		}
		if len(out) == limit {
			return out, true, nil
		}
		out = append(out, e)
	}
	return out, false, rows.Err()
}

// QueryAudit returns one page of the audit log, newest first, and whether
// older entries match too.
func (s *DB) QueryAudit(ctx context.Context, q store.AuditQuery) ([]audit.Entry, bool, error) {
	var where []string
	var args []any
	for _, f := range []struct{ col, v string }{{"actor", q.Actor}, {"action", q.Action}, {"role", q.Role}, {"outcome", q.Outcome}} {
		if f.v != "" {
			where, args = append(where, f.col+" = ?"), append(args, f.v)
		}
	}
	if q.Serial != 0 {
		where, args = append(where, "serial = ?"), append(args, int64(q.Serial))
	}
	if !q.Since.IsZero() {
		where, args = append(where, "time_us >= ?"), append(args, micros(q.Since))
	}
	if !q.Until.IsZero() {
		where, args = append(where, "time_us < ?"), append(args, micros(q.Until))
	}
	if q.Before != 0 {
		where, args = append(where, "seq < ?"), append(args, int64(q.Before))
	}
	query := `SELECT ` + auditCols + ` FROM audit`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	limit := pageLimit(q.Limit)
	query += " ORDER BY seq DESC LIMIT " + strconv.Itoa(limit+1)
	return s.auditRows(ctx, query, args, limit)
}

// AuditAfter returns up to limit entries after seq, in order.
func (s *DB) AuditAfter(ctx context.Context, seq uint64, limit int) ([]audit.Entry, error) {
	if limit <= 0 {
		limit = 10_000
	}
	out, _, err := s.auditRows(ctx, `SELECT `+auditCols+` FROM audit WHERE seq > ? ORDER BY seq LIMIT `+strconv.Itoa(limit), []any{int64(seq)}, limit)
	return out, err
}

// AuditHours counts issuances and denials per hour since since. The log's
// times rise with its sequence numbers (each entry is stamped as it is
// appended; concurrent writers may interleave by a moment), so a binary
// search over the primary key finds where the period starts, ten minutes
// early to be safe, and only the period is scanned.
func (s *DB) AuditHours(ctx context.Context, since time.Time) ([]store.HourCount, error) {
	from, err := s.auditSeqAt(ctx, since.Add(-10*time.Minute))
	if err != nil {
		return nil, err
	}
	const hourUS = int64(time.Hour / time.Microsecond)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT time_us / ?, role, action, outcome, COUNT(*) FROM audit
		WHERE seq >= ? AND time_us >= ? AND action IN (?, ?) GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`),
		hourUS, int64(from), micros(since), audit.ActionIssue, audit.ActionDeny)
	if err != nil {
		return nil, fmt.Errorf("store: audit hours: %w", err)
	}
	defer rows.Close()
	var out []store.HourCount
	for rows.Next() {
		var h store.HourCount
		var hour int64
		if err := rows.Scan(&hour, &h.Role, &h.Action, &h.Outcome, &h.N); err != nil {
			return nil, fmt.Errorf("store: audit hours: %w", err)
		}
		h.Hour = time.UnixMicro(hour * hourUS).UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}

// auditSeqAt returns the first sequence number whose entry is stamped at
// or after t, by binary search (about 20 primary-key lookups for a million
// entries); 1 when the log is empty or starts later.
func (s *DB) auditSeqAt(ctx context.Context, t time.Time) (uint64, error) {
	var hi sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit`).Scan(&hi); err != nil {
		return 0, fmt.Errorf("store: audit hours: %w", err)
	}
	lo, top := int64(1), hi.Int64+1
	want := micros(t)
	for lo < top {
		mid := lo + (top-lo)/2
		var tus int64
		err := s.db.QueryRowContext(ctx, s.q(`SELECT time_us FROM audit WHERE seq >= ? ORDER BY seq LIMIT 1`), mid).Scan(&tus)
		if errors.Is(err, sql.ErrNoRows) {
			top = mid
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("store: audit hours: %w", err)
		}
		if tus >= want {
			top = mid
		} else {
			lo = mid + 1
		}
	}
	return uint64(lo), nil
}

// LastExpiry returns the latest expiry among the certificates that the CA
// key caFP of caType signed (zero if none), walking the valid_before index
// from the end: the keys still in use signed the latest certificates.
func (s *DB) LastExpiry(ctx context.Context, caType, caFP string) (time.Time, error) {
	var vb int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT valid_before FROM certs WHERE ca_type = ? AND ca_fp = ? ORDER BY valid_before DESC LIMIT 1`), caType, caFP).Scan(&vb)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("store: last expiry: %w", err)
	}
	return time.Unix(vb, 0).UTC(), nil
}
