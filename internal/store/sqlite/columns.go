package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// addedColumns are columns added to tables after their CREATE TABLE was
// first released; addColumns adds each to a database that lacks it.
var addedColumns = []struct{ table, column, decl string }{
	// Who a certificate was issued to and how they authenticated (store.Lineage, JSON).
	{"certs", "lineage", "TEXT NOT NULL DEFAULT ''"},
	// The CA key behind the host certificate a fleet agent reported with.
	{"hosts", "host_cert_ca", "TEXT NOT NULL DEFAULT ''"},
}

// columnIndexes are indexes on added columns, made once addColumns ran.
var columnIndexes = []string{
	// The admin console finds a person's certificates by the identity of
	// their lineage (store.CertQuery.Identity); records from before
	// lineages by their requester, in a partial index that new rows never
	// enter. Same expressions as sqlstore's identityCond.
	`CREATE INDEX IF NOT EXISTS certs_identity ON certs (json_extract(NULLIF(lineage, ''), '$.identity'))`,
	`CREATE INDEX IF NOT EXISTS certs_legacy_requester ON certs (requester) WHERE lineage = ''`,
}

// addColumns brings an older database's tables up to the schema.
func addColumns(ctx context.Context, db *sql.DB) error {
	for _, c := range addedColumns {
		var n int
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n)
		if err != nil {
			return fmt.Errorf("inspect %s: %w", c.table, err)
		}
		if n > 0 {
			continue
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+c.table+` ADD COLUMN `+c.column+` `+c.decl); err != nil {
			return fmt.Errorf("add %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}
