package doors_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/frontdoor"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/server"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/totp"
)

// world is one CA home on disk, the service over it behind HTTPS, the SSH
// front door over it, an OIDC issuer, and the real CLI run in-process
// against the same home.
type world struct {
	dir    string         // the CA home
	work   string         // keys, certificates, token files
	clk    *testkit.Clock // shared by the home's authority, the service and the ID token verifier; the CLI runs on the real clock
	iss    *oidctest.Issuer
	oidc   server.IDTokenVerifier
	totp   map[string][]byte // TOTP secrets by person
	h      *home.Home
	ts     *httptest.Server
	pin    string
	client *client.Client
	n      int
	// The SSH front door: its address, the host CA that certifies it, and
	// the one key of each local user.
	fd       *frontdoor.Server
	fdDone   chan error
	fdAddr   string
	fdHostCA ssh.PublicKey
	local    map[string]ssh.Signer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{dir: filepath.Join(t.TempDir(), "ca"), work: t.TempDir(), clk: &testkit.Clock{}, totp: map[string][]byte{}, local: map[string]ssh.Signer{}}
	if err := home.Init(ctx, w.dir, home.InitOptions{Actor: "test", Now: w.clk.Now}); err != nil {
		t.Fatal(err)
	}
	w.iss = oidctest.New(t)
	v, err := oidc.NewVerifier(ctx, oidc.Config{Issuer: w.iss.URL(), ClientID: oidctest.ClientID, HTTPClient: w.iss.Client(),
		Now: w.clk.Now, RefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.oidc = server.OIDC(v) // what sshca serve uses
	t.Cleanup(w.close)
	return w
}

// open puts policy in the home's sshca.yaml and opens the home and a new
// service over it, as a restart of `sshca serve` after a policy edit does.
func (w *world) open(t *testing.T, policy string) {
	t.Helper()
	w.close()
	if err := os.WriteFile(filepath.Join(w.dir, home.ConfigFile), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := home.Open(context.Background(), w.dir, home.Options{Now: w.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Config: h.Config, Store: h.Store, Authority: h.Authority, OIDC: w.oidc, Now: w.clk.Now})
	w.h, w.ts = h, httptest.NewTLSServer(srv.Handler())
	w.pin = api.CertFingerprint(w.ts.Certificate().Raw)
	if w.client, err = client.New(w.ts.URL, w.pin); err != nil {
		t.Fatal(err)
	}
	w.openFrontDoor(t)
}

// openFrontDoor starts the SSH front door over the open home, as `sshca
// serve` with service.ssh_listen does: its host key certified by the
// home's host CA as ca.corp, limits out of the matrix's way.
func (w *world) openFrontDoor(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	hs, _, err := frontdoor.CertifyHost(ctx, w.h.Authority, testkit.NewSigner(t), "servers", []string{"ca.corp"})
	if err != nil {
		t.Fatal(err)
	}
	lots := 1000000
	fd, err := frontdoor.New(frontdoor.Options{Authority: w.h.Authority, Users: w.h.Store, HostSigner: hs,
		Limits: frontdoor.Limits{ConnsPerMinute: lots, CertsPerMinute: lots}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.fd, w.fdDone, w.fdAddr = fd, make(chan error, 1), ln.Addr().String()
	go func(done chan error) { done <- fd.Serve(ln) }(w.fdDone)
	keys, err := w.h.Store.ListCAKeys(ctx, "host")
	if err != nil {
		t.Fatal(err)
	}
	if w.fdHostCA, _, _, _, err = ssh.ParseAuthorizedKey([]byte(keys[0].PublicKey)); err != nil {
		t.Fatal(err)
	}
}

// addLocalUser registers a local user with one key, as `sshca user add`
// does.
func (w *world) addLocalUser(t *testing.T, name string, groups []string) {
	t.Helper()
	s := testkit.NewSigner(t)
	now := w.clk.Now()
	u := store.LocalUser{Name: name, Groups: groups, CreatedBy: "cli:test", CreatedAt: now,
		Keys: []store.LocalUserKey{{Fingerprint: ssh.FingerprintSHA256(s.PublicKey()), PublicKey: testkit.AuthorizedKey(s.PublicKey()), AddedAt: now}}}
	ev := audit.Entry{Time: now, Actor: "cli:test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user added"}
	if err := w.h.Store.AddLocalUser(context.Background(), u, ev); err != nil {
		t.Fatal(err)
	}
	w.local[name] = s
}

// ssh connects to the front door as local user c with their key,
// answering a TOTP prompt (which comes only to users with TOTP enrolled)
// with code, and runs command line cmd.
func (w *world) ssh(t *testing.T, c caller, code, cmd string) (stdout, stderr string, exit int) {
	t.Helper()
	checker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
		return bytes.Equal(auth.Marshal(), w.fdHostCA.Marshal())
	}, Clock: w.clk.Now} // the host certificate was signed on the world's clock
	answer := ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
		out := make([]string, len(questions))
		for i := range out {
			out[i] = code
		}
		return out, nil
	})
	conn, err := ssh.Dial("tcp", w.fdAddr, &ssh.ClientConfig{User: c.user, Auth: []ssh.AuthMethod{ssh.PublicKeys(w.local[c.user]), answer},
		HostKeyCallback: func(_ string, remote net.Addr, key ssh.PublicKey) error {
			return checker.CheckHostKey("ca.corp:22", remote, key)
		},
		Timeout: time.Minute})
	if err != nil {
		t.Fatalf("front door: %v", err)
	}
	defer conn.Close()
	sess, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var so, se bytes.Buffer
	sess.Stdout, sess.Stderr = &so, &se
	err = sess.Run(cmd)
	var ee *ssh.ExitError
	switch {
	case errors.As(err, &ee):
		exit = ee.ExitStatus()
	case err != nil:
		t.Fatalf("front door: %s: %v", cmd, err)
	}
	return so.String(), se.String(), exit
}

func (w *world) close() {
	if w.fd != nil {
		w.fd.Close()
		<-w.fdDone // ErrClosed
		w.fd = nil
	}
	if w.ts != nil {
		w.ts.Close()
		w.ts = nil
	}
	if w.h != nil {
		w.h.Close()
		w.h = nil
	}
}

// enrollTOTP gives a TOTP authenticator to user, a factorID.
func (w *world) enrollTOTP(t *testing.T, user string) {
	t.Helper()
	secret := []byte("doors-" + strings.ReplaceAll(user, ":", "-") + "-0123456789")
	ev := audit.Entry{Time: w.clk.Now(), Actor: "test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp enrolled"}
	if err := w.h.Store.PutTOTP(context.Background(), user, secret, ev); err != nil {
		t.Fatal(err)
	}
	w.totp[user] = secret
}

// totpCode is the code a caller sends: for "valid", the clock first moves
// to the next 30 s step, since each code works once.
func (w *world) totpCode(c caller) string {
	secret := w.totp[factorID(c)]
	switch {
	case c.totp == "":
		return ""
	case c.totp == "valid" && secret != nil:
		w.clk.Advance(31 * time.Second)
		return totp.Code(secret, w.clk.Now())
	case c.totp == "valid":
		return "123456" // well-formed; nobody's code
	}
	now := w.clk.Now()
	for _, bad := range []string{"000000", "111111", "222222", "333333"} {
		if secret == nil || (bad != totp.Code(secret, now) && bad != totp.Code(secret, now.Add(-30*time.Second)) && bad != totp.Code(secret, now.Add(30*time.Second))) {
			return bad
		}
	}
	panic("unreachable")
}

// idToken is a fresh ID token from the issuer for person c.
func (w *world) idToken(c caller) string {
	now := w.clk.Now()
	claims := map[string]any{"sub": c.user, "preferred_username": c.user, "iat": now, "exp": now.Add(5 * time.Minute)}
	if c.groups != nil {
		claims["groups"] = c.groups
	}
	if c.amr != nil {
		claims["amr"] = c.amr
	}
	return w.iss.Mint(claims, "RS256")
}

// cred is an API token made for one run.
type cred struct{ secret, id, name string }

// token stores a token of c's kind and scope, valid from created for ttl.
func (w *world) token(t *testing.T, c caller, name string, created time.Time, ttl time.Duration) cred {
	t.Helper()
	kind := c.tokKind
	if c.kind == "enroll" {
		kind = store.TokenEnroll
	}
	secret, tok, err := ca.NewToken(name, kind, c.tokRoles, c.tokPrincipals, "test", created, ttl)
	if err != nil {
		t.Fatal(err)
	}
	ev := audit.Entry{Time: created, Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token created"}
	if err := w.h.Store.CreateToken(context.Background(), tok, ev); err != nil {
		t.Fatal(err)
	}
	return cred{secret: secret, id: tok.ID, name: name}
}

// freshToken makes c's token in the state the row says, now.
func (w *world) freshToken(t *testing.T, c caller, name string) cred {
	t.Helper()
	now := w.clk.Now()
	if c.tokState == "expired" {
		return w.token(t, c, name, now.Add(-2*time.Hour), time.Hour)
	}
	cr := w.token(t, c, name, now, 24*time.Hour)
	switch c.tokState {
	case "revoked":
		w.revokeToken(t, cr)
	case "revoked-after-use":
		// Revoked by fresh() once the token has been used.
	case "used":
		ev := audit.Entry{Time: now, Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "enrollment token used"}
		if err := w.h.Store.ConsumeToken(context.Background(), cr.id, now, ev); err != nil {
			t.Fatal(err)
		}
	}
	return cr
}

func (w *world) revokeToken(t *testing.T, cr cred) {
	t.Helper()
	now := w.clk.Now()
	ev := audit.Entry{Time: now, Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token revoked"}
	if err := w.h.Store.RevokeToken(context.Background(), cr.id, now, ev); err != nil {
		t.Fatal(err)
	}
}

// tokenUsed reports whether an enrollment token was spent.
func (w *world) tokenUsed(t *testing.T, id string) bool {
	t.Helper()
	tok, err := w.h.Store.GetToken(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return !tok.UsedAt.IsZero()
}

// newKey makes a fresh key for one run; with onDisk, also its private key
// file and .pub for the CLI.
func (w *world) newKey(t *testing.T, label string, onDisk bool) (keyPath string, pub ssh.PublicKey) {
	t.Helper()
	w.n++
	keyPath = filepath.Join(w.work, fmt.Sprintf("%03d-%s", w.n, label))
	if onDisk {
		s, _, _, err := client.EnsureKey(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		return keyPath, s.PublicKey()
	}
	p, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err = ssh.NewPublicKey(p)
	if err != nil {
		t.Fatal(err)
	}
	return "", pub
}

func keyLine(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// cli runs sshca in-process, as root, against the world's home.
func (w *world) cli(args ...string) (stdout, stderr string, code int) {
	env := map[string]string{"USER": "root", "HOME": w.work}
	var so, se bytes.Buffer
	code = cli.Run(context.Background(), args, strings.NewReader(""), &so, &se, func(k string) string { return env[k] })
	return so.String(), se.String(), code
}

// outcome is what a door gave back.
type outcome struct {
	cert   *ssh.Certificate
	status int    // HTTP status of a refusal; 0 when the door is not HTTP
	code   string // the refusal's code: the HTTP code field, or the domain's rule
	msg    string // the refusal's message as the door shows it
}

// apiOutcome turns a client error into an outcome.
func apiOutcome(t *testing.T, cert *ssh.Certificate, err error) outcome {
	t.Helper()
	if err == nil {
		return outcome{cert: cert}
	}
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("request failed without an answer from the service: %v", err)
	}
	return outcome{status: ae.Status, code: ae.Code, msg: ae.Message}
}

var (
	refusedRe = regexp.MustCompile(`^server refused \((\d+) ([a-z0-9-]+)\): `)
	fdRuleRe  = regexp.MustCompile(` \[([a-z0-9-]+)\]$`)
	reqIDRe   = regexp.MustCompile(` \[request [0-9a-f]+\]$`)
	timeRe    = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)`)
)

// cliOutcome reads a CLI run: the certificate file it wrote, or the
// refusal on its error line (a service's refusal as client.APIError prints it).
func cliOutcome(t *testing.T, code int, stderr, certFile string) outcome {
	t.Helper()
	if code == 0 {
		data, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatalf("exit 0 but no certificate: %v", err)
		}
		cert, err := client.ParseCert(data)
		if err != nil {
			t.Fatal(err)
		}
		return outcome{cert: cert}
	}
	line, _, _ := strings.Cut(stderr, "\n")
	msg, ok := strings.CutPrefix(line, "sshca: error: ")
	if code != 1 || !ok {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	o := outcome{msg: msg}
	if m := refusedRe.FindStringSubmatch(msg); m != nil {
		o.status, _ = strconv.Atoi(m[1])
		o.code = m[2]
		o.msg = reqIDRe.ReplaceAllString(msg[len(m[0]):], "")
	}
	return o
}

// sshOutcome reads a front door run: the certificate on stdout, or the
// refusal on its one error line, which ends in the rule: "[rule]".
func sshOutcome(t *testing.T, exit int, stdout, stderr string) outcome {
	t.Helper()
	if exit == 0 {
		cert, err := client.ParseCert([]byte(stdout))
		if err != nil {
			t.Fatalf("exit 0: %v (stderr %q)", err, stderr)
		}
		return outcome{cert: cert}
	}
	line, _, _ := strings.Cut(stderr, "\n")
	msg, ok := strings.CutPrefix(line, "sshca: error: ")
	m := fdRuleRe.FindStringSubmatch(msg)
	if exit != 1 || !ok || m == nil {
		t.Fatalf("front door: exit %d: %q", exit, stderr)
	}
	return outcome{code: m[1], msg: strings.TrimSuffix(msg, m[0])}
}

// normalize makes refusal messages of different doors comparable: without
// the "policy: " prefix, the run's own token name, or timestamps.
func normalize(msg, tokenName string) string {
	msg = strings.TrimPrefix(msg, "policy: ")
	if tokenName != "" {
		msg = strings.ReplaceAll(msg, tokenName, "<token>")
	}
	return timeRe.ReplaceAllString(msg, "<time>")
}

// snapshot is what a refusal must leave unchanged: the highest serial,
// the certificates of the run's subject key (every run has its own key),
// and the head of the audit log.
type snapshot struct {
	maxSerial uint64
	certs     int
	head      uint64
}

func (w *world) snap(t *testing.T, key ssh.PublicKey) snapshot {
	t.Helper()
	ctx := context.Background()
	ms, err := w.h.Store.MaxSerial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := w.h.Store.ListCerts(ctx, store.CertFilter{SubjectFP: ssh.FingerprintSHA256(key)})
	if err != nil {
		t.Fatal(err)
	}
	head, _, err := w.h.Store.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{maxSerial: ms, certs: len(certs), head: head}
}

// appended returns the audit entries a run appended, which must all name
// one of actors (the run's caller, or "unauthenticated" for a request
// refused before its caller was known): reading them by actor is much
// cheaper than reading the whole log after every run.
func (w *world) appended(t *testing.T, s0, s1 snapshot, actors ...string) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for _, a := range actors {
		es, err := w.h.Store.AuditEntries(context.Background(), store.AuditFilter{Actor: a})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Seq > s0.head && e.Seq <= s1.head {
				out = append(out, e)
			}
		}
	}
	if uint64(len(out)) != s1.head-s0.head {
		t.Errorf("audit: the run appended %d entries, %d of them by %v: %+v", s1.head-s0.head, len(out), actors, out)
	}
	return out
}

// only returns the entries of action.
func only(es []audit.Entry, action string) []audit.Entry {
	var out []audit.Entry
	for _, e := range es {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func fmtTTL(d time.Duration) string {
	switch {
	case d == 0:
		return ""
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}
