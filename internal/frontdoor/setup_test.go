package frontdoor

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"io"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// testPolicy has roles for local users: deploy (alice by name, group
// deployers), secure (second factor required; alice and bob), touchless
// (grants no-touch-required), sso and secure-sso (identity provider users
// only; the second needs a second factor) and the
// host role servers that certifies the front door.
const testPolicy = `backdate: 5m
roles:
  deploy:
    type: user
    principals: [role-deploy, "{{.User}}"]
    default_ttl: 30m
    max_ttl: 1h
    extensions: [permit-pty]
    allow:
      local_users: [alice]
      local_groups: [deployers]
  secure:
    type: user
    principals: [role-secure]
    max_ttl: 1h
    require_mfa: true
    extensions: [permit-pty]
    allow:
      local_users: [alice, bob]
  touchless:
    type: user
    principals: [role-touchless]
    max_ttl: 1h
    require_mfa: true
    extensions: [no-touch-required, permit-pty]
    allow:
      local_users: [alice, bob]
  sso:
    type: user
    principals: [role-sso]
    max_ttl: 1h
    allow:
      users: [alice]
  secure-sso:
    type: user
    principals: [role-secure-sso]
    max_ttl: 1h
    require_mfa: true
    allow:
      users: [alice]
  servers:
    type: host
    principals: ["*.corp"]
    max_ttl: 24h
`

// door is a front door serving a fresh CA home on 127.0.0.1.
type door struct {
	h      *home.Home
	srv    *Server
	addr   string
	hostCA ssh.PublicKey
}

// startDoor starts a front door over a fresh home with testPolicy,
// certified as ca.corp, with limits l (zero: defaults).
func startDoor(t *testing.T, l Limits) *door {
	t.Helper()
	return startDoorWith(t, Options{Limits: l})
}

// startDoorWith is startDoor with more options (Authority, Users and
// HostSigner are filled in).
func startDoorWith(t *testing.T, o Options) *door {
	t.Helper()
	h := testhome.New(t, testPolicy, testhome.Options{})
	hostKey := testkit.NewSigner(t)
	hs, _, err := CertifyHost(t.Context(), h.Authority, hostKey, "servers", []string{"ca.corp"})
	if err != nil {
		t.Fatal(err)
	}
	o.Authority, o.Users, o.HostSigner = h.Authority, h.Store, hs
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != ErrClosed {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	keys, err := h.Store.ListCAKeys(t.Context(), "host")
	if err != nil {
		t.Fatal(err)
	}
	ca, _, _, _, err := ssh.ParseAuthorizedKey([]byte(keys[0].PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return &door{h: h, srv: srv, addr: ln.Addr().String(), hostCA: ca}
}

// addUser registers a local user with keys.
func (d *door) addUser(t *testing.T, name string, groups []string, keys ...ssh.PublicKey) {
	t.Helper()
	u := store.LocalUser{Name: name, Groups: groups, CreatedBy: "cli:test", CreatedAt: time.Now()}
	for _, k := range keys {
		u.Keys = append(u.Keys, store.LocalUserKey{Fingerprint: ssh.FingerprintSHA256(k), PublicKey: testkit.AuthorizedKey(k), AddedAt: time.Now()})
	}
	if err := d.h.Store.AddLocalUser(t.Context(), u, audit.Entry{Time: time.Now(), Actor: "cli:test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user added"}); err != nil {
		t.Fatal(err)
	}
}

// hostKeyCallback accepts the front door's host certificate when it is
// signed by the home's host CA for ca.corp, as a client trusting the host
// CA does.
func (d *door) hostKeyCallback() ssh.HostKeyCallback {
	c := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, addr string) bool {
		return string(auth.Marshal()) == string(d.hostCA.Marshal())
	}}
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		return c.CheckHostKey("ca.corp:22", remote, key)
	}
}

// dial authenticates with the given methods; code answers a TOTP prompt.
func (d *door) dial(t *testing.T, methods ...ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", d.addr, &ssh.ClientConfig{User: "whoever", Auth: methods, HostKeyCallback: d.hostKeyCallback(), Timeout: 10 * time.Second})
}

// answer is a keyboard-interactive method answering every question with code.
func answer(code string) ssh.AuthMethod {
	return ssh.KeyboardInteractive(func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		out := make([]string, len(questions))
		for i := range out {
			out[i] = code
		}
		return out, nil
	})
}

// run runs one command on a new session and returns stdout, stderr and
// the exit status (-1 if none came).
func run(t *testing.T, c *ssh.Client, cmd string) (string, string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errb strings.Builder
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run(cmd)
	code := 0
	if ee, ok := err.(*ssh.ExitError); ok {
		code = ee.ExitStatus()
	} else if err != nil {
		code = -1
	}
	return out.String(), errb.String(), code
}

