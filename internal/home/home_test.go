//go:build unix

package home_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// withUmask runs the rest of the test under umask m: files sshca creates
// must get their modes from sshca, not from the umask. The umask is the
// process's, so tests that use it do not run in parallel.
func withUmask(t *testing.T, m int) {
	t.Helper()
	old := syscall.Umask(m)
	t.Cleanup(func() { syscall.Umask(old) })
}

// notices collects what Init and Open say they changed.
type notices []string

func (n *notices) add(s string) { *n = append(*n, s) }

// checkModes fails unless every directory under dir is 0700, every public
// key 0644 and every other file 0600.
func checkModes(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		switch {
		case d.IsDir():
			want = 0o700
		case strings.HasSuffix(p, ".pub"):
			want = 0o644
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", p, got, want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 7 {
		t.Fatalf("only %d entries under %s", n, dir)
	}
}

func totpEvent() audit.Entry {
	return audit.Entry{Time: time.Now(), Actor: "test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp enrolled"}
}

// TestInitPrivate checks that init, under umask 0 and into a directory
// made world-readable beforehand, leaves the home 0700 and every file in
// it 0600 but the public keys, with a secrets key, and says that it
// tightened the directory.
func TestInitPrivate(t *testing.T) {
	withUmask(t, 0)
	dir := filepath.Join(t.TempDir(), "ca")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var said notices
	if err := home.Init(t.Context(), dir, home.InitOptions{Actor: "test", Notice: said.add}); err != nil {
		t.Fatal(err)
	}
	if len(said) != 1 || !strings.Contains(said[0], dir) || !strings.Contains(said[0], "0755") {
		t.Errorf("notices = %q, want one naming %s and 0755", said, dir)
	}
	key, err := os.ReadFile(filepath.Join(dir, "keys", home.SecretsKeyFile))
	if err != nil || len(key) != 32 {
		t.Fatalf("secrets key: %d bytes, %v", len(key), err)
	}
	checkModes(t, dir)
}

// TestInitShortPassphrase checks that init refuses to encrypt CA keys with
// a passphrase shorter than signer.MinPassphraseLen, before it creates
// anything.
func TestInitShortPassphrase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	err := home.Init(t.Context(), dir, home.InitOptions{Actor: "test", Passphrase: []byte("hunter2")})
	if !errors.Is(err, signer.ErrShortPassphrase) {
		t.Fatalf("Init = %v, want ErrShortPassphrase", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Init left %s behind (%v)", dir, err)
	}
}

// TestOpenTightens checks that opening a home made loose (by an older
// sshca, or by hand) tightens the home, keys/ and the database files, says
// so for each, and that the files the open database then creates (-wal,
// -shm) are private under umask 0.
func TestOpenTightens(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := home.Init(ctx, dir, home.InitOptions{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	withUmask(t, 0)
	db := filepath.Join(dir, home.DBFile)
	for p, m := range map[string]os.FileMode{dir: 0o755, filepath.Join(dir, "keys"): 0o755, db: 0o644} {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	var said notices
	h, err := home.Open(ctx, dir, home.Options{Notice: said.add})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if len(said) != 3 {
		t.Errorf("notices = %q, want three (home, keys, database)", said)
	}
	// Write, so that the write-ahead log and its index exist.
	if err := h.Store.PutTOTP(ctx, "alice", []byte("0123456789abcdefghij"), totpEvent()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{db + "-wal", db + "-shm"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v (expected while the database is open)", p, err)
		}
	}
	checkModes(t, dir)

	// The database files of an open store, made loose, are tightened by the
	// next open.
	for _, p := range sqlite.Files(db) {
		_ = os.Chmod(p, 0o644)
	}
	said = nil
	h2, err := home.Open(ctx, dir, home.Options{Notice: said.add})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if len(said) != 3 {
		t.Errorf("notices = %q, want three (sshca.db, -wal, -shm)", said)
	}
	checkModes(t, dir)
}

// TestSecretsKeyUpgrade checks an upgrade: a home from before secrets were
// encrypted (no secrets key, a TOTP secret in clear) gets a key on its
// next open, and the secret is encrypted and still works; a home that
// lost its key while the database holds encrypted secrets, and a key file
// others can read, are refused.
func TestSecretsKeyUpgrade(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := home.Init(ctx, dir, home.InitOptions{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "keys", home.SecretsKeyFile)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdefghij")
	bare, err := sqlite.Open(ctx, filepath.Join(dir, home.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := bare.PutTOTP(ctx, "alice", secret, totpEvent()); err != nil {
		t.Fatal(err)
	}
	rawColumn := func() string {
		var col string
		if err := bare.SQL().QueryRowContext(ctx, `SELECT secret FROM totp WHERE identity = 'alice'`).Scan(&col); err != nil {
			t.Fatal(err)
		}
		return col
	}
	clear := rawColumn()

	var said notices
	h, err := home.Open(ctx, dir, home.Options{Notice: said.add})
	if err != nil {
		t.Fatal(err)
	}
	if len(said) != 2 || !strings.Contains(said[0], keyPath) || !strings.Contains(said[1], "encrypted 1 TOTP") {
		t.Errorf("notices = %q, want the key created and 1 secret encrypted", said)
	}
	if col := rawColumn(); col == clear || !strings.HasPrefix(col, "aes256gcm:") {
		t.Errorf("the secret column is still %q", col)
	}
	if got, _, err := h.Store.GetTOTP(ctx, "alice"); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("GetTOTP = %q, %v", got, err)
	}
	h.Close()
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets key: %v, %v", fi, err)
	}

	t.Run("fail/key-readable-by-others", func(t *testing.T) {
		if err := os.Chmod(keyPath, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(keyPath, 0o600)
		_, err := home.Open(ctx, dir, home.Options{})
		if err == nil || !strings.Contains(err.Error(), keyPath) || !strings.Contains(err.Error(), "0644") {
			t.Fatalf("Open = %v, want a refusal naming %s and 0644", err, keyPath)
		}
	})
	t.Run("fail/key-lost", func(t *testing.T) {
		if err := os.Rename(keyPath, keyPath+".bak"); err != nil {
			t.Fatal(err)
		}
		defer os.Rename(keyPath+".bak", keyPath)
		_, err := home.Open(ctx, dir, home.Options{})
		if err == nil || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("Open = %v, want a refusal: the key is missing", err)
		}
		if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
			t.Error("Open made a new secrets key although the database holds secrets encrypted under another")
		}
	})
	t.Run("fail/clear-row-written-past-sshca", func(t *testing.T) {
		if err := bare.PutTOTP(ctx, "mallory", secret, totpEvent()); err != nil {
			t.Fatal(err)
		}
		h, err := home.Open(ctx, dir, home.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if _, _, err := h.Store.GetTOTP(ctx, "mallory"); err == nil {
			t.Fatal("a secret written in clear once the key exists was accepted")
		}
	})
	bare.Close()
}
