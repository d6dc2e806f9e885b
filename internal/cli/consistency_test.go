package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// TestAuditVerifyFindsRowTampering changes state rows directly in the
// database, as an insider with database access could, leaving the hash chain
// intact; `audit verify` must still refuse, naming what does not match.
func TestAuditVerifyFindsRowTampering(t *testing.T) {
	requireKeygen(t)
	// Three entries a page: the consistency check sees the log as audit
	// verify reads a long one, a page at a time and compacted.
	defer cli.SetAuditPage(3)()
	for _, tc := range []struct {
		name   string
		sql    string
		wantIn string
	}{
		{"fail/revocation-deleted", `DELETE FROM revocations`, "its row is missing: what it revoked is no longer in the KRL"},
		{"fail/revocation-changed", `UPDATE revocations SET lo = 2, hi = 2`, "revocation 1 (serial): hi, lo changed outside sshca (the row differs from audit entry"},
		{"fail/revocation-inserted", `INSERT INTO revocations (ca_type, kind, lo, hi, key_id, value, reason, actor, created_us, expires_us) VALUES ('user', 'serial', 9, 9, '', '', '', 'x', 1, 0)`, "has no audit entry"},
		{"fail/ca-key-inserted", `INSERT INTO ca_keys (ca_type, generation, state, key_type, fingerprint, public_key, signer, file, created_us, updated_us) VALUES ('user', 7, 'next', 'ed25519', 'SHA256:evil', 'ssh-ed25519 AAAA', 'file', 'x', 1, 1)`, "CA generation 7 (SHA256:evil) has no audit entry"},
		{"fail/token-inserted", `INSERT INTO tokens (id, name, kind, roles, principals, hash, created_by, created_us, expires_us) VALUES ('00000000000000ff', 'backdoor', 'admin', '[]', '[]', 'h', 'x', 1, 99999999999999999)`, "token backdoor (00000000000000ff) has no creation entry"},
		{"fail/token-unrevoked", `UPDATE tokens SET revoked_us = 0`, "): revoked_at changed outside sshca"},
		{"fail/token-hash-and-roles-replaced", `UPDATE tokens SET hash = '` + strings.Repeat("0", 64) + `', roles = '["deploy"]'`, "): hash, roles changed outside sshca"},
		{"fail/token-deleted", `DELETE FROM tokens`, "token oncall ("},
		{"fail/ca-key-deleted", `DELETE FROM ca_keys WHERE ca_type = 'host'`, "host CA generation 1 ("},
		{"fail/ca-key-state-changed", `UPDATE ca_keys SET state = 'revoked' WHERE ca_type = 'user'`, "user CA generation 1 ("},
		{"fail/cert-inserted", `INSERT INTO certs (serial, ca_type, ca_fp, role, key_id, principals, valid_after, valid_before, subject_fp, subject_type, requester, issued_us, cert) VALUES (99, 'user', 'x', 'deploy', 'k', '["root"]', 0, 9999999999, 's', 'ssh-ed25519', 'x', 1, 'c')`, "certificate 99 has no issuance entry"},
		{"fail/cert-validity-extended", `UPDATE certs SET valid_before = valid_before + 31536000 WHERE serial = 1`, "certificate 1: valid_before changed outside sshca"},
		{"fail/cert-deleted", `DELETE FROM certs WHERE serial = 1`, "certificate 1 was issued"},
		{"fail/cert-principals-changed", `UPDATE certs SET principals = '["root"]' WHERE serial = 1`, "certificate 1: principals changed outside sshca"},
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
