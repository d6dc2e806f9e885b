package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/sshca/sshca/internal/store"
)

// CAExpiries aggregates certs by signing key in the database: one row per
// CA key comes back, however many certificates there are.
func (s *DB) CAExpiries(ctx context.Context) ([]store.CAExpiry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ca_type, ca_fp, MAX(valid_before), COUNT(*) FROM certs GROUP BY ca_type, ca_fp ORDER BY ca_type, ca_fp`)
	if err != nil {
		return nil, fmt.Errorf("store: CA expiries: %w", err)
	}
	defer rows.Close()
	var out []store.CAExpiry
	for rows.Next() {
		var e store.CAExpiry
		var last, n int64
		if err := rows.Scan(&e.CAType, &e.CAFingerprint, &last, &n); err != nil {
			return nil, fmt.Errorf("store: scan CA expiry: %w", err)
		}
		e.LastExpiry, e.Issued = time.Unix(last, 0).UTC(), int(n)
		out = append(out, e)
	}
	return out, rows.Err()
}

var _ store.StatsStore = (*DB)(nil)
