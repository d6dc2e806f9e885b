// Package e2e holds end-to-end tests only: the sshca command line (run
// in-process through cli.Run) against a real OpenSSH sshd and ssh client
// started by package sshdtest. It has no non-test code and never touches
// the system's sshd or ssh configuration.
package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
)

// policy is the hand-written sshca.yaml of the end-to-end home.
const policy = `backdate: 5m
roles:
  deploy:
    type: user
    principals: [role-deploy, other]
    default_ttl: 10m
    max_ttl: 1h
    extensions: [permit-pty]
  rsync:
    type: user
    principals: [role-rsync]
    max_ttl: 1h
    force_command: /bin/echo forced-command-ran
    extensions: []
  pin:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    verify_required: true
  servers:
    type: host
    principals: ["127.0.0.1", "localhost", "*.test"]
    max_ttl: 1h
`

// sshca returns the CA home at dir, driven through the CLI in-process by
// the test t.
func sshca(t *testing.T, dir string) *e2etest.Home {
	return &e2etest.Home{T: t, Dir: dir, Env: map[string]string{"USER": "e2e"}}
}

// TestSSHD is acceptance 2 of issue 2: certificates from the sshca CLI
// judged by a real sshd and ssh client, of every OpenSSH release (issue 13).
func TestSSHD(t *testing.T) {
	for _, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			sshdAcceptance(t, rel)
		})
	}
}

