package interop

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

// goAuthFixture is an sshca ed25519 CA home, the CA's own signer (to forge
// what sshca itself refuses to issue), a trusted RSA CA that can be made
// to sign with SHA-1, and certificates.
type goAuthFixture struct {
	a       *authority
	caSign  ssh.Signer // the home's user CA key
	rsaCA   ssh.Signer // a second trusted CA, RSA
	otherCA ssh.Signer // not trusted
	dir     string
}

func newGoAuthFixture(t *testing.T) *goAuthFixture {
	t.Helper()
	dir := t.TempDir()
	a := newAuthorities(t, dir, []string{"ed25519"})["ed25519"]
	pemBytes, err := os.ReadFile(filepath.Join(dir, "ca-ed25519", home.KeyDir, "user-ca-1"))
	if err != nil {
		t.Fatal(err)
	}
	caSign, err := signer.ParsePrivate(pemBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCA, err := ssh.NewSignerFromKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := ssh.NewSignerFromKey(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	return &goAuthFixture{a: a, caSign: caSign, rsaCA: rsaCA, otherCA: otherCA, dir: dir}
}

// newUserKey returns a fresh ed25519 subject signer.
func newUserKey(t testing.TB) ssh.Signer {
	t.Helper()
	return testkit.NewSigner(t)
}

// forge signs a certificate directly with x/crypto, bypassing sshca's
// policy, with the signature algorithm alg ("" for the key's default).
func forge(t testing.TB, ca ssh.Signer, pub ssh.PublicKey, serial uint64, principals []string, certType uint32, alg string) *ssh.Certificate {
	t.Helper()
	now := time.Now()
	cert := &ssh.Certificate{
		Key: pub, Serial: serial, CertType: certType, KeyId: "forged", ValidPrincipals: principals,
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
	}
	s := ca
	if alg != "" {
		as, ok := ca.(ssh.AlgorithmSigner)
		if !ok {
			t.Fatalf("forge: %s signer cannot choose algorithms", ca.PublicKey().Type())
		}
		var err error
		if s, err = ssh.NewSignerWithAlgorithms(as, []string{alg}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cert.SignCert(rand.Reader, s); err != nil {
		t.Fatal(err)
	}
	if alg != "" && cert.Signature.Format != alg {
		t.Fatalf("forge: signature is %s, want %s", cert.Signature.Format, alg)
	}
	return cert
}

// TestAuthenticator is the server direction: a Go x/crypto/ssh server on
// 127.0.0.1 that accepts sshca user certificates through Authenticator,
// with revocation from an sshca KRL file that it rereads at each login.
func TestAuthenticator(t *testing.T) {
	f := newGoAuthFixture(t)
	userCA := f.a.userCA

	valid, revokedSerial, revokedID, revokedKey, sha2, sha1, empty, wrongCA, hostCert := newUserKey(t), newUserKey(t), newUserKey(t), newUserKey(t), newUserKey(t), newUserKey(t), newUserKey(t), newUserKey(t), newUserKey(t)
	certs := map[ssh.Signer]*ssh.Certificate{
		valid:         f.a.signUser(t, valid.PublicKey(), "alice"),
		revokedSerial: f.a.signUser(t, revokedSerial.PublicKey(), "bob"),
		revokedID:     f.a.signUser(t, revokedID.PublicKey(), "carol-lost-laptop"),
		revokedKey:    f.a.signUser(t, revokedKey.PublicKey(), "dave"),
		sha2:          forge(t, f.rsaCA, sha2.PublicKey(), 7, []string{principal}, ssh.UserCert, ssh.KeyAlgoRSASHA512),
		sha1:          forge(t, f.rsaCA, sha1.PublicKey(), 8, []string{principal}, ssh.UserCert, ssh.KeyAlgoRSA),
		empty:         forge(t, f.caSign, empty.PublicKey(), 9, nil, ssh.UserCert, ""),
		wrongCA:       forge(t, f.otherCA, wrongCA.PublicKey(), 10, []string{principal}, ssh.UserCert, ""),
		hostCert:      forge(t, f.caSign, hostCert.PublicKey(), 11, []string{principal}, ssh.HostCert, ""),
	}

	// The KRL as `sshca krl` would write it, built with sshca's codec.
	var list krl.KRL
	if err := list.RevokeSerials(userCA, certs[revokedSerial].Serial, certs[revokedSerial].Serial); err != nil {
		t.Fatal(err)
	}
	if err := list.RevokeKeyID(userCA, "carol-lost-laptop"); err != nil {
		t.Fatal(err)
	}
	if err := list.RevokeKey(revokedKey.PublicKey()); err != nil {
		t.Fatal(err)
	}
	krlBytes, err := list.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	krlPath := filepath.Join(f.dir, "revoked.krl")
	testkit.WriteFile(t, krlPath, krlBytes, 0o644)

	// Set by a case before it logs in, read by the server's goroutines.
	var krlBroken atomic.Bool
	var clockOffset atomic.Int64
	krlErr := errors.New("revoked.krl: no such file")
	now := time.Now()
	auth := &Authenticator{
		UserCAs: []ssh.PublicKey{userCA, f.rsaCA.PublicKey()},
		KRL: func() (*krl.KRL, error) {
			if krlBroken.Load() {
				return nil, krlErr
			}
			b, err := os.ReadFile(krlPath)
			if err != nil {
				return nil, err
			}
			return krl.Parse(b)
		},
		Clock: func() time.Time { return now.Add(time.Duration(clockOffset.Load())) },
	}
	srv := startGoServer(t, auth)

	for _, tc := range []struct {
		name    string
		key     ssh.Signer
		plain   bool // offer the plain key, no certificate
		user    string
		setup   func()
		wantErr string // "" means the login must succeed
		revoked bool   // ssh-keygen -Q must agree that the KRL revokes it
	}{
		{name: "ok/sshca-certificate", key: valid},
		{name: "ok/rsa-ca-sha2-512", key: sha2},
		{name: "fail/revoked-serial", key: revokedSerial, wantErr: "is revoked", revoked: true},
		{name: "fail/revoked-key-id", key: revokedID, wantErr: "is revoked", revoked: true},
		{name: "fail/revoked-key", key: revokedKey, wantErr: "is revoked", revoked: true},
		{name: "fail/sha1-signature", key: sha1, wantErr: "signed with ssh-rsa"},
		{name: "fail/empty-principals", key: empty, wantErr: "has no principals"},
		{name: "fail/untrusted-ca", key: wrongCA, wantErr: "certificate signed by unrecognized authority"},
		{name: "fail/host-certificate", key: hostCert, wantErr: "is not a user certificate"},
		{name: "fail/plain-key", key: valid, plain: true, wantErr: "is not a certificate"},
		{name: "fail/wrong-user", key: valid, user: "root", wantErr: "not in the set of valid principals"},
		{name: "fail/expired", key: valid, setup: func() { clockOffset.Store(int64(2 * time.Hour)) }, wantErr: "cert has expired"},
		{name: "fail/krl-unavailable", key: valid, setup: func() { krlBroken.Store(true) }, wantErr: "load KRL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clockOffset.Store(0)
			krlBroken.Store(false)
			if tc.setup != nil {
				tc.setup()
			}
			user := tc.user
			if user == "" {
				user = principal
			}
			key := tc.key
			if !tc.plain {
				var err error
				if key, err = ssh.NewCertSigner(certs[tc.key], tc.key); err != nil {
					t.Fatal(err)
				}
			}
			local, err := loginFrom(srv, user, key)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("login refused: %v (server: %v)", err, srv.LastAuthError(local))
				}
			} else {
				if err == nil {
					t.Fatal("login accepted, want refused")
				}
				if got := srv.LastAuthError(local); got == nil || !strings.Contains(got.Error(), tc.wantErr) {
					t.Fatalf("server refused with %v, want an error containing %q", got, tc.wantErr)
				}
			}
			if !tc.plain && bytes.Equal(certs[tc.key].SignatureKey.Marshal(), userCA.Marshal()) {
				assertKeygenRevoked(t, krlPath, certs[tc.key], tc.revoked)
			}
		})
	}

	// What the guards add: ssh.CertChecker alone takes both of these.
	checker := &ssh.CertChecker{IsUserAuthority: auth.trusted}
	for name, cert := range map[string]*ssh.Certificate{"sha1-signature": certs[sha1], "empty-principals": certs[empty]} {
		if _, err := checker.Authenticate(fakeConn{user: principal}, cert); err != nil {
			t.Logf("note: ssh.CertChecker alone now refuses the %s certificate too: %v", name, err)
		}
	}
}

// loginFrom logs in with the Go client and returns the client's local
// address, under which the server records why it refused.
func loginFrom(srv *goServer, user string, key ssh.Signer) (string, error) {
	conn, err := net.DialTimeout("tcp", srv.Addr, loginTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	if err := conn.SetDeadline(time.Now().Add(loginTimeout)); err != nil {
		return local, err
	}
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key)}, HostKeyCallback: ssh.FixedHostKey(srv.HostKey), Timeout: loginTimeout}
	c, chans, reqs, err := ssh.NewClientConn(conn, srv.Addr, cfg)
	if err != nil {
		return local, err
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return local, err
	}
	defer sess.Close()
	out, err := sess.Output("echo " + loginMarker)
	if err == nil && !containsMarker(string(out)) {
		err = errors.New("login marker missing")
	}
	return local, err
}

