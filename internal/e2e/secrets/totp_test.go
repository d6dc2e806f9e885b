package secrets

import (
	"bytes"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to read the PostgreSQL store
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/totp"
)

// mfaPolicy has one role that needs a second factor; %s are the OIDC
// issuer URL and client ID.
const mfaPolicy = `backdate: 5m
service:
  listen: 127.0.0.1:0
oidc:
  issuer: %s
  client_id: %s
roles:
  mfa:
    type: user
    principals: [role-mfa]
    max_ttl: 1h
    require_mfa: true
    allow: {users: [alice, bob]}
`

// TestTOTPSecretsEncrypted enrolls two people in TOTP through a running
// `sshca serve` (built binary), on SQLite and on a real PostgreSQL server,
// and checks that the database — the totp column, and for SQLite the raw
// files — holds neither secret in any readable form, that their codes
// work, and that with the two secret columns swapped in the database
// (an insider copying the secret they know onto someone else's row)
// neither person's code, nor the other's, gets a certificate.
func TestTOTPSecretsEncrypted(t *testing.T) {
	bin := sshcaBin.Path(t)
	for _, tc := range []struct {
		name     string
		database func(t *testing.T) string // "" for the home's SQLite file
	}{
		{name: "sqlite", database: func(*testing.T) string { return "" }},
		{name: "postgres", database: func(t *testing.T) string { return pgtest.NewDatabase(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			h := &e2etest.Home{T: t, Bin: bin, Dir: filepath.Join(tmp, "ca"), DB: tc.database(t), Env: e2etest.ChildEnv(tmp, "secrets-test")}
			h.Must("init")
			iss := oidctest.NewHTTP(t)
			if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), fmt.Appendf(nil, mfaPolicy, iss.URL(), oidctest.ClientID), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := h.Serve("")
			if err != nil {
				t.Fatal(err)
			}
			token := func(user string, amr ...string) string {
				return iss.Mint(map[string]any{"sub": user, "preferred_username": user, "amr": amr}, "RS256")
			}
			secrets := map[string][]byte{}
			for _, user := range []string{"alice", "bob"} {
				secrets[user] = enrollTOTP(t, p, token(user, "pwd", "otp"))
			}

			db := openStoreSQL(t, h)
			for user, sec := range secrets {
				var col string
				if err := db.QueryRowContext(t.Context(), `SELECT secret FROM totp WHERE identity = '`+user+`'`).Scan(&col); err != nil {
					t.Fatal(err)
				}
				if leaked := secretForms(sec, col); leaked != "" {
					t.Errorf("%s's totp.secret column %q holds the secret (%s)", user, col, leaked)
				}
			}
			if h.DB == "" {
				for _, f := range []string{"sshca.db", "sshca.db-wal"} {
					data, err := os.ReadFile(filepath.Join(h.Dir, f))
					if err != nil {
						continue
					}
					for user, sec := range secrets {
						if bytes.Contains(data, sec) {
							t.Errorf("%s holds %s's secret in raw bytes", f, user)
						}
						if leaked := secretForms(sec, string(data)); leaked != "" {
							t.Errorf("%s holds %s's secret (%s)", f, user, leaked)
						}
					}
				}
			}

			pub := func() string {
				_, pub := sshdtest.GenerateKey(t, t.TempDir(), "ed25519")
				return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
			}
			request := func(user, codeOf string) error {
				c := p.Client(t, token(user, "pwd"))
				_, _, err := c.RequestCert(t.Context(), "user", api.CertRequest{PublicKey: pub(), Role: "mfa", TTL: "5m", TOTP: totp.Code(secrets[codeOf], time.Now())})
				return err
			}
			swap := func() {
				t.Helper()
				cols := rawColumns(t, db)
				for user, other := range map[string]string{"alice": "bob", "bob": "alice"} {
					// Inlined (base64 and a prefix: nothing to quote), so that one
					// statement serves both placeholder styles.
					if _, err := db.ExecContext(t.Context(), `UPDATE totp SET secret = '`+cols[other]+`' WHERE identity = '`+user+`'`); err != nil {
						t.Fatal(err)
					}
				}
			}
			before := rawColumns(t, db)
			swap()
			if after := rawColumns(t, db); after["alice"] != before["bob"] || after["bob"] != before["alice"] {
				t.Fatalf("the swap did not swap: %v -> %v", before, after)
			}
			// No code is used before this point: a refusal here cannot be
			// the replay check.
			for _, c := range []struct{ user, codeOf string }{{"alice", "bob"}, {"alice", "alice"}, {"bob", "alice"}, {"bob", "bob"}} {
				err := request(c.user, c.codeOf)
				var ae *client.APIError
				if err == nil {
					t.Errorf("swapped columns: %s got a certificate with %s's code", c.user, c.codeOf)
				} else if !errors.As(err, &ae) {
					t.Errorf("swapped columns: %s with %s's code: %v, want an HTTP refusal", c.user, c.codeOf, err)
				}
			}
			swap()
			if err := request("alice", "alice"); err != nil {
				t.Fatalf("alice's own code, columns restored: %v", err)
			}
			p.Stop(t)
		})
	}
}

// enrollTOTP enrolls the person of idToken and returns the secret from the
// otpauth URI the service returns once.
func enrollTOTP(t *testing.T, p *e2etest.Server, idToken string) []byte {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: client.PinnedTLSConfig(p.Fingerprint)}, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL+"/v1/totp/enroll", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+idToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out api.TOTPEnrollment
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("enroll: HTTP %d, %v", resp.StatusCode, err)
	}
	u, err := url.Parse(out.URI)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(u.Query().Get("secret")))
	if err != nil || len(sec) < 10 {
		t.Fatalf("enroll: no secret in %q", out.URI)
	}
	return sec
}

// openStoreSQL opens the home's database with database/sql, to read and
// edit rows as an insider would.
func openStoreSQL(t *testing.T, h *e2etest.Home) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", "file:"+filepath.Join(h.Dir, "sshca.db")+"?_pragma=busy_timeout(15000)"
	if h.DB != "" {
		driver, dsn = "pgx", h.DB
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func rawColumns(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT identity, secret FROM totp`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	m := map[string]string{}
	for rows.Next() {
		var id, col string
		if err := rows.Scan(&id, &col); err != nil {
			t.Fatal(err)
		}
		m[id] = col
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// secretForms says in which printable form secret appears in text, if
// any: hex or base32 (the otpauth URI's; both in either case) or base64
// (either alphabet, unpadded, so a prefix of any padded form).
func secretForms(secret []byte, text string) string {
	lower := strings.ToLower(text)
	for name, f := range map[string]string{
		"hex":       hex.EncodeToString(secret),
		"base32":    strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret)),
		"base64":    base64.RawStdEncoding.EncodeToString(secret),
		"base64url": base64.RawURLEncoding.EncodeToString(secret),
	} {
		if strings.HasPrefix(name, "base64") && strings.Contains(text, f) || !strings.HasPrefix(name, "base64") && strings.Contains(lower, f) {
			return name
		}
	}
	return ""
}
