// Package sshdtest runs a real OpenSSH sshd on 127.0.0.1 for tests and logs
// in to it with the real ssh client, so that certificates, principals files,
// KRLs and host certificates are judged by OpenSSH itself.
//
// It is a test helper: every function takes a testing.TB, fails the test
// with sshd's log when something goes wrong, and cleans up at t.Cleanup.
// It never imports other sshca packages, never touches the system sshd or
// its configuration, and changes the system in one documented way only: it
// creates /run/sshd, and as root it may unlock a locked account (see
// LoginOptions.User).
//
// The OpenSSH release is a choice: Config.OpenSSH picks the sshd (and the
// ssh-keygen that makes its host key), LoginOptions.Client the ssh client;
// both default to the system's (package opensshtest, the only sshca
// package this one imports, knows the releases).
//
// A missing OpenSSH tool skips the test, or fails it when the environment
// variable CI is "true".
package sshdtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/testkit"
)

// Paths of the system's OpenSSH programs, which the harness runs unless
// told to use another release (Config.OpenSSH, LoginOptions.Client).
const (
	SSHDPath    = opensshtest.SystemSSHD
	SSHPath     = opensshtest.SystemSSH
	KeygenPath  = opensshtest.SystemKeygen
	AgentPath   = opensshtest.SystemAgent
	SSHAddPath  = opensshtest.SystemAdd
	privsepPath = "/run/sshd"
)

const (
	startTimeout = 10 * time.Second
	stopTimeout  = 5 * time.Second
	pollInterval = 5 * time.Millisecond
	portAttempts = 8
)

// Server is a running sshd. Its exported fields are fixed for its lifetime;
// Restart keeps the port.
type Server struct {
	Addr string // "127.0.0.1:PORT"
	Host string // "127.0.0.1"
	Port int
	Dir  string // the server's private directory (config, keys, log)

	// OpenSSH is the release this sshd is (Config.OpenSSH, or the
	// system's); Login runs its ssh unless told otherwise.
	OpenSSH *opensshtest.Flavour

	ConfigPath            string // the sshd_config
	LogPath               string // sshd's log (-E)
	HostKeyPath           string // the host private key
	HostPublicKey         ssh.PublicKey
	HostCertPath          string           // "" unless Config.SignHostKey was set
	HostCertificate       *ssh.Certificate // nil unless Config.SignHostKey was set
	TrustedUserCAKeysPath string           // the TrustedUserCAKeys file
	PrincipalsDir         string           // holds one file per account

	paths     paths
	penalties bool

	mu   sync.Mutex // guards proc during Reload, Restart and cleanup
	proc *process
}

