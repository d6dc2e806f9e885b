package sqlstore

import (
	"context"
	"fmt"

	"github.com/sshca/sshca/internal/store"
)

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
