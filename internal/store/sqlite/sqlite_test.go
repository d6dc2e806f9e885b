package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.RunService(t, func(t *testing.T) store.ServiceStore {
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "sshca.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}