// assertKeygenRevoked checks with OpenSSH's own KRL reader that the KRL
// revokes cert exactly when the test says so.
func assertKeygenRevoked(t *testing.T, krlPath string, cert *ssh.Certificate, want bool) {
	t.Helper()
	testkit.RequireTool(t, sshdtest.KeygenPath)
	path := filepath.Join(t.TempDir(), "cert.pub")
	testkit.WriteFile(t, path, ssh.MarshalAuthorizedKey(cert), 0o644)
	out, err := exec.Command(sshdtest.KeygenPath, "-Q", "-f", krlPath, path).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		if want {
			t.Errorf("ssh-keygen -Q says the certificate is not revoked: %s", out)
		}
	case errors.As(err, &ee) && strings.Contains(string(out), "REVOKED"):
		if !want {
			t.Errorf("ssh-keygen -Q says the certificate is revoked: %s", out)
		}
	default:
		t.Fatalf("ssh-keygen -Q: %v: %s", err, out)
	}
}

// fakeConn is the ssh.ConnMetadata of a login by user.
type fakeConn struct{ user string }

func (c fakeConn) User() string          { return c.user }
func (c fakeConn) SessionID() []byte     { return nil }
func (c fakeConn) ClientVersion() []byte { return []byte("SSH-2.0-test") }
func (c fakeConn) ServerVersion() []byte { return []byte("SSH-2.0-test") }
func (c fakeConn) RemoteAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222} }
func (c fakeConn) LocalAddr() net.Addr   { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 22} }

