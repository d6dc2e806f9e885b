// Package explain tests `sshca explain` against a real OpenSSH sshd
// (issue 6, acceptance 3): for well over a hundred generated scenarios it
// attempts a real login with the real ssh client and runs `sshca explain`
// on the very same files (the sshd_config sshd runs with, its trusted CA,
// principals and revoked-keys files, the certificate), and requires that
// both agree and that explain names the check sshd logged. It does so for
// every OpenSSH release (package opensshtest): Debian's 9.2, which explain
// replays by default, and 10.5, which explain is told about with
// --sshd-version (issue 13).
package e2eexplain

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/explain"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

// caKey is a CA; sha1 is set for RSA and signs with ssh-rsa (SHA-1).
type caKey struct {
	name   string
	signer ssh.Signer
	sha1   ssh.Signer
	pub    ssh.PublicKey
}

func (c *caKey) line() string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c.pub))) }

// plainSigner hides the AlgorithmSigner methods, so x/crypto's SignCert
// falls back to Sign, which for RSA is ssh-rsa with SHA-1.
type plainSigner struct{ s ssh.Signer }

func (p plainSigner) PublicKey() ssh.PublicKey { return p.s.PublicKey() }
func (p plainSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	return p.s.Sign(r, data)
}

func newCA(t *testing.T, name string, key crypto.Signer) *caKey {
	t.Helper()
	s, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &caKey{name: name, signer: s, pub: s.PublicKey()}
	if _, ok := key.(*rsa.PrivateKey); ok {
		c.sha1 = plainSigner{s}
	}
	return c
}

// subject is a user key made by ssh-keygen, so that ssh can use it.
type subject struct {
	name string
	path string
	pub  ssh.PublicKey
}

// server is one sshd and the files the scenarios rewrite.
type server struct {
	name       string
	srv        *sshdtest.Server
	krlPath    string
	principals bool // started with an AuthorizedPrincipalsFile
	trusted    []string
	// versionArg is what explain is given as --sshd-version ("" for the
	// default, 9.2).
	versionArg string
}

// scenario is one login.
type scenario struct {
	name       string
	srv        *server
	ca         *caKey
	sha1       bool
	subj       *subject
	host       bool
	principals []string
	after      time.Duration // valid after, relative to now
	before     time.Duration // valid before, relative to now
	forever    bool
	keyID      string
	crit, ext  map[string]string
	trust      []string // TrustedUserCAKeys lines; nil: the server's default
	plines     []string // principals file lines; nil: "role-a"
	noPFile    bool     // remove the principals file
	revoke     func(c *ssh.Certificate) []byte
	missingKRL bool
	want       string // the check explain must name; "" for accept
	log        string // what sshd's log must say; "" for the default of want
}

// defaultLog is what sshd 9.2 logs (at DEBUG2) for each refusal.
var defaultLog = map[string]string{
	"":                                 "Accepted certificate ID",
	explain.CheckSigAlg:                "certificate signature algorithm",
	explain.CheckRSASize:               "refusing RSA-CERT key",
	explain.CheckRevokedSerial:         "revoked by file",
	explain.CheckRevokedKeyID:          "revoked by file",
	explain.CheckRevokedKey:            "revoked by file",
	explain.CheckRevokedCA:             "revoked by file",
	explain.CheckRevokedKeysUnreadable: "Error checking authentication key",
	explain.CheckCANotTrusted:          "is not listed in",
	explain.CheckNoPrincipal:           "Certificate does not contain an authorized principal",
	explain.CheckEmptyPrincipals:       "Certificate does not contain an authorized principal",
	explain.CheckWrongCertType:         "Certificate invalid: not a user certificate",
	explain.CheckExpired:               "Certificate invalid: expired",
	explain.CheckNotYetValid:           "Certificate invalid: not yet valid",
	explain.CheckInvalidOptions:        "Invalid certificate options",
	explain.CheckSourceAddress:         "not from a permitted source address",
	explain.CheckPrincipalsOptions:     "Refused by certificate principals options",
	explain.CheckForceCommand:          "forced command options do not match",
}

// required are the refusal reasons issue 6 names; the scenarios must
// cover each, and accepts.
var required = []string{
	"", explain.CheckRevokedSerial, explain.CheckRevokedKeyID, explain.CheckRevokedKey, explain.CheckRevokedCA,
	explain.CheckCANotTrusted, explain.CheckSigAlg, explain.CheckWrongCertType, explain.CheckNoPrincipal,
	explain.CheckEmptyPrincipals, explain.CheckExpired, explain.CheckNotYetValid, explain.CheckSourceAddress,
}

