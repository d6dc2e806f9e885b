package service

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/testkit"
)

// auditCols are the audit table's columns after seq, in both schemas.
var auditCols = []string{"time_us", "actor", "action", "role", "serial", "key_id", "outcome", "reason", "details", "prev_hash", "hash"}

// TestAuditTamper is acceptance 4: one audit row changed, removed or swapped
// with another directly in the database (SQLite and PostgreSQL) makes
// `sshca audit verify` exit 1 naming the entry.
func TestAuditTamper(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
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
			{"fail/deleted-tail-and-head", func(t *testing.T, db *sql.DB, q func(string) string, all []audit.Entry, _ uint64) uint64 {
				// The last two entries go, and the head row is set back to
				// the entry before them: the chain in the database is whole,
				// only the head kept outside it remembers.
				keep := all[len(all)-3]
				execAny(t, db, q(`DELETE FROM audit WHERE seq > ?`), int64(keep.Seq))
				exec1(t, db, q(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`), int64(keep.Seq), keep.Hash)
				return keep.Seq + 1
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

func execAny(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
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

// rowTamper is one column of a security table changed behind sshca's back.
type rowTamper struct {
	table, col string
	// set is the new value's SQL expression (both engines), pgSet the
	// PostgreSQL one where it differs.
	set, pgSet string
	// field is the name audit verify gives the column.
	field string
}

// TestRowTamper is issue 18's item 4: every column of every row of the
// security tables (certificates, revocations, CA keys, tokens) changed
// directly in the database, on SQLite and PostgreSQL, makes `sshca audit
// verify` exit 1 naming the row and the column; put back, the row verifies
// again. Columns that name the row (serial, id, CA type and generation)
// make the row sealed by the log disappear, which is reported too.
func TestRowTamper(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
	cases := []rowTamper{
		{table: "certs", col: "ca_type", set: "ca_type || 'x'", field: "ca_type"},
		{table: "certs", col: "ca_fp", set: "ca_fp || 'x'", field: "ca_fingerprint"},
		{table: "certs", col: "role", set: "'admin'", field: "role"},
		{table: "certs", col: "key_id", set: "key_id || 'x'", field: "key_id"},
		{table: "certs", col: "principals", set: `'["root"]'`, field: "principals"},
		{table: "certs", col: "valid_after", set: "valid_after - 86400", field: "valid_after"},
		{table: "certs", col: "valid_before", set: "valid_before + 86400000", field: "valid_before"},
		{table: "certs", col: "subject_fp", set: "subject_fp || 'x'", field: "subject_fingerprint"},
		{table: "certs", col: "subject_type", set: "'ssh-rsa'", field: "subject_type"},
		{table: "certs", col: "requester", set: "'cli:mallory'", field: "requester"},
		{table: "certs", col: "issued_us", set: "issued_us + 1", field: "issued_at"},
		{table: "certs", col: "cert", set: "cert || 'x'", field: "cert"},
		{table: "certs", col: "lineage", set: `'{"caller":"person","identity":"mallory"}'`, field: "lineage"},

		{table: "revocations", col: "ca_type", set: "'host'", field: "ca_type"},
		{table: "revocations", col: "kind", set: "'key-id'", field: "kind"},
		{table: "revocations", col: "lo", set: "lo + 100", field: "lo"},
		{table: "revocations", col: "hi", set: "hi + 100", field: "hi"},
		{table: "revocations", col: "key_id", set: "'other'", field: "key_id"},
		{table: "revocations", col: "value", set: "'x'", field: "value"},
		{table: "revocations", col: "reason", set: "reason || 'x'", field: "reason"},
		{table: "revocations", col: "actor", set: "'cli:mallory'", field: "actor"},
		{table: "revocations", col: "created_us", set: "created_us + 1", field: "created_at"},
		{table: "revocations", col: "expires_us", set: "expires_us - 1", field: "expires"},

		{table: "ca_keys", col: "state", set: "'retired'", field: "state"},
		{table: "ca_keys", col: "key_type", set: "'rsa-3072'", field: "key_type"},
		{table: "ca_keys", col: "fingerprint", set: "fingerprint || 'x'", field: "fingerprint"},
		{table: "ca_keys", col: "public_key", set: "public_key || 'x'", field: "public_key"},
		{table: "ca_keys", col: "signer", set: "'agent'", field: "signer"},
		{table: "ca_keys", col: "file", set: "'../../evil'", field: "file"},
		{table: "ca_keys", col: "created_us", set: "created_us + 1", field: "created_at"},
		{table: "ca_keys", col: "updated_us", set: "updated_us + 1", field: "updated_at"},

		{table: "tokens", col: "name", set: "name || 'x'", field: "name"},
		{table: "tokens", col: "kind", set: "'role'", field: "kind"},
		{table: "tokens", col: "roles", set: `'["deploy"]'`, field: "roles"},
		{table: "tokens", col: "principals", set: `'["evil.corp"]'`, field: "principals"},
		{table: "tokens", col: "hash", set: "'" + strings.Repeat("ab", 32) + "'", field: "hash"},
		{table: "tokens", col: "created_by", set: "'cli:mallory'", field: "created_by"},
		{table: "tokens", col: "created_us", set: "created_us + 1", field: "created_at"},
		{table: "tokens", col: "expires_us", set: "expires_us + 86400000000", field: "expires_at"},
		{table: "tokens", col: "revoked_us", set: "revoked_us + 1", field: "revoked_at"},
		{table: "tokens", col: "used_us", set: "used_us + 1", field: "used_at"},
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			url := ""
			if backend == "postgres" {
				url = pgtest.NewDatabase(t)
			}
			h := newHome(t, url)
			key := filepath.Join(t.TempDir(), "id")
			if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v: %s", err, out)
			}
			h.Must("sign", "user", "--role", "deploy", "--id", "alice", key+".pub")
			issued := auditJSON(t, h, "audit", "list", "--action", audit.ActionIssue, "--json")
			serial := issued[0].Serial
			h.Must("revoke", "--serial", fmt.Sprint(serial), "--reason", "test")
			revs := auditJSON(t, h, "audit", "list", "--action", audit.ActionRevoke, "--json")
			revID := revs[0].Details["revocation_id"]
			h.Must("token", "create", "--admin", "--name", "oncall")
			toks := auditJSON(t, h, "audit", "list", "--action", audit.ActionToken, "--json")
			tokID := toks[0].Details["token"]
			if out := h.Must("audit", "verify"); !strings.Contains(out, "intact") {
				t.Fatalf("untouched home: %s", out)
			}
			// Where each table's row is, and how verify names it.
			rows := map[string]struct {
				where string
				args  []any
				name  string
			}{
				"certs":       {"serial = ?", []any{int64(serial)}, fmt.Sprintf("certificate %d: ", serial)},
				"revocations": {"id = ?", []any{mustInt(t, revID)}, fmt.Sprintf("revocation %s (", revID)},
				"ca_keys":     {"ca_type = 'user' AND generation = 1", nil, "user CA generation 1 ("},
				"tokens":      {"id = ?", []any{tokID}, fmt.Sprintf("(%s): ", tokID)},
			}
			for _, tc := range cases {
				t.Run("fail/"+tc.table+"."+tc.col, func(t *testing.T) {
					row := rows[tc.table]
					set := tc.set
					if backend == "postgres" && tc.pgSet != "" {
						set = tc.pgSet
					}
					db, q, closeDB := openRaw(t, h)
					defer closeDB()
					var orig any
					if err := db.QueryRow(q(`SELECT `+tc.col+` FROM `+tc.table+` WHERE `+row.where), row.args...).Scan(&orig); err != nil {
						t.Fatal(err)
					}
					exec1(t, db, q(`UPDATE `+tc.table+` SET `+tc.col+` = `+set+` WHERE `+row.where), row.args...)
					_, errs, code := h.Run("audit", "verify")
					want := tc.field + " changed outside sshca"
					if code != 1 || !strings.Contains(errs, row.name) || !strings.Contains(errs, want) {
						t.Errorf("audit verify after changing %s.%s: exit %d, stderr %q; want 1 naming %q and %q", tc.table, tc.col, code, errs, row.name, want)
					}
					exec1(t, db, q(`UPDATE `+tc.table+` SET `+tc.col+` = ? WHERE `+row.where), append([]any{orig}, row.args...)...)
					if out, errs, code := h.Run("audit", "verify"); code != 0 {
						t.Fatalf("audit verify after putting %s.%s back: exit %d: %s%s", tc.table, tc.col, code, out, errs)
					}
				})
			}
			// The columns that name a row: changing them loses the row the
			// log sealed (and shows one it never saw).
			t.Run("fail/row-keys", func(t *testing.T) {
				db, q, closeDB := openRaw(t, h)
				defer closeDB()
				exec1(t, db, q(`UPDATE certs SET serial = serial + 1000 WHERE serial = ?`), int64(serial))
				if backend == "postgres" {
					exec1(t, db, q(`UPDATE revocations SET id = DEFAULT WHERE id = ?`), mustInt(t, revID))
				} else {
					exec1(t, db, q(`UPDATE revocations SET id = id + 1000 WHERE id = ?`), mustInt(t, revID))
				}
				exec1(t, db, q(`UPDATE ca_keys SET generation = 7 WHERE ca_type = 'user' AND generation = 1`))
				exec1(t, db, q(`UPDATE ca_keys SET ca_type = 'hostx' WHERE ca_type = 'host' AND generation = 1`))
				exec1(t, db, q(`UPDATE tokens SET id = 'ffffffffffffffff' WHERE id = ?`), tokID)
				closeDB()
				_, errs, code := h.Run("audit", "verify")
				if code != 1 {
					t.Fatalf("audit verify: exit %d, stderr %q", code, errs)
				}
				for _, want := range []string{
					fmt.Sprintf("certificate %d was issued (entry", serial),
					fmt.Sprintf("certificate %d has no issuance entry", serial+1000),
					fmt.Sprintf("revocation %s is in the audit log (entry", revID),
					"user CA generation 1 (",
					"host CA generation 1 (",
					fmt.Sprintf("token oncall (%s) was created (entry", tokID),
					"token oncall (ffffffffffffffff) has no creation entry",
				} {
					if !strings.Contains(errs, want) {
						t.Errorf("audit verify does not report %q: %s", want, errs)
					}
				}
			})
		})
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
