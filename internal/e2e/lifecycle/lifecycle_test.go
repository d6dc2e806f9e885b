// Package lifecycle tests the CA key lifecycle of issue 6 end to end:
// rotation with overlap of the user and the host CA, a CA key held only by
// ssh-agent, and the emergency revocation of a CA key. The sshca command
// line runs in-process (cli.Run) against a real sshd and ssh client started
// by package sshdtest, which are the judges. The package holds tests only
// and never touches the system's sshd, ssh or agent configuration.
package lifecycle

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

// policy is the sshca.yaml of every test home. retire_grace is short so
// that automatic retirement happens within a test.
const policy = `backdate: 5m
retire_grace: 1s
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
  servers:
    type: host
    principals: ["127.0.0.1"]
    max_ttl: 1h
`

// sshdDebug2 makes sshd log why it refuses a certificate's CA ("CA ... is
// not listed in ..."), which it says only at DEBUG2.
var sshdDebug2 = []string{"LogLevel DEBUG2"}

// caHome is a CA home driven through the CLI in-process with a fixed
// environment.
type caHome struct{ *e2etest.Home }

func newHome(t *testing.T, keyType string) *caHome {
	t.Helper()
	testkit.RequireTool(t, sshdtest.KeygenPath)
	h := &caHome{&e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), Env: map[string]string{"USER": "e2e"}}}
	h.Must("init", "--key-type", keyType)
	if err := os.WriteFile(filepath.Join(h.Dir, home.ConfigFile), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// with returns the same home seen with one more environment variable.
func (h *caHome) with(name, value string) *caHome {
	return &caHome{h.With(map[string]string{name: value})}
}

// generation is one row of `sshca ca list`.
type generation struct {
	state, signer, fingerprint string
}

// generations parses `sshca ca list --type T` by generation number.
func (h *caHome) generations(caType string) map[int]generation {
	h.T.Helper()
	out := h.Must("ca", "list", "--type", caType)
	gens := map[int]generation{}
	for _, l := range e2etest.Lines(out)[1:] {
		f := strings.Fields(l)
		if len(f) < 6 || f[0] != caType {
			h.T.Fatalf("ca list: unexpected line %q", l)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			h.T.Fatalf("ca list: generation in %q: %v", l, err)
		}
		gens[n] = generation{state: f[2], signer: f[4], fingerprint: f[5]}
	}
	return gens
}

// wantStates fails unless `ca list` shows exactly these generation states.
func (h *caHome) wantStates(caType string, want map[int]string) map[int]generation {
	h.T.Helper()
	gens := h.generations(caType)
	got := map[int]string{}
	for n, g := range gens {
		got[n] = g.state
	}
	if len(got) != len(want) {
		h.T.Fatalf("ca list --type %s: states %v, want %v", caType, got, want)
	}
	for n, s := range want {
		if got[n] != s {
			h.T.Fatalf("ca list --type %s: states %v, want %v", caType, got, want)
		}
	}
	return gens
}

// published runs `ca show` with args and returns its lines and the SHA256
// fingerprints of the keys they carry, in order.
func (h *caHome) published(args ...string) (lns, fps []string) {
	h.T.Helper()
	lns = e2etest.Lines(h.Must(append([]string{"ca", "show"}, args...)...))
	for _, l := range lns {
		rest := l
		if after, ok := strings.CutPrefix(l, "@cert-authority "); ok {
			_, rest, _ = strings.Cut(after, " ") // drop the host pattern
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rest))
		if err != nil {
			h.T.Fatalf("ca show: line %q: %v", l, err)
		}
		fps = append(fps, ssh.FingerprintSHA256(pub))
	}
	return lns, fps
}

