package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// Every write of a certificate, revocation, CA key or token row seals the
// row into the audit entry written in the same transaction (see
// store.SealRow), from the row as it reads back: updates read the row again
// inside the transaction; bulk inserts (certificates of a batch, imported
// revocations) decode the very values they insert through the scanner the
// reads use (argRow), which gives the same record without a round trip.

// argRow is a row made of the arguments of an INSERT, scanned like a row of
// the database: int64 and string values into *int64, *int and *string.
type argRow []any

// Scan implements the Scan of *sql.Row for the types the stores insert.
func (r argRow) Scan(dest ...any) error {
	if len(dest) != len(r) {
		return fmt.Errorf("store: scan %d values into %d destinations", len(r), len(dest))
	}
	for i, d := range dest {
		switch d := d.(type) {
		case *int64:
			v, ok := r[i].(int64)
			if !ok {
				return fmt.Errorf("store: scan %T into int64", r[i])
			}
			*d = v
		case *int:
			switch v := r[i].(type) {
			case int:
				*d = v
			case int64:
				*d = int(v)
			default:
				return fmt.Errorf("store: scan %T into int", r[i])
			}
		case *string:
			v, ok := r[i].(string)
			if !ok {
				return fmt.Errorf("store: scan %T into string", r[i])
			}
			*d = v
		default:
			return fmt.Errorf("store: scan into %T", d)
		}
	}
	return nil
}

// sealInto adds the seal of row under key to ev's details (a copy: the
// caller's map is not changed).
func sealInto(ev *audit.Entry, key string, row any) {
	d := make(map[string]string, len(ev.Details)+1)
	for k, v := range ev.Details {
		d[k] = v
	}
	d[key] = store.SealRow(row)
	ev.Details = d
}

// sealToken reads token id back inside tx and seals it into ev.
func (s *DB) sealToken(ctx context.Context, tx *sql.Tx, id string, ev *audit.Entry) error {
	t, err := scanToken(tx.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`), id))
	if err != nil {
		return fmt.Errorf("store: read token %s: %w", id, err)
	}
	sealInto(ev, store.TokenRowKey(id), &t)
	return nil
}