func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func mustKRL(t *testing.T, build func(k *krl.KRL) error) []byte {
	t.Helper()
	k := &krl.KRL{Version: 1, Comment: "explain e2e"}
	if err := build(k); err != nil {
		t.Fatal(err)
	}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requireSSHDAsRoot needs sshd, ssh and ssh-keygen, and root: sshd must
// switch to the account, and as root the tests log in as root.
func requireSSHDAsRoot(t *testing.T) {
	t.Helper()
	testkit.RequireTool(t, sshdtest.SSHDPath)
	testkit.RequireTool(t, sshdtest.SSHPath)
	testkit.RequireTool(t, sshdtest.KeygenPath)
	if os.Geteuid() != 0 {
		testkit.SkipOrFatal(t, "the sshd acceptance test must run as root")
	}
}

// secondKRLKeyID is revoked by the second RevokedKeys file of the servers
// of releases that take several (10.3 and later).
const secondKRLKeyID = "revoked-by-the-second-krl"

// versionArg is how explain is told the release: nothing for 9.2, the
// default; the sshd program for the newest, so that reading the version
// from sshd -V is exercised.
func versionArg(rel *opensshtest.Flavour) string {
	if rel.Major == 9 && rel.Minor == 2 {
		return ""
	}
	return rel.SSHD
}

func TestExplainAgreesWithSSHD(t *testing.T) {
	requireSSHDAsRoot(t)
	for _, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			agreeWithSSHD(t, rel)
		})
	}
}

func agreeWithSSHD(t *testing.T, rel *opensshtest.Flavour) {
	const account = "root"
	dir := t.TempDir()

	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384Key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	caEd, caEC, caEC384, caRSA, caOther := newCA(t, "ed25519", edKey), newCA(t, "ecdsa", ecKey),
		newCA(t, "ecdsa384", ec384Key), newCA(t, "rsa", rsaKey), newCA(t, "other", otherKey)

	subj := func(typ string) *subject {
		p, pub := sshdtest.GenerateKey(t, dir, typ)
		return &subject{name: typ, path: p, pub: pub}
	}
	sEd, sEd2, sEd3, sEC, sRSA, sRSA1024 := subj("ed25519"), subj("ed25519"), subj("ed25519"), subj("ecdsa"), subj("rsa-2048"), subj("rsa-1024")

	trusted := []string{caEd.line(), caEC.line(), caEC384.line(), caRSA.line()}
	// From 10.3 on, every server has a second RevokedKeys file that
	// revokes one key ID under every CA.
	var second string
	if rel.AtLeast(10, 3) {
		second = filepath.Join(dir, "second.krl")
		writeAtomic(t, second, mustKRL(t, func(k *krl.KRL) error { return k.RevokeKeyID(nil, secondKRLKeyID) }))
	}
	start := func(name string, principals bool, extra ...string) *server {
		s := &server{name: name, krlPath: filepath.Join(dir, name+".krl"), principals: principals, trusted: trusted, versionArg: versionArg(rel)}
		writeAtomic(t, s.krlPath, nil)
		if second != "" {
			// sshd keeps the first RevokedKeys line: this one.
			extra = append(extra, "RevokedKeys "+s.krlPath+" "+second)
		}
		cfg := sshdtest.Config{
			OpenSSH:           rel,
			TrustedUserCAKeys: trusted,
			RevokedKeysFile:   s.krlPath,
			Extra:             append([]string{"LogLevel DEBUG2"}, extra...),
		}
		if principals {
			cfg.Principals = map[string][]string{account: {"role-a"}}
		}
		s.srv = sshdtest.Start(t, cfg)
		return s
	}
	files := start("files", true)
	names := start("names", false, "CASignatureAlgorithms +ssh-rsa")
	strict := start("strict", true, "CASignatureAlgorithms ecdsa-sha2-*,ssh-ed25519", "RequiredRSASize 2048")

	scenarios := buildScenarios(t, rel, account, files, names, strict,
		[]*caKey{caEd, caEC, caEC384, caRSA, caOther},
		[]*subject{sEd, sEd2, sEd3, sEC, sRSA, sRSA1024})

	// Every required reason, and accepts, must be covered.
	covered := map[string]int{}
	for _, sc := range scenarios {
		covered[sc.want]++
	}
	for _, r := range required {
		if covered[r] == 0 {
			t.Errorf("no scenario covers %q", r)
		}
	}
	if len(scenarios) < 100 {
		t.Errorf("only %d scenarios, want at least 100", len(scenarios))
	}
	t.Logf("%d scenarios; by expected check: %v", len(scenarios), covered)

	// The servers run side by side; each one's scenarios run in order,
	// since they rewrite that server's files.
	var serial, agreed atomic.Uint64
	serial.Store(1000)
	t.Run("sshd", func(t *testing.T) {
		for _, srv := range []*server{files, names, strict} {
			t.Run(srv.name, func(t *testing.T) {
				t.Parallel()
				for i, sc := range scenarios {
					if sc.srv != srv {
						continue
					}
					prefix := "ok"
					if sc.want != "" {
						prefix = "fail"
					}
					t.Run(fmt.Sprintf("%s/%03d-%s", prefix, i, sc.name), func(t *testing.T) {
						if runScenario(t, dir, account, sc, serial.Add(1)) {
							agreed.Add(1)
						}
					})
				}
			})
		}
	})
	t.Logf("explain agreed with sshd on %d of %d scenarios", agreed.Load(), len(scenarios))
}

