package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/store/sqlite"
)

// TestAuditVerifyFindsRowTampering changes state rows directly in the
// database, as an insider with database access could, leaving the hash chain
// intact; `audit verify` must still refuse, naming what does not match.
func TestAuditVerifyFindsRowTampering(t *testing.T) {
	requireKeygen(t)
	for _, tc := range []struct {
		name   string
		sql    string
		wantIn string
	}{
		{"fail/revocation-deleted", `DELETE FROM revocations`, "its row is missing: what it revoked is no longer in the KRL"},
		{"fail/revocation-changed", `UPDATE revocations SET lo = 2, hi = 2`, "differs from its audit entry"},
		{"fail/revocation-inserted", `INSERT INTO revocations (ca_type, kind, lo, hi, key_id, value, reason, actor, created_us, expires_us) VALUES ('user', 'serial', 9, 9, '', '', '', 'x', 1, 0)`, "has no audit entry"},
		{"fail/ca-key-inserted", `INSERT INTO ca_keys (ca_type, generation, state, key_type, fingerprint, public_key, signer, file, created_us, updated_us) VALUES ('user', 7, 'next', 'ed25519', 'SHA256:evil', 'ssh-ed25519 AAAA', 'file', 'x', 1, 1)`, "CA generation 7 (SHA256:evil) has no audit entry"},
		{"fail/token-inserted", `INSERT INTO tokens (id, name, kind, roles, principals, hash, created_by, created_us, expires_us) VALUES ('00000000000000ff', 'backdoor', 'admin', '[]', '[]', 'h', 'x', 1, 99999999999999999)`, "token backdoor (00000000000000ff) has no creation entry"},
		{"fail/token-unrevoked", `UPDATE tokens SET revoked_us = 0`, "was revoked but its row says it is not"},
		{"fail/cert-deleted", `DELETE FROM certs WHERE serial = 1`, "certificate 1 was issued"},
		{"fail/cert-principals-changed", `UPDATE certs SET principals = '["root"]' WHERE serial = 1`, "principals changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := initHome(t)
			pub := newKey(t, t.TempDir(), "id_ed25519", "-t", "ed25519")
			mustRun(t, "--home", dir, "sign", "user", "--role", "deploy", "--id", "alice", pub)
			mustRun(t, "--home", dir, "revoke", "--serial", "1", "--reason", "test")
			mustRun(t, "--home", dir, "token", "create", "--admin", "--name", "oncall")
			mustRun(t, "--home", dir, "token", "revoke", "oncall")
			if out := mustRun(t, "--home", dir, "audit", "verify"); !strings.Contains(out, "intact") {
				t.Fatalf("untouched home: %q", out)
			}
			st, err := sqlite.Open(t.Context(), filepath.Join(dir, "sshca.db"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.SQL().ExecContext(t.Context(), tc.sql); err != nil {
				t.Fatal(err)
			}
			st.Close()
			r := runCLI(t, "--home", dir, "audit", "verify")
			if r.code != 1 || !strings.Contains(r.stderr, "does not match it") || !strings.Contains(r.stderr, tc.wantIn) {
				t.Fatalf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tc.wantIn)
			}
		})
	}
}