// wantPublished fails unless `ca show` lists exactly the generations want
// (by fingerprint, in any order) and returns its lines.
func (h *caHome) wantPublished(gens map[int]generation, want []int, args ...string) []string {
	h.T.Helper()
	lns, fps := h.published(args...)
	var wantFPs []string
	for _, n := range want {
		wantFPs = append(wantFPs, gens[n].fingerprint)
	}
	if len(fps) != len(wantFPs) {
		h.T.Fatalf("ca show %v: %d lines %q, want generations %v", args, len(lns), lns, want)
	}
	for _, fp := range wantFPs {
		if !contains(fps, fp) {
			h.T.Fatalf("ca show %v: %q lacks generation with %s (want generations %v)", args, lns, fp, want)
		}
	}
	return lns
}

// signUser makes a fresh ed25519 key in dir, has sshca certify it under
// role deploy and returns the private key path (the certificate is beside
// it as <key>-cert.pub, where ssh looks for it) and the certificate.
func (h *caHome) signUser(dir, id, ttl string) (string, *ssh.Certificate) {
	h.T.Helper()
	return h.SignUser(dir, "--role", "deploy", "--id", id, "--ttl", ttl)
}

// signHost certifies hostPub for 127.0.0.1 and returns the certificate in
// authorized-keys format.
func (h *caHome) signHost(dir string, hostPub ssh.PublicKey, id, ttl string) ([]byte, error) {
	pubFile := filepath.Join(dir, id+".pub")
	if err := os.WriteFile(pubFile, ssh.MarshalAuthorizedKey(hostPub), 0o644); err != nil {
		return nil, err
	}
	certFile := filepath.Join(dir, id+"-cert.pub")
	h.Must("sign", "host", "--role", "servers", "--id", id, "--principals", "127.0.0.1", "--ttl", ttl, "--out", certFile, pubFile)
	return os.ReadFile(certFile)
}

// signedBy fails unless cert's signing CA has fingerprint fp.
func signedBy(t *testing.T, what string, cert *ssh.Certificate, fp string) {
	t.Helper()
	if got := ssh.FingerprintSHA256(cert.SignatureKey); got != fp {
		t.Fatalf("%s: signed by CA %s, want %s", what, got, fp)
	}
}

// mustLogin fails unless the key's certificate logs in.
func mustLogin(t *testing.T, srv *sshdtest.Server, key, what string) {
	t.Helper()
	if r := srv.Login(t, sshdtest.LoginOptions{IdentityFile: key}); !r.OK {
		t.Fatalf("%s: login refused: exit %d\nssh: %s\nsshd: %s", what, r.ExitCode, r.Stderr, r.ServerLog)
	}
}

// mustBeRefused fails unless the key's certificate is refused and sshd's
// log of the attempt contains why.
func mustBeRefused(t *testing.T, srv *sshdtest.Server, key, what, why string) {
	t.Helper()
	r := srv.Login(t, sshdtest.LoginOptions{IdentityFile: key})
	if r.OK {
		t.Fatalf("%s: login accepted, want refused", what)
	}
	if !strings.Contains(r.Stderr, "Permission denied") {
		t.Errorf("%s: ssh exit %d without \"Permission denied\": %s", what, r.ExitCode, r.Stderr)
	}
	if !strings.Contains(r.ServerLog, why) {
		t.Errorf("%s: sshd log lacks %q:\n%s", what, why, r.ServerLog)
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// waitRetired polls `ca show` (which retires keys whose certificates have
// all expired, plus retire_grace) until generation gen is no longer
// published, for at most until certificates of gen expire plus slack.
func (h *caHome) waitRetired(caType string, gen int, lastExpiry time.Time) {
	h.T.Helper()
	fp := h.generations(caType)[gen].fingerprint
	// The store may keep the expiry with sub-second precision, the
	// certificate only in whole seconds; grace is 1s.
	deadline := lastExpiry.Add(5 * time.Second)
	for {
		if _, fps := h.published("--type", caType); !contains(fps, fp) {
			return
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("%s CA generation %d still published at %s, its last certificate expired at %s",
				caType, gen, time.Now().Format(time.RFC3339), lastExpiry.Format(time.RFC3339))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func certExpiry(c *ssh.Certificate) time.Time {
	return time.Unix(int64(c.ValidBefore), 0)
}
