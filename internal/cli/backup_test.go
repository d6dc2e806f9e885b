package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

// writePass writes a private passphrase file.
func writePass(t *testing.T, pass string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup.pass")
	if err := os.WriteFile(p, []byte(pass+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkRestored checks a restored home: private modes, the same state as
// the original, audit verify, and serials above every one issued before.
func checkRestored(t *testing.T, dir, pub, want string, maxBefore uint64, dbArgs ...string) {
	t.Helper()
	for _, p := range []string{dir, filepath.Join(dir, home.KeyDir)} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want mode 0700", p, fi.Mode(), err)
		}
	}
	for _, p := range []string{home.ConfigFile, home.HeadFile, "keys/user-ca-1", "keys/user-ca-2", "keys/host-ca-1", "keys/secrets.key"} {
		if fi, err := os.Stat(filepath.Join(dir, p)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", p, fi.Mode(), err)
		}
	}
	if got := caState(t, dir, dbArgs...); got != want {
		t.Errorf("the restored CA reads differently:\n--- original\n%s\n--- restored\n%s", want, got)
	}
	mustRun(t, append(append([]string{"--home", dir}, dbArgs...), "audit", "verify")...)
	seen := map[uint64]bool{}
	for range 3 {
		s := signSerial(t, dir, pub, dbArgs...)
		if seen[s] || s <= maxBefore {
			t.Errorf("serial %d after restore; the original had issued up to %d", s, maxBefore)
		}
		seen[s] = true
	}
	mustRun(t, append(append([]string{"--home", dir}, dbArgs...), "audit", "verify")...)
}

// TestBackupRestoreSQLite backs a populated SQLite home up and restores it
// into a new directory, where it verifies and keeps issuing.
func TestBackupRestoreSQLite(t *testing.T) {
	requireKeygen(t)
	dir := initHome(t)
	pub := populateHome(t, dir)
	pass := writePass(t, "correct horse battery staple", 0o600)
	archive := filepath.Join(t.TempDir(), "ca.sshca-backup")
	out := mustRun(t, "--home", dir, "backup", "--out", archive, "--passphrase-file", pass)
	if !strings.Contains(out, "certs 4") || !strings.Contains(out, "keys/secrets.key") {
		t.Errorf("backup output:\n%s", out)
	}
	want := caState(t, dir)
	maxBefore := maxSerialOf(t, dir)
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(archive); fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %04o, want 0600", fi.Mode().Perm())
	}
	for _, leak := range []string{"OPENSSH PRIVATE KEY", "roles:", "alice", "sshca.yaml"} {
		if bytes.Contains(data, []byte(leak)) {
			t.Errorf("the archive holds %q in clear", leak)
		}
	}
	// The original keeps working after the backup; what it issues later is
	// not in the archive, so the restored CA continues from the backup's
	// counter, which is above everything the archive knows.
	restored := filepath.Join(t.TempDir(), "restored")
	out = mustRun(t, "--home", restored, "restore", "--in", archive, "--passphrase-file", pass)
	if !strings.Contains(out, "chain intact") || !strings.Contains(out, "row counts equal") {
		t.Errorf("restore output:\n%s", out)
	}
	checkRestored(t, restored, pub, want, maxBefore)

	t.Run("fail/backup-never-overwrites", func(t *testing.T) {
		r := runCLI(t, "--home", dir, "backup", "--out", archive, "--passphrase-file", pass)
		if r.code != 1 || !strings.Contains(r.stderr, "exists") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		if after, _ := os.ReadFile(archive); !bytes.Equal(after, data) {
			t.Error("the archive changed")
		}
	})
	t.Run("fail/restore-into-live-home", func(t *testing.T) {
		before := snapshotFiles(t, dir)
		r := runCLI(t, "--home", dir, "restore", "--in", archive, "--passphrase-file", pass)
		if r.code != 1 || !strings.Contains(r.stderr, "not empty") || !strings.Contains(r.stderr, "never overwrites") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		if after := snapshotFiles(t, dir); len(after) != len(before) {
			t.Error("the live home changed")
		}
	})
	t.Run("fail/wrong-passphrase", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "new")
		r := runCLI(t, "--home", target, "restore", "--in", archive, "--passphrase-file", writePass(t, "not the right passphrase", 0o600))
		if r.code != 1 || !strings.Contains(r.stderr, "wrong passphrase") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("a failed restore left %s: %v", target, err)
		}
	})
	t.Run("fail/archive-cut-short", func(t *testing.T) {
		cut := filepath.Join(t.TempDir(), "cut")
		if err := os.WriteFile(cut, data[:len(data)-100], 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(t.TempDir(), "new")
		if err := os.Mkdir(target, 0o755); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, "--home", target, "restore", "--in", cut, "--passphrase-file", pass)
		if r.code != 1 {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		if ents, _ := os.ReadDir(target); len(ents) != 0 {
			t.Errorf("a failed restore left %d files in %s", len(ents), target)
		}
	})
	t.Run("fail/passphrase-rules", func(t *testing.T) {
		for name, tc := range map[string]struct {
			pass string
			mode os.FileMode
			want string
		}{
			"short":    {"short", 0o600, "shorter than 12"},
			"readable": {"correct horse battery staple", 0o644, "mode 0644"},
		} {
			r := runCLI(t, "--home", dir, "backup", "--out", filepath.Join(t.TempDir(), name), "--passphrase-file", writePass(t, tc.pass, tc.mode))
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%s: exit %d, stderr %q; want %q", name, r.code, r.stderr, tc.want)
			}
		}
		r := runCLI(t, "--home", dir, "backup", "--out", filepath.Join(t.TempDir(), "x"))
		if r.code != 2 || !strings.Contains(r.stderr, "--passphrase-file is required") {
			t.Errorf("no passphrase: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// TestBackupRestorePostgres backs up a home on PostgreSQL and restores it
// into a fresh PostgreSQL database given with --database.
func TestBackupRestorePostgres(t *testing.T) {
	requireKeygen(t)
	pg := pgtest.NewDatabase(t)
	dir := initHome(t, "--database", pg)
	db := []string{"--database", pg}
	pub := populateHome(t, dir, db...)
	pass := writePass(t, "correct horse battery staple", 0o600)
	archive := filepath.Join(t.TempDir(), "ca.sshca-backup")
	mustRun(t, append(append([]string{"--home", dir}, db...), "backup", "--out", archive, "--passphrase-file", pass)...)
	want := caState(t, dir, db...)
	maxBefore := maxSerialOf(t, dir, db...)

	pg2 := pgtest.NewDatabase(t)
	restored := filepath.Join(t.TempDir(), "restored")
	// Into the original, live database: refused, and nothing is left.
	r := runCLI(t, "--home", restored, "--database", pg, "restore", "--in", archive, "--passphrase-file", pass)
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("restore into the live database: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(restored); !os.IsNotExist(err) {
		t.Errorf("a failed restore left %s", restored)
	}
	out := mustRun(t, "--home", restored, "--database", pg2, "restore", "--in", archive, "--passphrase-file", pass)
	if !strings.Contains(out, "a postgres store") || !strings.Contains(out, "row counts equal") {
		t.Errorf("restore output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(restored, home.DBFile)); !os.IsNotExist(err) {
		t.Error("a restore into PostgreSQL made a SQLite file")
	}
	checkRestored(t, restored, pub, want, maxBefore, "--database", pg2)
	// The original database is untouched by all this.
	mustRun(t, append(append([]string{"--home", dir}, db...), "audit", "verify")...)
}
