package sshdtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/testkit"
)

func newCA(t *testing.T) ssh.Signer {
	t.Helper()
	return testkit.NewSigner(t)
}

func caLine(ca ssh.Signer) string {
	return string(ssh.MarshalAuthorizedKey(ca.PublicKey()))
}

func currentUser(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// sign certifies pub with ca; validity is relative to now.
func sign(t *testing.T, ca ssh.Signer, pub ssh.PublicKey, typ uint32, principals []string, from, to time.Duration) *ssh.Certificate {
	t.Helper()
	now := time.Now()
	c := &ssh.Certificate{
		Key:             pub,
		Serial:          uint64(now.UnixNano()),
		CertType:        typ,
		KeyId:           "sshdtest",
		ValidPrincipals: principals,
		ValidAfter:      uint64(now.Add(from).Unix()),
		ValidBefore:     uint64(now.Add(to).Unix()),
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

// userKey makes a key and writes its certificate beside it.
func userKey(t *testing.T, ca ssh.Signer, principals []string, from, to time.Duration) string {
	t.Helper()
	priv, pub := GenerateKey(t, t.TempDir(), "ed25519")
	WriteCertificate(t, priv, sign(t, ca, pub, ssh.UserCert, principals, from, to))
	return priv
}

// writeKRL writes a KRL revoking the public keys with the real ssh-keygen.
func writeKRL(t *testing.T, path string, pubFiles ...string) {
	t.Helper()
	args := append([]string{"-k", "-f", path}, pubFiles...)
	if out, err := exec.Command(KeygenPath, args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %v: %v: %s", args, err, out)
	}
}

func checkLogin(t *testing.T, res Result, wantOK bool, wantStderr, wantLog string) {
	t.Helper()
	if res.OK != wantOK {
		t.Fatalf("login OK = %v, want %v (exit %d)\nstderr: %s\nsshd log:\n%s", res.OK, wantOK, res.ExitCode, res.Stderr, res.ServerLog)
	}
	if !strings.Contains(res.Stderr, wantStderr) {
		t.Errorf("ssh stderr %q does not contain %q", res.Stderr, wantStderr)
	}
	if !strings.Contains(res.ServerLog, wantLog) {
		t.Errorf("sshd log does not contain %q:\n%s", wantLog, res.ServerLog)
	}
}

func TestLoginUserCertificates(t *testing.T) {
	t.Parallel()
	me := currentUser(t)
	ca, otherCA := newCA(t), newCA(t)
	dir := t.TempDir()
	krl := filepath.Join(dir, "revoked.krl")
	revokedKey := userKey(t, ca, []string{"role-deploy"}, -time.Hour, time.Hour)
	writeKRL(t, krl, revokedKey+".pub")

	s := Start(t, Config{
		TrustedUserCAKeys: []string{caLine(ca)},
		Principals:        map[string][]string{me: {"role-deploy"}},
		RevokedKeysFile:   krl,
	})

	certElsewhere, certElsewherePub := GenerateKey(t, dir, "ecdsa")
	certPath := filepath.Join(dir, "elsewhere-cert.pub")
	writeFile(t, certPath, string(ssh.MarshalAuthorizedKey(sign(t, ca, certElsewherePub, ssh.UserCert, []string{"role-deploy"}, -time.Minute, time.Hour))), 0o644)
	plainKey, _ := GenerateKey(t, dir, "ed25519")

	tests := []struct {
		name       string
		opts       LoginOptions
		wantOK     bool
		wantStderr string
		wantLog    string
	}{
		{
			name:    "ok/principal-listed",
			opts:    LoginOptions{IdentityFile: userKey(t, ca, []string{"role-deploy"}, -time.Minute, time.Hour)},
			wantOK:  true,
			wantLog: "Accepted publickey for " + me,
		},
		{
			name:    "ok/one-of-several-principals",
			opts:    LoginOptions{IdentityFile: userKey(t, ca, []string{"role-admin", "role-deploy"}, -time.Minute, time.Hour)},
			wantOK:  true,
			wantLog: "Accepted publickey",
		},
		{
			name:   "ok/rsa-key",
			opts:   LoginOptions{IdentityFile: userKeyTyped(t, ca, "rsa-2048", []string{"role-deploy"})},
			wantOK: true,
		},
		{
			name:   "ok/certificate-file",
			opts:   LoginOptions{IdentityFile: certElsewhere, CertificateFile: certPath},
			wantOK: true,
		},
		{
			name:    "ok/custom-command",
			opts:    LoginOptions{IdentityFile: userKey(t, ca, []string{"role-deploy"}, -time.Minute, time.Hour), Command: "id -un"},
			wantOK:  true,
			wantLog: "Accepted publickey",
		},
		{
			name:       "fail/principal-not-listed",
			opts:       LoginOptions{IdentityFile: userKey(t, ca, []string{"role-admin"}, -time.Minute, time.Hour)},
			wantStderr: "Permission denied",
			wantLog:    "does not contain an authorized principal",
		},
		{
			name:       "fail/expired",
			opts:       LoginOptions{IdentityFile: userKey(t, ca, []string{"role-deploy"}, -2*time.Hour, -time.Hour)},
			wantStderr: "Permission denied",
			wantLog:    "expired",
		},
		{
			name:       "fail/not-yet-valid",
			opts:       LoginOptions{IdentityFile: userKey(t, ca, []string{"role-deploy"}, time.Hour, 2*time.Hour)},
			wantStderr: "Permission denied",
			wantLog:    "not yet valid",
		},
		{
			name:       "fail/revoked",
			opts:       LoginOptions{IdentityFile: revokedKey},
			wantStderr: "Permission denied",
			wantLog:    "revoked",
		},
		{
			name:       "fail/untrusted-ca",
			opts:       LoginOptions{IdentityFile: userKey(t, otherCA, []string{"role-deploy"}, -time.Minute, time.Hour)},
			wantStderr: "Permission denied",
			wantLog:    "Failed publickey for " + me,
		},
		{
			name:       "fail/plain-key",
			opts:       LoginOptions{IdentityFile: plainKey},
			wantStderr: "Permission denied",
		},
		{
			name:       "fail/account-without-principals-file",
			opts:       LoginOptions{User: "nobody", IdentityFile: userKey(t, ca, []string{"role-deploy", "nobody"}, -time.Minute, time.Hour)},
			wantStderr: "Permission denied",
			wantLog:    "does not contain an authorized principal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.Login(t, tt.opts)
			checkLogin(t, res, tt.wantOK, tt.wantStderr, tt.wantLog)
			if tt.opts.Command == "id -un" && strings.TrimSpace(res.Stdout) != me {
				t.Errorf("id -un = %q, want %q", res.Stdout, me)
			}
		})
	}
}

func userKeyTyped(t *testing.T, ca ssh.Signer, typ string, principals []string) string {
	t.Helper()
	priv, pub := GenerateKey(t, t.TempDir(), typ)
	WriteCertificate(t, priv, sign(t, ca, pub, ssh.UserCert, principals, -time.Minute, time.Hour))
	return priv
}

// TestFilesChangeBetweenLogins checks that the test-owned files (KRL,
// trusted CAs, principals) take effect at the next login without a reload.
func TestFilesChangeBetweenLogins(t *testing.T) {
	t.Parallel()
	me := currentUser(t)
	ca, nextCA := newCA(t), newCA(t)
	krl := filepath.Join(t.TempDir(), "revoked")
	writeFile(t, krl, "", 0o644) // empty: revokes nothing
	s := Start(t, Config{
		TrustedUserCAKeys: []string{caLine(ca)},
		Principals:        map[string][]string{me: {"role-deploy"}},
		RevokedKeysFile:   krl,
	})
	key := userKey(t, ca, []string{"role-deploy"}, -time.Minute, time.Hour)
	nextKey := userKey(t, nextCA, []string{"role-deploy"}, -time.Minute, time.Hour)

	steps := []struct {
		name   string
		change func()
		key    string
		wantOK bool
	}{
		{"ok/before", func() {}, key, true},
		{"fail/next-ca-not-yet-trusted", func() {}, nextKey, false},
		{"ok/next-ca-trusted", func() { s.SetTrustedUserCAKeys(t, caLine(ca), caLine(nextCA)) }, nextKey, true},
		{"fail/principal-removed", func() { s.SetPrincipals(t, me, "role-other") }, key, false},
		{"ok/principal-back", func() { s.SetPrincipals(t, me, "role-other", "role-deploy") }, key, true},
		{"fail/revoked", func() { writeKRL(t, krl, key+".pub") }, key, false},
		{"ok/other-key-not-revoked", func() {}, nextKey, true},
		{"fail/old-ca-dropped", func() { writeFile(t, krl, "", 0o644); s.SetTrustedUserCAKeys(t, caLine(nextCA)) }, key, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.change()
			res := s.Login(t, LoginOptions{IdentityFile: st.key})
			checkLogin(t, res, st.wantOK, "", "")
		})
	}
}

func TestLoginWithAgent(t *testing.T) {
	t.Parallel()
	me := currentUser(t)
	ca := newCA(t)
	s := Start(t, Config{
		TrustedUserCAKeys: []string{caLine(ca)},
		Principals:        map[string][]string{me: {"role-deploy"}},
	})
	sock := StartAgent(t)
	AgentAdd(t, sock, userKey(t, ca, []string{"role-deploy"}, -time.Minute, time.Hour))

	tests := []struct {
		name   string
		env    []string
		wantOK bool
	}{
		{"ok/agent", []string{"SSH_AUTH_SOCK=" + sock}, true},
		{"fail/no-agent", nil, false},
		{"fail/agent-gone", []string{"SSH_AUTH_SOCK=" + filepath.Join(t.TempDir(), "none.sock")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.Login(t, LoginOptions{UseAgentOnly: true, Env: tt.env})
			checkLogin(t, res, tt.wantOK, "", "")
		})
	}
}

func TestHostCertificate(t *testing.T) {
	t.Parallel()
	me := currentUser(t)
	userCA, hostCA, otherCA := newCA(t), newCA(t), newCA(t)
	s := Start(t, Config{
		TrustedUserCAKeys: []string{caLine(userCA)},
		Principals:        map[string][]string{me: {"role-deploy"}},
		HostKeyType:       "ecdsa",
		SignHostKey: func(pub ssh.PublicKey) ([]byte, error) {
			return ssh.MarshalAuthorizedKey(sign(t, hostCA, pub, ssh.HostCert, []string{"127.0.0.1", "host.example"}, -time.Minute, time.Hour)), nil
		},
	})
	if s.HostCertificate == nil || s.HostCertPath == "" {
		t.Fatal("no host certificate installed")
	}
	key := userKey(t, userCA, []string{"role-deploy"}, -time.Minute, time.Hour)
	hostCALine := strings.TrimSpace(caLine(hostCA))

	tests := []struct {
		name       string
		known      []string
		alias      string
		wantOK     bool
		wantStderr string
	}{
		{name: "ok/cert-authority", known: []string{s.CertAuthorityLine(hostCA.PublicKey())}, wantOK: true},
		{name: "ok/cert-authority-wildcard", known: []string{"@cert-authority * " + hostCALine}, wantOK: true},
		{name: "ok/alias", known: []string{"@cert-authority host.example " + hostCALine}, alias: "host.example", wantOK: true},
		{name: "ok/pinned-host-key", known: nil, wantOK: true},
		{name: "fail/unrelated-ca", known: []string{s.CertAuthorityLine(otherCA.PublicKey())}, wantStderr: "Host key verification failed"},
		{name: "fail/ca-for-other-host", known: []string{"@cert-authority 10.0.0.1,host.example " + hostCALine}, wantStderr: "Host key verification failed"},
		{name: "fail/alias-not-a-principal", known: []string{"@cert-authority other.example " + hostCALine}, alias: "other.example", wantStderr: "Host key verification failed"},
		{name: "fail/empty-known-hosts", known: []string{}, wantStderr: "Host key verification failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.Login(t, LoginOptions{IdentityFile: key, KnownHosts: tt.known, HostKeyAlias: tt.alias})
			checkLogin(t, res, tt.wantOK, tt.wantStderr, "")
		})
	}
}

