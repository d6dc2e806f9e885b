package frontdoor

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// skDummy returns OpenSSH's software security key (regress/misc/sk-dummy,
// the middleware OpenSSH's own regression tests use in place of a FIDO
// token: it signs with the user-presence flag unless the key was made
// with no-touch-required), built once from the tarball of package
// opensshtest into its cache. A missing compiler skips the test (fails it
// under CI).
func skDummy(t *testing.T) string {
	t.Helper()
	tarball, err := opensshtest.TarballPath()
	if err != nil {
		t.Fatal(err)
	}
	root, err := opensshtest.CacheRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(tarball)
	if err != nil {
		testkit.SkipOrFatal(t, "sk-dummy: %v", err)
	}
	sum := sha256.Sum256(data)
	out := filepath.Join(root, "sk-dummy-"+hex.EncodeToString(sum[:8])+".so")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	testkit.RequireTools(t, "cc", "make", "tar")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(out+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); err == nil {
		return out // another test binary built it meanwhile
	}
	work := t.TempDir()
	src := filepath.Join(work, "openssh-"+opensshtest.Version)
	t.Logf("building OpenSSH's sk-dummy middleware from %s (once per machine)", filepath.Base(tarball))
	for _, step := range [][]string{
		{"tar", "-C", work, "-xzf", tarball},
		{"./configure", "--without-pam"},
		{"make", "-C", "openbsd-compat"},
		{"make", "regress/misc/sk-dummy/sk-dummy.so"},
	} {
		cmd := exec.Command(step[0], step[1:]...)
		cmd.Dir = src
		if step[0] == "tar" {
			cmd.Dir = work
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			tail := string(b)
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			testkit.SkipOrFatal(t, "sk-dummy: %s: %v\n%s", strings.Join(step, " "), err, tail)
		}
	}
	so, err := os.ReadFile(filepath.Join(src, "regress/misc/sk-dummy/sk-dummy.so"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out+".tmp", so, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSKDummyOpenSSH: the real OpenSSH client and ssh-keygen (the system's
// 9.2 and the newest release) with a software security key: ed25519-sk and
// ecdsa-sk keys registered as local users' keys authenticate with user
// presence, which counts as the second factor of a require_mfa role; the
// certificate carries no-touch-required only under the role that grants
// it; a key made with no-touch-required (signatures without user presence)
// is refused; and the certificate of an sk key logs into a real sshd.
func TestSKDummyOpenSSH(t *testing.T) {
	provider := skDummy(t)
	for _, f := range opensshtest.All(t) {
		for _, typ := range []string{"ed25519-sk", "ecdsa-sk"} {
			t.Run(f.Name+"/"+typ, func(t *testing.T) {
				d := startDoor(t, Limits{})
				host, port, _ := net.SplitHostPort(d.addr)
				kh := filepath.Join(t.TempDir(), "known_hosts")
				if err := os.WriteFile(kh, []byte("@cert-authority ca.corp "+testkit.AuthorizedKey(d.hostCA)+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				dir := t.TempDir()
				keygen := func(name string, opts ...string) (string, ssh.PublicKey) {
					t.Helper()
					path := filepath.Join(dir, name)
					args := append([]string{"-q", "-t", typ, "-w", provider, "-N", "", "-f", path}, opts...)
					if b, err := exec.Command(f.Keygen, args...).CombinedOutput(); err != nil {
						t.Fatalf("ssh-keygen -t %s: %v\n%s", typ, err, b)
					}
					pub, err := os.ReadFile(path + ".pub")
					if err != nil {
						t.Fatal(err)
					}
					k, _, _, _, err := ssh.ParseAuthorizedKey(pub)
					if err != nil {
						t.Fatal(err)
					}
					return path, k
				}
				touch, touchPub := keygen("id_sk")
				notouch, notouchPub := keygen("id_sk_notouch", "-O", "no-touch-required")
				d.addUser(t, "alice", nil, touchPub, notouchPub) // secure and touchless allow alice
				ssh := func(key string, cmd ...string) (string, string, error) {
					args := append([]string{"-F", "/dev/null", "-o", "UserKnownHostsFile=" + kh, "-o", "StrictHostKeyChecking=yes",
						"-o", "HostKeyAlias=ca.corp", "-o", "IdentitiesOnly=yes", "-i", key, "-o", "SecurityKeyProvider=" + provider,
						"-o", "BatchMode=yes", "-p", port, host}, cmd...)
					x := exec.Command(f.SSH, args...)
					x.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
					var out, errb strings.Builder
					x.Stdout, x.Stderr = &out, &errb
					err := x.Run()
					return out.String(), errb.String(), err
				}
				for role, wantNoTouch := range map[string]bool{"secure": false, "touchless": true} {
					out, stderr, err := ssh(touch, "cert", "--role", role)
					if err != nil {
						t.Fatalf("%s: %v %q", role, err, stderr)
					}
					cert := parseCert(t, out)
					if cert.Key.Type() != touchPub.Type() {
						t.Fatalf("certified a %s key", cert.Key.Type())
					}
					if _, ok := cert.Extensions["no-touch-required"]; ok != wantNoTouch {
						t.Fatalf("%s: no-touch-required %v", role, ok)
					}
					if role == "secure" {
						if err := os.WriteFile(touch+"-cert.pub", []byte(out), 0o600); err != nil {
							t.Fatal(err)
						}
					}
				}
				if _, stderr, err := ssh(notouch, "status"); err == nil {
					t.Fatalf("a signature without user presence authenticated: %q", stderr)
				}
				// The sk certificate at a real sshd of the same release.
				srv := sshdtest.Start(t, sshdtest.Config{OpenSSH: f, TrustedUserCAKeys: []string{testkit.AuthorizedKey(d.activeCA(t, "user"))},
					Principals: map[string][]string{currentUser(t): {"role-secure"}}})
				if res := srv.Login(t, sshdtest.LoginOptions{IdentityFile: touch, Options: []string{"SecurityKeyProvider=" + provider}}); !res.OK {
					t.Fatalf("login with the sk certificate: %s\n%s", res.Stderr, res.ServerLog)
				}
			})
		}
	}
}

// TestSKVerifyRequiredAtSSHD: a role with verify_required puts the
// verify-required option into the certificates sshca issues, and a real
// sshd of each release then refuses the certificate of a security key
// whose signatures assert only presence (a touch), and accepts the one of
// a key made with verify-required, whose signatures assert verification
// (OpenSSH's sk-dummy sets the flags the key asks for).
func TestSKVerifyRequiredAtSSHD(t *testing.T) {
	provider := skDummy(t)
	h := testhome.New(t, `backdate: 5m
roles:
  pin:
    type: user
    principals: [role-pin]
    max_ttl: 1h
    verify_required: true
`, testhome.Options{})
	userCA, err := ca.ActiveKey(t.Context(), h.Store, "user")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range opensshtest.All(t) {
		t.Run(f.Name, func(t *testing.T) {
			dir := t.TempDir()
			srv := sshdtest.Start(t, sshdtest.Config{OpenSSH: f, TrustedUserCAKeys: []string{strings.TrimSpace(userCA.PublicKey)},
				Principals: map[string][]string{currentUser(t): {"role-pin"}}})
			for _, tc := range []struct {
				name string
				opts []string
				ok   bool
			}{
				{"touch-only", nil, false},
				{"verified", []string{"-O", "verify-required"}, true},
			} {
				path := filepath.Join(dir, tc.name)
				args := append([]string{"-q", "-t", "ed25519-sk", "-w", provider, "-N", "", "-f", path}, tc.opts...)
				if b, err := exec.Command(f.Keygen, args...).CombinedOutput(); err != nil {
					t.Fatalf("ssh-keygen: %v\n%s", err, b)
				}
				pubData, err := os.ReadFile(path + ".pub")
				if err != nil {
					t.Fatal(err)
				}
				pub, _, _, _, err := ssh.ParseAuthorizedKey(pubData)
				if err != nil {
					t.Fatal(err)
				}
				cert, err := h.Authority.Sign(t.Context(), ca.Request{Type: policy.UserCert, Role: "pin", KeyID: tc.name, PublicKey: pub, Caller: ca.Admin("test")})
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := cert.CriticalOptions["verify-required"]; !ok {
					t.Fatalf("critical options %q lack verify-required", cert.CriticalOptions)
				}
				if err := os.WriteFile(path+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o600); err != nil {
					t.Fatal(err)
				}
				res := srv.Login(t, sshdtest.LoginOptions{IdentityFile: path, Options: []string{"SecurityKeyProvider=" + provider}})
				if res.OK != tc.ok {
					t.Fatalf("%s: login ok=%v, want %v\nstderr: %s\nsshd: %s", tc.name, res.OK, tc.ok, res.Stderr, res.ServerLog)
				}
				if !tc.ok && !strings.Contains(res.ServerLog, "verif") {
					t.Errorf("%s: sshd refused for another reason:\n%s", tc.name, res.ServerLog)
				}
			}
		})
	}
}
