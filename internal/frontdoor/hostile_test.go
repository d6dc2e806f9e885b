package frontdoor

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/testkit"
)

// stillServes checks that the door still issues a certificate to a
// registered user after whatever a test threw at it.
func stillServes(t *testing.T, d *door, key ssh.Signer) {
	t.Helper()
	c, err := d.dial(t, ssh.PublicKeys(key))
	if err != nil {
		t.Fatalf("the front door no longer serves: %v", err)
	}
	defer c.Close()
	if _, stderr, code := run(t, c, "cert --role deploy"); code != 0 {
		t.Fatalf("the front door no longer issues: %d %q", code, stderr)
	}
}

// closedWithin reports whether the server closes c within d (reading and
// discarding whatever it sends).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// TestHostile throws hostile input at a running front door: each is
// refused or cut off, and the door keeps serving.
func TestHostile(t *testing.T) {
	d := startDoor(t, Limits{AuthTimeout: 500 * time.Millisecond, ConnsPerMinute: 1000, ConnsPerSource: 64})
	key := testkit.NewSigner(t)
	d.addUser(t, "alice", nil, key.PublicKey())

	t.Run("fail/oversized-packet", func(t *testing.T) {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		var hdr [5]byte
		binary.BigEndian.PutUint32(hdr[:4], 1<<30) // a 1 GiB packet
		if _, err := c.Write(append([]byte("SSH-2.0-hostile\r\n"), hdr[:]...)); err != nil {
			t.Fatal(err)
		}
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("connection announcing a 1 GiB packet was not closed")
		}
		stillServes(t, d, key)
	})
	t.Run("fail/garbage-version", func(t *testing.T) {
		c, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() { _, _ = c.Write([]byte(strings.Repeat("A", 64<<10))) }()
		if !closedWithin(c, 5*time.Second) {
			t.Fatal("a 64 KiB version line was not cut off")
		}
		stillServes(t, d, key)
	})
	t.Run("fail/slow-client", func(t *testing.T) {
		// Silent, then one byte at a time: cut off at AuthTimeout.
		silent, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		drip, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer drip.Close()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for _, b := range []byte("SSH-2.0-slow\r\n") {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := drip.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
		start := time.Now()
		stillServes(t, d, key) // while both hang on
		for name, c := range map[string]net.Conn{"silent": silent, "drip": drip} {
			if !closedWithin(c, 5*time.Second) {
				t.Fatalf("%s client was not cut off", name)
			}
		}
		if el := time.Since(start); el > 4*time.Second {
			t.Fatalf("slow clients cut off after %s; AuthTimeout is 500ms", el)
		}
	})
	t.Run("fail/many-auth-attempts", func(t *testing.T) {
		var many []ssh.Signer
		for range 20 {
			many = append(many, testkit.NewSigner(t))
		}
		tried := 0
		counting := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) { tried = len(many); return many, nil })
		if _, err := d.dial(t, counting); err == nil {
			t.Fatal("20 unregistered keys authenticated")
		}
		if tried == 0 {
			t.Fatal("the client offered no key")
		}
		stillServes(t, d, key)
	})
	t.Run("fail/channels-and-requests", func(t *testing.T) {
		c, err := d.dial(t, ssh.PublicKeys(key))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for _, typ := range []string{"direct-tcpip", "forwarded-tcpip", "x11", "auth-agent@openssh.com", "direct-streamlocal@openssh.com", "bogus"} {
			_, _, err := c.OpenChannel(typ, ssh.Marshal(struct {
				Host string
				Port uint32
				Orig string
				OP   uint32
			}{"127.0.0.1", 22, "127.0.0.1", 1}))
			var oce *ssh.OpenChannelError
			if !errors.As(err, &oce) || oce.Reason != ssh.UnknownChannelType {
				t.Errorf("channel %s: %v, want refused as unknown type", typ, err)
			}
		}
		for _, typ := range []string{"tcpip-forward", "streamlocal-forward@openssh.com", "no-more-sessions@openssh.com", "bogus"} {
			ok, _, err := c.SendRequest(typ, true, ssh.Marshal(struct {
				Addr string
				Port uint32
			}{"127.0.0.1", 0}))
			if err != nil || ok {
				t.Errorf("global request %s: ok=%v err=%v, want refused", typ, ok, err)
			}
		}
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
			t.Error("pty allocated")
		}
		if err := s.Setenv("LD_PRELOAD", "/tmp/x.so"); err == nil {
			t.Error("env accepted")
		}
		if err := s.RequestSubsystem("sftp"); err == nil {
			t.Error("sftp subsystem accepted")
		}
		for _, typ := range []string{"x11-req", "auth-agent-req@openssh.com", "signal", "bogus"} {
			if ok, err := s.SendRequest(typ, true, nil); ok || err != nil {
				t.Errorf("session request %s: ok=%v err=%v", typ, ok, err)
			}
		}
		if ok, err := s.SendRequest("exec", true, ssh.Marshal(struct{ C string }{strings.Repeat("x", 64<<10)})); ok || err != nil {
			t.Errorf("64 KiB exec: ok=%v err=%v, want refused", ok, err)
		}
		var errb strings.Builder
		s.Stderr = &errb
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		var ee *ssh.ExitError
		if err := s.Wait(); !errors.As(err, &ee) || ee.ExitStatus() != 2 || !strings.Contains(errb.String(), "no shell") {
			t.Errorf("shell: %v %q", err, errb.String())
		}
		// The same connection still runs commands.
		if out, _, code := run(t, c, "status"); code != 0 || !strings.Contains(out, "alice") {
			t.Errorf("status after the refusals: %d %q", code, out)
		}
		stillServes(t, d, key)
	})
	t.Run("fail/too-many-sessions", func(t *testing.T) {
		c, err := d.dial(t, ssh.PublicKeys(key))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var open []*ssh.Session
		defer func() {
			for _, s := range open {
				s.Close()
			}
		}()
		for range maxChannels {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			open = append(open, s)
		}
		var oce *ssh.OpenChannelError
		if _, err := c.NewSession(); !errors.As(err, &oce) || oce.Reason != ssh.ResourceShortage {
			t.Fatalf("session %d: %v, want resource shortage", maxChannels+1, err)
		}
	})
}