// TestReloadAndRestart renews the host certificate under a new host CA,
// as a host-cert renewal would, and checks that sshd serves it after
// Reload and keeps its port across Restart.
func TestReloadAndRestart(t *testing.T) {
	t.Parallel()
	me := currentUser(t)
	userCA, oldHostCA, newHostCA := newCA(t), newCA(t), newCA(t)
	s := Start(t, Config{
		TrustedUserCAKeys: []string{caLine(userCA)},
		Principals:        map[string][]string{me: {"role-deploy"}},
		SignHostKey: func(pub ssh.PublicKey) ([]byte, error) {
			return ssh.MarshalAuthorizedKey(sign(t, oldHostCA, pub, ssh.HostCert, []string{"127.0.0.1"}, -time.Minute, time.Hour)), nil
		},
	})
	key := userKey(t, userCA, []string{"role-deploy"}, -time.Minute, time.Hour)
	login := func() Result {
		return s.Login(t, LoginOptions{IdentityFile: key, KnownHosts: []string{s.CertAuthorityLine(newHostCA.PublicKey())}})
	}
	port := s.Port

	t.Run("fail/old-host-ca", func(t *testing.T) {
		checkLogin(t, login(), false, "Host key verification failed", "")
	})
	renewed := sign(t, newHostCA, s.HostPublicKey, ssh.HostCert, []string{"127.0.0.1"}, -time.Minute, time.Hour)
	writeFileAtomic(t, s.HostCertPath, string(ssh.MarshalAuthorizedKey(renewed)))
	t.Run("ok/reload", func(t *testing.T) {
		s.Reload(t)
		if !strings.Contains(s.Log(), "Received SIGHUP") {
			t.Errorf("sshd log has no SIGHUP:\n%s", s.Log())
		}
		checkLogin(t, login(), true, "", "")
	})
	t.Run("ok/restart", func(t *testing.T) {
		s.Restart(t)
		if s.Port != port {
			t.Errorf("port after restart = %d, want %d", s.Port, port)
		}
		checkLogin(t, login(), true, "", "")
	})
}

