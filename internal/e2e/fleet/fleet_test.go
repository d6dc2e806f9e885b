// Package fleet tests the fleet side of sshca (issue 5) end to end: a
// certificate service (`sshca serve`, in-process), servers enrolled with
// `sshca host enroll` and kept current by `sshca sync`, a real sshd
// configured from `sshca sshd-config`, and the real ssh client verifying host
// certificates through `sshca ssh-config`'s @cert-authority line. OpenSSH
// (sshd, ssh, ssh-keyscan, ssh-keygen) judges every login and certificate;
// a fake service that tampers answers, and a sync killed mid-install,
// check that a server never ends up with a worse or partial file.
//
// The package holds tests only. It never touches the system's sshd, ssh
// configuration or CA; every sshd runs on its own port of 127.0.0.1 with its
// own configuration directory.
package fleet

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/agent"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/sshdtest"
)

// update rewrites testdata/fleet-status.txt (README material).
var update = flag.Bool("update", false, "rewrite testdata/fleet-status.txt")

// helperEnv makes the test binary act as the sshca binary, so that a test
// can run `sshca sync` in a process of its own and SIGKILL it.
const helperEnv = "SSHCA_FLEET_E2E_AS_SSHCA"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(cli.Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// policyTemplate is the sshca.yaml of every test service; %s is the account
// that the role-deploy principal may log in as (the current user).
const policyTemplate = `backdate: 5m
service:
  listen: 127.0.0.1:0
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
  servers:
    type: host
    principals: ["*.test", "127.0.0.1"]
    default_ttl: 2h
    max_ttl: 52w
accounts:
  %s: [role-deploy]
  deploy: [role-deploy, ci]
`

// requireTool skips the test when a program is missing, or fails it when
// CI=true, where a missing oracle must not pass silently.
func requireTool(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: %v", path, err)
		}
		t.Skipf("%s is missing: %v", path, err)
	}
}

func requireOpenSSH(t testing.TB) {
	t.Helper()
	for _, p := range []string{sshdtest.SSHDPath, sshdtest.SSHPath, sshdtest.KeygenPath} {
		requireTool(t, p)
	}
}

func currentUser(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// service is a CA home with `sshca serve` running on it in-process.
type service struct {
	t    *testing.T
	home string
	URL  string // https://127.0.0.1:PORT
	FP   string // the TLS certificate's pin, SHA256:...
	addr string

	stop func() // stops serve and waits for it; nil when stopped
	log  *lockedBuffer
}

// newService creates a home with policyTemplate and starts serving it.
func newService(t *testing.T) *service {
	t.Helper()
	requireTool(t, sshdtest.KeygenPath)
	s := &service{t: t, home: filepath.Join(t.TempDir(), "ca"), log: &lockedBuffer{}}
	s.must("init")
	policy := fmt.Sprintf(policyTemplate, currentUser(t))
	if err := os.WriteFile(filepath.Join(s.home, "sshca.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(func() {
		s.shutdown()
		if t.Failed() {
			t.Logf("serve log:\n%s", s.log.String())
		}
	})
	return s
}

// start runs `sshca serve` in a goroutine: on the policy's 127.0.0.1:0 the
// first time, on the same address after a stop.
func (s *service) start() {
	t := s.t
	t.Helper()
	args := []string{"--home", s.home, "serve"}
	if s.addr != "" {
		args = append(args, "--listen", s.addr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := cli.Run(ctx, args, strings.NewReader(""), pw, s.log, env(nil))
		pw.Close()
		done <- code
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(20 * time.Second)
	for s.URL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				cancel()
				t.Fatalf("serve exited before listening (exit %d):\n%s", <-done, s.log.String())
			}
			if fp, ok := strings.CutPrefix(l, "TLS certificate fingerprint: "); ok {
				s.FP = fp
			}
			if u, ok := strings.CutPrefix(l, "listening on "); ok {
				s.URL = u
				s.addr = strings.TrimPrefix(u, "https://")
			}
		case <-deadline:
			cancel()
			t.Fatalf("serve did not listen within 20s:\n%s", s.log.String())
		}
	}
	go func() {
		for range lines { // serve writes nothing more; keep the pipe drained
		}
	}()
	s.stop = func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d:\n%s", code, s.log.String())
		}
	}
}

// shutdown stops serve (idempotent).
func (s *service) shutdown() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// restart starts serve again on the same address and TLS certificate.
func (s *service) restart() {
	s.t.Helper()
	s.shutdown()
	s.URL = ""
	s.start()
}

// env returns the getenv of in-process CLI runs: nothing from the test's
// environment leaks in (no SSH_AUTH_SOCK, no SSHCA_HOME).
func env(vars map[string]string) func(string) string {
	return func(k string) string {
		if k == "USER" {
			return "fleet-e2e"
		}
		return vars[k]
	}
}

