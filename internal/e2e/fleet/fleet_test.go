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
//
// Every login and refusal is judged by each OpenSSH release the tests know
// (package opensshtest: Debian's 9.2 and the newest upstream release),
// server and client of the same release: a host runs one sshd per release
// on the same synced files, or, where sshd's reloads are what is tested,
// the service enrolls one host per release. The service, the CA and the
// syncs are shared; only the OpenSSH parts are repeated.
package fleet

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/agent"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

// update rewrites testdata/fleet-status.txt (README material).
var update = flag.Bool("update", false, "rewrite testdata/fleet-status.txt")

// TestMain lets the test binary act as the sshca binary (see
// testkit.MainCommand), so that a test can run `sshca sync` in a process of
// its own and SIGKILL it.
func TestMain(m *testing.M) {
	testkit.AsMain(cli.Main)
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

// requireOpenSSH returns every OpenSSH release the tests run against (it
// skips the test when one is missing, and fails it under CI=true).
func requireOpenSSH(t testing.TB) []*opensshtest.Flavour {
	t.Helper()
	return opensshtest.All(t)
}

// cliEnv is the whole environment of in-process CLI runs: nothing from the
// test's environment leaks in (no SSH_AUTH_SOCK, no SSHCA_HOME).
func cliEnv() map[string]string { return map[string]string{"USER": "fleet-e2e"} }

// sshca runs the CLI in-process and returns stdout, stderr and the exit code.
func sshca(args ...string) (string, string, int) { return e2etest.RunCLI(cliEnv(), args...) }

// service is a CA home with `sshca serve` running on it in-process.
type service struct {
	*e2etest.Home
	URL string // https://127.0.0.1:PORT
	FP  string // the TLS certificate's pin, SHA256:...

	addr    string
	srv     *e2etest.Server // nil when stopped
	logPath string          // serve's log over all its starts
}

// newService creates a home with policyTemplate and starts serving it.
func newService(t *testing.T) *service {
	t.Helper()
	testkit.RequireTool(t, sshdtest.KeygenPath)
	s := &service{Home: &e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), Env: cliEnv()},
		logPath: filepath.Join(t.TempDir(), "serve.log")}
	s.Must("init")
	policy := fmt.Sprintf(policyTemplate, e2etest.CurrentUser(t))
	if err := os.WriteFile(filepath.Join(s.Dir, "sshca.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.shutdown()
		if t.Failed() {
			log, _ := os.ReadFile(s.logPath)
			t.Logf("serve log:\n%s", log)
		}
	})
	s.start()
	return s
}

// start runs `sshca serve` in-process: on the policy's 127.0.0.1:0 the
// first time, on the same address after a stop.
func (s *service) start() {
	s.T.Helper()
	var args []string
	if s.addr != "" {
		args = []string{"--listen", s.addr}
	}
	srv, err := s.Serve(s.logPath, args...)
	if err != nil {
		s.T.Fatal(err)
	}
	s.srv, s.URL, s.FP = srv, srv.URL, srv.Fingerprint
	s.addr = strings.TrimPrefix(s.URL, "https://")
}

// shutdown stops serve (idempotent).
func (s *service) shutdown() {
	if s.srv != nil {
		s.srv.Stop(s.T)
		s.srv = nil
	}
}

// restart starts serve again on the same address and TLS certificate.
func (s *service) restart() {
	s.T.Helper()
	s.shutdown()
	s.start()
}

// token creates an API token and returns the path of a file holding it.
func (s *service) token(args ...string) string {
	s.T.Helper()
	secret := strings.TrimSpace(s.Must(append([]string{"token", "create"}, args...)...))
	f := filepath.Join(s.T.TempDir(), "token")
	if err := os.WriteFile(f, []byte(secret+"\n"), 0o600); err != nil {
		s.T.Fatal(err)
	}
	return f
}

