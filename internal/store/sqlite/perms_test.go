//go:build unix

package sqlite_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// TestOpenPrivate checks that the database and the files SQLite keeps
// beside it are 0600 whoever creates them: a new database under umask 0,
// and one left 0644 (with its -wal and -shm) by an older sshca, both while
// another handle holds it open, as when a CLI command runs beside
// `sshca serve`.
func TestOpenPrivate(t *testing.T) {
	old := syscall.Umask(0) // the process's: this test does not run in parallel
	defer syscall.Umask(old)
	ctx := t.Context()
	write := func(t *testing.T, path string) func() error {
		t.Helper()
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, audit.Entry{Time: time.Now(), Actor: "test", Action: audit.ActionAdmin, Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
		return st.Close
	}
	check := func(t *testing.T, path string) {
		t.Helper()
		for _, p := range sqlite.Files(path)[:3] { // no -journal in WAL mode
			fi, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("%s has mode %04o, want 0600", filepath.Base(p), got)
			}
		}
	}

	t.Run("ok/new-under-umask-0", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sshca.db")
		closeA := write(t, path)
		defer closeA()
		closeB := write(t, path)
		defer closeB()
		check(t, path)
	})
	t.Run("ok/old-0644-tightened", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sshca.db")
		closeA := write(t, path)
		defer closeA()
		for _, p := range sqlite.Files(path)[:3] {
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		changed, err := sqlite.MakePrivate(path)
		if err != nil || len(changed) != 3 || changed[0].Was != 0o644 {
			t.Fatalf("MakePrivate = %+v, %v; want the three files, were 0644", changed, err)
		}
		for _, p := range sqlite.Files(path)[:3] {
			_ = os.Chmod(p, 0o644)
		}
		closeB := write(t, path) // Open tightens by itself too
		defer closeB()
		check(t, path)
	})
}