// runScenario prepares the server's files, logs in, runs explain and
// compares. It reports whether everything agreed.
func runScenario(t *testing.T, dir, account string, sc scenario, serial uint64) bool {
	now := time.Now()
	cert := makeCert(t, sc, serial, now)
	certPath := filepath.Join(dir, fmt.Sprintf("cert-%d-cert.pub", serial))
	if err := os.WriteFile(certPath, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	s := sc.srv
	trust := sc.trust
	if trust == nil {
		trust = s.trusted
	}
	writeAtomic(t, s.srv.TrustedUserCAKeysPath, []byte(strings.Join(trust, "\n")+"\n"))
	if s.principals {
		p := filepath.Join(s.srv.PrincipalsDir, account)
		if sc.noPFile {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		} else {
			lines := sc.plines
			if lines == nil {
				lines = []string{"role-a"}
			}
			writeAtomic(t, p, []byte(strings.Join(lines, "\n")+"\n"))
		}
	}
	switch {
	case sc.missingKRL:
		if err := os.Remove(s.krlPath); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	case sc.revoke != nil:
		writeAtomic(t, s.krlPath, sc.revoke(cert))
	default:
		writeAtomic(t, s.krlPath, nil)
	}

	var res sshdtest.Result
	if sc.host {
		res = goLogin(t, s.srv, account, sc.subj.path, cert)
	} else {
		res = s.srv.Login(t, sshdtest.LoginOptions{User: account, IdentityFile: sc.subj.path, CertificateFile: certPath})
	}

	var stdout, stderr bytes.Buffer
	args := []string{"explain", "--cert", certPath, "--user", account, "--from", "127.0.0.1", "--sshd-config", s.srv.ConfigPath, "--verbose"}
	if s.versionArg != "" {
		args = append(args, "--sshd-version", s.versionArg)
	}
	code := cli.Run(t.Context(), args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	out := stdout.String()
	check := ""
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "check: "); ok {
			check = v
		}
	}
	ok := true
	fail := func(format string, args ...any) {
		t.Helper()
		ok = false
		t.Errorf(format+"\n--- explain (exit %d):\n%s%s\n--- ssh stderr:\n%s\n--- sshd log:\n%s", append(args, code, out, stderr.String(), res.Stderr, res.ServerLog)...)
	}
	switch {
	case code != 0 && code != 1:
		fail("explain exited %d", code)
	case res.OK != (code == 0):
		fail("sshd login ok=%v but explain exit %d", res.OK, code)
	case check != sc.want:
		fail("explain names check %q, the scenario expects %q", check, sc.want)
	}
	want := sc.log
	if want == "" {
		want = defaultLog[sc.want]
	}
	if want != "" && !strings.Contains(res.ServerLog, want) {
		fail("sshd's log lacks %q", want)
	}
	return ok
}

func makeCert(t *testing.T, sc scenario, serial uint64, now time.Time) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{
		Key:             sc.subj.pub,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           sc.keyID,
		ValidPrincipals: sc.principals,
		ValidAfter:      uint64(now.Add(sc.after).Unix()),
		ValidBefore:     uint64(now.Add(sc.before).Unix()),
		Permissions:     ssh.Permissions{CriticalOptions: sc.crit, Extensions: sc.ext},
	}
	if c.KeyId == "" {
		c.KeyId = fmt.Sprintf("kid-%d", serial)
	}
	if sc.forever {
		c.ValidAfter, c.ValidBefore = 0, ssh.CertTimeInfinity
	}
	if sc.host {
		c.CertType = ssh.HostCert
	}
	if c.Extensions == nil {
		c.Extensions = map[string]string{"permit-pty": ""}
	}
	signer := sc.ca.signer
	if sc.sha1 {
		signer = sc.ca.sha1
	}
	if err := c.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	if sc.sha1 && c.Signature.Format != ssh.KeyAlgoRSA {
		t.Fatalf("SHA-1 signing gave %s", c.Signature.Format)
	}
	return c
}

// goLogin logs in with x/crypto's client offering only cert, for the
// certificates the OpenSSH client will not offer (host certificates).
func goLogin(t *testing.T, srv *sshdtest.Server, account, keyPath string, cert *ssh.Certificate) sshdtest.Result {
	t.Helper()
	pem, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	offset := len(srv.Log())
	var res sshdtest.Result
	client, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{
		User:            account,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(cs)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostPublicKey),
		Timeout:         10 * time.Second,
	})
	if err == nil {
		var sess *ssh.Session
		if sess, err = client.NewSession(); err == nil {
			var out []byte
			out, err = sess.Output(sshdtest.DefaultCommand)
			res.Stdout = string(out)
			res.OK = err == nil && strings.Contains(res.Stdout, "sshca-login-ok")
		}
		client.Close()
	}
	if err != nil {
		res.Stderr = err.Error()
	}
	// sshd's per-connection process may still be writing its last lines.
	time.Sleep(100 * time.Millisecond)
	if log := srv.Log(); len(log) >= offset {
		res.ServerLog = log[offset:]
	}
	return res
}
