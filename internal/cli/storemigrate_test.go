package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

// TestMain stops the throwaway PostgreSQL server of the tests that use one.
func TestMain(m *testing.M) { pgtest.Main(m) }

var totpSecret = []byte("0123456789abcdef0123")

// populateHome gives a home one of everything a CA's state holds:
// certificates, a revocation, tokens (one revoked), a user CA rotation, a
// TOTP enrollment (encrypted under the home's secrets key), and the audit
// entries of all of it. It returns the public key it signed.
func populateHome(t *testing.T, dir string, dbArgs ...string) string {
	t.Helper()
	run := func(args ...string) string {
		return mustRun(t, append(append([]string{"--home", dir}, dbArgs...), args...)...)
	}
	pub := newKey(t, t.TempDir(), "id")
	for _, id := range []string{"alice", "bob", "carol"} {
		run("sign", "user", "--role", "deploy", "--id", id, "--out", filepath.Join(t.TempDir(), id+"-cert.pub"), pub)
	}
	run("revoke", "--key-id", "bob", "--reason", "left")
	run("token", "create", "--name", "ci", "--role", "deploy")
	run("token", "create", "--name", "old", "--role", "deploy")
	run("token", "revoke", "old")
	run("ca", "rotate", "--type", "user")
	run("ca", "rotate", "--type", "user", "--promote")
	run("sign", "user", "--role", "deploy", "--id", "dave", "--out", filepath.Join(t.TempDir(), "dave-cert.pub"), pub)
	h, err := home.Open(t.Context(), dir, home.Options{Database: dbFlag(dbArgs)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Store.PutTOTP(t.Context(), "alice", totpSecret, audit.Entry{Time: time.Now(), Actor: "oidc:alice", Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp enrolled"}); err != nil {
		t.Fatal(err)
	}
	return pub
}

func dbFlag(args []string) string {
	for i, a := range args {
		if a == "--database" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// caState is what a CA's state looks like from the CLI, for comparing a
// home before and after it moved.
func caState(t *testing.T, dir string, dbArgs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"list"}, {"token", "list"}, {"ca", "show", "--type", "user"}, {"ca", "show", "--type", "host"}, {"audit", "list"}} {
		b.WriteString(mustRun(t, append(append([]string{"--home", dir}, dbArgs...), args...)...))
	}
	// TOTP secrets open with the home's secrets key.
	h, err := home.Open(t.Context(), dir, home.Options{Database: dbFlag(dbArgs)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	secret, _, err := h.Store.GetTOTP(t.Context(), "alice")
	if err != nil || !bytes.Equal(secret, totpSecret) {
		t.Fatalf("GetTOTP(alice) = %q, %v", secret, err)
	}
	return b.String()
}

var serialLine = regexp.MustCompile(`(?m)^\s*serial:\s+(\d+)`)

// signSerial signs once more and returns the serial.
func signSerial(t *testing.T, dir, pub string, dbArgs ...string) uint64 {
	t.Helper()
	out := mustRun(t, append(append([]string{"--home", dir}, dbArgs...), "sign", "user", "--role", "deploy", "--id", "after",
		"--out", filepath.Join(t.TempDir(), "after-cert.pub"), pub)...)
	m := serialLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no serial in %q", out)
	}
	s, _ := strconv.ParseUint(m[1], 10, 64)
	return s
}

// maxSerialOf reads the highest serial any certificate of the list has.
func maxSerialOf(t *testing.T, dir string, dbArgs ...string) uint64 {
	t.Helper()
	out := mustRun(t, append(append([]string{"--home", dir}, dbArgs...), "list")...)
	var max uint64
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if s, err := strconv.ParseUint(f[0], 10, 64); err == nil && s > max {
			max = s
		}
	}
	return max
}

// TestStoreMigrate moves a populated SQLite home to PostgreSQL and back:
// the copy verifies, the home switched to it reads the same and keeps
// issuing above every serial, and a target that is not empty is refused.
func TestStoreMigrate(t *testing.T) {
	requireKeygen(t)
	dir := initHome(t)
	pub := populateHome(t, dir)
	before := caState(t, dir)
	maxBefore := maxSerialOf(t, dir)
	pg := pgtest.NewDatabase(t)

	// A home pointed at the empty database says how to bring the CA there.
	r := runCLI(t, "--home", dir, "--database", pg, "list")
	if r.code != 1 || !strings.Contains(r.stderr, "holds no CA") || !strings.Contains(r.stderr, "sshca store migrate") {
		t.Fatalf("list on an empty database: exit %d, stderr %q; want the no-CA error and a store migrate hint", r.code, r.stderr)
	}

	out := mustRun(t, "--home", dir, "store", "migrate", "--to", pg)
	for _, want := range []string{"certs 4", "revocations 1", "tokens 2", "totp 1", "chain intact", "matches its audit seal", "row counts equal", "database: " + pg} {
		if !strings.Contains(out, want) {
			t.Errorf("store migrate output lacks %q:\n%s", want, out)
		}
	}
	// The source is untouched; the target is no longer empty.
	r = runCLI(t, "--home", dir, "store", "migrate", "--to", pg)
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("second migrate into the same database: exit %d, stderr %q", r.code, r.stderr)
	}

	// Switch the home as the output says.
	cfg := filepath.Join(dir, home.ConfigFile)
	yaml, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, "database: "+pg+"\n"+string(yaml))
	if got := caState(t, dir); got != before {
		t.Errorf("the home on PostgreSQL reads differently:\n--- SQLite\n%s\n--- PostgreSQL\n%s", before, got)
	}
	mustRun(t, "--home", dir, "audit", "verify")
	if s := signSerial(t, dir, pub); s <= maxBefore {
		t.Errorf("serial %d after the move; the SQLite CA had issued up to %d", s, maxBefore)
	}
	mustRun(t, "--home", dir, "audit", "verify")

	// And back: the home's sshca.db still exists (not empty), so it is refused; a new file works.
	r = runCLI(t, "--home", dir, "store", "migrate", "--to", "sqlite")
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") || !strings.Contains(r.stderr, "move") {
		t.Errorf("migrate back onto the old sshca.db: exit %d, stderr %q", r.code, r.stderr)
	}
	back := filepath.Join(t.TempDir(), "back.db")
	out = mustRun(t, "--home", dir, "store", "migrate", "--to", "sqlite:"+back)
	if !strings.Contains(out, "certs 5") {
		t.Errorf("migrate back: %s", out)
	}
	afterPG := caState(t, dir)
	if err := os.Rename(back, filepath.Join(dir, home.DBFile)); err != nil {
		t.Fatal(err)
	}
	writePolicy(t, dir, string(yaml))
	if got := caState(t, dir); got != afterPG {
		t.Errorf("the home back on SQLite reads differently:\n--- PostgreSQL\n%s\n--- SQLite\n%s", afterPG, got)
	}
	mustRun(t, "--home", dir, "audit", "verify")
	seen := map[uint64]bool{}
	for range 3 {
		s := signSerial(t, dir, pub)
		if seen[s] || s <= maxBefore+1 {
			t.Errorf("serial %d reused", s)
		}
		seen[s] = true
	}
}