// TestRateLimits: per source address (new connections, connections at
// once) and per user (certificates).
func TestRateLimits(t *testing.T) {
	t.Run("fail/connections-per-minute", func(t *testing.T) {
		d := startDoor(t, Limits{ConnsPerMinute: 3})
		key := testkit.NewSigner(t)
		d.addUser(t, "alice", nil, key.PublicKey())
		for i := range 3 {
			c, err := d.dial(t, ssh.PublicKeys(key))
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			c.Close()
		}
		if _, err := d.dial(t, ssh.PublicKeys(key)); err == nil {
			t.Fatal("the 4th connection within a minute was served")
		}
	})
	t.Run("fail/connections-at-once", func(t *testing.T) {
		d := startDoor(t, Limits{ConnsPerSource: 2, AuthTimeout: 10 * time.Second})
		key := testkit.NewSigner(t)
		d.addUser(t, "alice", nil, key.PublicKey())
		var held []net.Conn
		for range 2 {
			c, err := net.Dial("tcp", d.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
		}
		third, err := net.Dial("tcp", d.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer third.Close()
		if !closedWithin(third, 5*time.Second) {
			t.Fatal("a third connection at once was served")
		}
		held[0].Close()
		// The slot comes back once the server sees the close.
		var lastErr error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var c *ssh.Client
			if c, lastErr = d.dial(t, ssh.PublicKeys(key)); lastErr == nil {
				c.Close()
				return
			}
		}
		t.Fatalf("no connection after one was closed: %v", lastErr)
	})
	t.Run("fail/certificates-per-user", func(t *testing.T) {
		d := startDoor(t, Limits{CertsPerMinute: 2})
		key := testkit.NewSigner(t)
		d.addUser(t, "alice", nil, key.PublicKey())
		c, err := d.dial(t, ssh.PublicKeys(key))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range 2 {
			if _, stderr, code := run(t, c, "cert --role deploy"); code != 0 {
				t.Fatalf("cert %d: %d %q", i, code, stderr)
			}
		}
		if _, stderr, code := run(t, c, "cert --role deploy"); code != 1 || !strings.Contains(stderr, "rate limit") {
			t.Fatalf("third cert: %d %q", code, stderr)
		}
	})
}
