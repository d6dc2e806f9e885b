// Package migrate tests the move of a running CA from its embedded SQLite
// store to PostgreSQL end to end: a home used as a team would use it (CLI
// signing, the service with tokens, host enrollment and sync, revocations,
// CA rotations, the audit log) is copied with `sshca store migrate` into a
// real PostgreSQL server (pgtest), the home is switched to it, and `sshca
// serve` on PostgreSQL keeps serving the same clients, tokens, renewals and
// hosts, with the audit chain and the serial counter carried over.
package migrate

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/testkit"
)

// TestMain stops the throwaway PostgreSQL server.
func TestMain(m *testing.M) { pgtest.Main(m) }

// world is the CA home and the client and host side around it.
type world struct {
	t     *testing.T
	h     *e2etest.Home
	users string // the client's HOME
	host  string // the server's key and sync directory
}

// serve starts `sshca serve` on the home (on whatever database the home
// names) on a free port of 127.0.0.1.
func (w *world) serve() *e2etest.Server {
	w.t.Helper()
	s, err := w.h.Serve("", "--listen", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// login runs `sshca login` against s with args; it returns the exit code
// and the output.
func (w *world) login(s *e2etest.Server, args ...string) (int, string) {
	w.t.Helper()
	out, errs, code := w.h.Run(append([]string{"login", "--server", s.URL, "--ca-fingerprint", s.Fingerprint, "--no-agent"}, args...)...)
	return code, out + errs
}

// mustLogin is login that fails the test unless it succeeds, and returns
// the certificate written beside key.
func (w *world) mustLogin(s *e2etest.Server, key string, args ...string) *ssh.Certificate {
	w.t.Helper()
	if code, out := w.login(s, append([]string{"--key", key}, args...)...); code != 0 {
		w.t.Fatalf("sshca login %v: exit %d\n%s", args, code, out)
	}
	return e2etest.ReadCert(w.t, key+"-cert.pub")
}

// sync runs `sshca sync` for the host against s.
func (w *world) sync(s *e2etest.Server) string {
	w.t.Helper()
	return w.h.Must("sync", "--server", s.URL, "--ca-fingerprint", s.Fingerprint,
		"--dir", filepath.Join(w.host, "sshca"), "--host-key", filepath.Join(w.host, "ssh_host_ed25519_key"))
}

// token creates a token and returns the path of a file holding it.
func (w *world) token(name string, args ...string) string {
	w.t.Helper()
	secret := strings.TrimSpace(w.h.Must(append([]string{"token", "create", "--name", name}, args...)...))
	p := filepath.Join(w.users, name+".token")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// state is what the CA holds, as its commands show it: certificates (with
// their revocation status), tokens, CA generations and published keys, and
// the audit log.
func (w *world) state() string {
	w.t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"list"}, {"token", "list"}, {"ca", "list"}, {"ca", "show", "--type", "user"}, {"ca", "show", "--type", "host"}, {"audit", "list"}} {
		b.WriteString("$ sshca " + strings.Join(args, " ") + "\n" + w.h.Must(args...))
	}
	return b.String()
}

// serials returns the serial column of `sshca list`.
func (w *world) serials() []uint64 {
	w.t.Helper()
	var out []uint64
	for _, l := range e2etest.Lines(w.h.Must("list"))[1:] {
		s, err := strconv.ParseUint(strings.Fields(l)[0], 10, 64)
		if err != nil {
			w.t.Fatalf("list: %q: %v", l, err)
		}
		out = append(out, s)
	}
	return out
}

var countRE = regexp.MustCompile(`\b(certs|revocations|tokens|ca_keys|audit) (\d+)\b`)

// TestMigrateThenServeOnPostgres populates a SQLite home through every
// door, migrates it into PostgreSQL, and runs the service there.
func TestMigrateThenServeOnPostgres(t *testing.T) {
	testkit.RequireTool(t, "ssh-keygen")
	pg := pgtest.NewDatabase(t)
	w := &world{t: t, users: t.TempDir(), host: t.TempDir()}
	w.h = &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), Env: map[string]string{"HOME": w.users}}
	w.h.Must("init")
	cfgPath := filepath.Join(w.h.Dir, "sshca.yaml")
	if err := os.WriteFile(cfgPath, []byte(testkit.Policy), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := t.TempDir()
	keygen := func(name string) string {
		p := filepath.Join(keys, name)
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", p).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		return p
	}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(w.host, "ssh_host_ed25519_key")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}

	// --- The CA's life on SQLite. ---
	// Certificates signed at the CLI, one revoked by key ID.
	alice, _ := w.h.SignUser(keys, "--role", "deploy", "--id", "alice")
	bob, _ := w.h.SignUser(keys, "--role", "deploy", "--id", "bob")
	w.h.Must("revoke", "--key-id", "bob", "--reason", "left the team")
	// Tokens: one for CI, one revoked, one to enroll a host.
	ciToken := w.token("ci", "--role", "deploy")
	oldToken := w.token("old", "--role", "deploy")
	w.h.Must("token", "revoke", "old")
	enroll := w.token("enroll-app-01", "--enroll", "--role", "servers", "--principals", "app-01.corp")
	// Both CAs rotated: generation 2 signs from now on.
	for _, typ := range []string{"user", "host"} {
		w.h.Must("ca", "rotate", "--type", typ)
		w.h.Must("ca", "rotate", "--type", typ, "--promote")
	}
	dave, daveCert := w.h.SignUser(keys, "--role", "deploy", "--id", "dave")
	userGen2 := ssh.FingerprintSHA256(daveCert.SignatureKey)

	// The service on SQLite: a token login, a host enrolled and synced.
	s := w.serve()
	ci := keygen("ci")
	ciCert := w.mustLogin(s, ci, "--role", "deploy", "--token-file", ciToken)
	w.h.Must("host", "enroll", "--server", s.URL, "--ca-fingerprint", s.Fingerprint, "--token-file", enroll,
		"--host-key", filepath.Join(w.host, "ssh_host_ed25519_key"))
	w.sync(s)
	s.Stop(t)

	before := w.state()
	serialsBefore := w.serials()
	maxBefore := serialsBefore[0]
	for _, n := range serialsBefore {
		maxBefore = max(maxBefore, n)
	}
	if v := w.h.Must("audit", "verify"); !strings.Contains(v, "audit log intact") {
		t.Fatalf("audit verify on SQLite: %s", v)
	}

	// --- The move. ---
	out := w.h.Must("store", "migrate", "--to", pg)
	for _, want := range []string{"chain intact", "row counts equal", "database: " + pg} {
		if !strings.Contains(out, want) {
			t.Errorf("store migrate output lacks %q:\n%s", want, out)
		}
	}
	counts := map[string]int{}
	for _, m := range countRE.FindAllStringSubmatch(out, -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	if counts["certs"] != len(serialsBefore) || counts["revocations"] != 1 || counts["tokens"] != 3 {
		t.Errorf("store migrate counted %v; the SQLite home lists %d certificates, 1 revocation, 3 tokens:\n%s", counts, len(serialsBefore), out)
	}
	// As the output says: the home now names the database. The SQLite file
	// is moved aside, so that nothing below can read it.
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, append([]byte("database: "+pg+"\n"), cfg...), 0o600); err != nil {
		t.Fatal(err)
	}
	aside := t.TempDir()
	for _, f := range []string{"sshca.db", "sshca.db-wal", "sshca.db-shm"} {
		if err := os.Rename(filepath.Join(w.h.Dir, f), filepath.Join(aside, f)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	// --- The same CA on PostgreSQL. ---
	if v := w.h.Must("audit", "verify"); !strings.Contains(v, "audit log intact") {
		t.Fatalf("audit verify on PostgreSQL: %s", v)
	}
	if after := w.state(); after != before {
		t.Fatalf("the CA reads differently on PostgreSQL:\n--- SQLite\n%s\n--- PostgreSQL\n%s", before, after)
	}

	s = w.serve()
	// The CI token made on SQLite gets a certificate from the service on
	// PostgreSQL, signed by the user CA's generation 2, with a new serial.
	ci2 := keygen("ci2")
	got := w.mustLogin(s, ci2, "--role", "deploy", "--token-file", ciToken)
	if fp := ssh.FingerprintSHA256(got.SignatureKey); fp != userGen2 {
		t.Errorf("certificate from PostgreSQL signed by %s, want user CA generation 2 %s", fp, userGen2)
	}
	if got.Serial <= maxBefore {
		t.Errorf("serial %d issued on PostgreSQL; SQLite had issued up to %d", got.Serial, maxBefore)
	}
	// The certificate issued on SQLite renews on PostgreSQL (its lineage
	// moved with it), keeping its key ID.
	renewed := w.mustLogin(s, ci, "--renew")
	if renewed.KeyId != ciCert.KeyId || renewed.Serial <= maxBefore {
		t.Errorf("renewal on PostgreSQL: key ID %q serial %d; want %q and a serial above %d", renewed.KeyId, renewed.Serial, ciCert.KeyId, maxBefore)
	}
	// The token revoked on SQLite stays revoked.
	if code, out := w.login(s, "--key", keygen("old"), "--role", "deploy", "--token-file", oldToken); code == 0 {
		t.Errorf("a token revoked before the move still logs in:\n%s", out)
	}
	// The host enrolled on SQLite syncs with the service on PostgreSQL
	// (authenticated by its host key) and the fleet view has it.
	w.sync(s)
	// Its row: reported just now, the current KRL (1/1), host certificate
	// of generation 2, neither stale nor failing.
	fs := w.h.Must("fleet", "status")
	row := regexp.MustCompile(`(?m)^app-01\.corp\s+\d+s ago\s+1/1\s+1,2\s+2\s`)
	if !row.MatchString(fs) || strings.Contains(fs, "stale") || strings.Contains(fs, "failing") {
		t.Errorf("fleet status on PostgreSQL:\n%s", fs)
	}
	s.Stop(t)

	// The revocation made on SQLite is in the KRL built on PostgreSQL, as
	// ssh-keygen reads it; the others are not revoked.
	krl := filepath.Join(t.TempDir(), "revoked.krl")
	w.h.Must("krl", "--out", krl)
	q, _ := exec.Command("ssh-keygen", "-Q", "-f", krl, bob+"-cert.pub", alice+"-cert.pub", dave+"-cert.pub", ci2+"-cert.pub").CombinedOutput()
	if strings.Count(string(q), "REVOKED") != 1 || !strings.Contains(string(q), bob+"-cert.pub): REVOKED") {
		t.Errorf("ssh-keygen -Q against the KRL built on PostgreSQL:\n%s", q)
	}

	// Serials stay unique across the move; the audit chain grew on
	// PostgreSQL from the migrated head and verifies.
	seen := map[uint64]bool{}
	after := w.serials()
	for _, n := range after {
		if seen[n] {
			t.Errorf("serial %d listed twice", n)
		}
		seen[n] = true
	}
	if len(after) != len(serialsBefore)+2 {
		t.Errorf("%d certificates after two issuances on PostgreSQL; %d before", len(after), len(serialsBefore))
	}
	if v := w.h.Must("audit", "verify"); !strings.Contains(v, "audit log intact") {
		t.Fatalf("audit verify after serving on PostgreSQL: %s", v)
	}
	if _, err := os.Stat(filepath.Join(w.h.Dir, "sshca.db")); err == nil {
		t.Error("the home on PostgreSQL created a new sshca.db")
	}
}
