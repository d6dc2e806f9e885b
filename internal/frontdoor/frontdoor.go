// Package frontdoor is sshca's SSH front door: an SSH server (on
// golang.org/x/crypto/ssh) where local users (sshca user add) authenticate
// with a registered key, plus a TOTP code or a FIDO (sk) key's user
// presence as their second factor — and, when an identity provider is
// configured, its people with any key and the device flow — and run one of
// a fixed set of commands, above all `cert`, which prints a certificate for
// the key they authenticated with. It is a door: it turns a connection into a caller
// and a request for ca.Authority.Sign (the one decision and issuance path)
// and the outcome back into output and an exit status.
//
// It never runs a shell, never allocates a terminal, never forwards
// anything, holds no access rule of its own, and never prints secrets.
package frontdoor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/oidc"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// Users is what the front door reads of local users and their second
// factors, and writes when one enrolls TOTP.
type Users interface {
	LocalUserByKey(ctx context.Context, fingerprint string) (*store.LocalUser, error)
	GetTOTP(ctx context.Context, identity string) (secret []byte, lastStep uint64, err error)
	ca.TOTPStore
}

// Limits bound what one source address, one user and everyone together
// may take of the front door. Zero fields take the Default values.
type Limits struct {
	// ConnsPerMinute is how many new connections one source address may
	// open per minute (bursting to the same number).
	ConnsPerMinute int
	// ConnsPerSource is how many connections one source address may hold
	// open at once; MaxConns bounds all connections together.
	ConnsPerSource, MaxConns int
	// CertsPerMinute is how many certificates (and TOTP tries with them)
	// one local user may ask for per minute.
	CertsPerMinute int
	// AuthTimeout bounds the handshake and authentication; IdleTimeout a
	// connection with no incoming data after that; SessionTimeout the
	// whole connection.
	AuthTimeout, IdleTimeout, SessionTimeout time.Duration
	// MaxAuthTries is the number of authentication attempts per connection.
	MaxAuthTries int
}

// DefaultLimits are the limits of a front door that sets none.
var DefaultLimits = Limits{
	ConnsPerMinute: 30, ConnsPerSource: 32, MaxConns: 512, CertsPerMinute: 10,
	AuthTimeout: 20 * time.Second, IdleTimeout: 60 * time.Second, SessionTimeout: 5 * time.Minute,
	MaxAuthTries: 6,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	pickD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	pick(&l.ConnsPerMinute, d.ConnsPerMinute)
	pick(&l.ConnsPerSource, d.ConnsPerSource)
	pick(&l.MaxConns, d.MaxConns)
	pick(&l.CertsPerMinute, d.CertsPerMinute)
	pick(&l.MaxAuthTries, d.MaxAuthTries)
	pickD(&l.AuthTimeout, d.AuthTimeout)
	pickD(&l.IdleTimeout, d.IdleTimeout)
	pickD(&l.SessionTimeout, d.SessionTimeout)
	return l
}

// Options configure a front door.
type Options struct {
	Authority *ca.Authority
	Users     Users
	// HostSigner is the front door's host key, ideally a certificate signer
	// (HostCertSigner) so that clients trusting the host CA connect
	// without a prompt. SetHostSigner replaces it while serving.
	HostSigner ssh.Signer
	Limits     Limits
	Log        *slog.Logger
	Now        func() time.Time
	// Device, when set, lets people of the identity provider in with plain
	// ssh: a key that no local user has is proven, then bound for this
	// connection to whoever approves the device flow it shows.
	Device *Device
}

// Device is the identity provider's device flow (RFC 8628) at the front
// door, and the verifier of the ID tokens it yields — the HTTPS door's.
type Device struct {
	Flow     *oidc.DeviceFlow
	Verifier interface {
		Verify(ctx context.Context, rawIDToken string) (*oidc.Identity, error)
	}
	// Timeout bounds the wait for approval; default 5 minutes.
	Timeout time.Duration
}

// Server is a running front door.
type Server struct {
	o      Options
	lim    Limits
	host   atomic.Pointer[ssh.Signer]
	srcLim *limiter
	usrLim *limiter
	conns  *counter
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	lns    map[net.Listener]bool
	open   map[net.Conn]bool
	wg     sync.WaitGroup
	closed bool
}

