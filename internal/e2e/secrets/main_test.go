// Package secrets checks sshca's secrets hygiene end to end with the built
// binary: a whole flow (init with a passphrase, serve with debug logging,
// tokens, login, denials, OIDC ID tokens, revocation, signed KRL, audit)
// must never write a CA or user private key, a passphrase, an API token or
// an ID token to any output, log, audit file or database column; CA key
// files must be created private and the service must refuse readable ones.
// It holds tests only and never touches anything outside its temporary
// directories.
package secrets

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sshcaBin is the sshca binary built once by TestMain (the service's real
// output is what must stay clean); buildErr says why there is none.
// Package state by necessity: TestMain must hand them to the tests.
var (
	sshcaBin string
	buildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sshca-secrets-bin-")
	if err != nil {
		buildErr = err
	} else {
		sshcaBin, buildErr = buildSSHCA(dir)
	}
	m.Run()
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// buildSSHCA builds ./cmd/sshca of this module into dir.
func buildSSHCA(dir string) (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		return "", errors.New("not inside the sshca module")
	}
	bin := filepath.Join(dir, "sshca")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sshca")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sshca: %w\n%s", err, out)
	}
	return bin, nil
}

// requireTool skips the test when name is missing, or fails it under CI=true.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing", name)
		}
		t.Skipf("%s is missing", name)
	}
}

// binary returns the built sshca or ends the test.
func binary(t *testing.T) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("build sshca: %v", buildErr)
	}
	return sshcaBin
}

// childEnv is the test's environment without anything that would point
// sshca at another home, database, passphrase or agent.
func childEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SSHCA_") || strings.HasPrefix(kv, "SSH_AUTH_SOCK=") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "USER=secrets-test")
}

// caHome is a CA home driven through the built binary.
type caHome struct {
	t   *testing.T
	bin string
	dir string
	env []string
}

// run runs sshca --home dir args... and returns stdout, stderr and the exit
// code (-1, with the reason as stderr, when it could not run). It is safe to
// call from any goroutine.
func (h *caHome) run(args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(h.t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append([]string{"--home", h.dir}, args...)...)
	cmd.Env = h.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return out.String(), err.Error(), -1
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func (h *caHome) must(args ...string) string {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("sshca %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// serveProc is a running `sshca serve`.
type serveProc struct {
	cmd         *exec.Cmd
	url         string // https://127.0.0.1:PORT
	fingerprint string // of its TLS certificate
	done        chan struct{}
}

// startServe starts `sshca serve` on the home and waits until it listens.
// Its stderr (the JSON log) is appended to logPath. When the server exits
// before listening, the error comes with the ended process.
func startServe(t *testing.T, h *caHome, logPath string, args ...string) (*serveProc, error) {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.bin, append([]string{"--home", h.dir, "serve"}, args...)...)
	cmd.Env = h.env
	cmd.Stdout, cmd.Stderr = pw, logf
	// Should the test binary die, the kernel kills the server too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		return nil, err
	}
	pw.Close()
	p := &serveProc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)

	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		defer pr.Close() // at EOF, when the server is gone: closing earlier would SIGPIPE it
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.After(30 * time.Second)
	for p.url == "" || p.fingerprint == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				p.kill()
				log, _ := os.ReadFile(logPath)
				return p, fmt.Errorf("sshca serve exited before listening (%v):\n%s", cmd.ProcessState, tail(log, 2000))
			}
			if v, ok := strings.CutPrefix(l, "TLS certificate fingerprint: "); ok {
				p.fingerprint = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "listening on "); ok {
				p.url = strings.TrimSpace(v)
			}
		case <-timeout:
			p.kill()
			return nil, errors.New("sshca serve did not report its address within 30s")
		}
	}
	// Nothing else is printed on stdout; drain it so that the child never blocks.
	go func() {
		for range lines {
		}
	}()
	return p, nil
}

// stop asks the server to shut down (SIGTERM) and waits for a clean exit,
// killing it after ten seconds.
func (p *serveProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
		return errors.New("sshca serve ignored SIGTERM for 10s")
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("sshca serve exited with %v", p.cmd.ProcessState)
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *serveProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