// process is one sshd -D and the goroutine that waits for it.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// Start writes an sshd configuration from cfg into a fresh directory,
// starts sshd on a free port of 127.0.0.1 and waits until it listens. The
// server is stopped at t.Cleanup. Any failure is fatal and shows sshd's log.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	flavour := cfg.OpenSSH
	if flavour == nil {
		flavour = opensshtest.System(t)
	}
	testkit.RequireTool(t, flavour.SSHD)
	testkit.RequireTool(t, flavour.Keygen)
	cfg = cfg.normalize()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(privsepPath, 0o755); err != nil {
		testkit.SkipOrFatal(t, "sshdtest: sshd needs %s: %v", privsepPath, err)
	}

	// Not t.TempDir: its parent is mode 0700, and sshd opens the principals
	// file as the target account, which may not be root.
	dir, err := os.MkdirTemp("", "sshdtest-")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	p := newPaths(dir)
	s := &Server{
		Host:                  "127.0.0.1",
		Dir:                   dir,
		ConfigPath:            p.config,
		LogPath:               p.log,
		HostKeyPath:           p.hostKey,
		TrustedUserCAKeysPath: p.userCAs,
		PrincipalsDir:         p.principals,
		OpenSSH:               flavour,
		paths:                 p,
	}

	typeArgs, _ := keygenTypeArgs(cfg.hostKeyType()) // validated above
	s.HostPublicKey = keygen(t, flavour.Keygen, p.hostKey, typeArgs, "sshdtest-host")
	if cfg.SignHostKey != nil {
		s.HostCertificate = installHostCert(t, cfg.SignHostKey, s.HostPublicKey, p.hostCert)
		s.HostCertPath = p.hostCert
	}
	writeFile(t, p.userCAs, joinLines(cfg.TrustedUserCAKeys), 0o644)
	if cfg.Principals != nil {
		if err := os.Mkdir(p.principals, 0o755); err != nil {
			t.Fatalf("sshdtest: %v", err)
		}
		for account, principals := range cfg.Principals {
			writeFile(t, filepath.Join(p.principals, account), joinLines(principals), 0o644)
		}
	}
	// PerSourcePenalties (OpenSSH 9.8+) must be off, or repeated refused
	// logins from 127.0.0.1 would block later ones.
	s.penalties = flavour.AtLeast(9, 8)

	pick := cfg.pickPort
	if pick == nil {
		pick = freePort
	}
	var lastLog string
	for attempt := 0; attempt < portAttempts; attempt++ {
		port, err := pick()
		if err != nil {
			t.Fatalf("sshdtest: pick a port: %v", err)
		}
		writeFile(t, p.config, renderConfig(&cfg, p, port, s.HostCertificate != nil, s.penalties), 0o644)
		proc, bindFailed, err := s.launch(port)
		if err == nil {
			s.setPort(port)
			s.proc = proc
			t.Cleanup(func() { s.stop(t) })
			return s
		}
		lastLog = s.Log()
		if !bindFailed {
			t.Fatalf("sshdtest: start sshd: %v\n--- sshd_config\n%s--- sshd log\n%s", err, readFile(p.config), lastLog)
		}
	}
	t.Fatalf("sshdtest: sshd could not bind a port in %d attempts\n--- sshd log\n%s", portAttempts, lastLog)
	return nil
}

func (s *Server) setPort(port int) {
	s.Port = port
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
}

// launch starts sshd and waits until its log says it listens on port. On
// failure the process is gone; bindFailed tells whether the port was taken.
func (s *Server) launch(port int) (proc *process, bindFailed bool, err error) {
	logOffset := fileSize(s.paths.log)
	stderr, err := os.OpenFile(s.paths.stderr, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("sshdtest: %w", err)
	}
	defer stderr.Close() // the child has its own copy
	cmd := exec.Command(s.OpenSSH.SSHD, "-D", "-e", "-f", s.paths.config, "-E", s.paths.log)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, false, fmt.Errorf("sshdtest: %w", err)
	}
	proc = &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		proc.err = cmd.Wait()
		close(proc.done)
	}()
	if err := s.waitListening(proc, port, logOffset); err != nil {
		proc.kill()
		tail := readFrom(s.paths.log, logOffset)
		bind := strings.Contains(tail, "Address already in use") || strings.Contains(tail, "Cannot bind any address")
		return nil, bind, err
	}
	return proc, false, nil
}

// waitListening polls sshd's log (from offset) for its "Server listening"
// line, which it writes after listen(2). Dialing the port instead could
// reach some other process that took it.
func (s *Server) waitListening(proc *process, port int, offset int64) error {
	want := fmt.Sprintf("Server listening on 127.0.0.1 port %d.", port)
	deadline := time.Now().Add(startTimeout)
	for {
		if strings.Contains(readFrom(s.paths.log, offset), want) {
			return nil
		}
		select {
		case <-proc.done:
			return fmt.Errorf("sshdtest: sshd exited: %v; stderr: %s", proc.err, strings.TrimSpace(readFile(s.paths.stderr)))
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshdtest: sshd not listening after %v", startTimeout)
		}
	}
}