// New returns a front door; Serve starts it on a listener.
func New(o Options) (*Server, error) {
	if o.Authority == nil || o.Users == nil || o.HostSigner == nil {
		return nil, errors.New("frontdoor: authority, users and host key are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim := o.Limits.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{o: o, lim: lim, log: log, ctx: ctx, cancel: cancel,
		srcLim: newLimiter(lim.ConnsPerMinute, lim.ConnsPerMinute, 4*lim.MaxConns+1024),
		usrLim: newLimiter(lim.CertsPerMinute, lim.CertsPerMinute, 4*lim.MaxConns+1024),
		conns:  newCounter(lim.ConnsPerSource, lim.MaxConns),
		lns:    map[net.Listener]bool{}, open: map[net.Conn]bool{}}
	s.SetHostSigner(o.HostSigner)
	return s, nil
}

// SetHostSigner replaces the host key (or certificate) for new connections,
// as when the host certificate is renewed.
func (s *Server) SetHostSigner(h ssh.Signer) { s.host.Store(&h) }

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("frontdoor: closed")

// Serve accepts connections on ln until Close; it always returns an error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.lns[ln] = true
	s.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !s.admit(c) {
			continue
		}
	}
}

// admit applies the per-source limits to a new connection, before any
// byte of it is read, and serves it if they allow.
func (s *Server) admit(c net.Conn) bool {
	src := sourceOf(c.RemoteAddr())
	if !s.srcLim.allow(src, s.o.Now()) || !s.conns.acquire(src) {
		s.log.Debug("front door: connection refused by rate limit", "source", src)
		c.Close()
		return false
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.conns.release(src)
		c.Close()
		return false
	}
	s.open[c] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer s.conns.release(src)
		defer func() {
			s.mu.Lock()
			delete(s.open, c)
			s.mu.Unlock()
		}()
		s.serveConn(c, src)
	}()
	return true
}

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.cancel()
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// sourceOf is the rate-limit key of a remote address: the IP address.
func sourceOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Permission extensions that carry what authentication proved from the
// callbacks to the session (x/crypto's way to pass per-connection state).
const (
	extUser = "sshca-local-user"
	extKey  = "sshca-key"
	extTOTP = "sshca-totp-code"
	extSK   = "sshca-sk-presence"
	// A person of the identity provider (device flow): name, groups (one
	// per line), "1" for a multi-factor sign-in, and the bound key's wire
	// form.
	extPerson = "sshca-person"
	extGroups = "sshca-groups"
	extMFA    = "sshca-idp-mfa"
	extBound  = "sshca-bound-key"
)

// maxCodeLen bounds a keyboard-interactive answer kept for verification.
const maxCodeLen = 16

// connState is what the authentication callbacks of one connection learn.
type connState struct {
	src          string
	raw          net.Conn
	deviceTried  bool   // one device flow per connection
	unregistered string // fingerprint of an offered key no local user has
	lookupFailed bool
}

// serveConn runs one connection: handshake and authentication under
// AuthTimeout, then its session channels under the idle and total bounds.
func (s *Server) serveConn(raw net.Conn, src string) {
	start := s.o.Now()
	_ = raw.SetDeadline(time.Now().Add(s.lim.AuthTimeout))
	st := &connState{src: src, raw: raw}
	cfg := s.config(st)
	sc, chans, reqs, err := ssh.NewServerConn(raw, cfg)
	if err != nil {
		raw.Close()
		s.authFailed(st, err)
		return
	}
	defer sc.Close()
	_ = raw.SetDeadline(time.Time{})
	total := time.AfterFunc(s.lim.SessionTimeout, func() { sc.Close() })
	defer total.Stop()
	idle := newIdleTimer(s.lim.IdleTimeout, func() { sc.Close() })
	defer idle.stop()
	go func() {
		// Global requests (tcpip-forward, keepalives...): none is served.
		for r := range reqs {
			idle.touch()
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
	}()
	sess := s.newSession(sc, src, start)
	if sess == nil {
		return
	}
	var chWG sync.WaitGroup
	var open atomic.Int32
	for nc := range chans {
		idle.touch()
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sshca front door: only session channels, no forwarding")
			continue
		}
		if open.Load() >= maxChannels {
			_ = nc.Reject(ssh.ResourceShortage, "sshca front door: too many sessions open on this connection")
			continue
		}
		open.Add(1)
		ch, creqs, err := nc.Accept()
		if err != nil {
			break
		}
		chWG.Add(1)
		go func() {
			defer chWG.Done()
			defer open.Add(-1)
			sess.serveChannel(ch, creqs, idle)
		}()
	}
	chWG.Wait()
}

// maxChannels bounds the session channels one connection may have open
// at once.
const maxChannels = 4