// auditReasons returns the reasons of the audit entries with outcome.
func auditReasons(t *testing.T, st store.Store, outcome string) []string {
	t.Helper()
	es, err := st.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Outcome == outcome {
			out = append(out, e.Reason)
		}
	}
	return out
}

// skSigner makes FIDO (sk) signatures in software, in the format of
// OpenSSH's PROTOCOL.u2f: no hardware here, but the signature is exactly
// what a security key returns, so x/crypto's verification is the real one.
type skSigner struct {
	pub     ssh.PublicKey
	ed      ed25519.PrivateKey
	ec      *ecdsa.PrivateKey
	app     string
	flags   byte
	counter uint32
}

const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
)

func newSKSigner(t *testing.T, typ string, flags byte) *skSigner {
	t.Helper()
	s := &skSigner{app: "ssh:", flags: flags}
	var wire []byte
	switch typ {
	case ssh.KeyAlgoSKED25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.ed = priv
		wire = ssh.Marshal(struct {
			Type, Pub, App string
		}{typ, string(pub), s.app})
	case ssh.KeyAlgoSKECDSA256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.ec = k
		//lint:ignore SA1019 the uncompressed point is the SSH wire format
		point := elliptic.Marshal(elliptic.P256(), k.X, k.Y) //nolint:staticcheck
		wire = ssh.Marshal(struct {
			Type, Curve, Point, App string
		}{typ, "nistp256", string(point), s.app})
	}
	pub, err := ssh.ParsePublicKey(wire)
	if err != nil {
		t.Fatal(err)
	}
	s.pub = pub
	return s
}

func (s *skSigner) PublicKey() ssh.PublicKey { return s.pub }

// Sign signs as a security key does: over SHA-256(application), the flags,
// the counter and SHA-256(data).
func (s *skSigner) Sign(_ io.Reader, data []byte) (*ssh.Signature, error) {
	s.counter++
	app := sha256.Sum256([]byte(s.app))
	msg := sha256.Sum256(data)
	blob := ssh.Marshal(struct {
		App     []byte `ssh:"rest"`
		Flags   byte
		Counter uint32
		Msg     []byte `ssh:"rest"`
	}{app[:], s.flags, s.counter, msg[:]})
	rest := ssh.Marshal(struct {
		Flags   byte
		Counter uint32
	}{s.flags, s.counter})
	if s.ed != nil {
		return &ssh.Signature{Format: ssh.KeyAlgoSKED25519, Blob: ed25519.Sign(s.ed, blob), Rest: rest}, nil
	}
	digest := sha256.Sum256(blob)
	r, ss, err := ecdsa.Sign(rand.Reader, s.ec, digest[:])
	if err != nil {
		return nil, err
	}
	return &ssh.Signature{Format: ssh.KeyAlgoSKECDSA256, Blob: ssh.Marshal(struct{ R, S *big.Int }{r, ss}), Rest: rest}, nil
}

// addUserKey registers one more key of a local user.
func (d *door) addUserKey(t *testing.T, name string, k ssh.PublicKey) {
	t.Helper()
	err := d.h.Store.AddLocalUserKey(t.Context(), name, store.LocalUserKey{Fingerprint: ssh.FingerprintSHA256(k), PublicKey: testkit.AuthorizedKey(k), AddedAt: time.Now()},
		audit.Entry{Time: time.Now(), Actor: "cli:test", Action: audit.ActionAdmin, Outcome: "ok", Reason: "local user key added"})
	if err != nil {
		t.Fatal(err)
	}
}

// invite issues a one-time TOTP enrollment code for factor ID id, as
// `sshca totp invite` does.
func invite(t *testing.T, d *door, id string) string {
	t.Helper()
	now := time.Now()
	code, tok, err := ca.NewToken("invite-"+strings.ReplaceAll(id, ":", "-"), ca.TokenTOTPInvite, nil, []string{id}, "cli:test", now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.h.Store.CreateToken(t.Context(), tok, audit.Entry{Time: now, Actor: "cli:test", Action: audit.ActionToken, Outcome: "ok", Reason: "token created"}); err != nil {
		t.Fatal(err)
	}
	return code
}

// secretOf returns the secret of an otpauth URI.
func secretOf(t *testing.T, uri string) []byte {
	t.Helper()
	u, err := url.Parse(strings.TrimSpace(uri))
	if err != nil {
		t.Fatal(err)
	}
	s, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(u.Query().Get("secret"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
