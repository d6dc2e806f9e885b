package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/sshca/sshca/internal/store/sqlite"
)

// TestUpgradeSerialCounter: a database from before the serial counter
// (serials from AUTOINCREMENT) reserves blocks strictly above every serial
// AUTOINCREMENT ever handed out, even one whose row is gone, so no serial is
// reused (invariant 3).
func TestUpgradeSerialCounter(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sshca.db")
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `CREATE TABLE certs (
		serial INTEGER PRIMARY KEY AUTOINCREMENT, ca_type TEXT NOT NULL, ca_fp TEXT NOT NULL, role TEXT NOT NULL,
		key_id TEXT NOT NULL, principals TEXT NOT NULL, valid_after INTEGER NOT NULL, valid_before INTEGER NOT NULL,
		subject_fp TEXT NOT NULL, subject_type TEXT NOT NULL, requester TEXT NOT NULL, issued_us INTEGER NOT NULL,
		cert TEXT NOT NULL DEFAULT '')`); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `CREATE INDEX certs_subject_fp ON certs (subject_fp)`); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := raw.ExecContext(ctx, `INSERT INTO certs (ca_type, ca_fp, role, key_id, principals, valid_after, valid_before, subject_fp, subject_type, requester, issued_us)
			VALUES ('user', 'SHA256:ca', 'r', 'k', '["p"]', 0, 1, 'SHA256:s', 'ssh-ed25519', 't', 1)`); err != nil {
			t.Fatal(err)
		}
	}
	// The row of serial 5 is gone (never possible through sshca, but the
	// counter must not depend on it); AUTOINCREMENT remembers 5.
	if _, err := raw.ExecContext(ctx, `DELETE FROM certs WHERE serial >= 4`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	first, err := st.ReserveSerials(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if first != 6 {
		t.Fatalf("first reserved serial after the upgrade = %d; want 6", first)
	}
	var idx int
	if err := st.SQL().QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'certs_subject_fp'`).Scan(&idx); err != nil || idx != 0 {
		t.Fatalf("certs_subject_fp index still there (%d, %v)", idx, err)
	}
	// Reopening does not move the counter back.
	st.Close()
	st2, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if next, err := st2.ReserveSerials(ctx, 1); err != nil || next != 9 {
		t.Fatalf("after reopening: %d, %v; want 9", next, err)
	}
}
