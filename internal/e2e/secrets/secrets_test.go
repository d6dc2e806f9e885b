package secrets

import (
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to dump the home's database

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/testkit"
)

// hygienePolicy is written to sshca.yaml; %s are the audit file and the
// OIDC issuer URL.
const hygienePolicy = `backdate: 5m
service:
  listen: 127.0.0.1:0
  audit_file: %s
oidc:
  issuer: %s
  client_id: %s
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
  sso:
    type: user
    principals: [role-sso]
    max_ttl: 1h
    allow: {users: [alice]}
`

// haystack is one place written by sshca that must hold no secret.
type haystack struct {
	name string
	text string
}

// TestSecretsHygiene runs the whole flow with the built binary — init with
// a passphrase, serve with debug logging, token create, login with a token
// file, denied requests, OIDC ID tokens sent as Bearer credentials,
// revocations through the CLI and the API, a signed KRL, the audit log — and
// then looks for every secret involved in every output, the service's log,
// the audit file and the database (each text column, and the raw files).
func TestSecretsHygiene(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
	bin := sshcaBin.Path(t)
	tmp := t.TempDir()
	userHome := filepath.Join(tmp, "user")
	if err := os.MkdirAll(userHome, 0o700); err != nil {
		t.Fatal(err)
	}
	h := &e2etest.Home{T: t, Bin: bin, Dir: filepath.Join(tmp, "ca"), Env: e2etest.ChildEnv(userHome, "secrets-test")}

	var hay []haystack
	run := func(name string, wantCode int, args ...string) (string, string) {
		t.Helper()
		out, errs, code := h.Run(args...)
		if code != wantCode {
			t.Fatalf("sshca %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, out, errs)
		}
		hay = append(hay, haystack{name + " (stderr)", errs})
		if args[0] != "token" || args[1] != "create" {
			// token create prints the new secret once, on purpose.
			hay = append(hay, haystack{name + " (stdout)", out})
		}
		return out, errs
	}
	writeSecretFile := func(name, content string) string {
		t.Helper()
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	passphrase := "pp-" + randomHex(t, 20)
	passFile := writeSecretFile("ca.pass", passphrase)
	run("init", 0, "init", "--passphrase-file", passFile)
	caKeys := map[string][]byte{}
	for _, name := range []string{"user-ca-1", "host-ca-1"} {
		p := filepath.Join(h.Dir, "keys", name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("init created %s with mode %04o, want 0600", name, got)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var missing *ssh.PassphraseMissingError
		if _, err := ssh.ParseRawPrivateKey(data); !errors.As(err, &missing) {
			t.Errorf("%s is not encrypted although init had --passphrase-file (parse: %v)", name, err)
		}
		caKeys[name] = data
	}

	iss := oidctest.NewHTTP(t)
	auditFile := filepath.Join(tmp, "audit.jsonl")
	pol := fmt.Sprintf(hygienePolicy, auditFile, iss.URL(), oidctest.ClientID)
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
	roleTok, _ := run("token create role", 0, "token", "create", "--role", "deploy", "--name", "ci-deploy", "--ttl", "1d")
	adminTok, _ := run("token create admin", 0, "token", "create", "--admin", "--name", "oncall", "--ttl", "1d")
	roleTok, adminTok = strings.TrimSpace(roleTok), strings.TrimSpace(adminTok)
	tokFile := writeSecretFile("ci.token", roleTok)

	logPath := filepath.Join(tmp, "serve.log")
	p, err := h.Serve(logPath, "--log-level", "debug", "--passphrase-file", passFile)
	if err != nil {
		t.Fatal(err)
	}
	server := []string{"--server", p.URL, "--ca-fingerprint", p.Fingerprint}

	// A user logs in with the API token; the client creates the user's key.
	keyPath := filepath.Join(userHome, ".ssh", "id_ed25519")
	login := append([]string{"login", "--role", "deploy", "--key", keyPath, "--token-file", tokFile, "--no-agent"}, server...)
	run("login", 0, login...)
	run("login denied", 1, append(login, "--principals", "root")...)
	certLine, err := os.ReadFile(keyPath + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	loginCert, err := client.ParseCert(certLine)
	if err != nil {
		t.Fatal(err)
	}

	// Requests that must be refused, through the Go client.
	ctx := t.Context()
	newClient := func(bearer string) *client.Client {
		c, err := client.New(p.URL, p.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		c.Bearer = bearer
		return c
	}
	tokID, tokSecret := splitToken(t, roleTok)
	_, adminSecret := splitToken(t, adminTok)
	forgedSecret := randomHex(t, 24)
	forged := "sshca_" + tokID + "_" + forgedSecret

	_, misplacedPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	misBlock, err := ssh.MarshalPrivateKey(misplacedPriv, "oops")
	if err != nil {
		t.Fatal(err)
	}
	misplacedPEM := pem.EncodeToMemory(misBlock)
	misSigner, err := ssh.NewSignerFromKey(misplacedPriv)
	if err != nil {
		t.Fatal(err)
	}
	misPub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(misSigner.PublicKey())))

	alice := iss.Mint(map[string]any{"sub": "alice"}, "RS256")
	bob := iss.Mint(map[string]any{"sub": "bob"}, "ES256")
	expired := iss.Mint(map[string]any{"sub": "alice", "iat": time.Now().Add(-2 * time.Hour), "exp": time.Now().Add(-time.Hour)}, "RS256")
	tampered := alice[:len(alice)-8] + flip(alice[len(alice)-8:])
	_, foreignKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	rsaKID, _ := iss.KeyIDs()
	foreign := iss.MintWithKey(map[string]any{"sub": "alice"}, "EdDSA", foreignKey, rsaKID)

	var issued []string // certificate lines, public by design
	issued = append(issued, strings.TrimSpace(string(certLine)))
	var aliceCert *ssh.Certificate
	for _, tc := range []struct {
		name   string
		bearer string
		req    api.CertRequest
		status int
	}{
		{name: "fail/forged-token", bearer: forged, req: api.CertRequest{PublicKey: misPub, Role: "deploy"}, status: http.StatusUnauthorized},
		{name: "fail/private-key-as-public-key", bearer: roleTok, req: api.CertRequest{PublicKey: string(misplacedPEM), Role: "deploy"}, status: http.StatusBadRequest},
		{name: "fail/admin-token-asks-for-cert", bearer: adminTok, req: api.CertRequest{PublicKey: misPub, Role: "deploy"}, status: http.StatusForbidden},
		{name: "fail/role-token-other-role", bearer: roleTok, req: api.CertRequest{PublicKey: misPub, Role: "sso"}, status: http.StatusForbidden},
		{name: "fail/oidc-not-allowed", bearer: bob, req: api.CertRequest{PublicKey: misPub, Role: "sso"}, status: http.StatusForbidden},
		{name: "fail/oidc-expired", bearer: expired, req: api.CertRequest{PublicKey: misPub, Role: "sso"}, status: http.StatusUnauthorized},
		{name: "fail/oidc-bad-signature", bearer: tampered, req: api.CertRequest{PublicKey: misPub, Role: "sso"}, status: http.StatusUnauthorized},
		{name: "fail/oidc-foreign-key", bearer: foreign, req: api.CertRequest{PublicKey: misPub, Role: "sso"}, status: http.StatusUnauthorized},
		{name: "ok/oidc", bearer: alice, req: api.CertRequest{PublicKey: misPub, Role: "sso", TTL: "10m"}, status: http.StatusOK},
	} {
		t.Run("request/"+tc.name, func(t *testing.T) {
			resp, cert, err := newClient(tc.bearer).RequestCert(ctx, "user", tc.req)
			if tc.status == http.StatusOK {
				if err != nil {
					t.Fatalf("request refused: %v", err)
				}
				issued = append(issued, resp.Certificate)
				aliceCert = cert
				return
			}
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tc.status {
				t.Fatalf("got %v, want HTTP %d", err, tc.status)
			}
		})
	}
	if aliceCert == nil {
		t.Fatal("no certificate for alice's ID token")
	}

	// Revocations through the API (admin token) and the CLI; a signed KRL.
	if _, err := newClient(adminTok).Revoke(ctx, api.RevocationRequest{Serial: aliceCert.Serial, Reason: "laptop lost"}); err != nil {
		t.Fatalf("revoke through the API: %v", err)
	}
	run("revoke", 0, "revoke", "--serial", fmt.Sprint(loginCert.Serial), "--reason", "left the team")
	krlPath := filepath.Join(tmp, "revoked.krl")
	run("krl sign", 0, "krl", "--sign", "--out", krlPath, "--passphrase-file", passFile)
	run("audit list", 0, "audit", "list")
	run("audit list json", 0, "audit", "list", "--json")
	run("audit verify", 0, "audit", "verify")
	run("list", 0, "list")
	run("token list", 0, "token", "list")
	p.Stop(t)

	// Everything sshca wrote.
	serveLog := e2etest.ReadFile(t, logPath)
	auditLog := e2etest.ReadFile(t, auditFile)
	if fi, err := os.Stat(auditFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("audit file has mode %04o; it must not be readable by group or others", fi.Mode().Perm())
	}
	krlSig := e2etest.ReadFile(t, krlPath+".sig")
	dump := dumpSQLite(t, filepath.Join(h.Dir, "sshca.db"))
	if !strings.Contains(dump, tokID) || !strings.Contains(dump, "cert.issue") {
		t.Errorf("the database dump lacks the token ID %s or a cert.issue entry; did it read the database?", tokID)
	}
	hay = append(hay,
		haystack{"serve log (debug)", serveLog},
		haystack{"audit file", auditLog},
		haystack{"KRL", e2etest.ReadFile(t, krlPath)},
		haystack{"KRL signature", krlSig},
		haystack{"database text columns", dump},
	)
	for _, suffix := range []string{"", "-wal", "-journal"} {
		if data, err := os.ReadFile(filepath.Join(h.Dir, "sshca.db"+suffix)); err == nil {
			hay = append(hay, haystack{"database file sshca.db" + suffix, string(data)})
		}
	}

	// The flow really happened: the log and the audit file saw it.
	for _, want := range []struct{ where, text, what string }{
		{"serve log", serveLog, `"serial":`},
		{"serve log", serveLog, `"status":401`},
		{"serve log", serveLog, `"status":403`},
		{"audit file", auditLog, `"cert.deny"`},
		{"audit file", auditLog, `"oidc:alice"`},
		{"audit file", auditLog, `"revoke"`},
		{"audit file", auditLog, `"cert.issue"`},
	} {
		text := map[string]string{"serve log": serveLog, "audit file": auditLog}[want.where]
		if !strings.Contains(text, want.what) {
			t.Errorf("%s lacks %s; the flow did not run as planned", want.where, want.what)
		}
	}

	// Public by design: CA and user public keys, certificates, the KRL signature.
	public := strings.Join(issued, "\n") + "\n" + misPub + "\n" + krlSig + "\n" + e2etest.ReadFile(t, keyPath+".pub")
	for name := range caKeys {
		public += "\n" + e2etest.ReadFile(t, filepath.Join(h.Dir, "keys", name+".pub"))
	}
	userKey := []byte(e2etest.ReadFile(t, keyPath))
	secrets := []secret{
		exactSecret("CA passphrase", passphrase),
		exactSecret("role token", roleTok, tokSecret),
		exactSecret("admin token", adminTok, adminSecret),
		exactSecret("forged token", forged, forgedSecret),
		pemSecret(t, "user CA private key", caKeys["user-ca-1"], public, decryptedSeed(t, caKeys["user-ca-1"], passphrase)),
		pemSecret(t, "host CA private key", caKeys["host-ca-1"], public, decryptedSeed(t, caKeys["host-ca-1"], passphrase)),
		pemSecret(t, "user private key", userKey, public, ed25519Seed(t, userKey)),
		pemSecret(t, "private key sent as public key", misplacedPEM, public, misplacedPriv.Seed()),
	}
	for name, jwt := range map[string]string{"alice": alice, "bob": bob, "expired": expired, "tampered": tampered, "foreign-key": foreign} {
		parts := strings.Split(jwt, ".")
		if len(parts) != 3 {
			t.Fatalf("ID token %s is not a JWS", name)
		}
		secrets = append(secrets, exactSecret("OIDC ID token ("+name+")", jwt, parts[1], parts[2]))
	}

	for _, hs := range hay {
		t.Run("ok/no-secret-in/"+hs.name, func(t *testing.T) {
			if found := leaks(secrets, hs.text); len(found) > 0 {
				t.Errorf("%s contains: %s\n%s", hs.name, strings.Join(found, ", "), excerpt(hs.text))
			}
		})
	}
}

// decryptedSeed decrypts a copy of an encrypted key with ssh-keygen (bcrypt
// in native code: under -race, Go's takes seconds) and returns its seed.
func decryptedSeed(t *testing.T, pemData []byte, passphrase string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-p", "-f", p, "-P", passphrase, "-N", "").CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -p: %v: %s", err, out)
	}
	return ed25519Seed(t, []byte(e2etest.ReadFile(t, p)))
}

// splitToken returns the ID and the secret of sshca_<id>_<secret>.
func splitToken(t *testing.T, tok string) (string, string) {
	t.Helper()
	rest, ok := strings.CutPrefix(tok, "sshca_")
	id, secret, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 || len(secret) < 32 {
		t.Fatalf("token create printed %q, not sshca_<id>_<secret>", tok)
	}
	return id, secret
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// flip changes every character of a base64url string so the signature fails.
func flip(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
	}
	return string(b)
}

// dumpSQLite returns every text and blob value of every table, one
// "table.column: value" line each.
func dumpSQLite(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(t.Context(), `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(tables) < 5 {
		t.Fatalf("database has only tables %v", tables)
	}
	var b strings.Builder
	for _, table := range tables {
		rows, err := db.QueryContext(t.Context(), `SELECT * FROM "`+strings.ReplaceAll(table, `"`, `""`)+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				switch v := v.(type) {
				case string:
					fmt.Fprintf(&b, "%s.%s: %s\n", table, cols[i], v)
				case []byte:
					fmt.Fprintf(&b, "%s.%s: %s\n", table, cols[i], v)
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return b.String()
}

// excerpt keeps a failure message readable.
func excerpt(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "\n[...]"
	}
	return s
}