// userCert runs `sshca login --token-file` for a fresh key and returns the
// key's path (the certificate is beside it) and the certificate.
func (s *service) userCert(name string) (string, *ssh.Certificate) {
	s.T.Helper()
	tok := s.token("--role", "deploy", "--name", "user-"+name, "--ttl", "1h")
	key := filepath.Join(s.T.TempDir(), name)
	out, errs, code := sshca("login", "--server", s.URL, "--ca-fingerprint", s.FP, "--role", "deploy",
		"--token-file", tok, "--key", key, "--no-agent")
	if code != 0 {
		s.T.Fatalf("sshca login: exit %d\n%s%s", code, out, errs)
	}
	return key, e2etest.ReadCert(s.T, key+"-cert.pub")
}

// knownHosts returns the @cert-authority lines `sshca ssh-config` prints
// for the host pattern of srv.
func (s *service) knownHosts(srv *sshdtest.Server) []string {
	s.T.Helper()
	out, errs, code := sshca("ssh-config", "--server", s.URL, "--ca-fingerprint", s.FP, "--hosts", srv.KnownHostsPattern())
	if code != 0 {
		s.T.Fatalf("sshca ssh-config: exit %d: %s", code, errs)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "@cert-authority ") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		s.T.Fatalf("sshca ssh-config printed no @cert-authority line:\n%s", out)
	}
	return lines
}

// host is one enrolled "server": a host key and the directory sync writes.
type host struct {
	t       testing.TB
	svc     *service
	name    string // first principal: the name fleet status shows
	base    string // world-readable directory (sshd reads principals as the target user)
	Key     string // host private key; its certificate is Key-cert.pub
	Dir     string // the sync directory
	PidFile string // the PidFile of the first sshd started, for --sshd-pid-file
	sshds   int    // sshd servers started on this host's files
}

// newHost makes a host key and enrolls it with a one-time enrollment token
// bound to principals (the first is the host's name), with lifetime ttl.
func (s *service) newHost(ttl string, principals ...string) *host {
	s.T.Helper()
	return s.newHostFor(s.T, ttl, principals...)
}

