package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/postgres"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/sqlstore"
)

// TestAuditVerifyTamperedAmongMany: audit verify reads the log a few
// entries at a time and keeps only a digest of each certificate's seal; a
// row changed among many certificates is still named with the columns that
// differ and the entry that sealed it (read again from the database), on
// SQLite and on PostgreSQL.
func TestAuditVerifyTamperedAmongMany(t *testing.T) {
	requireKeygen(t)
	defer cli.SetAuditPage(3)()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run("fail/"+backend, func(t *testing.T) {
			dir := initHome(t)
			pub := newKey(t, t.TempDir(), "id_ed25519", "-t", "ed25519")
			for i := range 12 {
				mustRun(t, "--home", dir, "sign", "user", "--role", "deploy", "--id", fmt.Sprintf("k-%02d", i), pub)
			}
			const serial = 9
			var seq uint64
			for _, e := range dbEntries(t, dir) {
				if _, ok := e.Details[store.CertRowKey(serial)]; ok {
					seq = e.Seq
				}
			}
			if seq == 0 {
				t.Fatalf("no seal of certificate %d in the log", serial)
			}
			if out := mustRun(t, "--home", dir, "audit", "verify"); !strings.Contains(out, "intact") {
				t.Fatalf("untouched home: %q", out)
			}
			var st *sqlstore.DB
			var err error
			switch backend {
			case "sqlite":
				st, err = sqlite.Open(t.Context(), filepath.Join(dir, home.DBFile))
			case "postgres":
				pg := pgtest.NewDatabase(t)
				mustRun(t, "--home", dir, "store", "migrate", "--to", pg)
				cfg, rerr := os.ReadFile(filepath.Join(dir, home.ConfigFile))
				if rerr != nil {
					t.Fatal(rerr)
				}
				writePolicy(t, dir, "database: "+pg+"\n"+string(cfg))
				st, err = postgres.Open(t.Context(), pg)
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = st.SQL().ExecContext(t.Context(), fmt.Sprintf(`UPDATE certs SET key_id = 'evil', requester = 'x' WHERE serial = %d`, serial))
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			r := runCLI(t, "--home", dir, "audit", "verify")
			want := fmt.Sprintf("the database does not match it: certificate %d: key_id, requester changed outside sshca (the row differs from audit entry %d)\n", serial, seq)
			if r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, want)
			}
		})
	}
}
