package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// auditHome makes a home whose sshca.yaml sets service.audit_file to
// audit.jsonl (relative: inside the home), and writes a few entries through
// the CLI: init, a signed certificate, a revocation, a token.
func auditHome(t *testing.T) (dir, file string) {
	t.Helper()
	requireKeygen(t)
	dir = initHome(t)
	cfg, err := os.ReadFile(filepath.Join(dir, home.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, string(cfg)+"\nservice:\n  audit_file: audit.jsonl\n")
	pub := newKey(t, t.TempDir(), "id_ed25519", "-t", "ed25519")
	mustRun(t, "--home", dir, "sign", "user", "--role", "deploy", "--id", "alice", pub)
	mustRun(t, "--home", dir, "revoke", "--serial", "1", "--reason", "test")
	mustRun(t, "--home", dir, "token", "create", "--admin", "--name", "oncall")
	return dir, filepath.Join(dir, "audit.jsonl")
}

// dbEntries reads the home's audit log from its database.
func dbEntries(t *testing.T, dir string) []audit.Entry {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, home.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.AuditEntries(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// fileEntries reads an audit file.
func fileEntries(t *testing.T, path string) []audit.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	es, err := audit.ParseLines(f)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// rewriteLog changes the home's audit log in its database as an insider who
// knows how the chain is made would: it keeps the entries for which keep
// says so, lets edit change them, then seals the whole chain again and
// points the head row at its end, so that the chain in the database is
// whole.
func rewriteLog(t *testing.T, dir string, keep func(audit.Entry) bool, edit func(*audit.Entry)) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, home.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.AuditEntries(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	db := st.SQL()
	if _, err := db.ExecContext(t.Context(), `DELETE FROM audit`); err != nil {
		t.Fatal(err)
	}
	var prev *audit.Entry
	for _, e := range es {
		if keep != nil && !keep(e) {
			continue
		}
		if edit != nil {
			edit(&e)
		}
		audit.Seal(&e, prev)
		details := ""
		if len(e.Details) > 0 {
			b, _ := json.Marshal(e.Details)
			details = string(b)
		}
		if _, err := db.ExecContext(t.Context(), `INSERT INTO audit (seq, time_us, actor, action, role, serial, key_id, outcome, reason, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(e.Seq), e.Time.UnixMicro(), e.Actor, e.Action, e.Role, int64(e.Serial), e.KeyID, e.Outcome, e.Reason, details, e.PrevHash, e.Hash); err != nil {
			t.Fatal(err)
		}
		prev = &e
	}
	if _, err := db.ExecContext(t.Context(), `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, int64(prev.Seq), prev.Hash); err != nil {
		t.Fatal(err)
	}
}

// TestAuditFileMirrorsCLI: entries written by CLI commands (not only by
// the service) reach service.audit_file, one JSON line each, in a file
// others cannot read; audit verify compares it with the database.
func TestAuditFileMirrorsCLI(t *testing.T) {
	dir, file := auditHome(t)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("the CLI wrote no audit file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %04o, want 0600", fi.Mode().Perm())
	}
	inFile := fileEntries(t, file)
	inDB := dbEntries(t, dir)
	// init ran before the policy named the file; everything after is there.
	first := inFile[0].Seq
	if len(inFile) != len(inDB)-int(first)+1 {
		t.Fatalf("audit file holds %d entries from %d on, the database %d", len(inFile), first, len(inDB))
	}
	var sawIssue bool
	for i, e := range inFile {
		if e.Hash != inDB[int(first)-1+i].Hash {
			t.Errorf("file entry %d differs from the database's", e.Seq)
		}
		if e.Action == audit.ActionIssue && e.Serial == 1 && e.Details[store.CertRowKey(1)] != "" {
			sawIssue = true
		}
	}
	if !sawIssue {
		t.Errorf("the audit file lacks the sign command's entry: %+v", inFile)
	}
	out := mustRun(t, "--home", dir, "audit", "verify")
	for _, want := range []string{"audit log intact", "head outside the database: entry", fmt.Sprintf("audit file %s: %d entries", file, len(inFile))} {
		if !strings.Contains(out, want) {
			t.Errorf("audit verify says %q, want %q", out, want)
		}
	}
}

// TestAuditVerifyFile: audit verify (--file, or the configured
// service.audit_file) finds an entry deleted or changed on either side, a
// line that is not an entry, and a tail cut from the database.
func TestAuditVerifyFile(t *testing.T) {
	// Two entries a page: every comparison crosses page boundaries.
	defer cli.SetAuditPage(2)()
	editLines := func(t *testing.T, path string, fn func(lines [][]byte) [][]byte) {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.SplitAfter(data, []byte("\n"))
		if len(lines[len(lines)-1]) == 0 {
			lines = lines[:len(lines)-1]
		}
		if err := os.WriteFile(path, bytes.Join(fn(lines), nil), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// tamper changes the file or the database; it returns the
		// arguments of audit verify.
		tamper func(t *testing.T, dir, file string, inFile []audit.Entry) []string
		// want is what audit verify must say; nil for success.
		want func(inFile []audit.Entry) string
	}{
		{"ok/configured-file", func(t *testing.T, dir, file string, _ []audit.Entry) []string { return nil }, nil},
		{"ok/copy-given-with---file", func(t *testing.T, dir, file string, _ []audit.Entry) []string {
			cp := filepath.Join(t.TempDir(), "shipped.jsonl")
			data, _ := os.ReadFile(file)
			if err := os.WriteFile(cp, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			return []string{"--file", cp}
		}, nil},
		{"fail/---file-missing", func(t *testing.T, dir, file string, _ []audit.Entry) []string {
			return []string{"--file", filepath.Join(t.TempDir(), "nope.jsonl")}
		}, func([]audit.Entry) string { return "audit file: open" }},
		{"fail/file-line-deleted", func(t *testing.T, dir, file string, inFile []audit.Entry) []string {
			editLines(t, file, func(l [][]byte) [][]byte { return append(l[:1:1], l[2:]...) })
			return nil
		}, func(f []audit.Entry) string {
			return fmt.Sprintf("entry %d: is in the database but missing from the audit file", f[1].Seq)
		}},
		{"fail/file-line-edited", func(t *testing.T, dir, file string, inFile []audit.Entry) []string {
			editLines(t, file, func(l [][]byte) [][]byte {
				l[1] = bytes.Replace(l[1], []byte(`"actor":"cli:`), []byte(`"actor":"cli:x`), 1)
				return l
			})
			return nil
		}, func(f []audit.Entry) string {
			return fmt.Sprintf("entry %d: the audit file's copy does not match its hash", f[1].Seq)
		}},
		{"fail/file-line-garbage", func(t *testing.T, dir, file string, inFile []audit.Entry) []string {
			editLines(t, file, func(l [][]byte) [][]byte { return append(l, []byte("{\"seq\": \"x\"}\n")) })
			return nil
		}, func(f []audit.Entry) string { return fmt.Sprintf("line %d: not an audit entry", len(f)+1) }},
		{"fail/database-entry-edited-and-chain-resealed", func(t *testing.T, dir, file string, inFile []audit.Entry) []string {
			target := inFile[1].Seq
			rewriteLog(t, dir, nil, func(e *audit.Entry) {
				if e.Seq == target {
					e.Actor = "cli:nobody"
				}
			})
			// Only the audit file is to tell here.
			os.Remove(filepath.Join(dir, home.HeadFile))
			return nil
		}, func(f []audit.Entry) string {
			return fmt.Sprintf("entry %d: differs between the audit file and the database", f[1].Seq)
		}},
		{"fail/database-entry-deleted-and-chain-resealed", func(t *testing.T, dir, file string, inFile []audit.Entry) []string {
			target := inFile[1].Seq
			rewriteLog(t, dir, func(e audit.Entry) bool { return e.Seq != target }, nil)
			os.Remove(filepath.Join(dir, home.HeadFile))
			return nil
		}, func(f []audit.Entry) string {
			return fmt.Sprintf("entry %d: differs between the audit file and the database", f[1].Seq)
		}},
		{"fail/database-tail-cut", func(t *testing.T, dir, file string, inFile []audit.Entry) []string {
			last := inFile[len(inFile)-1].Seq
			rewriteLog(t, dir, func(e audit.Entry) bool { return e.Seq < last }, nil)
			os.Remove(filepath.Join(dir, home.HeadFile))
			return nil
		}, func(f []audit.Entry) string {
			last := f[len(f)-1].Seq
			return fmt.Sprintf("entry %d: is in the audit file but not in the database, whose log ends at entry %d", last, last-1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, file := auditHome(t)
			inFile := fileEntries(t, file)
			args := tc.tamper(t, dir, file, inFile)
			r := runCLI(t, append([]string{"--home", dir, "audit", "verify"}, args...)...)
			if tc.want == nil {
				if r.code != 0 || !strings.Contains(r.stdout, "intact") {
					t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
				}
				return
			}
			if want := tc.want(inFile); r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
			}
		})
	}
}

// TestAuditHeadOutsideDatabase: the last entries deleted together with the
// head row, or deleted and written anew, are found through the head the
// home keeps outside the database; and a home upgraded from before it
// (no head file yet) still verifies.
func TestAuditHeadOutsideDatabase(t *testing.T) {
	requireKeygen(t)
	t.Run("fail/tail-and-head-row-deleted", func(t *testing.T) {
		dir := initHome(t)
		mustRun(t, "--home", dir, "token", "create", "--admin", "--name", "a")
		mustRun(t, "--home", dir, "token", "create", "--admin", "--name", "b")
		es := dbEntries(t, dir)
		last := es[len(es)-1].Seq
		rewriteLog(t, dir, func(e audit.Entry) bool { return e.Seq < last-1 }, nil)
		r := runCLI(t, "--home", dir, "audit", "verify")
		want := fmt.Sprintf("audit: entry %d: missing: the log ends at entry %d, but entry %d was committed (%s)", last-1, last-2, last, filepath.Join(dir, home.HeadFile))
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
		}
	})
	t.Run("fail/tail-deleted-and-written-anew", func(t *testing.T) {
		dir := initHome(t)
		mustRun(t, "--home", dir, "token", "create", "--admin", "--name", "a")
		mustRun(t, "--home", dir, "token", "create", "--admin", "--name", "b")
		es := dbEntries(t, dir)
		last := es[len(es)-1].Seq
		rewriteLog(t, dir, func(e audit.Entry) bool { return e.Seq < last-1 }, nil)
		// New entries take the numbers of the deleted ones and more: the
		// head is not moved past the rewritten part.
		for _, n := range []string{"c", "d", "e"} {
			r := runCLI(t, "--home", dir, "token", "create", "--admin", "--name", n)
			if r.code != 0 {
				t.Fatalf("token create: %s", r.stderr)
			}
			if !strings.Contains(r.stderr, "sshca: warning: audit head:") {
				t.Errorf("token create does not warn that the head stays: %q", r.stderr)
			}
		}
		r := runCLI(t, "--home", dir, "audit", "verify")
		want := fmt.Sprintf("audit: entry %d: differs from the one recorded outside the database", last)
		if r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
		}
	})
	t.Run("ok/upgraded-home-without-head-or-seals", func(t *testing.T) {
		// A database written before row seals and the head file: its
		// entries carry no seal. It verifies, the old checks still hold,
		// and rows written from now on are sealed.
		dir := initHome(t)
		pub := newKey(t, t.TempDir(), "id_ed25519", "-t", "ed25519")
		mustRun(t, "--home", dir, "sign", "user", "--role", "deploy", "--id", "alice", pub)
		mustRun(t, "--home", dir, "token", "create", "--admin", "--name", "oncall")
		rewriteLog(t, dir, nil, func(e *audit.Entry) {
			for k := range e.Details {
				if store.IsRowKey(k) {
					delete(e.Details, k)
				}
			}
		})
		if err := os.Remove(filepath.Join(dir, home.HeadFile)); err != nil {
			t.Fatal(err)
		}
		out := mustRun(t, "--home", dir, "audit", "verify")
		if !strings.Contains(out, "intact") || !strings.Contains(out, "head outside the database: none recorded yet") {
			t.Fatalf("upgraded home: %q", out)
		}
		// verify recorded the head it checked.
		if _, err := os.Stat(filepath.Join(dir, home.HeadFile)); err != nil {
			t.Fatalf("audit verify left no head: %v", err)
		}
		tamper := func(q string, args ...any) result {
			st, err := sqlite.Open(t.Context(), filepath.Join(dir, home.DBFile))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.SQL().ExecContext(t.Context(), q, args...); err != nil {
				t.Fatal(err)
			}
			st.Close()
			return runCLI(t, "--home", dir, "audit", "verify")
		}
		st, err := sqlite.Open(t.Context(), filepath.Join(dir, home.DBFile))
		if err != nil {
			t.Fatal(err)
		}
		var orig string
		if err := st.SQL().QueryRowContext(t.Context(), `SELECT principals FROM certs WHERE serial = 1`).Scan(&orig); err != nil {
			t.Fatal(err)
		}
		st.Close()
		// The checks from before seals still hold for old rows...
		if r := tamper(`UPDATE certs SET principals = '["root"]' WHERE serial = 1`); r.code != 1 || !strings.Contains(r.stderr, "certificate 1 differs from its issuance entry") {
			t.Fatalf("old row changed: exit %d, %q", r.code, r.stderr)
		}
		if r := tamper(`UPDATE certs SET principals = ? WHERE serial = 1`, orig); r.code != 0 {
			t.Fatalf("old row put back: exit %d, %q", r.code, r.stderr)
		}
		// ...and a row written again after the upgrade is sealed.
		mustRun(t, "--home", dir, "token", "revoke", "oncall")
		if r := tamper(`UPDATE tokens SET hash = '` + strings.Repeat("1", 64) + `'`); r.code != 1 || !strings.Contains(r.stderr, "): hash changed outside sshca") {
			t.Fatalf("resealed row changed: exit %d, %q", r.code, r.stderr)
		}
	})
}