// TestStartRetriesBusyPort hands Start a port that is taken.
func TestStartRetriesBusyPort(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	calls := 0
	s := Start(t, Config{pickPort: func() (int, error) {
		calls++
		if calls == 1 {
			return busyPort, nil
		}
		return freePort()
	}})
	if s.Port == busyPort || calls != 2 {
		t.Fatalf("port %d after %d picks; busy port was %d", s.Port, calls, busyPort)
	}
	if !strings.Contains(s.Log(), "Address already in use") {
		t.Errorf("sshd log does not show the bind failure:\n%s", s.Log())
	}
	if res := s.Login(t, LoginOptions{}); res.OK {
		t.Errorf("login without any key succeeded: %+v", res)
	}
}

// fatalRecorder is a testing.TB whose Fatal ends only the calling
// goroutine and records the message, so that Start's failures can be
// tested.
type fatalRecorder struct {
	testing.TB
	mu      sync.Mutex
	failed  bool
	skipped bool
	msg     string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) stop(skip bool, msg string) {
	f.mu.Lock()
	f.failed, f.skipped, f.msg = !skip, skip, msg
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fatalRecorder) Fatal(args ...any) { f.stop(false, fmt.Sprint(args...)) }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.stop(false, fmt.Sprintf(format, args...))
}
func (f *fatalRecorder) FailNow()                         { f.stop(false, "FailNow") }
func (f *fatalRecorder) Skip(args ...any)                 { f.stop(true, fmt.Sprint(args...)) }
func (f *fatalRecorder) Skipf(format string, args ...any) { f.stop(true, fmt.Sprintf(format, args...)) }
func (f *fatalRecorder) SkipNow()                         { f.stop(true, "SkipNow") }

