package postgres

import (
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

// TestUpgradeSerialCounter: a database created before the serial counter
// (schema version 2, serials from an identity column) upgrades to blocks
// reserved strictly above every serial the identity column ever handed
// out — including ones whose transactions rolled back — so no serial is
// reused (invariant 3).
func TestUpgradeSerialCounter(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	raw := stdlib.OpenDB(*cfg)
	defer raw.Close()
	if err := migrateTo(ctx, raw, 2); err != nil {
		t.Fatal(err)
	}
	insert := `INSERT INTO certs (ca_type, ca_fp, role, key_id, principals, valid_after, valid_before, subject_fp, subject_type, requester, issued_us, cert)
		VALUES ('user', 'SHA256:ca', 'r', 'k', '["p"]', 0, 1, 'SHA256:s', 'ssh-ed25519', 't', 1, '')`
	for range 3 {
		if _, err := raw.ExecContext(ctx, insert); err != nil {
			t.Fatal(err)
		}
	}
	// Serials 4 and 5 were drawn by transactions that rolled back.
	for range 2 {
		tx, err := raw.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, insert); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback()
	}
	var maxSerial sql.NullInt64
	if err := raw.QueryRowContext(ctx, `SELECT MAX(serial) FROM certs`).Scan(&maxSerial); err != nil || maxSerial.Int64 != 3 {
		t.Fatalf("before the upgrade: max serial %v, %v; want 3", maxSerial, err)
	}

	st, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	first, err := st.ReserveSerials(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if first != 6 {
		t.Fatalf("first reserved serial after the upgrade = %d; want 6 (above the identity column's 5)", first)
	}
	// Explicit serials go in now that the identity column is gone.
	if _, err := raw.ExecContext(ctx, `INSERT INTO certs (serial, ca_type, ca_fp, role, key_id, principals, valid_after, valid_before, subject_fp, subject_type, requester, issued_us, cert)
		VALUES (6, 'user', 'SHA256:ca', 'r', 'k', '["p"]', 0, 1, 'SHA256:s', 'ssh-ed25519', 't', 1, 'x')`); err != nil {
		t.Fatalf("insert with a reserved serial: %v", err)
	}
	var idx int
	if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'certs_subject_fp'`).Scan(&idx); err != nil || idx != 0 {
		t.Fatalf("certs_subject_fp index still there (%d, %v)", idx, err)
	}
}