func sshdAcceptance(t *testing.T, rel *opensshtest.Flavour) {
	caHome := filepath.Join(t.TempDir(), "ca")
	sshca(t, caHome).Must("init")
	if err := os.WriteFile(filepath.Join(caHome, home.ConfigFile), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	srv := sshdtest.Start(t, sshdtest.Config{
		OpenSSH:           rel,
		TrustedUserCAKeys: e2etest.Lines(sshca(t, caHome).Must("ca", "show", "--type", "user")),
		Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy", "role-rsync"}},
		SignHostKey: func(hostPub ssh.PublicKey) ([]byte, error) {
			pubFile := filepath.Join(work, "ssh_host_key.pub")
			if err := os.WriteFile(pubFile, ssh.MarshalAuthorizedKey(hostPub), 0o644); err != nil {
				return nil, err
			}
			certFile := filepath.Join(work, "ssh_host_key-cert.pub")
			sshca(t, caHome).Must("sign", "host", "--role", "servers", "--id", "sshd-e2e",
				"--principals", "127.0.0.1,localhost", "--out", certFile, pubFile)
			return os.ReadFile(certFile)
		},
	})
	hostCA := e2etest.Lines(sshca(t, caHome).Must("ca", "show", "--type", "host", "--known-hosts", srv.KnownHostsPattern()))
	if len(hostCA) != 1 || !strings.HasPrefix(hostCA[0], "@cert-authority "+srv.KnownHostsPattern()+" ") {
		t.Fatalf("ca show --known-hosts: %q", hostCA)
	}

	// Signed first, so that its second of life passes while the other
	// logins run.
	expiredKey, expiredCert := sshca(t, caHome).SignUser(work, "--role", "deploy", "--id", "expired-e2e", "--ttl", "1s")

	// Every login trusts the server only through the host CA line.
	login := func(t *testing.T, key, command string) sshdtest.Result {
		t.Helper()
		return srv.Login(t, sshdtest.LoginOptions{IdentityFile: key, KnownHosts: hostCA, Command: command})
	}

	t.Run("ok/deploy-logs-in", func(t *testing.T) {
		key, cert := sshca(t, caHome).SignUser(work, "--role", "deploy", "--id", "deploy-e2e")
		res := login(t, key, "")
		if !res.OK {
			t.Fatalf("deploy certificate refused: exit %d\nstderr: %s\nsshd: %s", res.ExitCode, res.Stderr, res.ServerLog)
		}
		// sshd names the certificate it accepted: key ID and serial.
		if want := "ID deploy-e2e (serial " + strconv.FormatUint(cert.Serial, 10) + ")"; !strings.Contains(res.ServerLog, want) {
			t.Errorf("sshd log does not show %q:\n%s", want, res.ServerLog)
		}
	})

	t.Run("fail/principal-not-listed", func(t *testing.T) {
		key, cert := sshca(t, caHome).SignUser(work, "--role", "deploy", "--id", "other-e2e", "--principals", "other")
		if len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != "other" {
			t.Fatalf("principals %q, want [other]", cert.ValidPrincipals)
		}
		res := login(t, key, "")
		if res.OK || strings.Contains(res.Stdout, "sshca-login-ok") {
			t.Fatalf("certificate with principal \"other\" logged in\nsshd: %s", res.ServerLog)
		}
		if strings.Contains(res.ServerLog, "Accepted publickey") {
			t.Errorf("sshd accepted the key:\n%s", res.ServerLog)
		}
		// Refused for the right reason: the certificate reached sshd and
		// its principals matched nothing in the account's file.
		if !strings.Contains(res.ServerLog, "ID other-e2e") || !strings.Contains(res.ServerLog, "Certificate does not contain an authorized principal") {
			t.Errorf("sshd did not refuse the certificate for its principals:\n%s", res.ServerLog)
		}
	})

	t.Run("ok/force-command-runs-only-its-command", func(t *testing.T) {
		key, cert := sshca(t, caHome).SignUser(work, "--role", "rsync", "--id", "rsync-e2e")
		if got := cert.CriticalOptions["force-command"]; got != "/bin/echo forced-command-ran" {
			t.Fatalf("force-command %q", got)
		}
		res := login(t, key, "echo hello")
		if !res.OK {
			t.Fatalf("rsync certificate refused: exit %d\nstderr: %s\nsshd: %s", res.ExitCode, res.Stderr, res.ServerLog)
		}
		if res.Stdout != "forced-command-ran\n" {
			t.Errorf("stdout %q, want only the forced command's output", res.Stdout)
		}
	})

	t.Run("ok/verify-required-option", func(t *testing.T) {
		// A role with verify_required: its certificates carry the option,
		// which this release's ssh-keygen shows and its sshd accepts for a
		// key that is not a security key (for sk keys it demands a PIN).
		key, cert := sshca(t, caHome).SignUser(work, "--role", "pin", "--id", "pin-e2e")
		if v, ok := cert.CriticalOptions["verify-required"]; !ok || v != "" {
			t.Fatalf("critical options %q, want verify-required", cert.CriticalOptions)
		}
		out, err := exec.Command(rel.Keygen, "-L", "-f", key+"-cert.pub").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "verify-required") {
			t.Fatalf("%s -L: %v\n%s", rel.Keygen, err, out)
		}
		res := login(t, key, "")
		if !res.OK {
			t.Fatalf("verify-required certificate of an ed25519 key refused: exit %d\nstderr: %s\nsshd: %s", res.ExitCode, res.Stderr, res.ServerLog)
		}
	})

	t.Run("ok/host-cert-verified-by-ca-line", func(t *testing.T) {
		if srv.HostCertificate == nil || srv.HostCertificate.KeyId != "sshd-e2e" {
			t.Fatalf("host certificate not installed: %+v", srv.HostCertificate)
		}
		key, _ := sshca(t, caHome).SignUser(work, "--role", "deploy", "--id", "hostca-e2e")
		res := srv.Login(t, sshdtest.LoginOptions{IdentityFile: key, KnownHosts: hostCA,
			Options: []string{"StrictHostKeyChecking=yes", "LogLevel=DEBUG1"}})
		if !res.OK {
			t.Fatalf("login through the host CA failed: exit %d\nstderr: %s", res.ExitCode, res.Stderr)
		}
		// ssh says which host key it checked: the certificate, by the CA.
		if !strings.Contains(res.Stderr, "Server host certificate: ") || !strings.Contains(res.Stderr, `ID "sshd-e2e"`) || !strings.Contains(res.Stderr, "matches the ED25519-CERT host certificate") {
			t.Errorf("ssh did not verify the host certificate:\n%s", res.Stderr)
		}
	})

	t.Run("fail/host-cert-of-another-ca", func(t *testing.T) {
		otherHome := filepath.Join(t.TempDir(), "other-ca")
		sshca(t, otherHome).Must("init")
		otherCA := e2etest.Lines(sshca(t, otherHome).Must("ca", "show", "--type", "host", "--known-hosts", srv.KnownHostsPattern()))
		if len(otherCA) != 1 || otherCA[0] == hostCA[0] {
			t.Fatalf("second CA's line %q", otherCA)
		}
		key, _ := sshca(t, caHome).SignUser(work, "--role", "deploy", "--id", "wrong-hostca-e2e")
		res := srv.Login(t, sshdtest.LoginOptions{IdentityFile: key, KnownHosts: otherCA})
		if res.OK {
			t.Fatal("ssh trusted a host certificate of another CA")
		}
		if res.ExitCode != 255 || !strings.Contains(res.Stderr, "Host key verification failed") {
			t.Errorf("exit %d, stderr %q; want host key verification to fail", res.ExitCode, res.Stderr)
		}
		if strings.Contains(res.ServerLog, "Accepted publickey") {
			t.Errorf("user authentication went ahead:\n%s", res.ServerLog)
		}
	})

	t.Run("fail/expired", func(t *testing.T) {
		// sshd refuses a certificate once now >= valid_before.
		expiry := time.Unix(int64(expiredCert.ValidBefore), 0)
		if d := time.Until(expiry); d > 0 {
			time.Sleep(d + 100*time.Millisecond)
		}
		res := login(t, expiredKey, "")
		if res.OK {
			t.Fatalf("expired certificate logged in\nsshd: %s", res.ServerLog)
		}
		if !strings.Contains(res.ServerLog, "ID expired-e2e") || !strings.Contains(res.ServerLog, "Certificate invalid: expired") {
			t.Errorf("sshd log does not say the certificate expired:\n%s", res.ServerLog)
		}
	})
}
