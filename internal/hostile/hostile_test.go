package hostile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/agent"
	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/sshsig"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// corpusDir is testdata/hostile at the module root.
const corpusDir = "../../testdata/hostile"

// minCases is what issue 7 asks of the corpus.
const minCases = 100

// entries maps every entry point a case may name to its runner. Decoders
// must return an error; CLI entries must exit 1 (or Want.Exit) with one
// "sshca: error:" line and change no state; HTTP entries must answer with
// a 4xx JSON error and change no state; the agent must refuse and keep
// every installed file.
var entries = map[string]func(c *corpus, t *testing.T, tc Case, in []byte){
	"decode-krl":      decodeEntry(func(in []byte) error { _, err := krl.Parse(in); return err }),
	"decode-cert":     decodeEntry(func(in []byte) error { _, err := client.ParseCert(in); return err }),
	"decode-key":      decodeEntry(func(in []byte) error { _, err := ca.ParseSubjectKey(in); return err }),
	"decode-sshsig":   decodeEntry(func(in []byte) error { _, err := sshsig.Parse(in); return err }),
	"decode-ssh-blob": decodeEntry(parseBlobField),
	"decode-duration": decodeEntry(func(in []byte) error { _, err := config.ParseDuration(string(in)); return err }),
	"decode-spec": func(c *corpus, t *testing.T, tc Case, in []byte) {
		scope, err := Signer("rogue-ca")
		if err != nil {
			t.Fatal(err)
		}
		decodeEntry(func(in []byte) error {
			_, err := krl.ParseSpec(bytes.NewReader(in), scope.PublicKey(), false)
			return err
		})(c, t, tc, in)
	},
	"decode-policy": func(c *corpus, t *testing.T, tc Case, in []byte) {
		p := filepath.Join(t.TempDir(), "sshca.yaml")
		if err := os.WriteFile(p, in, 0o600); err != nil {
			t.Fatal(err)
		}
		decodeEntry(func([]byte) error { _, err := config.Load(p); return err })(c, t, tc, in)
	},
	"cli":               cliEntry(nil),
	"cli-inspect":       cliEntry([]string{"inspect", "$INPUT"}),
	"cli-krl-check":     cliEntry([]string{"krl", "check", "--krl", "$INPUT", "$PUB"}),
	"cli-sign":          cliEntry([]string{"sign", "user", "--role", "deploy", "--id", "hostile", "$INPUT"}),
	"cli-revoke-ca-key": cliEntry([]string{"revoke", "--ca-key", "$INPUT"}),
	"cli-revoke-spec":   cliEntry([]string{"revoke", "--spec", "$INPUT"}),
	"cli-krl-verify":    cliEntry([]string{"krl", "verify", "$SIGNED_KRL"}),
	"cli-ttl":           cliEntry([]string{"sign", "user", "--role", "deploy", "--id", "hostile", "--ttl", "$INPUT_TEXT", "$PUB"}),
	"cli-policy":        (*corpus).runPolicyCLI,
	"http":              httpEntry(nil),
	"http-sign": httpEntry(&Request{Method: "POST", Path: "/v1/certs/user", Auth: "Bearer $ROLE_TOKEN",
		Body: `{"public_key": $INPUT_JSON, "role": "deploy"}`}),
	"http-ttl": httpEntry(&Request{Method: "POST", Path: "/v1/certs/user", Auth: "Bearer $ROLE_TOKEN",
		Body: `{"public_key": "$PUB_LINE", "role": "deploy", "ttl": $INPUT_JSON}`}),
	"http-renew": httpEntry(&Request{Method: "POST", Path: "/v1/certs/renew",
		Body: `{"certificate": $INPUT_JSON, "challenge": "$CHALLENGE", "signature": "$CHALLENGE_SIG"}`}),
	"agent": (*corpus).runAgent,
	// OpenSSH as the oracle: ssh-keygen 9.2 must refuse the input too.
	"oracle-krl":  oracleEntry(func(in, pub string) []string { return []string{"-Q", "-f", in, pub} }),
	"oracle-cert": oracleEntry(func(in, _ string) []string { return []string{"-L", "-f", in} }),
	"oracle-key":  oracleEntry(func(in, _ string) []string { return []string{"-l", "-f", in} }),
	"oracle-sshsig": oracleEntry(func(in, _ string) []string {
		return []string{"-Y", "check-novalidate", "-n", sshsig.Namespace, "-s", in}
	}),
}

