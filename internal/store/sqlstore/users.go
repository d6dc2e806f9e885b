package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// Local users live in two tables: local_users (name, groups as a JSON
// array, who created it, when) and local_user_keys (one row per key, the
// fingerprint unique across users, so a key names one user).

// AddLocalUser implements store.UserStore.
func (s *DB) AddLocalUser(ctx context.Context, u store.LocalUser, ev audit.Entry) error {
	groups, _ := json.Marshal(nonNil(u.Groups))
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO local_users (name, groups_json, created_by, created_us) VALUES (?, ?, ?, ?)`),
			u.Name, string(groups), u.CreatedBy, micros(u.CreatedAt))
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return fmt.Errorf("store: local user %q: %w", u.Name, store.ErrExists)
			}
			return fmt.Errorf("store: insert local user: %w", err)
		}
		for _, k := range u.Keys {
			if err := s.insertUserKey(ctx, tx, u.Name, k); err != nil {
				return err
			}
		}
		if err := s.sealLocalUser(ctx, tx, u.Name, &ev); err != nil {
			return err
		}
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

// sealLocalUser puts the seals of name's row and of its key rows, as read
// back in tx, into ev (see store.SealRow).
func (s *DB) sealLocalUser(ctx context.Context, tx *sql.Tx, name string, ev *audit.Entry) error {
	u, err := s.getLocalUser(ctx, tx, name)
	if err != nil {
		return err
	}
	row := store.LocalUserRow(*u)
	sealInto(ev, store.LocalUserRowKey(name), &row)
	for _, k := range u.Keys {
		row := store.LocalUserKeyRow{Fingerprint: k.Fingerprint, Name: name, PublicKey: k.PublicKey, AddedAt: k.AddedAt}
		sealInto(ev, store.LocalUserKeyRowKey(k.Fingerprint), &row)
	}
	return nil
}

// sealDeleted marks rows deleted through sshca in ev's details (a copy:
// the caller's map is not changed).
func sealDeleted(ev *audit.Entry, keys ...string) {
	d := make(map[string]string, len(ev.Details)+len(keys))
	for k, v := range ev.Details {
		d[k] = v
	}
	for _, k := range keys {
		d[k] = store.RowDeleted
	}
	ev.Details = d
}

func (s *DB) insertUserKey(ctx context.Context, tx *sql.Tx, name string, k store.LocalUserKey) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO local_user_keys (fingerprint, name, public_key, added_us) VALUES (?, ?, ?, ?)`),
		k.Fingerprint, name, k.PublicKey, micros(k.AddedAt))
	if err != nil {
		if s.d.IsUniqueViolation(err) {
			return fmt.Errorf("store: key %s is already registered: %w", k.Fingerprint, store.ErrExists)
		}
		return fmt.Errorf("store: insert local user key: %w", err)
	}
	return nil
}

// GetLocalUser implements store.UserStore.
func (s *DB) GetLocalUser(ctx context.Context, name string) (*store.LocalUser, error) {
	return s.getLocalUser(ctx, s.db, name)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *DB) getLocalUser(ctx context.Context, q querier, name string) (*store.LocalUser, error) {
	var u store.LocalUser
	var groups string
	var created int64
	err := q.QueryRowContext(ctx, s.q(`SELECT name, groups_json, created_by, created_us FROM local_users WHERE name = ?`), name).
		Scan(&u.Name, &groups, &u.CreatedBy, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: local user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get local user: %w", err)
	}
	u.CreatedAt = fromMicros(created)
	if err := json.Unmarshal([]byte(groups), &u.Groups); err != nil {
		return nil, fmt.Errorf("store: local user %q: bad groups: %w", name, err)
	}
	rows, err := q.QueryContext(ctx, s.q(`SELECT fingerprint, public_key, added_us FROM local_user_keys WHERE name = ? ORDER BY added_us, fingerprint`), name)
	if err != nil {
		return nil, fmt.Errorf("store: list keys of %q: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k store.LocalUserKey
		var added int64
		if err := rows.Scan(&k.Fingerprint, &k.PublicKey, &added); err != nil {
			return nil, fmt.Errorf("store: list keys of %q: %w", name, err)
		}
		k.AddedAt = fromMicros(added)
		u.Keys = append(u.Keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list keys of %q: %w", name, err)
	}
	return &u, nil
}

// LocalUserByKey implements store.UserStore.
func (s *DB) LocalUserByKey(ctx context.Context, fingerprint string) (*store.LocalUser, error) {
	var name string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT name FROM local_user_keys WHERE fingerprint = ?`), fingerprint).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: no local user has key %s: %w", fingerprint, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: look up key: %w", err)
	}
	return s.getLocalUser(ctx, s.db, name)
}

// ListLocalUsers implements store.UserStore.
func (s *DB) ListLocalUsers(ctx context.Context) ([]store.LocalUser, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM local_users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list local users: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("store: list local users: %w", err)
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list local users: %w", err)
	}
	out := make([]store.LocalUser, 0, len(names))
	for _, n := range names {
		u, err := s.getLocalUser(ctx, s.db, n)
		if err != nil {
			return nil, err
		}
		out = append(out, *u)
	}
	return out, nil
}

// RemoveLocalUser implements store.UserStore.
func (s *DB) RemoveLocalUser(ctx context.Context, name string, ev audit.Entry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if u, err := s.getLocalUser(ctx, tx, name); err == nil {
			gone := []string{store.LocalUserRowKey(name)}
			for _, k := range u.Keys {
				gone = append(gone, store.LocalUserKeyRowKey(k.Fingerprint))
			}
			sealDeleted(&ev, gone...)
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM local_users WHERE name = ?`), name)
		if err != nil {
			return fmt.Errorf("store: delete local user: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: local user %q: %w", name, store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM local_user_keys WHERE name = ?`), name); err != nil {
			return fmt.Errorf("store: delete local user keys: %w", err)
		}
		// A later user of the same name must not inherit the factor.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM totp WHERE identity = ?`), "local:"+name); err != nil {
			return fmt.Errorf("store: delete local user TOTP: %w", err)
		}
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

// AddLocalUserKey implements store.UserStore.
func (s *DB) AddLocalUserKey(ctx context.Context, name string, k store.LocalUserKey, ev audit.Entry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM local_users WHERE name = ?`), name).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: local user %q: %w", name, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: get local user: %w", err)
		}
		if err := s.insertUserKey(ctx, tx, name, k); err != nil {
			return err
		}
		u, err := s.getLocalUser(ctx, tx, name)
		if err != nil {
			return err
		}
		for _, rk := range u.Keys {
			if rk.Fingerprint == k.Fingerprint {
				row := store.LocalUserKeyRow{Fingerprint: rk.Fingerprint, Name: name, PublicKey: rk.PublicKey, AddedAt: rk.AddedAt}
				sealInto(&ev, store.LocalUserKeyRowKey(rk.Fingerprint), &row)
			}
		}
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

// RemoveLocalUserKey implements store.UserStore.
func (s *DB) RemoveLocalUserKey(ctx context.Context, name, fingerprint string, ev audit.Entry) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM local_user_keys WHERE name = ? AND fingerprint = ?`), name, fingerprint)
		if err != nil {
			return fmt.Errorf("store: delete local user key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("store: local user %q has no key %s: %w", name, fingerprint, store.ErrNotFound)
		}
		sealDeleted(&ev, store.LocalUserKeyRowKey(fingerprint))
		_, err = s.appendAudit(ctx, tx, ev)
		return err
	})
}

var _ store.UserStore = (*DB)(nil)