// startExpectingFatal runs Start with a recorder and returns its message.
func startExpectingFatal(t *testing.T, cfg Config) string {
	t.Helper()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(rec, cfg)
	}()
	<-done
	if rec.skipped {
		t.Skip(rec.msg)
	}
	if !rec.failed {
		t.Fatal("Start did not fail")
	}
	return rec.msg
}

func TestStartFails(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	userCert := func(pub ssh.PublicKey) ([]byte, error) {
		return ssh.MarshalAuthorizedKey(sign(t, ca, pub, ssh.UserCert, []string{"x"}, -time.Minute, time.Hour)), nil
	}
	otherKey := func(ssh.PublicKey) ([]byte, error) {
		return ssh.MarshalAuthorizedKey(sign(t, ca, ca.PublicKey(), ssh.HostCert, []string{"x"}, -time.Minute, time.Hour)), nil
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"fail/unknown-sshd-option", Config{Extra: []string{"NoSuchKeyword yes"}}, "Bad configuration option"},
		{"fail/quiet-loglevel", Config{Extra: []string{"LogLevel INFO"}}, "LogLevel INFO"},
		{"fail/extra-newline", Config{Extra: []string{"PermitRootLogin no\nPort 22"}}, "line break"},
		{"fail/bad-ca-line", Config{TrustedUserCAKeys: []string{"ssh-ed25519 notbase64"}}, "TrustedUserCAKeys[0]"},
		{"fail/account-with-slash", Config{Principals: map[string][]string{"../etc": {"x"}}}, "bad account name"},
		{"fail/principal-newline", Config{Principals: map[string][]string{"root": {"a\nb"}}}, "line break"},
		{"fail/principal-comment", Config{Principals: map[string][]string{"root": {"#a"}}}, "comment"},
		{"fail/relative-revoked-keys", Config{RevokedKeysFile: "krl"}, "not absolute"},
		{"fail/host-key-type", Config{HostKeyType: "dsa"}, "key type"},
		{"fail/host-cert-is-user-cert", Config{SignHostKey: userCert}, "user certificate"},
		{"fail/host-cert-other-key", Config{SignHostKey: otherKey}, "other key"},
		{"fail/host-cert-error", Config{SignHostKey: func(ssh.PublicKey) ([]byte, error) { return nil, os.ErrPermission }}, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := startExpectingFatal(t, tt.cfg)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("fatal message does not contain %q:\n%s", tt.want, msg)
			}
		})
	}
}

