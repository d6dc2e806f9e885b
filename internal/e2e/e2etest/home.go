package e2etest

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/sshdtest"
)

// commandTimeout bounds one command of a built binary.
const commandTimeout = time.Minute

// RunCLI runs the sshca command line in-process (cli.Run) with args, an
// empty standard input and env as its whole environment, so that nothing of
// the test process's environment (SSHCA_HOME, SSH_AUTH_SOCK, HOME) reaches
// it. It returns stdout, stderr and the exit code.
func RunCLI(env map[string]string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = cli.Run(context.Background(), args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
	return out.String(), errb.String(), code
}

// Home is a CA home directory driven through the sshca command line:
// in-process through cli.Run, or as a child process when Bin is set.
type Home struct {
	T   testing.TB
	Dir string            // given as --home to every command
	DB  string            // a PostgreSQL URL given as --database to every command; "" for the home's own database
	Env map[string]string // the whole environment sshca sees; nil for an empty one
	Bin string            // the built sshca binary (see Binary); "" runs the CLI in-process
}

// args puts the home's global flags before args.
func (h *Home) args(args []string) []string {
	all := append([]string{"--home", h.Dir}, args...)
	if h.DB != "" {
		all = append([]string{"--database", h.DB}, all...)
	}
	return all
}

// environ returns Env as a child process's environment: exactly Env, never
// the test process's.
func (h *Home) environ() []string {
	env := make([]string, 0, len(h.Env)) // not nil: nil would inherit
	for _, k := range slices.Sorted(maps.Keys(h.Env)) {
		env = append(env, k+"="+h.Env[k])
	}
	return env
}

// Run runs `sshca --home Dir args...` and returns stdout, stderr and the
// exit code. A child process runs under the test's context for at most a
// minute; when it cannot run at all the code is -1 and stderr says why. Run
// is safe to call from any goroutine.
func (h *Home) Run(args ...string) (stdout, stderr string, code int) {
	h.T.Helper()
	if h.Bin == "" {
		return RunCLI(h.Env, h.args(args)...)
	}
	ctx, cancel := context.WithTimeout(h.T.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.Bin, h.args(args)...)
	cmd.Env = h.environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return out.String(), err.Error(), -1
		}
		return out.String(), errb.String(), ee.ExitCode()
	}
	return out.String(), errb.String(), 0
}

// Must runs the command like Run, fails the test unless it exits 0, and
// returns its stdout.
func (h *Home) Must(args ...string) string {
	h.T.Helper()
	out, errs, code := h.Run(args...)
	if code != 0 {
		h.T.Fatalf("sshca %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// With returns the same home seen with env added to its environment.
func (h *Home) With(env map[string]string) *Home {
	c := *h
	c.Env = maps.Clone(h.Env)
	if c.Env == nil {
		c.Env = map[string]string{}
	}
	maps.Copy(c.Env, env)
	return &c
}

// SignUser makes a fresh ed25519 key in dir, has `sshca sign user args...
// <key>.pub` certify it, and returns the private key's path (the
// certificate is beside it as <key>-cert.pub, where ssh looks for it) and
// the certificate.
func (h *Home) SignUser(dir string, args ...string) (string, *ssh.Certificate) {
	h.T.Helper()
	key, _ := sshdtest.GenerateKey(h.T, dir, "ed25519")
	h.Must(append(append([]string{"sign", "user"}, args...), key+".pub")...)
	return key, ReadCert(h.T, key+"-cert.pub")
}

// ChildEnv is the test process's environment without anything that would
// point a built sshca at another home, database, passphrase or agent (no
// SSHCA_*, SSH_AUTH_SOCK or HOME), with HOME set to home and USER to user.
func ChildEnv(home, user string) map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SSHCA_") || k == "SSH_AUTH_SOCK" || k == "HOME" {
			continue
		}
		env[k] = v
	}
	env["HOME"], env["USER"] = home, user
	return env
}