// TestStoreMigrateFrom: with sshca.yaml already naming the new database,
// --from sqlite copies the home's file into it.
func TestStoreMigrateFrom(t *testing.T) {
	requireKeygen(t)
	dir := initHome(t)
	populateHome(t, dir)
	pg := pgtest.NewDatabase(t)
	yaml, err := os.ReadFile(filepath.Join(dir, home.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	before := caState(t, dir)
	writePolicy(t, dir, "database: "+pg+"\n"+string(yaml))
	mustRun(t, "--home", dir, "store", "migrate", "--from", "sqlite", "--to", pg)
	if got := caState(t, dir); got != before {
		t.Errorf("the home on PostgreSQL reads differently:\n--- SQLite\n%s\n--- PostgreSQL\n%s", before, got)
	}
	mustRun(t, "--home", dir, "audit", "verify")
}

func TestStoreMigrateRefusals(t *testing.T) {
	dir := initHome(t)
	other := filepath.Join(t.TempDir(), "x.db")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"fail/no-target", []string{"store", "migrate"}, 2, "--to is required"},
		{"fail/bad-scheme", []string{"store", "migrate", "--to", "mysql://db/x"}, 2, "want a postgres:// URL"},
		{"fail/into-itself", []string{"store", "migrate", "--to", "sqlite"}, 2, "the target is the source database"},
		{"fail/from-missing", []string{"store", "migrate", "--from", "sqlite:" + other, "--to", "sqlite:" + filepath.Join(t.TempDir(), "y.db")}, 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, append([]string{"--home", dir}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
		})
	}
	// A failed copy leaves no file behind.
	bad := filepath.Join(t.TempDir(), "copy.db")
	mustRun(t, "--home", dir, "store", "migrate", "--to", "sqlite:"+bad)
	r := runCLI(t, "--home", dir, "store", "migrate", "--to", "sqlite:"+bad)
	if r.code != 1 || !strings.Contains(r.stderr, "not empty") {
		t.Errorf("into an existing copy: exit %d, stderr %q", r.code, r.stderr)
	}
}
