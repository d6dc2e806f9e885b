package interop

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/testkit"
)

// loginMarker is what every test server prints for a successful login.
const loginMarker = "sshca-login-ok"

// goServer is an in-process x/crypto/ssh server on 127.0.0.1 that
// authenticates with an Authenticator and answers every "exec" request by
// printing loginMarker and exiting 0, whatever the command.
type goServer struct {
	Addr    string
	Host    string
	Port    int
	HostKey ssh.PublicKey

	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]bool
	authErr map[string]error // last refusal by client address
}

// startGoServer starts the server; it is stopped at t.Cleanup.
func startGoServer(t testing.TB, auth *Authenticator) *goServer {
	t.Helper()
	hostSigner := testkit.NewSigner(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &goServer{
		Addr: ln.Addr().String(), Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port,
		HostKey: hostSigner.PublicKey(), ln: ln,
		conns: map[net.Conn]bool{}, authErr: map[string]error{},
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: auth.PublicKeyCallback,
		AuthLogCallback: func(conn ssh.ConnMetadata, method string, err error) {
			if method != "publickey" || err == nil {
				return
			}
			s.mu.Lock()
			s.authErr[conn.RemoteAddr().String()] = err
			s.mu.Unlock()
		},
	}
	cfg.AddHostKey(hostSigner)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c, cfg)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *goServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// LastAuthError returns the last reason the server refused a public key
// offered from the client address addr ("127.0.0.1:PORT").
func (s *goServer) LastAuthError(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authErr[addr]
}

func (s *goServer) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go session(ch, creqs)
	}
}

// session answers the first exec (or shell) request with the marker and
// exit status 0; every other request is declined.
func session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		switch req.Type {
		case "exec", "shell":
			req.Reply(true, nil)
			ch.Write([]byte(loginMarker + "\n"))
			ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
			return
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

// goLogin logs in to addr with the Go client and runs a command; it
// returns nil when the marker came back.
func goLogin(addr, user string, signer ssh.Signer, hostKey ssh.HostKeyCallback) error {
	cfg := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey,
		Timeout:         loginTimeout,
	}
	conn, err := net.DialTimeout("tcp", addr, loginTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	// One deadline for the whole login, so that a stuck server cannot hang
	// the test.
	if err := conn.SetDeadline(time.Now().Add(loginTimeout)); err != nil {
		return err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		return err
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	out, err := sess.Output("echo " + loginMarker)
	if err != nil {
		return err
	}
	if !containsMarker(string(out)) {
		return errors.New("login marker missing from output " + strconv.Quote(string(out)))
	}
	return nil
}
