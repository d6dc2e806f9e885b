package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// AddRevocation records r if it is new and bumps the KRL version.
func (s *DB) AddRevocation(ctx context.Context, r store.Revocation, ev audit.Entry) (bool, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	added := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM revocations WHERE ca_type = ? AND kind = ? AND lo = ? AND hi = ? AND key_id = ? AND value = ?`),
			r.CAType, r.Kind, int64(r.Lo), int64(r.Hi), r.KeyID, r.Value).Scan(&n)
		if err != nil {
			return fmt.Errorf("store: look up revocation: %w", err)
		}
		if n > 0 {
			return nil
		}
		var id int64
		err = tx.QueryRowContext(ctx, s.q(`INSERT INTO revocations (ca_type, kind, lo, hi, key_id, value, reason, actor, created_us, expires_us)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), revArgs(&r, r.CreatedAt)...).Scan(&id)
		if err != nil {
			return fmt.Errorf("store: insert revocation: %w", err)
		}
		row, err := scanRevocation(tx.QueryRowContext(ctx, s.q(`SELECT `+revCols+` FROM revocations WHERE id = ?`), id))
		if err != nil {
			return fmt.Errorf("store: read revocation %d: %w", id, err)
		}
		if err := s.bumpKRL(ctx, tx, r.CAType); err != nil {
			return err
		}
		added = true
		// The audit entry names the row and what it revokes, so that a row
		// deleted or inserted behind sshca's back is found by audit verify.
		ev.Details = withDetails(ev.Details, map[string]string{"revocation_id": strconv.FormatInt(id, 10), "revocation": r.Digest()})
		sealInto(&ev, store.RevocationRowKey(id), &row)
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
	return added, err
}

// revCols are the columns of a revocation, in scanRevocation's order.
const revCols = `id, ca_type, kind, lo, hi, key_id, value, reason, actor, created_us, expires_us`

func scanRevocation(sc interface{ Scan(...any) error }) (store.Revocation, error) {
	var r store.Revocation
	var lo, hi, c, e int64
	if err := sc.Scan(&r.ID, &r.CAType, &r.Kind, &lo, &hi, &r.KeyID, &r.Value, &r.Reason, &r.Actor, &c, &e); err != nil {
		return r, err
	}
	r.Lo, r.Hi, r.CreatedAt, r.Expires = uint64(lo), uint64(hi), fromMicros(c), fromMicros(e)
	return r, nil
}

// revArgs are the values of an inserted revocation (revCols without id),
// created at created.
func revArgs(r *store.Revocation, created time.Time) []any {
	return []any{r.CAType, r.Kind, int64(r.Lo), int64(r.Hi), r.KeyID, r.Value, r.Reason, r.Actor, micros(created), micros(r.Expires)}
}

func (s *DB) bumpKRL(ctx context.Context, tx *sql.Tx, caType string) error {
	res, err := tx.ExecContext(ctx, s.q(`UPDATE krl_versions SET version = version + 1 WHERE ca_type = ?`), caType)
	if err != nil {
		return fmt.Errorf("store: bump KRL version: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO krl_versions (ca_type, version) VALUES (?, 1)`), caType); err != nil {
			return fmt.Errorf("store: init KRL version: %w", err)
		}
	}
	return nil
}

