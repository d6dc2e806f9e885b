package e2etest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/client"
)

const (
	listenTimeout = 30 * time.Second // for serve to say where it listens
	stopTimeout   = 40 * time.Second // for a graceful shutdown
	logTailBytes  = 2000             // of the log quoted in an error
)

// Server is a running `sshca serve`, in-process or a child process.
type Server struct {
	URL         string // https://127.0.0.1:PORT
	Fingerprint string // SHA256:... of its TLS certificate, the clients' pin

	logPath string
	done    chan struct{} // closed once serve has returned or its process has exited
	code    int           // the exit code, once done is closed
	term    func()        // asks serve to shut down gracefully
	kill    func()        // ends a child process at once; nil in-process
	stopped bool
}

// Serve starts `sshca serve args...` on the home, in-process or, when Bin
// is set, as a child process (which the kernel kills should the test binary
// die), and waits until serve prints where it listens and its TLS
// fingerprint. Its stderr, the JSON log, is appended to logPath, or to a
// file in a temporary directory when logPath is "".
//
// A started Server is stopped with Stop at the end of the test unless it
// was stopped or killed before. When it does not start, the error says why
// with the end of its log, and the returned Server, if any, has ended:
// Wait gives its exit code.
func (h *Home) Serve(logPath string, args ...string) (*Server, error) {
	h.T.Helper()
	if logPath == "" {
		logPath = filepath.Join(h.T.TempDir(), "serve.log")
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	s := &Server{logPath: logPath, done: make(chan struct{})}
	all := h.args(append([]string{"serve"}, args...))
	var stdout io.ReadCloser
	if h.Bin == "" {
		stdout = s.startInProcess(h.Env, all, logf)
	} else if stdout, err = s.startProcess(h.Bin, h.environ(), all, logf); err != nil {
		return nil, err
	}
	h.T.Cleanup(func() { s.Stop(h.T) })
	return s, s.waitListening(stdout)
}

// startInProcess runs cli.Run in a goroutine until its context is
// cancelled, and returns its stdout.
func (s *Server) startInProcess(env map[string]string, args []string, logf *os.File) io.ReadCloser {
	ctx, cancel := context.WithCancel(context.Background())
	s.term = cancel
	pr, pw := io.Pipe()
	go func() {
		s.code = cli.Run(ctx, args, strings.NewReader(""), pw, logf, func(k string) string { return env[k] })
		pw.Close()
		logf.Close()
		close(s.done)
	}()
	return pr
}

// startProcess starts bin as a child process and returns its stdout.
func (s *Server) startProcess(bin string, env, args []string, logf *os.File) (io.ReadCloser, error) {
	defer logf.Close() // the child has its own
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pw.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = pw, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		pr.Close()
		return nil, err
	}
	s.term = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	s.kill = func() { _ = cmd.Process.Kill() }
	go func() {
		_ = cmd.Wait()
		s.code = cmd.ProcessState.ExitCode()
		close(s.done)
	}()
	return pr, nil
}

// waitListening reads serve's stdout until it has said where it listens
// and its fingerprint; it kills the server when it does not.
func (s *Server) waitListening(stdout io.ReadCloser) error {
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		defer stdout.Close() // at EOF, when serve is gone: closing earlier would SIGPIPE it
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// Serve prints nothing more; keep its stdout drained so that it never blocks.
	defer func() {
		go func() {
			for range lines {
			}
		}()
	}()
	timeout := time.After(listenTimeout)
	for s.URL == "" || s.Fingerprint == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				s.Kill()
				return fmt.Errorf("sshca serve exited %d before listening:\n%s", s.code, s.logTail())
			}
			if v, ok := strings.CutPrefix(l, "TLS certificate fingerprint: "); ok {
				s.Fingerprint = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(l, "listening on "); ok {
				s.URL = strings.TrimSpace(v)
			}
		case <-timeout:
			s.Kill()
			return fmt.Errorf("sshca serve did not report its address within %v:\n%s", listenTimeout, s.logTail())
		}
	}
	return nil
}

// Stop asks the server to shut down gracefully (SIGTERM to a child process,
// a cancelled context in-process) and fails the test unless it exits 0
// within 40 seconds; a child process still running then is killed. Stopping
// a server that was stopped or killed before does nothing.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	s.term()
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		if s.kill != nil {
			s.kill()
			<-s.done
		}
		t.Errorf("sshca serve did not stop within %v:\n%s", stopTimeout, s.logTail())
		return
	}
	if s.code != 0 {
		t.Errorf("sshca serve exited %d:\n%s", s.code, s.logTail())
	}
}

// Kill ends the server without checking how it ended (SIGKILL to a child
// process, a cancelled context in-process) and waits until it is gone.
func (s *Server) Kill() {
	s.stopped = true
	if s.kill != nil {
		s.kill()
	} else {
		s.term()
	}
	<-s.done
}

// Wait waits until the server has ended and returns its exit code (-1 for
// a process ended by a signal).
func (s *Server) Wait() int {
	<-s.done
	return s.code
}

// Log returns what the server has written to its log file so far.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return string(b)
}

func (s *Server) logTail() string {
	l := s.Log()
	if len(l) > logTailBytes {
		return l[len(l)-logTailBytes:]
	}
	return l
}

// Client returns an API client pinned to the server's TLS certificate that
// authenticates with bearer ("" for none).
func (s *Server) Client(t testing.TB, bearer string) *client.Client {
	t.Helper()
	c, err := client.New(s.URL, s.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	c.Bearer = bearer
	return c
}