// newHostFor is newHost for a subtest t of the service's test: the host's
// checks fail t, and its files go at t's end.
func (s *service) newHostFor(t testing.TB, ttl string, principals ...string) *host {
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

func (h *host) Cert() *ssh.Certificate { return e2etest.ReadCert(h.t, h.CertPath()) }

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

// startSSHD starts a real sshd of release rel whose CA keys, principals,
// KRL and host certificate are exactly what `sshca sshd-config
// --sshd-version REL flags...` prints for the sync directory. The harness
// writes its own defaults after these lines, and sshd keeps the first value
// of each keyword, so ours win; HostKey accumulates, and sshd presents the
// first ed25519 key, ours. The first sshd of the host writes h.PidFile.
func (h *host) startSSHD(rel *opensshtest.Flavour, flags ...string) *sshdtest.Server {
	h.t.Helper()
	args := append([]string{"sshd-config", "--dir", h.Dir, "--host-key", h.Key, "--sshd-version", rel.SSHDVersion()}, flags...)
	cfg := h.svc.Must(args...)
	pid := h.PidFile
	if h.sshds > 0 {
		pid = filepath.Join(h.base, fmt.Sprintf("sshd-%d.pid", h.sshds+1))
	}
	h.sshds++
	extra := []string{"HostKey " + h.Key, "PidFile " + pid}
	extra = append(extra, strings.Split(strings.TrimSpace(cfg), "\n")...)
	for _, want := range []string{"TrustedUserCAKeys ", "AuthorizedPrincipalsFile ", "RevokedKeys ", "HostCertificate "} {
		if !strings.Contains(cfg, "\n"+want) {
			h.t.Fatalf("sshd-config lacks %q:\n%s", want, cfg)
		}
	}
	return sshdtest.Start(h.t, sshdtest.Config{OpenSSH: rel, Extra: extra})
}

// startSSHDs starts one sshd per release on the host's files.
func (h *host) startSSHDs(releases []*opensshtest.Flavour) []*sshdtest.Server {
	h.t.Helper()
	srvs := make([]*sshdtest.Server, len(releases))
	for i, rel := range releases {
		srvs[i] = h.startSSHD(rel)
	}
	return srvs
}

// eachSSHD runs f as a subtest per server, named after its release.
func eachSSHD(t *testing.T, srvs []*sshdtest.Server, f func(t *testing.T, srv *sshdtest.Server)) {
	t.Helper()
	for _, srv := range srvs {
		t.Run(srv.OpenSSH.Name, func(t *testing.T) { f(t, srv) })
	}
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
// @cert-authority lines, with the ssh of the server's release; ssh runs at
// DEBUG1 so that its stderr names the host certificate it verified.
func login(t *testing.T, srv *sshdtest.Server, key string, knownHosts []string) sshdtest.Result {
	t.Helper()
	return srv.Login(t, sshdtest.LoginOptions{IdentityFile: key, KnownHosts: knownHosts, Options: []string{"LogLevel=DEBUG1"}})
}

func mustLogin(t *testing.T, srv *sshdtest.Server, key string, knownHosts []string) sshdtest.Result {
	t.Helper()
	r := login(t, srv, key, knownHosts)
	wantLoggedIn(t, srv, key, r)
	return r
}

func mustRefuse(t *testing.T, srv *sshdtest.Server, key string, knownHosts []string, why string) {
	t.Helper()
	wantRefused(t, srv, key, why, login(t, srv, key, knownHosts))
}

func wantLoggedIn(t *testing.T, srv *sshdtest.Server, key string, r sshdtest.Result) {
	t.Helper()
	if !r.OK {
		t.Fatalf("%s: login with %s refused (exit %d):\n%s\n--- sshd\n%s", srv.OpenSSH, filepath.Base(key), r.ExitCode, r.Stderr, r.ServerLog)
	}
}

func wantRefused(t *testing.T, srv *sshdtest.Server, key, why string, r sshdtest.Result) {
	t.Helper()
	if r.OK {
		t.Fatalf("%s: login with %s succeeded; want it refused (%s)", srv.OpenSSH, filepath.Base(key), why)
	}
	if !strings.Contains(r.ServerLog, why) {
		t.Fatalf("%s: login with %s refused, but sshd does not say %q:\n%s", srv.OpenSSH, filepath.Base(key), why, r.ServerLog)
	}
}

// sshdSet is one sshd per release on one host's files, with the
// @cert-authority lines through which each is trusted.
type sshdSet struct {
	srvs  []*sshdtest.Server
	known map[*sshdtest.Server][]string
}

// startSSHDSet starts one sshd per release on h's files.
func (s *service) startSSHDSet(h *host, releases []*opensshtest.Flavour) *sshdSet {
	s.T.Helper()
	set := &sshdSet{srvs: h.startSSHDs(releases), known: map[*sshdtest.Server][]string{}}
	for _, srv := range set.srvs {
		set.known[srv] = s.knownHosts(srv)
	}
	return set
}

// mustLogin logs in with key to every server, each with its release's ssh.
func (set *sshdSet) mustLogin(t *testing.T, key string) {
	t.Helper()
	for i, r := range set.loginEach(t, key) {
		wantLoggedIn(t, set.srvs[i], key, r)
	}
}

// mustRefuse checks that every server refuses key, saying why.
func (set *sshdSet) mustRefuse(t *testing.T, key, why string) {
	t.Helper()
	for i, r := range set.loginEach(t, key) {
		wantRefused(t, set.srvs[i], key, why, r)
	}
}

// loginEach logs in with key to every server at once (the releases'
// logins touch nothing in common) and returns the results in set.srvs
// order. Login fails the test only when it cannot run ssh at all.
func (set *sshdSet) loginEach(t *testing.T, key string) []sshdtest.Result {
	t.Helper()
	res := make([]sshdtest.Result, len(set.srvs))
	var wg sync.WaitGroup
	for i, srv := range set.srvs {
		wg.Add(1)
		go func() {
			defer wg.Done() // also when Login ends its goroutine with t.Fatal
			res[i] = login(t, srv, key, set.known[srv])
		}()
	}
	wg.Wait()
	return res
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

// keyscanCert asks sshd for its host certificate with the real ssh-keyscan
// of the server's release.
func keyscanCert(t *testing.T, srv *sshdtest.Server) *ssh.Certificate {
	t.Helper()
	keyscan := srv.OpenSSH.Keyscan
	testkit.RequireTool(t, keyscan)
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