// sshca runs the CLI in-process and returns stdout, stderr and the exit code.
func sshca(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), args, strings.NewReader(""), &out, &errb, env(nil))
	return out.String(), errb.String(), code
}

// run runs a command on the service's home.
func (s *service) run(args ...string) (string, string, int) {
	return sshca(append([]string{"--home", s.home}, args...)...)
}

func (s *service) must(args ...string) string {
	s.t.Helper()
	out, errs, code := s.run(args...)
	if code != 0 {
		s.t.Fatalf("sshca %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// token creates an API token and returns the path of a file holding it.
func (s *service) token(args ...string) string {
	s.t.Helper()
	secret := strings.TrimSpace(s.must(append([]string{"token", "create"}, args...)...))
	f := filepath.Join(s.t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return f
}

// userCert runs `sshca login --token-file` for a fresh key and returns the
// key's path (the certificate is beside it) and the certificate.
func (s *service) userCert(name string) (string, *ssh.Certificate) {
	s.t.Helper()
	tok := s.token("--role", "deploy", "--name", "user-"+name, "--ttl", "1h")
	key := filepath.Join(s.t.TempDir(), name)
	out, errs, code := sshca("login", "--server", s.URL, "--ca-fingerprint", s.FP, "--role", "deploy",
		"--token-file", tok, "--key", key, "--no-agent")
	if code != 0 {
		s.t.Fatalf("sshca login: exit %d\n%s%s", code, out, errs)
	}
	return key, readCert(s.t, key+"-cert.pub")
}

// knownHosts returns the @cert-authority lines `sshca ssh-config` prints
// for the host pattern of srv.
func (s *service) knownHosts(srv *sshdtest.Server) []string {
	s.t.Helper()
	out, errs, code := sshca("ssh-config", "--server", s.URL, "--ca-fingerprint", s.FP, "--hosts", srv.KnownHostsPattern())
	if code != 0 {
		s.t.Fatalf("sshca ssh-config: exit %d: %s", code, errs)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "@cert-authority ") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		s.t.Fatalf("sshca ssh-config printed no @cert-authority line:\n%s", out)
	}
	return lines
}

// host is one enrolled "server": a host key and the directory sync writes.
type host struct {
	t       *testing.T
	svc     *service
	name    string // first principal: the name fleet status shows
	base    string // world-readable directory (sshd reads principals as the target user)
	Key     string // host private key; its certificate is Key-cert.pub
	Dir     string // the sync directory
	PidFile string // sshd's PidFile, for --sshd-pid-file
}

// newHost makes a host key and enrolls it with a one-time enrollment token
// bound to principals (the first is the host's name), with lifetime ttl.
func (s *service) newHost(ttl string, principals ...string) *host {
	t := s.t
	t.Helper()
	base, err := os.MkdirTemp("", "fleet-host-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	h := &host{t: t, svc: s, name: principals[0], base: base, Key: filepath.Join(base, "ssh_host_ed25519_key"),
		Dir: filepath.Join(base, "sshca"), PidFile: filepath.Join(base, "sshd.pid")}
	if out, err := exec.Command(sshdtest.KeygenPath, "-q", "-N", "", "-t", "ed25519", "-C", h.name, "-f", h.Key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	tok := s.token("--enroll", "--role", "servers", "--principals", strings.Join(principals, ","), "--ttl", "10m",
		"--name", "enroll-"+h.name)
	out, errs, code := sshca("host", "enroll", "--server", s.URL, "--ca-fingerprint", s.FP, "--token-file", tok,
		"--host-key", h.Key, "--ttl", ttl)
	if code != 0 {
		t.Fatalf("sshca host enroll: exit %d\n%s%s", code, out, errs)
	}
	// The token is one-time: a second enrollment with it is refused.
	if _, errs, code := sshca("host", "enroll", "--server", s.URL, "--ca-fingerprint", s.FP, "--token-file", tok,
		"--host-key", h.Key); code == 0 || !strings.Contains(errs, "already used") {
		t.Fatalf("reusing the enrollment token: exit %d, %q", code, errs)
	}
	return h
}

// CertPath is where host enroll and sync keep the host certificate.
func (h *host) CertPath() string { return h.Key + "-cert.pub" }

func (h *host) Cert() *ssh.Certificate { return readCert(h.t, h.CertPath()) }

// sync runs `sshca sync` in-process against url (the service, or a proxy
// pinned by fp) with extra flags.
func (h *host) sync(url, fp string, extra ...string) (string, string, int) {
	args := append([]string{"sync", "--server", url, "--ca-fingerprint", fp, "--dir", h.Dir, "--host-key", h.Key}, extra...)
	return sshca(args...)
}

func (h *host) mustSync(extra ...string) string {
	h.t.Helper()
	out, errs, code := h.sync(h.svc.URL, h.svc.FP, extra...)
	if code != 0 {
		h.t.Fatalf("sshca sync: exit %d\n%s%s", code, out, errs)
	}
	return out
}

// startSSHD starts a real sshd whose CA keys, principals, KRL and host
// certificate are exactly what `sshca sshd-config` prints for the sync
// directory. The harness writes its own defaults after these lines, and
// sshd keeps the first value of each keyword, so ours win; HostKey
// accumulates, and sshd presents the first ed25519 key, ours.
func (h *host) startSSHD() *sshdtest.Server {
	h.t.Helper()
	cfg := h.svc.must("sshd-config", "--dir", h.Dir, "--host-key", h.Key)
	extra := []string{"HostKey " + h.Key, "PidFile " + h.PidFile}
	for _, l := range strings.Split(strings.TrimSpace(cfg), "\n") {
		extra = append(extra, l)
	}
	for _, want := range []string{"TrustedUserCAKeys ", "AuthorizedPrincipalsFile ", "RevokedKeys ", "HostCertificate "} {
		if !strings.Contains(cfg, "\n"+want) {
			h.t.Fatalf("sshd-config lacks %q:\n%s", want, cfg)
		}
	}
	return sshdtest.Start(h.t, sshdtest.Config{Extra: extra})
}

// listenCount counts sshd's "Server listening" lines: one per start or reload.
func listenCount(srv *sshdtest.Server) int {
	return strings.Count(srv.Log(), fmt.Sprintf("Server listening on 127.0.0.1 port %d.", srv.Port))
}

// waitReloaded waits until sshd, told to reload by sync, listens again and
// has rewritten its PidFile (it does so after listening, truncating first),
// so that the next reload finds its pid.
func (h *host) waitReloaded(srv *sshdtest.Server, before int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if listenCount(srv) > before {
			if b, err := os.ReadFile(h.PidFile); err == nil && strings.HasSuffix(string(b), "\n") {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("sshd did not reload:\n%s", srv.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// login logs in with key, verifying the host certificate through the
// @cert-authority lines; ssh runs at DEBUG1 so that its stderr names the
// host certificate it verified.
func login(t *testing.T, srv *sshdtest.Server, key string, knownHosts []string) sshdtest.Result {
	t.Helper()
	return srv.Login(t, sshdtest.LoginOptions{IdentityFile: key, KnownHosts: knownHosts, Options: []string{"LogLevel=DEBUG1"}})
}

func mustLogin(t *testing.T, srv *sshdtest.Server, key string, knownHosts []string) sshdtest.Result {
	t.Helper()
	r := login(t, srv, key, knownHosts)
	if !r.OK {
		t.Fatalf("login with %s refused (exit %d):\n%s\n--- sshd\n%s", filepath.Base(key), r.ExitCode, r.Stderr, r.ServerLog)
	}
	return r
}

func mustRefuse(t *testing.T, srv *sshdtest.Server, key string, knownHosts []string, why string) {
	t.Helper()
	r := login(t, srv, key, knownHosts)
	if r.OK {
		t.Fatalf("login with %s succeeded; want it refused (%s)", filepath.Base(key), why)
	}
	if !strings.Contains(r.ServerLog, why) {
		t.Fatalf("login with %s refused, but sshd does not say %q:\n%s", filepath.Base(key), why, r.ServerLog)
	}
}

func readCert(t testing.TB, path string) *ssh.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	c, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s: not a certificate", path)
	}
	return c
}

// snapshot returns every file sshd or the agent's user relies on in the
// sync directory (everything but the agent's own state), plus the host
// certificate, by relative path.
func (h *host) snapshot() map[string]string {
	h.t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(h.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".sshca-sync.json" {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(h.Dir, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	b, err := os.ReadFile(h.CertPath())
	if err != nil {
		h.t.Fatal(err)
	}
	files["<host certificate>"] = string(b)
	return files
}

func (h *host) state() agent.State { return agent.LoadState(h.Dir) }

// keyscanCert asks sshd for its host certificate with the real ssh-keyscan.
func keyscanCert(t *testing.T, srv *sshdtest.Server) *ssh.Certificate {
	t.Helper()
	const keyscan = "/usr/bin/ssh-keyscan"
	requireTool(t, keyscan)
	out, err := exec.Command(keyscan, "-c", "-t", "ed25519", "-T", "5", "-p", strconv.Itoa(srv.Port), srv.Host).Output()
	if err != nil {
		t.Fatalf("ssh-keyscan -c: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		// With -c, ssh-keyscan prints the certificate without a host field.
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			t.Fatalf("ssh-keyscan line %q: %v", l, err)
		}
		if c, ok := pub.(*ssh.Certificate); ok {
			return c
		}
	}
	t.Fatalf("ssh-keyscan -c returned no certificate:\n%s", out)
	return nil
}