// kill stops the process, politely first, and waits for it.
func (p *process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(stopTimeout):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (s *Server) stop(t testing.TB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// Log returns sshd's log so far. Per-connection sshd processes write to the
// same log, so it tells why a login was refused.
func (s *Server) Log() string {
	return readFile(s.paths.log)
}

// Reload sends SIGHUP, on which sshd re-executes itself and rereads its
// configuration, host keys and host certificate, and waits until it listens
// again. Use it after rewriting HostCertPath.
func (s *Server) Reload(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		t.Fatal("sshdtest: reload: server stopped")
	}
	offset := fileSize(s.paths.log)
	if err := s.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("sshdtest: reload: %v", err)
	}
	if err := s.waitListening(s.proc, s.Port, offset); err != nil {
		s.proc.kill()
		s.proc = nil
		t.Fatalf("sshdtest: reload: %v\n--- sshd log\n%s", err, s.Log())
	}
}

// Restart stops sshd and starts it again with the same configuration files
// on the same port, retrying for a few seconds if the port is busy.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
	var err error
	for attempt := 0; attempt < 40; attempt++ {
		var proc *process
		var bindFailed bool
		proc, bindFailed, err = s.launch(s.Port)
		if err == nil {
			s.proc = proc
			return
		}
		if !bindFailed {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sshdtest: restart: %v\n--- sshd log\n%s", err, s.Log())
}

// SetTrustedUserCAKeys replaces the TrustedUserCAKeys file. sshd reads it at
// each authentication, so no reload is needed.
func (s *Server) SetTrustedUserCAKeys(t testing.TB, lines ...string) {
	t.Helper()
	c := Config{TrustedUserCAKeys: lines}.normalize()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	writeFileAtomic(t, s.paths.userCAs, joinLines(c.TrustedUserCAKeys))
}

// SetPrincipals replaces the principals file of account; with no
// principals the file is removed, so every certificate is refused for it.
// The server must have been started with a non-nil Config.Principals.
func (s *Server) SetPrincipals(t testing.TB, account string, principals ...string) {
	t.Helper()
	c := Config{Principals: map[string][]string{account: principals}}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.paths.principals); err != nil {
		t.Fatalf("sshdtest: SetPrincipals needs a server started with Config.Principals: %v", err)
	}
	path := filepath.Join(s.paths.principals, account)
	if len(principals) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("sshdtest: %v", err)
		}
		return
	}
	writeFileAtomic(t, path, joinLines(principals))
}

// KnownHostsPattern is the host pattern ssh looks up in known_hosts for
// this server: "[127.0.0.1]:PORT", since the port is not 22.
func (s *Server) KnownHostsPattern() string {
	return fmt.Sprintf("[%s]:%d", s.Host, s.Port)
}

// CertAuthorityLine returns a known_hosts line that trusts ca to certify
// this server's host key.
func (s *Server) CertAuthorityLine(ca ssh.PublicKey) string {
	return "@cert-authority " + s.KnownHostsPattern() + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca)))
}

// installHostCert asks sign for a certificate of hostPub, checks that it
// is a host certificate of that very key, and writes it to path.
func installHostCert(t testing.TB, sign func(ssh.PublicKey) ([]byte, error), hostPub ssh.PublicKey, path string) *ssh.Certificate {
	t.Helper()
	b, err := sign(hostPub)
	if err != nil {
		t.Fatalf("sshdtest: SignHostKey: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatalf("sshdtest: SignHostKey result: %v", err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("sshdtest: SignHostKey returned a %s key, not a certificate", pub.Type())
	}
	if cert.CertType != ssh.HostCert {
		t.Fatalf("sshdtest: SignHostKey returned a user certificate (type %d)", cert.CertType)
	}
	if !bytes.Equal(cert.Key.Marshal(), hostPub.Marshal()) {
		t.Fatal("sshdtest: SignHostKey certified some other key than the host key")
	}
	writeFile(t, path, string(ssh.MarshalAuthorizedKey(cert)), 0o644)
	return cert
}

// freePort asks the kernel for a free port. sshd cannot listen on port 0,
// so the port is closed again and may be taken before sshd binds it; Start
// then retries.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
