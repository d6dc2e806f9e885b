package service

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// auditCols are the audit table's columns after seq, in both schemas.
var auditCols = []string{"time_us", "actor", "action", "role", "serial", "key_id", "outcome", "reason", "details", "prev_hash", "hash"}

// TestAuditTamper is acceptance 4: one audit row changed, removed or swapped
// with another directly in the database (SQLite and PostgreSQL) makes
// `sshca audit verify` exit 1 naming the entry.
func TestAuditTamper(t *testing.T) {
	e2etest.RequireTool(t, "ssh-keygen")
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, tc := range []struct {
			name string
			// tamper changes the database; target is the first cert.issue
			// entry. It returns the entry verify must name.
			tamper func(t *testing.T, db *sql.DB, q func(string) string, all []audit.Entry, target uint64) uint64
		}{
			{"fail/changed-principal", func(t *testing.T, db *sql.DB, q func(string) string, _ []audit.Entry, target uint64) uint64 {
				exec1(t, db, q(`UPDATE audit SET details = REPLACE(details, 'role-deploy', 'root') WHERE seq = ?`), int64(target))
				return target
			}},
			{"fail/changed-actor-and-rehashed", func(t *testing.T, db *sql.DB, q func(string) string, all []audit.Entry, target uint64) uint64 {
				// A forger who recomputes the row's own hash still breaks the
				// link from the next entry.
				e := all[target-1]
				e.Actor = "cli:nobody"
				exec1(t, db, q(`UPDATE audit SET actor = ?, hash = ? WHERE seq = ?`), e.Actor, audit.ComputeHash(e), int64(target))
				return target + 1
			}},
			{"fail/deleted-row", func(t *testing.T, db *sql.DB, q func(string) string, _ []audit.Entry, target uint64) uint64 {
				exec1(t, db, q(`DELETE FROM audit WHERE seq = ?`), int64(target))
				return target
			}},
			{"fail/deleted-last-row", func(t *testing.T, db *sql.DB, q func(string) string, all []audit.Entry, _ uint64) uint64 {
				last := all[len(all)-1].Seq
				exec1(t, db, q(`DELETE FROM audit WHERE seq = ?`), int64(last))
				return last
			}},
			{"fail/swapped-rows", func(t *testing.T, db *sql.DB, q func(string) string, _ []audit.Entry, target uint64) uint64 {
				swap(t, db, q, target, target+1)
				return target
			}},
		} {
			t.Run(tc.name+"/"+backend, func(t *testing.T) {
				t.Parallel()
				url := ""
				if backend == "postgres" {
					url = pgtest.NewDatabase(t)
				}
				h := newHome(t, url)
				keyDir := t.TempDir()
				for i := 0; i < 3; i++ {
					key := filepath.Join(keyDir, fmt.Sprintf("id%d", i))
					if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
						t.Fatalf("ssh-keygen: %v: %s", err, out)
					}
					h.Must("sign", "user", "--role", "deploy", "--id", fmt.Sprintf("job-%d", i), key+".pub")
				}
				if out := h.Must("audit", "verify"); !strings.Contains(out, "intact") {
					t.Fatalf("untouched log: %s", out)
				}
				issued := auditJSON(t, h, "audit", "list", "--action", audit.ActionIssue, "--json")
				all := auditJSON(t, h, "audit", "list", "--json")
				for i, e := range all {
					if e.Seq != uint64(i+1) {
						t.Fatalf("entry %d has seq %d", i+1, e.Seq)
					}
				}
				if len(issued) != 3 || !strings.Contains(issued[0].Details["principals"], "role-deploy") {
					t.Fatalf("issued entries: %+v", issued)
				}

				db, q, closeDB := openRaw(t, h)
				want := tc.tamper(t, db, q, all, issued[0].Seq)
				closeDB()

				out, errs, code := h.Run("audit", "verify")
				if code != 1 {
					t.Fatalf("audit verify after tampering: exit %d: %s%s", code, out, errs)
				}
				if !strings.Contains(errs, fmt.Sprintf("entry %d:", want)) || !strings.HasPrefix(errs, "sshca: error: ") {
					t.Fatalf("audit verify does not name entry %d: %s", want, errs)
				}
			})
		}
	}
}

// openRaw opens the home's database directly, as an intruder would, with a
// placeholder rewriter for its SQL dialect.
func openRaw(t *testing.T, h *caHome) (*sql.DB, func(string) string, func()) {
	t.Helper()
	ctx := context.Background()
	if h.DB == "" {
		path := filepath.Join(h.Dir, "sshca.db")
		if _, err := os.Stat(path); err != nil {
			t.Fatal(err)
		}
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		return st.SQL(), func(s string) string { return s }, func() { st.Close() }
	}
	st, err := postgres.Open(ctx, h.DB)
	if err != nil {
		t.Fatal(err)
	}
	q := func(s string) string {
		var b strings.Builder
		n := 0
		for _, c := range s {
			if c == '?' {
				n++
				fmt.Fprintf(&b, "$%d", n)
				continue
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	return st.SQL(), q, func() { st.Close() }
}

func exec1(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	res, err := db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows affected", query, n)
	}
}

// swap exchanges everything but the sequence numbers of entries a and b.
func swap(t *testing.T, db *sql.DB, q func(string) string, a, b uint64) {
	t.Helper()
	read := func(seq uint64) []any {
		vals := make([]any, len(auditCols))
		ptrs := make([]any, len(auditCols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := db.QueryRow(q(`SELECT `+strings.Join(auditCols, ", ")+` FROM audit WHERE seq = ?`), int64(seq)).Scan(ptrs...); err != nil {
			t.Fatalf("read entry %d: %v", seq, err)
		}
		return vals
	}
	va, vb := read(a), read(b)
	set := strings.Join(auditCols, " = ?, ") + " = ?"
	exec1(t, db, q(`UPDATE audit SET `+set+` WHERE seq = ?`), append(vb, int64(a))...)
	exec1(t, db, q(`UPDATE audit SET `+set+` WHERE seq = ?`), append(va, int64(b))...)
}
