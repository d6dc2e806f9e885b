// Package releases holds end-to-end tests of what differs between OpenSSH
// releases (issue 13): the sshd-config lines for OpenSSH 10.3 and later
// (one RevokedKeys line with the user and the host KRL) loaded by a real
// sshd of each release, and host certificates with wildcard principals,
// which sshca issues only to a role that opts in and which only OpenSSH
// 10.3 and later accept. It has no non-test code.
package releases

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
)

// policy is the CA home's sshca.yaml: a user role, a host role that
// refuses wildcard principals and one that opts in.
const policy = `backdate: 5m
roles:
  deploy:
    type: user
    principals: [role-deploy]
    default_ttl: 10m
    max_ttl: 1h
    extensions: [permit-pty]
  servers:
    type: host
    principals: ["127.0.0.1", "*.test"]
    max_ttl: 1h
  wildcard:
    type: host
    principals: ["*.test"]
    wildcard_principals: true
    max_ttl: 1h
`

// newHome makes a CA home with policy, driven in-process.
func newHome(t *testing.T) *e2etest.Home {
	t.Helper()
	h := &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), Env: map[string]string{"USER": "e2e"}}
	h.Must("init")
	if err := os.WriteFile(filepath.Join(h.Dir, home.ConfigFile), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// configLines returns the lines of sshd-config output that are not
// comments.
func configLines(out string) []string {
	var lines []string
	for _, l := range e2etest.Lines(out) {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// versionFlag tells sshd-config the release: nothing for 9.2 (the
// default), the sshd program itself for newer ones, so that reading the
// version from sshd -V is exercised.
func versionFlag(rel *opensshtest.Flavour) []string {
	if !rel.AtLeast(9, 3) {
		return nil
	}
	return []string{"--sshd-version", rel.SSHD}
}

// TestSSHDConfigRevokedKeys: `sshca sshd-config --host-krl` gives every
// release lines its sshd loads: from 10.3 on one RevokedKeys line with the
// user and the host KRL, and both revoke; before, the user KRL alone. The
// 10.3 lines are refused by 9.2's sshd, which is why the release matters.
func TestSSHDConfigRevokedKeys(t *testing.T) {
	releases := opensshtest.All(t)
	ca := newHome(t)
	me := e2etest.CurrentUser(t)
	work := t.TempDir()

	good, _ := ca.SignUser(work, "--role", "deploy", "--id", "good")
	revoked, revokedCert := ca.SignUser(work, "--role", "deploy", "--id", "revoked")
	hostRevoked, _ := ca.SignUser(work, "--role", "deploy", "--id", "key-revoked-as-host-key")
	ca.Must("revoke", "--serial", strconv.FormatUint(revokedCert.Serial, 10), "--reason", "e2e")
	// A key revoked in the host KRL, as a stolen host key would be: sshd
	// 10.3+ refuses it as a user key too once both KRLs are configured.
	ca.Must("revoke", "--type", "host", "--key", hostRevoked+".pub", "--reason", "e2e")
	userKRL := filepath.Join(work, "user.krl")
	hostKRLSrc := filepath.Join(work, "host.krl")
	ca.Must("krl", "--type", "user", "--out", userKRL)
	ca.Must("krl", "--type", "host", "--out", hostKRLSrc)
	trusted := ca.Must("ca", "show", "--type", "user")

	hostKey, _ := sshdtest.GenerateKey(t, work, "ed25519")
	ca.Must("sign", "host", "--role", "servers", "--id", "sshd-config-e2e", "--principals", "127.0.0.1", hostKey+".pub")

	for _, rel := range releases {
		t.Run(rel.Name, func(t *testing.T) {
			// The directory `sshca sync` keeps, plus the host KRL. Not
			// t.TempDir: sshd reads it as the account, through 0755 dirs.
			dir, err := os.MkdirTemp("", "sshca-sync-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			for _, f := range []struct{ name, data string }{
				{"trusted_user_ca_keys", trusted},
				{"principals/" + me, "role-deploy\n"},
				{"revoked.krl", e2etest.ReadFile(t, userKRL)},
				{"revoked-host.krl", e2etest.ReadFile(t, hostKRLSrc)},
			} {
				p := filepath.Join(dir, f.name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			hostKRL := filepath.Join(dir, "revoked-host.krl")
			out := ca.Must(append([]string{"sshd-config", "--dir", dir, "--host-key", hostKey, "--host-krl", hostKRL}, versionFlag(rel)...)...)
			lines := configLines(out)
			wantRevoked := "RevokedKeys " + filepath.Join(dir, "revoked.krl")
			if rel.AtLeast(10, 3) {
				wantRevoked += " " + hostKRL
			}
			found := false
			for _, l := range lines {
				found = found || l == wantRevoked
			}
			if !found {
				t.Fatalf("sshd-config lacks %q:\n%s", wantRevoked, out)
			}

			// The lines come before the harness's own, so sshd takes them.
			srv := sshdtest.Start(t, sshdtest.Config{OpenSSH: rel, Extra: append([]string{"HostKey " + hostKey}, lines...)})
			known := e2etest.Lines(ca.Must("ca", "show", "--type", "host", "--known-hosts", srv.KnownHostsPattern()))
			login := func(key string) sshdtest.Result {
				return srv.Login(t, sshdtest.LoginOptions{IdentityFile: key, KnownHosts: known})
			}
			t.Run("ok/good-certificate-through-host-certificate", func(t *testing.T) {
				if res := login(good); !res.OK {
					t.Fatalf("refused: %s\n--- sshd log\n%s", res.Stderr, res.ServerLog)
				}
			})
			t.Run("fail/revoked-by-user-krl", func(t *testing.T) {
				res := login(revoked)
				if res.OK || !strings.Contains(res.ServerLog, "revoked by file "+filepath.Join(dir, "revoked.krl")) {
					t.Fatalf("ok=%v; sshd log:\n%s", res.OK, res.ServerLog)
				}
			})
			name := "ok/host-krl-not-read-by-9.2"
			if rel.AtLeast(10, 3) {
				name = "fail/revoked-by-host-krl"
			}
			t.Run(name, func(t *testing.T) {
				res := login(hostRevoked)
				if rel.AtLeast(10, 3) {
					if res.OK || !strings.Contains(res.ServerLog, "revoked by file "+hostKRL) {
						t.Fatalf("ok=%v; sshd log:\n%s", res.OK, res.ServerLog)
					}
					return
				}
				if !res.OK {
					t.Fatalf("refused: %s\n--- sshd log\n%s", res.Stderr, res.ServerLog)
				}
			})
			// A KRL of 100,000 serials, the revoked one among them,
			// replaces the user KRL: sshd rereads it at every login.
			t.Run("ok/100000-serial-krl", func(t *testing.T) {
				k := &krl.KRL{Version: 2}
				caPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(e2etest.Lines(trusted)[0]))
				if err != nil {
					t.Fatal(err)
				}
				base := revokedCert.Serial
				for i := uint64(0); i < 100000; i++ {
					if s := base + 2*i; s != 0 {
						if err := k.RevokeSerials(caPub, s, s); err != nil {
							t.Fatal(err)
						}
					}
				}
				b, err := k.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				tmp := filepath.Join(dir, ".revoked.krl.tmp")
				if err := os.WriteFile(tmp, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, filepath.Join(dir, "revoked.krl")); err != nil {
					t.Fatal(err)
				}
				goodCert := e2etest.ReadCert(t, good+"-cert.pub")
				if (goodCert.Serial-base)%2 == 0 && goodCert.Serial > base {
					t.Fatalf("serial %d of the good certificate is among the revoked", goodCert.Serial)
				}
				if res := login(good); !res.OK {
					t.Errorf("good certificate refused under the large KRL: %s\n%s", res.Stderr, res.ServerLog)
				}
				if res := login(revoked); res.OK {
					t.Errorf("revoked certificate accepted under the large KRL")
				}
			})

			// The other release's lines: 10.3's on 9.2 make sshd refuse
			// to start; 9.2's are valid everywhere.
			if !rel.AtLeast(10, 3) {
				t.Run("fail/10.3-lines-refused-by-this-sshd", func(t *testing.T) {
					out := ca.Must("sshd-config", "--dir", dir, "--host-key", hostKey, "--host-krl", hostKRL, "--sshd-version", "10.3")
					cfg := filepath.Join(t.TempDir(), "sshd_config")
					body := "HostKey " + hostKey + "\n" + strings.Join(configLines(out), "\n") + "\n"
					if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
						t.Fatal(err)
					}
					msg, err := exec.Command(rel.SSHD, "-t", "-f", cfg).CombinedOutput()
					if err == nil || !strings.Contains(string(msg), "RevokedKeys") {
						t.Fatalf("sshd -t accepted two RevokedKeys files (%v):\n%s", err, msg)
					}
				})
			}
		})
	}
}

// TestWildcardHostPrincipals: sshca refuses a wildcard host principal
// unless the role opts in (wildcard_principals: true), and then only
// inside the role's patterns; OpenSSH 10.3 and later accept the
// certificate under @cert-authority, 9.2 refuses it; and explain, told the
// client's release, agrees with each.
func TestWildcardHostPrincipals(t *testing.T) {
	releases := opensshtest.All(t)
	ca := newHome(t)
	work := t.TempDir()
	hostKey, _ := sshdtest.GenerateKey(t, work, "ed25519")
	certPath := filepath.Join(work, "wild-cert.pub")

	for _, tc := range []struct {
		name, role, principals, err string
	}{
		{"fail/role-without-opt-in", "servers", "*.test", `invalid host principal "*.test": contains a wildcard (OpenSSH before 10.3 does not match wildcard host principals; role "servers" does not set wildcard_principals)`},
		{"fail/outside-the-role", "wildcard", "*.corp", `wildcard host principal "*.corp" is not inside a host-name pattern of role "wildcard"`},
		{"fail/every-host", "wildcard", "*", "no label is free of wildcards"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := ca.Run("sign", "host", "--role", tc.role, "--id", "wild", "--principals", tc.principals, "--out", certPath, hostKey+".pub")
			if code != 1 || !strings.Contains(stderr, tc.err) {
				t.Fatalf("exit %d, stderr %q; want exit 1 and %q", code, stderr, tc.err)
			}
			if _, err := os.Stat(certPath); !os.IsNotExist(err) {
				t.Fatalf("a certificate was written: %v", err)
			}
		})
	}
	ca.Must("sign", "host", "--role", "wildcard", "--id", "wild", "--principals", "*.test", "--out", certPath, hostKey+".pub")
	if c := e2etest.ReadCert(t, certPath); len(c.ValidPrincipals) != 1 || c.ValidPrincipals[0] != "*.test" || c.CertType != ssh.HostCert {
		t.Fatalf("certificate: type %d, principals %q", c.CertType, c.ValidPrincipals)
	}
	// sshca list shows it like any other issuance.
	if out := ca.Must("list", "--id", "wild"); !strings.Contains(out, "*.test") {
		t.Errorf("sshca list does not show the wildcard principal:\n%s", out)
	}

	userCA := e2etest.Lines(ca.Must("ca", "show", "--type", "user"))
	hostCA := e2etest.Lines(ca.Must("ca", "show", "--type", "host", "--known-hosts", "*.test"))
	me := e2etest.CurrentUser(t)
	userKey, _ := ca.SignUser(work, "--role", "deploy", "--id", "wild-user")
	knownHosts := filepath.Join(work, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(strings.Join(hostCA, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// One sshd presents the certificate; each release's ssh checks it.
	srv := sshdtest.Start(t, sshdtest.Config{
		TrustedUserCAKeys: userCA,
		Principals:        map[string][]string{me: {"role-deploy"}},
		Extra:             []string{"HostKey " + hostKey, "HostCertificate " + certPath},
	})
	for _, rel := range releases {
		accepts := rel.AtLeast(10, 3)
		name := "fail/" + rel.Name + "-compares-exactly"
		if accepts {
			name = "ok/" + rel.Name + "-matches-the-pattern"
		}
		t.Run(name, func(t *testing.T) {
			res := srv.Login(t, sshdtest.LoginOptions{IdentityFile: userKey, KnownHosts: hostCA, HostKeyAlias: "web1.test", Client: rel})
			if res.OK != accepts {
				t.Fatalf("%s: login ok=%v, want %v\nstderr: %s", rel, res.OK, accepts, res.Stderr)
			}
			if !accepts && !strings.Contains(res.Stderr, "name is not a listed principal") {
				t.Errorf("ssh did not refuse for the principal:\n%s", res.Stderr)
			}
			args := []string{"explain", "--cert", certPath, "--host", "web1.test", "--known-hosts", knownHosts}
			if rel.AtLeast(9, 3) {
				args = append(args, "--sshd-version", rel.SSH)
			}
			stdout, stderr, code := ca.Run(args...)
			if (code == 0) != accepts {
				t.Errorf("explain exit %d, ssh accepted=%v\n%s%s", code, accepts, stdout, stderr)
			}
		})
	}
}
