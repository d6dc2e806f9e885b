package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// TestUserCommands registers, lists and removes local users and their
// keys; bad input gets one error line and changes nothing; every change
// is audited.
func TestUserCommands(t *testing.T) {
	dir := initHome(t)
	keys := t.TempDir()
	k1 := newKey(t, keys, "alice", "-t", "ed25519")
	k2 := newKey(t, keys, "alice2", "-t", "ecdsa")
	k3 := newKey(t, keys, "bob", "-t", "ed25519")
	weak := newKey(t, keys, "weak", "-t", "rsa", "-b", "1024")
	fp := func(path string) string {
		return strings.Fields(keygen(t, "-l", "-E", "sha256", "-f", path))[1]
	}

	out := mustRun(t, "--home", dir, "user", "add", "alice", "--key", k1, "--groups", "ops,deployers")
	if !strings.Contains(out, "added local user alice (1 key(s): "+fp(k1)+")") {
		t.Fatalf("add: %q", out)
	}
	mustRun(t, "--home", dir, "user", "key", "add", "alice", k2)
	mustRun(t, "--home", dir, "user", "add", "bob", "--key", k3)

	auditBefore := len(readStoreAudit(t, dir))
	for name, args := range map[string][]string{
		"fail/duplicate-user":      {"user", "add", "alice", "--key", k3},
		"fail/key-of-someone-else": {"user", "key", "add", "bob", k1},
		"fail/no-key":              {"user", "add", "carol"},
		"fail/bad-name":            {"user", "add", "-carol", "--key", k1},
		"fail/name-with-colon":     {"user", "add", "local:carol", "--key", k1},
		"fail/weak-key":            {"user", "add", "carol", "--key", weak},
		"fail/private-key":         {"user", "add", "carol", "--key", strings.TrimSuffix(k1, ".pub")},
		"fail/unknown-user-key":    {"user", "key", "add", "nobody", k1},
		"fail/remove-unknown":      {"user", "remove", "nobody"},
		"fail/remove-other-key":    {"user", "key", "remove", "bob", fp(k1)},
		"fail/bad-group":           {"user", "add", "carol", "--key", k1, "--groups", "ops,bad group"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, append([]string{"--home", dir}, args...)...)
			if r.code == 0 || !strings.HasPrefix(r.stderr, "sshca: error: ") || len(strings.Split(strings.TrimSpace(r.stderr), "\n")) > 2 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
	if n := len(readStoreAudit(t, dir)); n != auditBefore {
		t.Fatalf("refusals changed the audit log: %d -> %d entries", auditBefore, n)
	}

	out = mustRun(t, "--home", dir, "user", "list")
	for _, want := range []string{"alice", "ops,deployers  no", "ssh-ed25519 " + fp(k1), "ecdsa-sha2-nistp256 " + fp(k2), "bob"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	mustRun(t, "--home", dir, "user", "key", "remove", "alice", k2)
	mustRun(t, "--home", dir, "user", "remove", "--reason", "left", "bob")
	out = mustRun(t, "--home", dir, "user", "list")
	if strings.Contains(out, "bob") || strings.Contains(out, fp(k2)) {
		t.Fatalf("removed user or key still listed:\n%s", out)
	}

	var reasons []string
	for _, e := range readStoreAudit(t, dir) {
		if strings.HasPrefix(e.Reason, "local user") {
			reasons = append(reasons, e.Reason+" "+e.Details["user"]+" by "+e.Actor)
		}
	}
	want := []string{"local user added alice by cli:clitest", "local user key added alice by cli:clitest", "local user added bob by cli:clitest",
		"local user key removed alice by cli:clitest", "local user removed bob by cli:clitest"}
	if strings.Join(reasons, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit:\n%s\nwant:\n%s", strings.Join(reasons, "\n"), strings.Join(want, "\n"))
	}
}

func readStoreAudit(t *testing.T, dir string) []auditEntry {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "sshca.db")); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]auditEntry, len(es))
	for i, e := range es {
		out[i] = auditEntry{Reason: e.Reason, Actor: e.Actor, Details: e.Details}
	}
	return out
}

type auditEntry struct {
	Reason, Actor string
	Details       map[string]string
}

// TestUserRowsSealed: local users and their keys are sealed in the audit
// log like tokens, so `sshca audit verify` finds a key slipped into the
// database or a user's groups changed behind sshca's back, while users and
// keys removed through sshca are not reported missing.
func TestUserRowsSealed(t *testing.T) {
	dir := initHome(t)
	keys := t.TempDir()
	k1 := newKey(t, keys, "alice", "-t", "ed25519")
	k2 := newKey(t, keys, "alice2", "-t", "ed25519")
	k3 := newKey(t, keys, "bob", "-t", "ed25519")
	mustRun(t, "--home", dir, "user", "add", "alice", "--key", k1, "--groups", "ops")
	mustRun(t, "--home", dir, "user", "key", "add", "alice", k2)
	mustRun(t, "--home", dir, "user", "add", "bob", "--key", k3)
	mustRun(t, "--home", dir, "user", "key", "remove", "alice", k2)
	mustRun(t, "--home", dir, "user", "remove", "bob")
	if r := runCLI(t, "--home", dir, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify after changes through sshca: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	db := st.SQL()
	for _, q := range []string{
		`INSERT INTO local_user_keys (fingerprint, name, public_key, added_us) VALUES ('SHA256:slipped', 'alice', 'ssh-ed25519 AAAAslipped', 1)`,
		`UPDATE local_users SET groups_json = '["ops","admins"]' WHERE name = 'alice'`,
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	r := runCLI(t, "--home", dir, "audit", "verify")
	out := r.stdout + r.stderr
	if r.code == 0 || !strings.Contains(out, "key SHA256:slipped of local user alice has no audit entry") ||
		!strings.Contains(out, "local user alice: groups changed outside sshca") {
		t.Fatalf("audit verify after tampering: exit %d\n%s", r.code, out)
	}
}

// TestUserSKKey registers FIDO (sk) public keys, as ssh-keygen -t
// ed25519-sk / ecdsa-sk writes them (made here from their wire format: no
// security key is attached to the test machines).
func TestUserSKKey(t *testing.T) {
	dir := initHome(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParsePublicKey(ssh.Marshal(struct{ Type, Pub, App string }{ssh.KeyAlgoSKED25519, string(pub), "ssh:"}))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519_sk.pub")
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(k), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "--home", dir, "user", "add", "bob", "--key", path)
	out := mustRun(t, "--home", dir, "user", "list")
	if !strings.Contains(out, "sk-ssh-ed25519@openssh.com "+ssh.FingerprintSHA256(k)) {
		t.Fatalf("list:\n%s", out)
	}
}

// TestSSHConfigFrontDoorUsage: --front-door and --role that cannot go into
// the Match exec line are usage errors, before any request to the service.
func TestSSHConfigFrontDoorUsage(t *testing.T) {
	for name, args := range map[string][]string{
		"fail/role-without-front-door": {"--role", "deploy"},
		"fail/no-port":                 {"--front-door", "ca.corp"},
		"fail/shell-in-host":           {"--front-door", "ca.corp;rm:2222"},
		"fail/shell-in-role":           {"--front-door", "ca.corp:2222", "--role", "x$(id)"},
		"fail/space-in-key":            {"--front-door", "ca.corp:2222", "--key", "~/my key"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, append([]string{"ssh-config", "--server", "https://127.0.0.1:1"}, args...)...)
			if r.code != 2 || !strings.HasPrefix(r.stderr, "sshca: error: ssh-config: ") {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
}
