package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/storetest"
)

func openDumpStore(t *testing.T) storetest.DumpStore {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestDump(t *testing.T) {
	storetest.RunDump(t, openDumpStore, openDumpStore)
}
