package postgres_test

import (
	"path/filepath"
	"testing"

	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/storetest"
)

func openPG(t *testing.T) storetest.DumpStore { return open(t, pgtest.NewDatabase(t)) }

func openSQLite(t *testing.T) storetest.DumpStore {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestDump runs the dump conformance checks on PostgreSQL, and between
// PostgreSQL and SQLite both ways (store migrate, backup and restore).
func TestDump(t *testing.T) {
	t.Run("postgres-to-postgres", func(t *testing.T) { storetest.RunDump(t, openPG, openPG) })
	t.Run("sqlite-to-postgres", func(t *testing.T) { storetest.RunDump(t, openSQLite, openPG) })
	t.Run("postgres-to-sqlite", func(t *testing.T) { storetest.RunDump(t, openPG, openSQLite) })
}
