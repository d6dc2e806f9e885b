// Package frontdoor tests the SSH front door of `sshca serve` end to end:
// the operator's commands (sshca user add, ssh-config --front-door), the
// service, and the real OpenSSH client and server.
package frontdoor

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/oidc/oidctest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/testkit"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const policy = `backdate: 5m
%s
service:
  ssh_listen: 127.0.0.1:%d
  ssh_host_role: frontdoor
  ssh_host_names: [ca.corp, 127.0.0.1]
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
    allow:
      local_groups: [deployers]
  frontdoor:
    type: host
    principals: ["ca.corp", "127.0.0.0/8"]
    max_ttl: 24h
`

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestBastionFlow is the README's bastion flow on SQLite and PostgreSQL:
// the admin registers a local user; `sshca ssh-config --front-door` gives
// the user a known_hosts line and an ~/.ssh/config whose Match exec line
// fetches a certificate from the front door (with the real ssh, trusting
// the front door's host certificate) when it is missing; the certificate
// logs into a real sshd; a fresh one is not fetched again.
func TestBastionFlow(t *testing.T) {
	testkit.RequireTools(t, sshdtest.SSHPath, sshdtest.KeygenPath)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run("ok/"+backend, func(t *testing.T) {
			db, dbLine := "", ""
			if backend == "postgres" {
				db = pgtest.NewDatabase(t)
				dbLine = "database: " + db
			}
			h := &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), DB: db}
			h.Must("init")
			port := freePort(t)
			if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(fmt.Sprintf(policy, dbLine, port)), 0o600); err != nil {
				t.Fatal(err)
			}
			// The user's machine: a home with a key.
			userHome := t.TempDir()
			sshDir := filepath.Join(userHome, ".ssh")
			if err := os.MkdirAll(sshDir, 0o700); err != nil {
				t.Fatal(err)
			}
			key := filepath.Join(sshDir, "id_ed25519")
			if out, err := exec.Command(sshdtest.KeygenPath, "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", key).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v %s", err, out)
			}
			h.Must("user", "add", "alice", "--key", key+".pub", "--groups", "deployers")
			srv, err := h.Serve("", "--listen", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := h.Must("ssh-config", "--server", srv.URL, "--ca-fingerprint", srv.Fingerprint, "--hosts", "*.corp",
				"--front-door", fmt.Sprintf("127.0.0.1:%d", port), "--role", "deploy", "--key", key)
			known, config, ok := strings.Cut(cfg, "\n\n")
			if !ok || !strings.Contains(known, "@cert-authority 127.0.0.1 ") || !strings.Contains(config, "Match host *.corp exec ") {
				t.Fatalf("ssh-config output:\n%s", cfg)
			}
			if err := os.WriteFile(filepath.Join(sshDir, "known_hosts"), []byte(known+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfgPath := filepath.Join(sshDir, "config")
			if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
			// ssh -G evaluates the Match line as a connection to app-01.corp
			// would: the certificate is fetched from the front door.
			sshG := func() string {
				t.Helper()
				x := exec.Command(sshdtest.SSHPath, "-F", cfgPath, "-G", "app-01.corp")
				x.Env = []string{"HOME=" + userHome, "PATH=" + os.Getenv("PATH")}
				out, err := x.CombinedOutput()
				if err != nil {
					t.Fatalf("ssh -G: %v\n%s", err, out)
				}
				return string(out)
			}
			sshG()
			cert := e2etest.ReadCert(t, key+"-cert.pub")
			if len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != "role-deploy" || !strings.HasPrefix(cert.KeyId, "local:alice role=deploy") {
				t.Fatalf("fetched certificate: principals %v, key ID %q", cert.ValidPrincipals, cert.KeyId)
			}
			fi, err := os.Stat(key + "-cert.pub")
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond)
			sshG()
			if fi2, err := os.Stat(key + "-cert.pub"); err != nil || !fi2.ModTime().Equal(fi.ModTime()) {
				t.Fatalf("a valid certificate was fetched again (%v)", err)
			}

			// The certificate logs into a server that trusts the user CA.
			caLines := e2etest.Lines(h.Must("ca", "show", "--type", "user"))
			sshd := sshdtest.Start(t, sshdtest.Config{TrustedUserCAKeys: caLines,
				Principals: map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}}})
			if res := sshd.Login(t, sshdtest.LoginOptions{IdentityFile: key}); !res.OK {
				t.Fatalf("login with the front door's certificate: %s\n%s", res.Stderr, res.ServerLog)
			}
			// The issuance and the front door's own host certificate are in the audit log.
			audit := h.Must("audit", "list")
			for _, want := range []string{"local:alice", "cli:sshca-serve"} {
				if !strings.Contains(audit, want) {
					t.Errorf("audit list lacks %s:\n%s", want, audit)
				}
			}
		})
	}
}

// ssoPolicy is a front door with an identity provider; %s is the issuer.
const ssoPolicy = `backdate: 5m
oidc:
  issuer: %s
  client_id: ` + oidctest.ClientID + `
