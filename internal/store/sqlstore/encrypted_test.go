package sqlstore_test

import (
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/sealbox"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/sqlstore"
	"github.com/sshca/sshca/internal/store/storetest"
	"github.com/sshca/sshca/internal/totp"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// backends open a fresh bare store of each kind; opening a second time
// (reopen) gives another handle on the same database.
var backends = []struct {
	name string
	open func(t *testing.T) (reopen func(t *testing.T) *sqlstore.DB)
}{
	{name: "sqlite", open: func(t *testing.T) func(t *testing.T) *sqlstore.DB {
		path := filepath.Join(t.TempDir(), "sshca.db")
		return func(t *testing.T) *sqlstore.DB {
			st, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
	}},
	{name: "postgres", open: func(t *testing.T) func(t *testing.T) *sqlstore.DB {
		url := pgtest.NewDatabase(t)
		return func(t *testing.T) *sqlstore.DB {
			st, err := postgres.Open(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}
	}},
}

func newBox(t *testing.T) *sealbox.Box {
	t.Helper()
	key, err := sealbox.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sealbox.New(key, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func totpEvent() audit.Entry {
	return audit.Entry{Time: time.Now(), Actor: "test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp enrolled"}
}

// rawSecret reads identity's secret column as stored.
func rawSecret(t *testing.T, db *sql.DB, identity string) string {
	t.Helper()
	var col string
	// Identities here are fixed test names: inlined, so that one query
	// text serves both placeholder styles.
	if err := db.QueryRowContext(t.Context(), `SELECT secret FROM totp WHERE identity = '`+identity+`'`).Scan(&col); err != nil {
		t.Fatal(err)
	}
	return col
}

func setRawSecret(t *testing.T, db *sql.DB, identity, col string) {
	t.Helper()
	if strings.ContainsAny(col, `'\`) {
		t.Fatalf("column %q cannot be inlined", col)
	}
	if _, err := db.ExecContext(t.Context(), `UPDATE totp SET secret = '`+col+`' WHERE identity = '`+identity+`'`); err != nil {
		t.Fatal(err)
	}
}

// forms are the ways a secret could appear in a column: raw, hex, base64
// (with and without padding) and base32 (as in the otpauth URI).
func forms(secret []byte) []string {
	return []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret),
		base64.RawStdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret),
		base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)}
}

// TestEncryptedTOTP checks, on SQLite and on a real PostgreSQL server, that
// TOTP secrets written through EncryptTOTP are not in the database in any
// readable form; that a secret moved to another identity's row, or read
// with another key or without one, does not open and so verifies no code;
// that secrets in clear from an older sshca are encrypted (and audited)
// when the key is created, and refused once it exists.
func TestEncryptedTOTP(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			reopen := be.open(t)
			bare := reopen(t)
			box := newBox(t)
			st, n, err := sqlstore.EncryptTOTP(ctx, bare, box, nil)
			if err != nil || n != 0 {
				t.Fatalf("EncryptTOTP = %d, %v", n, err)
			}
			secrets := map[string][]byte{}
			for _, id := range []string{"alice", "bob"} {
				sec, err := totp.NewSecret(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				secrets[id] = sec
				if err := st.PutTOTP(ctx, id, sec, totpEvent()); err != nil {
					t.Fatal(err)
				}
			}
			now := time.Now()

			t.Run("ok/raw-column-has-no-secret", func(t *testing.T) {
				for id, sec := range secrets {
					col := rawSecret(t, st.SQL(), id)
					if !strings.HasPrefix(col, "aes256gcm:") {
						t.Errorf("%s's column %q is not marked encrypted", id, col)
					}
					for _, f := range forms(sec) {
						if strings.Contains(col, f) {
							t.Errorf("%s's column %q contains the secret as %q", id, col, f)
						}
					}
				}
				if has, err := st.HasEncryptedTOTP(ctx); err != nil || !has {
					t.Errorf("HasEncryptedTOTP = %v, %v", has, err)
				}
			})
			t.Run("ok/roundtrip-verifies", func(t *testing.T) {
				got, last, err := st.GetTOTP(ctx, "alice")
				if err != nil || !bytes.Equal(got, secrets["alice"]) || last != 0 {
					t.Fatalf("GetTOTP = %x, %d, %v", got, last, err)
				}
				if _, err := totp.Verify(got, totp.Code(secrets["alice"], now), now, 0); err != nil {
					t.Fatalf("alice's own code: %v", err)
				}
			})
			t.Run("ok/reopened-with-key", func(t *testing.T) {
				again, _, err := sqlstore.EncryptTOTP(ctx, reopen(t), box, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got, _, err := again.GetTOTP(ctx, "bob"); err != nil || !bytes.Equal(got, secrets["bob"]) {
					t.Fatalf("GetTOTP = %x, %v", got, err)
				}
			})
			t.Run("fail/other-key", func(t *testing.T) {
				other, _, err := sqlstore.EncryptTOTP(ctx, reopen(t), newBox(t), nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := other.GetTOTP(ctx, "alice"); !errors.Is(err, sealbox.ErrOtherKey) {
					t.Fatalf("GetTOTP with another key = %v, want ErrOtherKey", err)
				}
			})
			t.Run("fail/without-key", func(t *testing.T) {
				if _, _, err := reopen(t).GetTOTP(ctx, "alice"); err == nil || !strings.Contains(err.Error(), "without the secrets key") {
					t.Fatalf("GetTOTP on a bare store = %v", err)
				}
			})
			t.Run("fail/swapped-columns", func(t *testing.T) {
				a, b := rawSecret(t, st.SQL(), "alice"), rawSecret(t, st.SQL(), "bob")
				setRawSecret(t, st.SQL(), "alice", b)
				setRawSecret(t, st.SQL(), "bob", a)
				defer func() {
					setRawSecret(t, st.SQL(), "alice", a)
					setRawSecret(t, st.SQL(), "bob", b)
				}()
				for id, victim := range map[string]string{"alice": "bob", "bob": "alice"} {
					got, _, err := st.GetTOTP(ctx, id)
					if !errors.Is(err, sealbox.ErrOpen) || got != nil {
						t.Errorf("GetTOTP(%s) with %s's column = %x, %v; want ErrOpen", id, victim, got, err)
					}
					if err != nil {
						for _, f := range forms(secrets[victim]) {
							if strings.Contains(err.Error(), f) {
								t.Errorf("the error repeats %s's secret", victim)
							}
						}
					}
					// The code an attacker holding the victim's secret makes
					// verifies for nobody: there is no secret to check it with.
					if got != nil {
						if _, err := totp.Verify(got, totp.Code(secrets[victim], now), now, 0); err == nil {
							t.Errorf("%s's code verified for %s", victim, id)
						}
					}
				}
			})
			t.Run("fail/clear-row-once-key-exists", func(t *testing.T) {
				// A row in clear written past sshca (a bare handle stands for
				// an edit of the database) is refused, not laundered.
				if err := reopen(t).PutTOTP(ctx, "mallory", []byte("0123456789abcdefghij"), totpEvent()); err != nil {
					t.Fatal(err)
				}
				if _, _, err := st.GetTOTP(ctx, "mallory"); err == nil || !strings.Contains(err.Error(), "in clear") {
					t.Fatalf("GetTOTP of a clear row = %v", err)
				}
				if _, _, err := sqlstore.EncryptTOTP(ctx, reopen(t), box, nil); err != nil {
					t.Fatal(err)
				}
				if col := rawSecret(t, st.SQL(), "mallory"); strings.HasPrefix(col, "aes256gcm:") {
					t.Fatal("EncryptTOTP without migrate encrypted a clear row")
				}
				if err := st.DeleteTOTP(ctx, "mallory", totpEvent()); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestEncryptTOTPMigrates checks the upgrade of a database from before
// encryption: secrets in clear are encrypted in one audited transaction
// when the key is created, then read back unchanged.
func TestEncryptTOTPMigrates(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			reopen := be.open(t)
			old := reopen(t)
			secrets := map[string][]byte{"alice": []byte("alice-secret-0123456"), "bob": []byte("bob-secret-987654321")}
			for id, sec := range secrets {
				if err := old.PutTOTP(ctx, id, sec, totpEvent()); err != nil {
					t.Fatal(err)
				}
			}
			if has, err := old.HasEncryptedTOTP(ctx); err != nil || has {
				t.Fatalf("HasEncryptedTOTP before = %v, %v", has, err)
			}
			box := newBox(t)
			migrate := audit.Entry{Actor: "sshca", Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp secrets encrypted"}
			st, n, err := sqlstore.EncryptTOTP(ctx, reopen(t), box, &migrate)
			if err != nil || n != 2 {
				t.Fatalf("EncryptTOTP = %d, %v; want 2 migrated", n, err)
			}
			for id, sec := range secrets {
				col := rawSecret(t, st.SQL(), id)
				for _, f := range forms(sec) {
					if strings.Contains(col, f) {
						t.Errorf("%s's column %q still holds the secret", id, col)
					}
				}
				got, _, err := st.GetTOTP(ctx, id)
				if err != nil || !bytes.Equal(got, sec) {
					t.Errorf("GetTOTP(%s) = %q, %v", id, got, err)
				}
			}
			entries, err := st.AuditEntries(ctx, store.AuditFilter{Actor: "sshca"})
			if err != nil || len(entries) != 1 || entries[0].Details["totp_secrets_encrypted"] != "2" {
				t.Fatalf("audit entries of the migration = %+v, %v", entries, err)
			}
			// A second open with the key finds nothing more to do.
			if _, n, err := sqlstore.EncryptTOTP(ctx, reopen(t), box, &migrate); err != nil || n != 0 {
				t.Fatalf("second EncryptTOTP = %d, %v", n, err)
			}
		})
	}
}

// TestEncryptedConformance runs the whole store conformance suite on
// encrypted stores of both kinds: encryption changes nothing a caller sees.
func TestEncryptedConformance(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			storetest.RunService(t, func(t *testing.T) store.ServiceStore {
				st, _, err := sqlstore.EncryptTOTP(t.Context(), be.open(t)(t), newBox(t), nil)
				if err != nil {
					t.Fatal(err)
				}
				return st
			})
		})
	}
}
