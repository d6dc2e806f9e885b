// Package service tests the certificate service end to end: `sshca serve`
// runs in-process through cli.Run on 127.0.0.1, admin commands work on the
// same home meanwhile, `sshca login` talks to it over HTTPS, and real
// OpenSSH (ssh-agent, ssh, sshd) judges the certificates. PostgreSQL tests use
// a throwaway server started by pgtest.
package service

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m)
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
}

// policy is the sshca.yaml of these tests; %s is an optional database line.
const policy = `backdate: 5m
%s
service:
  listen: 127.0.0.1:0
  rate_limit: 1000000
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
  servers:
    type: host
    principals: ["*.corp"]
    max_ttl: 24h
`

// caHome is an sshca home directory, on SQLite or on PostgreSQL.
type caHome struct {
	t   testing.TB
	dir string
	db  string // PostgreSQL URL, or "" for SQLite
}

// newHome runs `sshca init` and writes the test policy.
func newHome(t testing.TB, db string) *caHome {
	t.Helper()
	h := &caHome{t: t, dir: filepath.Join(t.TempDir(), "ca"), db: db}
	h.must("init")
	dbLine := ""
	if db != "" {
		dbLine = "database: " + db
	}
	if err := os.WriteFile(filepath.Join(h.dir, "sshca.yaml"), []byte(fmt.Sprintf(policy, dbLine)), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// run runs the CLI in-process on this home with env as its environment.
func (h *caHome) runEnv(env map[string]string, args ...string) (string, string, int) {
	h.t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"--home", h.dir}, args...)
	if h.db != "" {
		all = append([]string{"--database", h.db}, all...)
	}
	code := cli.Run(context.Background(), all, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	return out.String(), errb.String(), code
}

func (h *caHome) run(args ...string) (string, string, int) {
	h.t.Helper()
	return h.runEnv(nil, args...)
}

func (h *caHome) must(args ...string) string {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("sshca %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// token creates an API token and returns the path of a file holding it.
func (h *caHome) token(args ...string) (secret, path string) {
	h.t.Helper()
	secret = strings.TrimSpace(h.must(append([]string{"token", "create"}, args...)...))
	path = filepath.Join(h.t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return secret, path
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// replica is a running `sshca serve`.
type replica struct {
	URL         string
	Fingerprint string
	stop        func()
	done        chan int // exit code
	stderr      *syncBuffer
	stopped     bool
}

var (
	listenRE = regexp.MustCompile(`listening on (https://\S+)`)
	fpRE     = regexp.MustCompile(`TLS certificate fingerprint: (SHA256:\S+)`)
)

// serve starts `sshca serve` in-process and waits until it listens. It is
// stopped (gracefully) at the end of the test unless Stop was called.
func (h *caHome) serve() *replica {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	args := []string{"--home", h.dir, "serve"}
	if h.db != "" {
		args = append([]string{"--database", h.db}, args...)
	}
	r := &replica{stop: cancel, done: make(chan int, 1), stderr: errb}
	go func() {
		r.done <- cli.Run(ctx, args, strings.NewReader(""), out, errb, func(string) string { return "" })
	}()
	r.wait(h.t, out)
	h.t.Cleanup(func() { r.Stop(h.t) })
	return r
}

// Stop cancels serve's context and waits for a clean exit.
func (r *replica) Stop(t testing.TB) {
	t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.stop()
	select {
	case code := <-r.done:
		if code != 0 {
			t.Errorf("sshca serve exited %d: %s", code, r.stderr.String())
		}
	case <-time.After(40 * time.Second):
		t.Errorf("sshca serve did not stop within 40s")
	}
}

// Client returns a Go API client pinned to the replica's TLS certificate.
func (r *replica) Client(t testing.TB, bearer string) *client.Client {
	t.Helper()
	c, err := client.New(r.URL, r.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	c.Bearer = bearer
	return c
}

// binary builds cmd/sshca once per test run (without the race detector,
// so that a load test measures the service rather than the instrumentation)
// and returns its path; "" when the go tool is not available.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "sshca-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtDir = dir
		path := filepath.Join(dir, "sshca")
		out, err := exec.Command(goTool, "build", "-o", path, "github.com/sshca/sshca/cmd/sshca").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
			return
		}
		builtPath = path
	})
	if buildErr != nil {
		t.Logf("no sshca binary (%v); running serve in-process", buildErr)
	}
	return builtPath
}

var (
	buildOnce           sync.Once
	builtPath, builtDir string
	buildErr            error
)

// serveBinary starts the built binary's `sshca serve` as a child process;
// it is stopped with SIGTERM (a graceful shutdown) at the end of the test.
func (h *caHome) serveBinary(bin string) *replica {
	h.t.Helper()
	args := []string{"--home", h.dir, "serve"}
	if h.db != "" {
		args = append([]string{"--database", h.db}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	r := &replica{done: make(chan int, 1), stderr: errb}
	r.stop = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	go func() {
		_ = cmd.Wait()
		r.done <- cmd.ProcessState.ExitCode()
	}()
	r.wait(h.t, out)
	h.t.Cleanup(func() { r.Stop(h.t) })
	return r
}

// wait waits until serve prints where it listens.
func (r *replica) wait(t testing.TB, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := out.String()
		if m := listenRE.FindStringSubmatch(s); m != nil {
			r.URL = m[1]
			r.Fingerprint = fpRE.FindStringSubmatch(s)[1]
			return
		}
		select {
		case code := <-r.done:
			t.Fatalf("sshca serve exited %d before listening: %s", code, r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			r.stop()
			t.Fatalf("sshca serve did not listen within 30s: %s", r.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// requireTool skips without an external tool, or fails under CI=true.
func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing", name)
		}
		t.Skipf("%s is missing", name)
	}
}

// newKeyLine returns the authorized_keys line of a fresh ed25519 key.
func newKeyLine(t testing.TB) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

func currentUser(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
