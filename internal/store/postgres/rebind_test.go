package postgres

import (
	"io/fs"
	"strconv"
	"strings"
	"testing"
)

func TestRebind(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"ok/none", `SELECT 1`, `SELECT 1`},
		{"ok/several", `UPDATE t SET a = ?, b = ? WHERE c = ?`, `UPDATE t SET a = $1, b = $2 WHERE c = $3`},
		{"ok/ten-plus", strings.Repeat("?,", 11) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12"},
		{"ok/string-literal-kept", `SELECT '?', ? WHERE s = 'it''s ?'`, `SELECT '?', $1 WHERE s = 'it''s ?'`},
		{"ok/quoted-identifier-kept", `SELECT "a?b" FROM t WHERE x = ?`, `SELECT "a?b" FROM t WHERE x = $1`},
		{"ok/empty-literal", `INSERT INTO t VALUES (?, '', ?)`, `INSERT INTO t VALUES ($1, '', $2)`},
		{"ok/unterminated-literal", `SELECT ? 'abc?`, `SELECT $1 'abc?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rebind(tt.in); got != tt.want {
				t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzRebind checks that rebind only ever replaces unquoted '?' and numbers
// them densely from 1.
func FuzzRebind(f *testing.F) {
	for _, s := range []string{"", "?", "a = ? AND b = ?", "'?' ?", `"?" ?`, "'it''s' ?", "???"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := rebind(in)
		if !strings.ContainsAny(in, `'"`) {
			want := in
			for n := 1; strings.Contains(want, "?"); n++ {
				want = strings.Replace(want, "?", "$"+strconv.Itoa(n), 1)
			}
			if out != want {
				t.Fatalf("rebind(%q) = %q, want %q", in, out, want)
			}
		}
		if strings.Count(out, "?") > strings.Count(in, "?") {
			t.Fatalf("rebind(%q) = %q added placeholders", in, out)
		}
	})
}

// MigrationCount is the number of embedded schema migrations (for the
// external test package).
func MigrationCount() int {
	files, _ := fs.Glob(migrationFiles, "migrations/*.sql")
	return len(files)
}