// ListRevocations lists caType's revocations in creation order.
func (s *DB) ListRevocations(ctx context.Context, caType string) ([]store.Revocation, error) {
	var out []store.Revocation
	err := s.EachRevocationRow(ctx, caType, func(r store.Revocation) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachRevocationRow calls fn for each of caType's revocations, whole (every
// column, as ListRevocations returns them) and in ID order, as it reads
// them: audit verify compares every row with its seal without holding
// them all. (EachRevocation, for KRLs, reads only what a KRL needs.) An
// error from fn stops the scan and is returned.
func (s *DB) EachRevocationRow(ctx context.Context, caType string, fn func(store.Revocation) error) error {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+revCols+` FROM revocations WHERE ca_type = ? ORDER BY id`), caType)
	if err != nil {
		return fmt.Errorf("store: list revocations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRevocation(rows)
		if err != nil {
			return fmt.Errorf("store: scan revocation: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// PruneRevocations deletes caType's revocations whose Expires is set and before t.
func (s *DB) PruneRevocations(ctx context.Context, caType string, before time.Time, ev audit.Entry) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id FROM revocations WHERE ca_type = ? AND expires_us > 0 AND expires_us < ? ORDER BY id`), caType, micros(before))
		if err != nil {
			return fmt.Errorf("store: prune revocations: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("store: prune revocations: %w", err)
			}
			ids = append(ids, strconv.FormatInt(id, 10))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: prune revocations: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM revocations WHERE ca_type = ? AND expires_us > 0 AND expires_us < ?`), caType, micros(before))
		if err != nil {
			return fmt.Errorf("store: prune revocations: %w", err)
		}
		n, _ = res.RowsAffected()
		if n == 0 {
			return nil
		}
		ev.Details = withDetails(ev.Details, map[string]string{"pruned_ids": strings.Join(ids, ",")})
		if err := s.bumpKRL(ctx, tx, caType); err != nil {
			return err
		}
		ev.Details["pruned"] = strconv.FormatInt(n, 10)
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
	return int(n), err
}

// revocationKey is what makes two revocations identical: the columns of the
// table's UNIQUE constraint.
type revocationKey struct {
	caType, kind string
	lo, hi       int64
	keyID, value string
}

func revKeyOf(r *store.Revocation) revocationKey {
	return revocationKey{r.CAType, r.Kind, int64(r.Lo), int64(r.Hi), r.KeyID, r.Value}
}

// revInsertShapes are the row counts of the multi-row revocation inserts
// prepared per transaction (10 parameters a row; SQLite allows 32,766 a
// statement). Where the driver caches statements itself, any count up to
// revInsertMax is used (PostgreSQL allows 65,535 parameters).
var revInsertShapes = []int{256, 32, 4, 1}

const revInsertMax = 1000

// revShape returns how many of n remaining revocations the next insert takes.
func (s *DB) revShape(n int) int {
	if s.d.DriverCachesStatements {
		return min(n, revInsertMax)
	}
	for _, k := range revInsertShapes {
		if k <= n {
			return k
		}
	}
	return 1
}

// revInsertSQL inserts n revocations, skipping those that already exist,
// and returns the inserted rows' IDs with their identifying columns (the
// order of RETURNING rows is unspecified on both engines).
func revInsertSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO revocations (ca_type, kind, lo, hi, key_id, value, reason, actor, created_us, expires_us) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT DO NOTHING RETURNING id, ca_type, kind, lo, hi, key_id, value`)
	return b.String()
}

// AddRevocations records, in one transaction, every revocation of revs that
// is new, each with its audit entry evs[i] (completed as AddRevocation
// completes it), in order; duplicates of a recorded revocation, also within
// revs, are neither inserted nor audited. The KRL version of each CA type
// that gained a revocation is bumped once. added[i] reports whether revs[i]
// was new.
func (s *DB) AddRevocations(ctx context.Context, revs []store.Revocation, evs []audit.Entry) ([]bool, error) {
	if len(revs) != len(evs) {
		return nil, fmt.Errorf("store: %d revocations with %d audit entries", len(revs), len(evs))
	}
	now := time.Now()
	createdAt := func(r *store.Revocation) time.Time {
		if r.CreatedAt.IsZero() {
			return now
		}
		return r.CreatedAt
	}
	// First occurrence of each distinct revocation: the candidates to insert.
	first := make(map[revocationKey]int, len(revs))
	var cand []int
	for i := range revs {
		k := revKeyOf(&revs[i])
		if _, dup := first[k]; !dup {
			first[k] = i
			cand = append(cand, i)
		}
	}
	added := make([]bool, len(revs))
	err := s.write(ctx, func(tx *sql.Tx) error {
		clear(added)
		ids := make(map[int]int64, len(cand)) // revs index -> new row ID
		stmts := map[int]*sql.Stmt{}          // by row count, for this transaction
		defer func() {
			for _, st := range stmts {
				st.Close()
			}
		}()
		for rest := cand; len(rest) > 0; {
			n := s.revShape(len(rest))
			chunk := rest[:n]
			rest = rest[n:]
			args := make([]any, 0, 10*n)
			for _, i := range chunk {
				args = append(args, revArgs(&revs[i], createdAt(&revs[i]))...)
			}
			var rows *sql.Rows
			var err error
			if s.d.DriverCachesStatements {
				rows, err = tx.QueryContext(ctx, s.q(revInsertSQL(n)), args...)
			} else {
				st := stmts[n]
				if st == nil {
					if st, err = tx.PrepareContext(ctx, s.q(revInsertSQL(n))); err != nil {
						return fmt.Errorf("store: insert revocations: %w", err)
					}
					stmts[n] = st
				}
				rows, err = st.QueryContext(ctx, args...)
			}
			if err != nil {
				return fmt.Errorf("store: insert revocations: %w", err)
			}
			if err := scanInserted(rows, first, ids); err != nil {
				return err
			}
		}
		var out []audit.Entry
		bumped := map[string]bool{}
		for _, i := range cand {
			id, ok := ids[i]
			if !ok {
				continue
			}
			r := &revs[i]
			if !bumped[r.CAType] {
				if err := s.bumpKRL(ctx, tx, r.CAType); err != nil {
					return err
				}
				bumped[r.CAType] = true
			}
			added[i] = true
			ev := evs[i]
			ev.Details = withDetails(ev.Details, map[string]string{"revocation_id": strconv.FormatInt(id, 10), "revocation": r.Digest()})
			// The row as it reads back, from the values just inserted.
			row, err := scanRevocation(argRow(append([]any{id}, revArgs(r, createdAt(r))...)))
			if err != nil {
				return err
			}
			ev.Details[store.RevocationRowKey(id)] = store.SealRow(&row)
			out = append(out, ev)
		}
		return s.appendAudits(ctx, tx, out)
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// scanInserted reads the rows a multi-row insert returned and records the
// new rows' IDs by the index of the revocation each came from.
func scanInserted(rows *sql.Rows, first map[revocationKey]int, ids map[int]int64) error {
	defer rows.Close()
	for rows.Next() {
		var id int64
		var k revocationKey
		if err := rows.Scan(&id, &k.caType, &k.kind, &k.lo, &k.hi, &k.keyID, &k.value); err != nil {
			return fmt.Errorf("store: insert revocations: %w", err)
		}
		i, ok := first[k]
		if !ok {
			return fmt.Errorf("store: insert revocations: inserted row %d matches no revocation", id)
		}
		ids[i] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: insert revocations: %w", err)
	}
	// Closed before the transaction goes on: SQLite cannot commit past an
	// active statement.
	return rows.Close()
}

// EachRevocation calls fn with each of caType's revocations in creation
// order, streaming them from the database. Only the fields a KRL is built
// from are set: ID, CAType, Kind, Lo, Hi, KeyID, Value and CreatedAt. fn
// runs while the rows are read, on the caller's goroutine; it should not
// use the store. An error from fn stops the iteration and is returned.
func (s *DB) EachRevocation(ctx context.Context, caType string, fn func(store.Revocation) error) error {
	from := "revocations"
	if s.d.Name == "sqlite" {
		// Scan the table in rowid (= id) order. Otherwise SQLite walks the
		// UNIQUE index, whose first column is ca_type, looks every row up
		// in the table and sorts the result by id: several times slower.
		from = "revocations NOT INDEXED"
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, kind, lo, hi, key_id, value, created_us FROM `+from+` WHERE ca_type = ? ORDER BY id`), caType)
	if err != nil {
		return fmt.Errorf("store: list revocations: %w", err)
	}
	defer rows.Close()
	// Scanned into variables outside the loop, so that only the strings fn
	// gets are allocated per row.
	var id, lo, hi, c int64
	var kind, keyID, value sql.RawBytes
	dest := []any{&id, &kind, &lo, &hi, &keyID, &value, &c}
	var lastValue string
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("store: scan revocation: %w", err)
		}
		r := store.Revocation{ID: id, CAType: caType, Lo: uint64(lo), Hi: uint64(hi), CreatedAt: fromMicros(c)}
		r.Kind = internKind(kind)
		if len(keyID) > 0 {
			r.KeyID = string(keyID)
		}
		// Most rows of a large import share their value (the CA key an
		// imported serial belongs to): reuse the string instead of copying
		// it for every row.
		if string(value) != lastValue {
			lastValue = string(value)
		}
		r.Value = lastValue
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: list revocations: %w", err)
	}
	return nil
}

// internKind returns the constant for a known revocation kind, so that
// scanning does not allocate a string per row.
func internKind(b []byte) string {
	for _, k := range []string{store.RevokeSerial, store.RevokeKeyID, store.RevokeKey, store.RevokeSHA256, store.RevokeSHA1, store.RevokeCAKey} {
		if string(b) == k {
			return k
		}
	}
	return string(b)
}