// keygen is the OpenSSH oracle.
const keygen = "/usr/bin/ssh-keygen"

// oracleEntry runs ssh-keygen on the input and expects it to fail (exit
// status 1 or 255, not a signal). The message is not compared: the point is
// that sshca refuses no less than OpenSSH does.
func oracleEntry(args func(in, pub string) []string) func(*corpus, *testing.T, Case, []byte) {
	return func(c *corpus, t *testing.T, tc Case, in []byte) {
		testkit.RequireTool(t, keygen)
		dir := t.TempDir()
		input := filepath.Join(dir, "input")
		if err := os.WriteFile(input, in, 0o600); err != nil {
			t.Fatal(err)
		}
		subj, err := Signer("subject")
		if err != nil {
			t.Fatal(err)
		}
		pub := filepath.Join(dir, "id.pub")
		if err := os.WriteFile(pub, ssh.MarshalAuthorizedKey(subj.PublicKey()), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, keygen, args(input, pub)...)
		cmd.Stdin = strings.NewReader("sshca-hostile")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			t.Fatalf("ssh-keygen accepted it: %s", truncate(out))
		case !errors.As(err, &ee) || !ee.Exited():
			t.Fatalf("ssh-keygen did not exit normally: %v: %s", err, truncate(out))
		}
	}
}

// TestCorpus runs every case of testdata/hostile against each of its entry
// points (acceptance 2 of issue 7): a clear error, no panic, no state change.
func TestCorpus(t *testing.T) {
	cases, inputs, err := Load(corpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < minCases {
		t.Fatalf("the corpus has %d cases; issue 7 asks for at least %d", len(cases), minCases)
	}
	c := &corpus{t: t}
	runs := map[string]int{}
	for i, tc := range cases {
		for _, e := range tc.Entries {
			run, ok := entries[e]
			if !ok {
				t.Fatalf("case %s: unknown entry point %q", tc.Name, e)
			}
			t.Run("fail/"+tc.Name+"/"+e, func(t *testing.T) {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panic: %v", r)
					}
				}()
				run(c, t, tc, inputs[i])
			})
			runs[e]++
		}
	}
	c.close(t)
	total := 0
	var parts []string
	for _, e := range slices.Sorted(maps.Keys(runs)) {
		total += runs[e]
		parts = append(parts, fmt.Sprintf("%s=%d", e, runs[e]))
	}
	t.Logf("hostile corpus: %d cases, %d runs (%s)", len(cases), total, strings.Join(parts, " "))
}

// corpus holds the fixtures, made on first use and shared by the cases
// (none of which may change them).
type corpus struct {
	t     *testing.T
	cli   *cliFixture
	pol   *cliFixture // a second home whose sshca.yaml the policy cases replace
	http  *httpFixture
	agent *agentFixture
}

