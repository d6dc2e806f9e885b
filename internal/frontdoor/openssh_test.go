package frontdoor

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/totp"
)

// sshClient runs the real OpenSSH client against a front door, as a user
// does: trusting the host CA (no prompt), offering one key, and answering
// keyboard-interactive prompts through SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force)
// with what answerFile holds.
type sshClient struct {
	d          *door
	dir        string
	key        string // private key path
	answerFile string
	knownHosts string
}

func newSSHClient(t *testing.T, d *door, key string) *sshClient {
	t.Helper()
	testkit.RequireTool(t, sshdtest.SSHPath)
	dir := t.TempDir()
	c := &sshClient{d: d, dir: dir, key: key, answerFile: filepath.Join(dir, "answer"), knownHosts: filepath.Join(dir, "known_hosts")}
	askpass := filepath.Join(dir, "askpass")
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\ncat '"+c.answerFile+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	kh := "@cert-authority ca.corp " + testkit.AuthorizedKey(d.hostCA) + "\n"
	if err := os.WriteFile(c.knownHosts, []byte(kh), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs `ssh ... CMD` answering prompts with answer; it returns stdout,
// stderr and ssh's exit status.
func (c *sshClient) run(t *testing.T, answer string, cmd ...string) (string, string, int) {
	t.Helper()
	if err := os.WriteFile(c.answerFile, []byte(answer+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(c.d.addr)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	args := []string{"-F", "/dev/null", "-o", "UserKnownHostsFile=" + c.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "HostKeyAlias=ca.corp", "-o", "IdentitiesOnly=yes", "-i", c.key,
		"-o", "PreferredAuthentications=publickey,keyboard-interactive", "-o", "ConnectTimeout=10",
		"-p", port, "-l", "alice", host}
	x := exec.CommandContext(ctx, sshdtest.SSHPath, append(args, cmd...)...)
	x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir, "SSH_ASKPASS=" + filepath.Join(c.dir, "askpass"),
		"SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0"}
	var out, errb strings.Builder
	x.Stdout, x.Stderr = &out, &errb
	err := x.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run ssh: %v", err)
	}
	return out.String(), errb.String(), code
}

// TestOpenSSH is the acceptance test of the front door: the real ssh
// client enrolls TOTP as a local user, gets a certificate with a code
// answered by SSH_ASKPASS, and logs into a real sshd with it; a wrong code,
// a replayed code, no code, a role not allowed, an unregistered key and a
// removed user's key are each refused with a clear message and audited.
func TestOpenSSH(t *testing.T) {
	d := startDoor(t, Limits{})
	dir := t.TempDir()
	keyPath, pub := sshdtest.GenerateKey(t, dir, "ed25519")
	strangerPath, _ := sshdtest.GenerateKey(t, t.TempDir(), "ed25519")
	d.addUser(t, "alice", nil, pub)
	c := newSSHClient(t, d, keyPath)

	// No TOTP yet: the key alone authenticates; enrollment with the
	// admin's one-time code.
	out, stderr, code := c.run(t, "", "totp-enroll", invite(t, d, "local:alice"))
	if code != 0 || !strings.HasPrefix(out, "otpauth://totp/") {
		t.Fatalf("totp-enroll: %d %q %q", code, out, stderr)
	}
	secret := secretOf(t, out)

	now := time.Now()
	good := totp.Code(secret, now)
	wrong := totp.Code(secret, now.Add(-time.Hour))
	if wrong == good {
		wrong = totp.Code(secret, now.Add(-2*time.Hour))
	}
	refusals := []struct {
		name, answer, role, want string
	}{
		{"wrong-code", wrong, "secure", "sshca: error: policy: TOTP code rejected [mfa-failed]"},
		{"mfa-missing", "", "secure", "requires a second factor: answer the TOTP prompt when connecting"},
		{"role-not-allowed", "", "sso", `sshca: error: policy: local user "alice" may not use role "sso" [role-not-allowed]`},
	}
	for _, r := range refusals {
		_, stderr, code := c.run(t, r.answer, "cert", "--role", r.role)
		if code != 1 || !strings.Contains(stderr, r.want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", r.name, code, stderr, r.want)
		}
	}

	out, stderr, code = c.run(t, good, "cert", "--role", "secure")
	if code != 0 {
		t.Fatalf("cert with the right code: %d %q", code, stderr)
	}
	cert := parseCert(t, out)
	if err := os.WriteFile(keyPath+"-cert.pub", []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = c.run(t, good, "cert", "--role", "secure")
	if code != 1 || !strings.Contains(stderr, "TOTP code already used [mfa-failed]") {
		t.Errorf("replayed code: %d %q", code, stderr)
	}

	// The certificate logs into a real sshd that trusts the user CA.
	userCA := d.activeCA(t, "user")
	account := currentUser(t)
	srv := sshdtest.Start(t, sshdtest.Config{TrustedUserCAKeys: []string{testkit.AuthorizedKey(userCA)},
		Principals: map[string][]string{account: {"role-secure"}}})
	res := srv.Login(t, sshdtest.LoginOptions{IdentityFile: keyPath})
	if !res.OK {
		t.Fatalf("login with the front door's certificate (serial %d) failed: %s\n%s", cert.Serial, res.Stderr, res.ServerLog)
	}
	if !strings.Contains(res.ServerLog, "ID local:alice role=secure") {
		t.Errorf("sshd log does not name the key ID:\n%s", res.ServerLog)
	}

	// An unregistered key, then alice's key once she is removed.
	sc := newSSHClient(t, d, strangerPath)
	_, stderr, code = sc.run(t, "", "cert")
	if code != 255 || !strings.Contains(stderr, "is not registered to a local user") {
		t.Errorf("unregistered key: %d %q", code, stderr)
	}
	if err := d.h.Store.RemoveLocalUser(t.Context(), "alice", audit.Entry{Time: time.Now(), Actor: "cli:test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user removed"}); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = c.run(t, good, "cert", "--role", "secure")
	if code != 255 || !strings.Contains(stderr, "is not registered to a local user") {
		t.Errorf("removed user: %d %q", code, stderr)
	}

	var denied string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		denied = strings.Join(auditReasons(t, d.h.Store, "denied"), "\n")
		if strings.Count(denied, "unregistered-key: ") >= 2 {
			break
		}
	}
	for _, want := range []string{"mfa-failed: policy: TOTP code rejected", "mfa-required: ", "role-not-allowed: ",
		"mfa-failed: policy: TOTP code already used", "unregistered-key: "} {
		if !strings.Contains(denied, want) {
			t.Errorf("audit has no %q in:\n%s", want, denied)
		}
	}
	if n := strings.Count(denied, "unregistered-key: "); n != 2 {
		t.Errorf("%d unregistered-key refusals audited, want 2 (stranger, removed alice)", n)
	}
}

// activeCA returns the active CA public key of type typ.
func (d *door) activeCA(t *testing.T, typ string) ssh.PublicKey {
	t.Helper()
	keys, err := d.h.Store.ListCAKeys(t.Context(), typ)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.State == "active" {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
			if err != nil {
				t.Fatal(err)
			}
			return pub
		}
	}
	t.Fatalf("no active %s CA", typ)
	return nil
}

// currentUser is the account a test's ssh logs into sshd as.
func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}