// config is the server configuration of one connection: its callbacks
// record what they learn in st.
func (s *Server) config(st *connState) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		MaxAuthTries:  s.lim.MaxAuthTries,
		ServerVersion: "SSH-2.0-sshca",
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			return s.publicKey(st, key)
		},
		VerifiedPublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, alg string) (*ssh.Permissions, error) {
			if perms.Extensions[extBound] != "" {
				return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
					KeyboardInteractiveCallback: func(c ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
						return s.deviceFlow(st, perms, client)
					},
				}}
			}
			return s.verifiedKey(perms, key)
		},
		// Reached only when no registered key succeeded: it says why, in
		// the instruction of a challenge without questions, and refuses.
		KeyboardInteractiveCallback: func(c ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			msg := "sshca front door: authenticate with an SSH key registered to a local user (sshca user add / sshca user key add)"
			if st.unregistered != "" {
				msg = "sshca front door: key " + st.unregistered + " is not registered to a local user; an admin registers it with: sshca user key add NAME FILE"
			}
			if st.lookupFailed {
				msg = "sshca front door: the user directory is unavailable; try again later"
			}
			_, _ = client("", msg, nil, nil)
			return nil, errors.New("frontdoor: no registered key")
		},
	}
	cfg.AddHostKey(*s.host.Load())
	return cfg
}

var errUnregistered = errors.New("frontdoor: key not registered")

// publicKey looks an offered key up among the local users' keys. It may be
// a query: nothing is proven yet.
func (s *Server) publicKey(st *connState, key ssh.PublicKey) (*ssh.Permissions, error) {
	if _, ok := key.(*ssh.Certificate); ok {
		return nil, errors.New("frontdoor: certificates are not accepted; present the key itself")
	}
	fp := ssh.FingerprintSHA256(key)
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	u, err := s.o.Users.LocalUserByKey(ctx, fp)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			st.unregistered = fp
			if s.o.Device != nil {
				// Perhaps a person of the identity provider: once the key
				// is proven, the device flow decides who holds it.
				return &ssh.Permissions{Extensions: map[string]string{extKey: fp, extBound: string(key.Marshal())}}, nil
			}
			return nil, errUnregistered
		}
		st.lookupFailed = true
		s.log.Error("front door: look up key", "error", err.Error())
		return nil, err
	}
	return &ssh.Permissions{Extensions: map[string]string{extUser: u.Name, extKey: fp}}, nil
}

// verifiedKey runs once the client proved it holds the key: an sk key's
// signature carried user presence (x/crypto refuses one without, since the
// permissions never carry no-touch-required), which is the second factor;
// for other keys, a user with TOTP enrolled is asked for a code next.
func (s *Server) verifiedKey(perms *ssh.Permissions, key ssh.PublicKey) (*ssh.Permissions, error) {
	if isSK(key) {
		perms.Extensions[extSK] = "1"
		return perms, nil
	}
	name := perms.Extensions[extUser]
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	_, _, err := s.o.Users.GetTOTP(ctx, "local:"+name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return perms, nil // no factor to ask for; roles needing one refuse
	case err != nil && !errors.Is(err, store.ErrTampered):
		s.log.Error("front door: read TOTP enrollment", "error", err.Error())
		return nil, err
	}
	// Enrolled (or tampered with, which the code's verification refuses
	// with its own message): ask for a code in this connection.
	return nil, &ssh.PartialSuccessError{Next: ssh.ServerAuthCallbacks{
		KeyboardInteractiveCallback: func(c ssh.ConnMetadata, client ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			ans, err := client("", "sshca front door: second factor for local user "+name, []string{"TOTP code: "}, []bool{false})
			if err != nil {
				return nil, err
			}
			p := &ssh.Permissions{Extensions: map[string]string{extUser: name, extKey: perms.Extensions[extKey]}}
			if len(ans) == 1 && ans[0] != "" {
				code := ans[0]
				if len(code) > maxCodeLen {
					code = code[:maxCodeLen]
				}
				p.Extensions[extTOTP] = code
			}
			return p, nil
		},
	}}
}

func isSK(k ssh.PublicKey) bool {
	switch k.Type() {
	case ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return true
	}
	return false
}

// authFailed audits a connection that offered a key no local user has
// (an unregistered key, or one of a removed user): the one refusal of
// authentication worth a record. Other failures (scanners, timeouts,
// malformed packets) are logged at debug only, bounded by the rate limits.
func (s *Server) authFailed(st *connState, err error) {
	if st.unregistered == "" {
		s.log.Debug("front door: handshake failed", "source", st.src, "error", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	req := ca.Request{Type: policy.UserCert, Details: map[string]string{"door": "ssh", "source": st.src, "key": st.unregistered}}
	_ = s.o.Authority.Deny(ctx, req, "unregistered-key", fmt.Errorf("frontdoor: key %s is not registered to a local user", st.unregistered))
}

// newRequestID returns 24 random hex digits naming one command's request.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// idleTimer closes a connection that has seen no traffic for d.
type idleTimer struct {
	d time.Duration
	t *time.Timer
}

func newIdleTimer(d time.Duration, fire func()) *idleTimer {
	return &idleTimer{d: d, t: time.AfterFunc(d, fire)}
}

func (i *idleTimer) touch() { i.t.Reset(i.d) }
func (i *idleTimer) stop()  { i.t.Stop() }
