package service

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

// TestAuditFileServeAndCLI: with service.audit_file set, the entries the
// service commits and those of CLI commands run beside it (SQLite and
// PostgreSQL) all reach the one file, and `sshca audit verify` finds the
// file and the database alike.
func TestAuditFileServeAndCLI(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run("ok/"+backend, func(t *testing.T) {
			t.Parallel()
			url := ""
			if backend == "postgres" {
				url = pgtest.NewDatabase(t)
			}
			h := newHome(t, url)
			cfgPath := filepath.Join(h.Dir, "sshca.yaml")
			cfg, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			withFile := strings.Replace(string(cfg), "  rate_limit: 1000000\n", "  rate_limit: 1000000\n  audit_file: audit.jsonl\n", 1)
			if withFile == string(cfg) {
				t.Fatal("the test policy has no rate_limit line to put audit_file after")
			}
			if err := os.WriteFile(cfgPath, []byte(withFile), 0o600); err != nil {
				t.Fatal(err)
			}
			rep := h.serve()
			secret, _ := h.token("--role", "deploy", "--name", "ci", "--ttl", "1h")
			c, err := client.New(rep.URL, rep.Fingerprint)
			if err != nil {
				t.Fatal(err)
			}
			c.Bearer = secret
			resp, _, err := c.RequestCert(t.Context(), "user", api.CertRequest{PublicKey: newKeyLine(t), Role: "deploy"})
			if err != nil {
				t.Fatal(err)
			}
			h.Must("revoke", "--serial", fmt.Sprint(resp.Serial), "--reason", "test")
			rep.Stop(t)

			f, err := os.Open(filepath.Join(h.Dir, "audit.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			lines, err := audit.ParseLines(f)
			if err != nil {
				t.Fatal(err)
			}
			// The service's issuance, the CLI's token and revocation.
			saw := map[string]bool{}
			for _, e := range lines {
				saw[e.Action] = true
				if e.Action == audit.ActionIssue && e.Actor != "token:ci" {
					t.Errorf("issuance by %q, want token:ci", e.Actor)
				}
			}
			for _, want := range []string{audit.ActionToken, audit.ActionIssue, audit.ActionRevoke} {
				if !saw[want] {
					t.Errorf("the audit file has no %s entry: %v", want, saw)
				}
			}
			out := h.Must("audit", "verify")
			if !strings.Contains(out, fmt.Sprintf("audit.jsonl: %d entries", len(lines))) {
				t.Errorf("audit verify: %s", out)
			}
		})
	}
}