func TestConfigExtraOrder(t *testing.T) {
	cfg := Config{Extra: []string{"PermitRootLogin no", "Match User nobody", "  PermitTTY no"}}
	got := renderConfig(&cfg, newPaths("/d"), 2222, false, false)
	lines := strings.Split(got, "\n")
	index := func(s string) int {
		for i, l := range lines {
			if l == s {
				return i
			}
		}
		t.Fatalf("line %q missing from:\n%s", s, got)
		return -1
	}
	if !(index("PermitRootLogin no") < index("PermitRootLogin prohibit-password")) {
		t.Error("Extra line does not precede the default it overrides")
	}
	if !(index("RevokedKeys none") < index("Match User nobody") && index("Match User nobody") < index("  PermitTTY no")) {
		t.Errorf("Match block not at the end:\n%s", got)
	}
}

func TestShadowLocked(t *testing.T) {
	shadow := "root:!:19000:0:99999:7:::\nalice:*:1::::::\nbob:!$6$x:1::::::\nrootx:!:1::::::\n"
	tests := []struct {
		name    string
		account string
		want    bool
	}{
		{"ok/locked-bang", "root", true},
		{"ok/locked-hash", "bob", true},
		{"ok/star-not-locked", "alice", false},
		{"ok/missing", "carol", false},
		{"ok/prefix-not-confused", "roo", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shadowLocked(shadow, tt.account); got != tt.want {
				t.Errorf("shadowLocked(%q) = %v, want %v", tt.account, got, tt.want)
			}
		})
	}
}