service:
  ssh_listen: 127.0.0.1:%d
  ssh_host_role: frontdoor
  ssh_host_names: [127.0.0.1]
roles:
  sso:
    type: user
    principals: [role-sso]
    max_ttl: 1h
    require_mfa: true
    allow:
      groups: [ops]
  frontdoor:
    type: host
    principals: ["127.0.0.0/8"]
    max_ttl: 24h
`

// TestServeDeviceFlow: sshca serve with oidc: configured lets a person of
// the identity provider get a certificate with plain ssh and a key sshca
// has never seen, through the device flow, under the role's group and MFA
// rules.
func TestServeDeviceFlow(t *testing.T) {
	testkit.RequireTools(t, sshdtest.SSHPath, sshdtest.KeygenPath)
	iss := oidctest.NewHTTP(t)
	h := &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca")}
	h.Must("init")
	port := freePort(t)
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(fmt.Sprintf(ssoPolicy, iss.URL(), port)), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command(sshdtest.KeygenPath, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	if _, err := h.Serve("", "--listen", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	caLine := e2etest.Lines(h.Must("ca", "show", "--type", "host"))[0]
	if err := os.WriteFile(known, []byte("@cert-authority 127.0.0.1 "+caLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(claims map[string]any) (string, string, error) {
		t.Helper()
		x := exec.Command(sshdtest.SSHPath, "-F", "/dev/null", "-o", "UserKnownHostsFile="+known, "-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-i", key, "-o", "BatchMode=no",
			"-p", fmt.Sprint(port), "127.0.0.1", "cert", "--role", "sso")
		x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SSH_ASKPASS=/bin/true", "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0"}
		var out, errb strings.Builder
		x.Stdout, x.Stderr = &out, &errb
		if err := x.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- x.Wait() }()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if codes := iss.PendingUserCodes(); len(codes) > 0 {
				iss.ApproveDevice(codes[0], claims)
				break
			}
		}
		select {
		case err := <-done:
			return out.String(), errb.String(), err
		case <-time.After(30 * time.Second):
			_ = x.Process.Kill()
			<-done
			return out.String(), errb.String(), fmt.Errorf("ssh did not finish")
		}
	}
	out, stderr, err := run(map[string]any{"sub": "alice", "groups": []string{"ops"}, "amr": []string{"pwd", "otp"}})
	if err != nil || !strings.HasPrefix(out, "ssh-ed25519-cert-v01@openssh.com ") || !strings.Contains(stderr, "/device and enter ") {
		t.Fatalf("device flow with MFA: %v\nstdout %q\nstderr %q", err, out, stderr)
	}
	// Signed in with one factor: the role's require_mfa refuses, as at HTTPS.
	_, stderr, err = run(map[string]any{"sub": "alice", "groups": []string{"ops"}, "amr": []string{"pwd"}})
	if err == nil || !strings.Contains(stderr, "[mfa-required]") {
		t.Fatalf("device flow without MFA: %v %q", err, stderr)
	}
	audit := h.Must("audit", "list")
	if !strings.Contains(audit, "oidc:alice") {
		t.Errorf("audit list lacks oidc:alice:\n%s", audit)
	}
}
