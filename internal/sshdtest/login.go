package sshdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/testkit"
)

// DefaultCommand is the remote command Login runs unless told otherwise;
// with it, a login is OK only if the marker comes back on stdout.
const DefaultCommand = "echo sshca-login-ok"

const (
	loginMarker  = "sshca-login-ok"
	loginTimeout = 20 * time.Second
)

// LoginOptions describe one ssh login attempt.
type LoginOptions struct {
	// User is the account to log in as; default the current user.
	//
	// sshd without PAM refuses an account whose password field in
	// /etc/shadow is locked ("!..."), as in many containers. When the test
	// runs as root and the account is root, or CI=true, Login unlocks it
	// with `usermod -p '*' USER` (no password, still no password login);
	// otherwise the test is skipped (failed under CI=true).
	User string

	// IdentityFile is the private key given with -i; ssh also offers
	// <IdentityFile>-cert.pub if it exists.
	IdentityFile string

	// CertificateFile, when set, is passed as -o CertificateFile.
	CertificateFile string

	// KnownHosts are the lines of a temporary known_hosts file, such as
	// Server.CertAuthorityLine(hostCA). When nil, the harness pins the
	// server's host key under KnownHostsPattern (or HostKeyAlias).
	KnownHosts []string

	// HostKeyAlias, when set, is passed as -o HostKeyAlias; ssh then looks
	// up and checks host certificate principals against it.
	HostKeyAlias string

	// Command is the remote command; default DefaultCommand.
	Command string

	// Env is added to ssh's otherwise minimal environment (PATH only), e.g.
	// "SSH_AUTH_SOCK=...". The test's own SSH_AUTH_SOCK is never inherited.
	Env []string

	// UseAgentOnly passes no -i and no identity file at all: ssh offers
	// only what the agent in Env's SSH_AUTH_SOCK holds.
	UseAgentOnly bool

	// Options are extra -o values, e.g. "PubkeyAcceptedAlgorithms=...".
	Options []string

	// Client is the OpenSSH release whose ssh runs; nil means the
	// server's own (Server.OpenSSH).
	Client *opensshtest.Flavour
}

// Result is the outcome of a login attempt.
type Result struct {
	// OK is true when ssh exited 0 (and, with DefaultCommand, printed the
	// marker).
	OK       bool
	ExitCode int // ssh's exit status; 255 for ssh's own errors, -1 on timeout
	Stdout   string
	Stderr   string
	// ServerLog is what sshd logged while the attempt ran. Under parallel
	// logins to one server it may hold lines of the others too.
	ServerLog string
}

// Login runs the real ssh client against the server and reports the
// outcome; a refused login is a Result, not a test failure. It runs
//
//	ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=yes
//	    -o UserKnownHostsFile=TMP -o IdentitiesOnly=yes ... -p PORT user@127.0.0.1 CMD
//
// bounded by a timeout. Only a failure to run ssh at all is fatal.
func (s *Server) Login(t testing.TB, o LoginOptions) Result {
	t.Helper()
	client := o.Client
	if client == nil {
		client = s.OpenSSH
	}
	testkit.RequireTool(t, client.SSH)
	account := o.User
	if account == "" {
		u, err := user.Current()
		if err != nil {
			t.Fatalf("sshdtest: current user: %v", err)
		}
		account = u.Username
	}
	ensureLoginAllowed(t, account)

	known := o.KnownHosts
	if known == nil {
		pattern := s.KnownHostsPattern()
		if o.HostKeyAlias != "" {
			pattern = o.HostKeyAlias
		}
		known = []string{pattern + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.HostPublicKey)))}
	}
	kh, err := os.CreateTemp(s.Dir, "known_hosts-*")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	defer os.Remove(kh.Name())
	_, err = kh.WriteString(joinLines(known))
	if cerr := kh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}

	command := o.Command
	if command == "" {
		command = DefaultCommand
	}
	args := s.sshArgs(o, kh.Name(), account, command)

	ctx, cancel := context.WithTimeout(t.Context(), loginTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, client.SSH, args...)
	cmd.Dir = s.Dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, o.Env...)
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr

	offset := fileSize(s.paths.log)
	runErr := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.ExitCode = -1
		res.Stderr += fmt.Sprintf("\nsshdtest: ssh did not finish within %v", loginTimeout)
	case runErr == nil:
		res.ExitCode = 0
	case errors.As(runErr, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("sshdtest: run ssh: %v", runErr)
	}
	res.ServerLog = readFrom(s.paths.log, offset)
	res.OK = res.ExitCode == 0 && (o.Command != "" || strings.Contains(res.Stdout, loginMarker))
	return res
}

// sshArgs builds the ssh command line. -F /dev/null and the known_hosts
// options keep the user's and the system's ssh configuration out.
func (s *Server) sshArgs(o LoginOptions, knownHosts, account, command string) []string {
	args := []string{
		"-F", "/dev/null",
		"-T",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "UpdateHostKeys=no",
		"-o", "CheckHostIP=no",
		"-o", "PreferredAuthentications=publickey",
		"-o", "PasswordAuthentication=no",
		"-o", "KbdInteractiveAuthentication=no",
		"-o", "ConnectTimeout=5",
	}
	// IdentityFile=none keeps ssh from trying the user's ~/.ssh/id_*.
	switch {
	case o.UseAgentOnly:
		args = append(args, "-o", "IdentitiesOnly=no", "-o", "IdentityFile=none")
	case o.IdentityFile != "":
		args = append(args, "-o", "IdentitiesOnly=yes", "-i", o.IdentityFile)
	default:
		args = append(args, "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=none")
	}
	if o.CertificateFile != "" {
		args = append(args, "-o", "CertificateFile="+o.CertificateFile)
	}
	if o.HostKeyAlias != "" {
		args = append(args, "-o", "HostKeyAlias="+o.HostKeyAlias)
	}
	for _, opt := range o.Options {
		args = append(args, "-o", opt)
	}
	return append(args, "-p", fmt.Sprint(s.Port), "-l", account, "--", s.Host, command)
}

// ensureLoginAllowed unlocks a locked account when allowed to (see
// LoginOptions.User). It only looks when running as root, the only case in
// which /etc/shadow is readable and sshd can switch to another account.
func ensureLoginAllowed(t testing.TB, account string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	b, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return
	}
	if !shadowLocked(string(b), account) {
		return
	}
	if account != "root" && !testkit.CI() {
		testkit.SkipOrFatal(t, "sshdtest: account %q is locked in /etc/shadow, so sshd refuses it; unlock it with: usermod -p '*' %s", account, account)
	}
	const usermod = "/usr/sbin/usermod"
	testkit.RequireTool(t, usermod)
	var out []byte
	for attempt := 0; attempt < 5; attempt++ {
		// Parallel tests may race for /etc/shadow's lock; the loser retries.
		out, err = exec.Command(usermod, "-p", "*", account).CombinedOutput()
		if err == nil {
			t.Logf("sshdtest: unlocked account %q for sshd (usermod -p '*')", account)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("sshdtest: unlock account %q: %v: %s", account, err, out)
}

// shadowLocked reports whether account's password field in the shadow
// file content starts with "!", which sshd without PAM treats as locked.
func shadowLocked(shadow, account string) bool {
	for _, line := range strings.Split(shadow, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != account {
			continue
		}
		return strings.HasPrefix(rest, "!")
	}
	return false
}