func TestKeygenTypeArgs(t *testing.T) {
	tests := []struct {
		name, typ string
		want      string // joined args; "" means error
	}{
		{"ok/ed25519", "ed25519", "-t ed25519"},
		{"ok/rsa-bits", "rsa-3072", "-t rsa -b 3072"},
		{"ok/ecdsa-bits", "ecdsa-521", "-t ecdsa -b 521"},
		{"fail/dsa", "dsa", ""},
		{"fail/ed25519-bits", "ed25519-256", ""},
		{"fail/bad-bits", "rsa-x", ""},
		{"fail/empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, err := keygenTypeArgs(tt.typ)
			if got := strings.Join(args, " "); got != tt.want || (err == nil) != (tt.want != "") {
				t.Errorf("keygenTypeArgs(%q) = %q, %v; want %q", tt.typ, got, err, tt.want)
			}
		})
	}
}

// FuzzRenderConfig checks that no accepted Config can smuggle an extra
// directive into sshd_config or an extra principal into a principals file.
func FuzzRenderConfig(f *testing.F) {
	f.Add("PermitRootLogin no", "root", "role-deploy")
	f.Add("Match User x", "alice", `from="10.0.0.0/8" role-x`)
	f.Add("Port 22\nPermitRootLogin yes", "a/b", "#x")
	f.Add("LogLevel quiet", "..", "a\rb")
	f.Fuzz(func(t *testing.T, extra, account, principal string) {
		cfg := Config{Extra: []string{extra}, Principals: map[string][]string{account: {principal}}}
		base := Config{Extra: []string{"X y"}, Principals: map[string][]string{"a": {"p"}}}
		if cfg.validate() != nil {
			return
		}
		p := newPaths("/d")
		got := strings.Count(renderConfig(&cfg, p, 1, false, false), "\n")
		want := strings.Count(renderConfig(&base, p, 1, false, false), "\n")
		if got != want {
			t.Errorf("config has %d lines, want %d", got, want)
		}
		if n := strings.Count(joinLines(cfg.Principals[account]), "\n"); n != 1 {
			t.Errorf("principals file has %d lines, want 1", n)
		}
	})
}

// BenchmarkStart measures one sshd start: host key generation, config and
// the wait for "Server listening".
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		s := Start(b, Config{})
		s.stop(b)
	}
}

// BenchmarkLogin measures one successful certificate login with the real
// ssh client.
func BenchmarkLogin(b *testing.B) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ca, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		b.Fatal(err)
	}
	s := Start(b, Config{
		TrustedUserCAKeys: []string{caLine(ca)},
		Principals:        map[string][]string{me.Username: {"role-deploy"}},
	})
	key, pub := GenerateKey(b, b.TempDir(), "ed25519")
	cert := &ssh.Certificate{Key: pub, Serial: 1, CertType: ssh.UserCert, ValidPrincipals: []string{"role-deploy"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		b.Fatal(err)
	}
	WriteCertificate(b, key, cert)
	for b.Loop() {
		if res := s.Login(b, LoginOptions{IdentityFile: key}); !res.OK {
			b.Fatalf("login refused: %s\n%s", res.Stderr, res.ServerLog)
		}
	}
}