func (c *corpus) close(t *testing.T) {
	t.Helper()
	for _, f := range []*cliFixture{c.cli, c.pol} {
		if f != nil {
			f.verifyAudit(t)
		}
	}
	if c.http != nil {
		entries, err := c.http.home.Store.AuditEntries(context.Background(), store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.Verify(entries); err != nil {
			t.Errorf("service audit chain broken after the corpus: %v", err)
		}
	}
}

// ---- decoders ----

func decodeEntry(decode func([]byte) error) func(*corpus, *testing.T, Case, []byte) {
	return func(c *corpus, t *testing.T, tc Case, in []byte) {
		err := decode(in)
		if err == nil {
			t.Fatalf("accepted %q", truncate(in))
		}
		want := tc.Want.MsgFor(entryName(t))
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
	}
}

// parseBlobField decodes the base64 field of an authorized_keys line and
// parses it with x/crypto/ssh, which names the precise defect that
// ssh.ParseAuthorizedKey hides behind "no key found"; it pins down that a
// generated case breaks the rule it was built to break.
func parseBlobField(in []byte) error {
	f := bytes.Fields(in)
	if len(f) < 2 {
		return fmt.Errorf("no base64 field")
	}
	blob, err := base64.StdEncoding.DecodeString(string(f[1]))
	if err != nil {
		return fmt.Errorf("base64: %w", err)
	}
	_, err = ssh.ParsePublicKey(blob)
	return err
}

// entryName is the last element of the subtest name.
func entryName(t *testing.T) string {
	n := t.Name()
	return n[strings.LastIndex(n, "/")+1:]
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// ---- command line ----

// cliFixture is a CA home with a certificate, a revocation and a token in
// its store, a subject key, and a signed KRL, made through the CLI.
type cliFixture struct {
	home, keys string
	pub, cert  string // the subject public key file and its certificate
	signedKRL  string // a KRL signed by the user CA, to pair with hostile .sig files
}

func runCLI(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := func(name string) string {
		if name == "USER" {
			return "hostile"
		}
		return ""
	}
	code = cli.Run(ctx, args, strings.NewReader(""), &out, &errb, env)
	return code, out.String(), errb.String()
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runCLI(context.Background(), args...)
	if code != 0 {
		t.Fatalf("sshca %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func newCLIFixture(t *testing.T) *cliFixture {
	t.Helper()
	root := t.TempDir()
	f := &cliFixture{home: filepath.Join(root, "ca"), keys: filepath.Join(root, "keys")}
	mustCLI(t, "--home", f.home, "init")
	if err := os.WriteFile(filepath.Join(f.home, home.ConfigFile), []byte(testkit.Policy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(f.keys, 0o700); err != nil {
		t.Fatal(err)
	}
	subj, err := Signer("subject")
	if err != nil {
		t.Fatal(err)
	}
	f.pub = filepath.Join(f.keys, "id_ed25519.pub")
	if err := os.WriteFile(f.pub, ssh.MarshalAuthorizedKey(subj.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	f.cert = filepath.Join(f.keys, "id_ed25519-cert.pub")
	mustCLI(t, "--home", f.home, "sign", "user", "--role", "deploy", "--id", "baseline", "--out", f.cert, f.pub)
	mustCLI(t, "--home", f.home, "revoke", "--serial", "999", "--force", "--reason", "baseline")
	mustCLI(t, "--home", f.home, "token", "create", "--name", "baseline", "--role", "deploy")
	f.signedKRL = filepath.Join(f.keys, "signed.krl")
	mustCLI(t, "--home", f.home, "krl", "--out", f.signedKRL, "--sign")
	return f
}

// cliState is everything a refused command must leave as it was.
type cliState struct {
	Store storeState
	Files map[string]string // path -> SHA-256, of every file but the database
}

func (f *cliFixture) state(t *testing.T, dirs ...string) cliState {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(f.home, home.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := cliState{Store: readStore(t, db), Files: map[string]string{}}
	for _, d := range append([]string{f.home, f.keys}, dirs...) {
		hashTree(t, d, s.Files)
	}
	return s
}

func (f *cliFixture) verifyAudit(t *testing.T) {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(f.home, home.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	entries, err := db.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(entries); err != nil {
		t.Errorf("audit chain of %s broken after the corpus: %v", f.home, err)
	}
}

// hashTree records the SHA-256 of every file under dir, except the
// database, which refusals may append audit entries to, and the audit head
// kept outside it, which follows those entries.
func hashTree(t *testing.T, dir string, into map[string]string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), home.DBFile) || d.Name() == home.HeadFile {
			return nil
		}
		if d.IsDir() {
			into[p+"/"] = "dir"
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		into[p] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// storeState is what no refusal may change in a store.
type storeState struct {
	Certs       int
	MaxSerial   uint64
	Revocations map[string]int
	KRLVersions map[string]uint64
	CAKeys      []string // type/generation/state
	Tokens      []string // name/kind/revoked/used
}

// storeReader is the part of the store readStore needs.
type storeReader interface {
	ListCerts(ctx context.Context, f store.CertFilter) ([]store.CertRecord, error)
	MaxSerial(ctx context.Context) (uint64, error)
	ListRevocations(ctx context.Context, caType string) ([]store.Revocation, error)
	KRLVersion(ctx context.Context, caType string) (uint64, error)
	ListCAKeys(ctx context.Context, caType string) ([]store.CAKey, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
}

func readStore(t *testing.T, db storeReader) storeState {
	t.Helper()
	ctx := context.Background()
	certs, err := db.ListCerts(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := db.MaxSerial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := storeState{Certs: len(certs), MaxSerial: ms, Revocations: map[string]int{}, KRLVersions: map[string]uint64{}}
	for _, typ := range []string{"user", "host"} {
		revs, err := db.ListRevocations(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		s.Revocations[typ] = len(revs)
		if s.KRLVersions[typ], err = db.KRLVersion(ctx, typ); err != nil {
			t.Fatal(err)
		}
		keys, err := db.ListCAKeys(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			s.CAKeys = append(s.CAKeys, fmt.Sprintf("%s/%d/%s", k.CAType, k.Generation, k.State))
		}
	}
	toks, err := db.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		s.Tokens = append(s.Tokens, fmt.Sprintf("%s/%s/revoked=%t/used=%t", tk.Name, tk.Kind, !tk.RevokedAt.IsZero(), !tk.UsedAt.IsZero()))
	}
	slices.Sort(s.Tokens)
	return s
}

// cliEntry runs sshca with args (the case's own for a nil argv).
func cliEntry(argv []string) func(*corpus, *testing.T, Case, []byte) {
	return func(c *corpus, t *testing.T, tc Case, in []byte) {
		if c.cli == nil {
			c.cli = newCLIFixture(c.t)
		}
		f := c.cli
		args := argv
		if args == nil {
			args = tc.Args
		}
		if len(args) == 0 {
			t.Fatal("a cli case needs args")
		}
		work := t.TempDir()
		name := "input"
		if tc.File != "" {
			name = filepath.Base(tc.File)
		}
		input := filepath.Join(work, name)
		if err := os.WriteFile(input, in, 0o644); err != nil {
			t.Fatal(err)
		}
		signed := filepath.Join(work, "signed.krl")
		krlData, err := os.ReadFile(f.signedKRL)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(signed, krlData, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(signed+".sig", in, 0o644); err != nil {
			t.Fatal(err)
		}
		r := newLongestFirstReplacer(append([]string{"$HOME", f.home, "$WORK", work, "$INPUT_TEXT", string(in), "$INPUT", input,
			"$PUB", f.pub, "$CERT", f.cert, "$SIGNED_KRL", signed}, bulkVars()...))
		full := []string{"--home", f.home}
		for _, a := range args {
			full = append(full, r.Replace(a))
		}
		before := f.state(t, work)
		code, stdout, stderr := runCLI(t.Context(), full...)
		after := f.state(t, work)
		checkCLIRefusal(t, tc, code, stdout, stderr)
		checkNoSecrets(t, []byte(stdout+stderr), privateKeyMarkers)
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("state changed (-before +after):\n%s", diff)
		}
	}
}

// bulkVars are placeholders for inputs too big or too binary to write in
// a manifest: 257 principals, a 5000-byte key ID, a byte that is not
// UTF-8, a 17 KiB credential, a 70 KB string, 10000 nested arrays.
func bulkVars() []string {
	var ps []string
	for i := range 257 {
		ps = append(ps, fmt.Sprintf("p%d", i))
	}
	list, _ := json.Marshal(ps)
	return []string{
		"$P257_JSON", string(list),
		"$P257", strings.Join(ps, ","),
		"$BYTE_FF", "\xff",
		"$LONG_ID", strings.Repeat("k", 5000),
		"$HUGE_TOKEN", strings.Repeat("A", 17<<10),
		"$HUGE_STRING", strings.Repeat("A", 70<<10),
		"$DEEP_JSON", strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	}
}

// checkCLIRefusal checks the exit code and that stderr is one error line,
// optionally followed by one hint line, and stdout is empty.
func checkCLIRefusal(t *testing.T, tc Case, code int, stdout, stderr string) {
	t.Helper()
	wantCode := tc.Want.Exit
	if wantCode == 0 {
		wantCode = 1
		if entryName(t) == "cli-ttl" {
			wantCode = 2
		}
	}
	if code != wantCode {
		t.Errorf("exit %d, want %d\nstderr: %s", code, wantCode, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout not empty: %q", truncate([]byte(stdout)))
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "sshca: error: ") {
		t.Fatalf("stderr does not start with an error line: %q", stderr)
	}
	if len(lines) > 2 || (len(lines) == 2 && !strings.HasPrefix(lines[1], "sshca: hint: ")) {
		t.Errorf("stderr is not one error line plus an optional hint: %q", stderr)
	}
	if want := tc.Want.MsgFor(entryName(t)); !strings.Contains(lines[0], want) {
		t.Errorf("error line %q does not contain %q", lines[0], want)
	}
}

// privateKeyMarkers betray an echoed private key: the PEM label and the
// base64 of "openssh-key-v1".
var privateKeyMarkers = []string{"PRIVATE KEY", "b3BlbnNzaC1rZXktdjE"}

// checkNoSecrets fails when out holds any of secrets.
func checkNoSecrets(t *testing.T, out []byte, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && bytes.Contains(out, []byte(s)) {
			t.Errorf("the refusal echoes a secret (%d bytes starting %.8q)", len(s), s)
		}
	}
}

// runPolicyCLI puts the input in place of a home's sshca.yaml and runs a
// command that loads it.
func (c *corpus) runPolicyCLI(t *testing.T, tc Case, in []byte) {
	if c.pol == nil {
		c.pol = newCLIFixture(c.t)
	}
	f := c.pol
	if err := os.WriteFile(filepath.Join(f.home, home.ConfigFile), in, 0o600); err != nil {
		t.Fatal(err)
	}
	before := f.state(t)
	code, stdout, stderr := runCLI(t.Context(), "--home", f.home, "list")
	after := f.state(t)
	checkCLIRefusal(t, tc, code, stdout, stderr)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("state changed (-before +after):\n%s", diff)
	}
}

// ---- HTTP API ----

// httpFixture is the service over a fresh home, with SSO from an in-test
// issuer and one token of every kind.
type httpFixture struct {
	home   *home.Home
	ts     *httptest.Server
	vars   map[string]string
	signer ssh.Signer // the subject key, for renewal proofs
}

func newHTTPFixture(t *testing.T) *httpFixture {
	t.Helper()
	ctx := context.Background()
	h := testhome.New(t, testkit.Policy, testhome.Options{Actor: "hostile"})
	iss := oidctest.New(t)
	v, err := oidc.NewVerifier(ctx, oidc.Config{Issuer: iss.URL(), ClientID: oidctest.ClientID, HTTPClient: iss.Client()})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Config: h.Config, Store: h.Store, Authority: h.Authority, OIDC: server.OIDC(v)})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	subj, err := Signer("subject")
	if err != nil {
		t.Fatal(err)
	}
	f := &httpFixture{home: h, ts: ts, signer: subj, vars: map[string]string{}}
	now := time.Now()
	tok := func(name, kind string, roles, principals []string, created time.Time, ttl time.Duration) (string, store.Token) {
		secret, rec, err := ca.NewToken(name, kind, roles, principals, "hostile", created, ttl)
		if err != nil {
			t.Fatal(err)
		}
		ev := audit.Entry{Time: created, Actor: "hostile", Action: audit.ActionToken, Outcome: "ok", Reason: "token created"}
		if err := h.Store.CreateToken(ctx, rec, ev); err != nil {
			t.Fatal(err)
		}
		return secret, rec
	}
	var role store.Token
	f.vars["$ROLE_TOKEN"], role = tok("ci", store.TokenRole, []string{"deploy"}, nil, now, time.Hour)
	f.vars["$ROLE_TOKEN_ID"] = role.ID
	f.vars["$ADMIN_TOKEN"], _ = tok("admin", store.TokenAdmin, nil, nil, now, time.Hour)
	f.vars["$ENROLL_TOKEN"], _ = tok("web1", store.TokenEnroll, []string{"servers"}, []string{"web1.corp"}, now, time.Hour)
	f.vars["$EXPIRED_TOKEN"], _ = tok("old", store.TokenRole, []string{"deploy"}, nil, now.Add(-2*time.Hour), time.Hour)
	var revoked store.Token
	f.vars["$REVOKED_TOKEN"], revoked = tok("gone", store.TokenRole, []string{"deploy"}, nil, now, time.Hour)
	ev := audit.Entry{Time: now, Actor: "hostile", Action: audit.ActionToken, Outcome: "ok", Reason: "token revoked"}
	if err := h.Store.RevokeToken(ctx, revoked.ID, now, ev); err != nil {
		t.Fatal(err)
	}
	f.vars["$PUB_LINE"] = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(subj.PublicKey())))
	f.vars["$SSO_TOKEN_NO_MFA"] = iss.Mint(map[string]any{"sub": "alice"}, "ES256")
	// One certificate and one revocation, so that "unchanged" is checked
	// against a store that is not empty.
	if _, err := h.Authority.Sign(ctx, ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "baseline", PublicKey: subj.PublicKey(), Caller: ca.Admin("hostile")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Revoke(ctx, h.Store, ca.Revocation{CAType: "user", Lo: 999, Hi: 999, Force: true, Actor: "hostile"}, now); err != nil {
		t.Fatal(err)
	}
	return f
}

// secrets are the parts of the fixture's credentials that no answer may
// contain: the secret half of every API token, and the whole ID token.
func (f *httpFixture) secrets() []string {
	var out []string
	for name, v := range f.vars {
		switch {
		case strings.HasSuffix(name, "_TOKEN") && strings.HasPrefix(v, ca.TokenPrefix):
			// sshca_<16 hex digits>_<secret>; the secret may hold "_".
			if secret := strings.TrimPrefix(v, ca.TokenPrefix); len(secret) > 17 {
				out = append(out, secret[17:])
			}
		case strings.HasPrefix(name, "$SSO_"):
			out = append(out, v)
		}
	}
	return out
}

// challenge fetches a renewal challenge and signs it with the subject key
// and with another key.
func (f *httpFixture) challenge(t *testing.T) (challenge, sig, otherSig string) {
	t.Helper()
	resp, err := f.ts.Client().Post(f.ts.URL+"/v1/certs/renew/challenge", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ch api.Challenge
	if err := json.NewDecoder(resp.Body).Decode(&ch); err != nil {
		t.Fatal(err)
	}
	other, err := Signer("other")
	if err != nil {
		t.Fatal(err)
	}
	var sigs []string
	for _, s := range []ssh.Signer{f.signer, other} {
		sig, err := s.Sign(nil, []byte(api.RenewSignaturePrefix+ch.Challenge))
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, base64.StdEncoding.EncodeToString(ssh.Marshal(sig)))
	}
	return ch.Challenge, sigs[0], sigs[1]
}

func httpEntry(fixed *Request) func(*corpus, *testing.T, Case, []byte) {
	return func(c *corpus, t *testing.T, tc Case, in []byte) {
		if c.http == nil {
			c.http = newHTTPFixture(c.t)
		}
		f := c.http
		req := tc.HTTP
		if fixed != nil {
			req = fixed
		}
		if req == nil {
			t.Fatal("an http case needs a request")
		}
		inJSON, err := json.Marshal(string(in))
		if err != nil {
			t.Fatal(err)
		}
		pairs := append([]string{"$INPUT_JSON", string(inJSON)}, bulkVars()...)
		if strings.Contains(req.Body, "$CHALLENGE") {
			ch, sig, other := f.challenge(t)
			pairs = append(pairs, "$CHALLENGE_SIG", sig, "$CHALLENGE", ch, "$OTHER_SIG", other)
		}
		for _, k := range slices.Sorted(maps.Keys(f.vars)) {
			pairs = append(pairs, k, f.vars[k])
		}
		// Longer names first, so that $ROLE_TOKEN_ID is not read as $ROLE_TOKEN.
		r := newLongestFirstReplacer(pairs)
		body := r.Replace(req.Body)
		if req.BodyFromInput {
			body = string(in)
		}
		hr, err := http.NewRequestWithContext(t.Context(), req.Method, f.ts.URL+r.Replace(req.Path), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		ct := req.ContentType
		if ct == "" && req.Method == http.MethodPost {
			ct = "application/json"
		}
		if ct != "-" && ct != "" {
			hr.Header.Set("Content-Type", ct)
		}
		if req.Auth != "" {
			hr.Header.Set("Authorization", r.Replace(req.Auth))
		}
		before := readStore(t, f.home.Store)
		resp, err := f.ts.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		after := readStore(t, f.home.Store)
		checkHTTPRefusal(t, tc, resp, data)
		checkNoSecrets(t, data, append(f.secrets(), privateKeyMarkers...))
		if diff := cmp.Diff(before, after); diff != "" {
			t.Errorf("state changed (-before +after):\n%s", diff)
		}
	}
}

func newLongestFirstReplacer(pairs []string) *strings.Replacer {
	type kv struct{ k, v string }
	var kvs []kv
	for i := 0; i+1 < len(pairs); i += 2 {
		kvs = append(kvs, kv{pairs[i], pairs[i+1]})
	}
	slices.SortStableFunc(kvs, func(a, b kv) int { return len(b.k) - len(a.k) })
	var flat []string
	for _, p := range kvs {
		flat = append(flat, p.k, p.v)
	}
	return strings.NewReplacer(flat...)
}

// checkHTTPRefusal checks the status and the JSON error body.
func checkHTTPRefusal(t *testing.T, tc Case, resp *http.Response, data []byte) {
	t.Helper()
	want := tc.Want.Status
	if want == 0 {
		want = http.StatusBadRequest
		if entryName(t) == "http-renew" {
			want = http.StatusUnauthorized
		}
	}
	if resp.StatusCode != want {
		t.Errorf("status %d, want %d: %s", resp.StatusCode, want, truncate(data))
	}
	if resp.StatusCode < 400 || resp.StatusCode > 499 {
		t.Fatalf("status %d is not a 4xx refusal", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e api.Error
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("body is not an api.Error: %v: %q", err, truncate(data))
	}
	if e.Error == "" || e.RequestID == "" || e.RequestID != resp.Header.Get("X-Request-ID") {
		t.Errorf("error %q with request ID %q (header %q)", e.Error, e.RequestID, resp.Header.Get("X-Request-ID"))
	}
	if strings.ContainsAny(e.Error, "\r\n") || !utf8.ValidString(e.Error) {
		t.Errorf("error message %q is not one clean line", e.Error)
	}
	if tc.Want.Code != "" && e.Code != tc.Want.Code {
		t.Errorf("code %q, want %q (%s)", e.Code, tc.Want.Code, e.Error)
	}
	if m := tc.Want.MsgFor(entryName(t)); !strings.Contains(e.Error, m) {
		t.Errorf("message %q does not contain %q", e.Error, m)
	}
}

// ---- fleet agent ----

// agentFixture is a fake certificate service over HTTPS whose answers a
// case can replace, and the CA key it signs KRLs with.
type agentFixture struct {
	ts     *httptest.Server
	ca     ssh.Signer
	mu     sync.Mutex
	bodies map[string]served
}

type served struct {
	status int
	ctype  string
	body   []byte
}

// goodKRLVersion is the version of the KRL the fake service serves.
const goodKRLVersion = 5

func newAgentFixture(t *testing.T) *agentFixture {
	t.Helper()
	caSigner, err := Signer("agent-ca")
	if err != nil {
		t.Fatal(err)
	}
	f := &agentFixture{ca: caSigner}
	f.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		s, ok := f.bodies[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", s.ctype)
		w.WriteHeader(s.status)
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(f.ts.Close)
	return f
}

// reset serves good answers everywhere.
func (f *agentFixture) reset(t *testing.T) {
	t.Helper()
	k := &krl.KRL{Version: goodKRLVersion, Comment: "good"}
	data, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies = map[string]served{
		"/v1/ca/user":  {200, "text/plain", append(bytes.TrimSpace(ssh.MarshalAuthorizedKey(f.ca.PublicKey())), []byte(" sshca-user-ca-1\n")...)},
		"/v1/accounts": {200, "application/json", []byte(`{"deploy":["role-deploy"],"root":["role-admin"]}`)},
	}
	f.setKRL(t, data)
}

// setKRL serves data as the KRL with a valid signature; callers hold mu.
func (f *agentFixture) setKRL(t *testing.T, data []byte) {
	t.Helper()
	sig, err := sshsig.Sign(f.ca, sshsig.Namespace, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	f.bodies["/v1/krl"] = served{200, "application/octet-stream", data}
	f.bodies["/v1/krl.sig"] = served{200, "text/plain", sig}
}

func (c *corpus) runAgent(t *testing.T, tc Case, in []byte) {
	if c.agent == nil {
		c.agent = newAgentFixture(c.t)
	}
	f := c.agent
	if tc.Agent == nil {
		t.Fatal("an agent case needs a response")
	}
	f.reset(t)
	cl, err := client.New(f.ts.URL, server.CertFingerprint(f.ts.Certificate().Raw))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := agent.Config{Client: cl, Dir: dir}
	if _, err := agent.Sync(t.Context(), cfg); err != nil {
		t.Fatalf("first sync against good answers: %v", err)
	}
	before := map[string]string{}
	hashTree(t, dir, before)
	delete(before, filepath.Join(dir, ".sshca-sync.json"))

	f.mu.Lock()
	if tc.Agent.SignBody {
		f.setKRL(t, in)
	} else {
		status := tc.Agent.Status
		if status == 0 {
			status = 200
		}
		f.bodies[tc.Agent.Path] = served{status, tc.Agent.ContentType, in}
	}
	f.mu.Unlock()

	res, err := agent.Sync(t.Context(), cfg)
	after := map[string]string{}
	hashTree(t, dir, after)
	delete(after, filepath.Join(dir, ".sshca-sync.json"))
	want := tc.Want.MsgFor("agent")
	found := err != nil && strings.Contains(err.Error(), want)
	if res != nil {
		for _, r := range res.Refused {
			found = found || strings.Contains(r, want)
		}
	}
	if !found {
		var refused []string
		if res != nil {
			refused = res.Refused
		}
		t.Errorf("no refusal containing %q: error %v, refused %q", want, err, refused)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("installed files changed (-before +after):\n%s", diff)
	}
	if st := agent.LoadState(dir); st.KRLVersion != goodKRLVersion {
		t.Errorf("state records KRL version %d after the refusal, want %d", st.KRLVersion, goodKRLVersion)
	}
}