// FuzzAuthenticator feeds arbitrary public-key blobs to PublicKeyCallback:
// whatever it accepts must be a user certificate from the trusted CA that
// names the user, is not signed with SHA-1 and is not revoked.
func FuzzAuthenticator(f *testing.F) {
	caPriv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	ca, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		f.Fatal(err)
	}
	userPriv := ed25519.NewKeyFromSeed([]byte("interop-fuzz-user-key-seed-32byt"))
	user, err := ssh.NewSignerFromKey(userPriv)
	if err != nil {
		f.Fatal(err)
	}
	good := forge(f, ca, user.PublicKey(), 1, []string{principal}, ssh.UserCert, "")
	revoked := forge(f, ca, user.PublicKey(), 2, []string{principal}, ssh.UserCert, "")
	f.Add(good.Marshal())
	f.Add(revoked.Marshal())
	f.Add(forge(f, ca, user.PublicKey(), 3, nil, ssh.UserCert, "").Marshal())
	f.Add(forge(f, ca, user.PublicKey(), 4, []string{principal}, ssh.HostCert, "").Marshal())
	f.Add(user.PublicKey().Marshal())

	var list krl.KRL
	if err := list.RevokeSerials(ca.PublicKey(), 2, 2); err != nil {
		f.Fatal(err)
	}
	b, err := list.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	parsed, err := krl.Parse(b)
	if err != nil {
		f.Fatal(err)
	}
	auth := &Authenticator{UserCAs: []ssh.PublicKey{ca.PublicKey()}, KRL: func() (*krl.KRL, error) { return parsed, nil }}
	f.Fuzz(func(t *testing.T, blob []byte) {
		pub, err := ssh.ParsePublicKey(blob)
		if err != nil {
			return
		}
		if _, err := auth.PublicKeyCallback(fakeConn{user: principal}, pub); err != nil {
			return
		}
		cert, ok := pub.(*ssh.Certificate)
		switch {
		case !ok:
			t.Fatalf("accepted a plain %s key", pub.Type())
		case cert.CertType != ssh.UserCert || len(cert.ValidPrincipals) == 0 || cert.Signature.Format == ssh.KeyAlgoRSA:
			t.Fatalf("accepted certificate type %d, principals %q, signature %s", cert.CertType, cert.ValidPrincipals, cert.Signature.Format)
		case parsed.Check(cert) != nil:
			t.Fatalf("accepted revoked certificate %d", cert.Serial)
		case !bytes.Equal(cert.SignatureKey.Marshal(), ca.PublicKey().Marshal()):
			t.Fatal("accepted a certificate from another CA")
		}
	})
}
