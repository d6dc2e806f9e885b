package explain

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"io/fs"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
)

// fixture holds keys shared by the tests; RSA keys are slow to make.
type fixture struct {
	ca, other, rsaCA ssh.Signer
	sha1CA           ssh.Signer // rsaCA without AlgorithmSigner: ssh-rsa
	key, key2        ssh.PublicKey
	rsa1024          ssh.PublicKey
	now              time.Time
}

type plainSigner struct{ s ssh.Signer }

func (p plainSigner) PublicKey() ssh.PublicKey { return p.s.PublicKey() }
func (p plainSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	return p.s.Sign(r, data)
}

var (
	fixOnce sync.Once
	fix     fixture
)

func edSigner(t testing.TB, seed byte) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(make32(seed)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func make32(b byte) []byte {
	out := make([]byte, 32)
	for i := range out {
		out[i] = b
	}
	return out
}

func getFixture(t testing.TB) *fixture {
	t.Helper()
	fixOnce.Do(func() {
		rk, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rs, err := ssh.NewSignerFromKey(rk)
		if err != nil {
			panic(err)
		}
		small, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			panic(err)
		}
		smallPub, err := ssh.NewPublicKey(&small.PublicKey)
		if err != nil {
			panic(err)
		}
		fix = fixture{
			ca: edSigner(t, 1), other: edSigner(t, 2), rsaCA: rs, sha1CA: plainSigner{rs},
			key: edSigner(t, 3).PublicKey(), key2: edSigner(t, 4).PublicKey(), rsa1024: smallPub,
			now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		}
	})
	return &fix
}

func line(pub ssh.PublicKey) string { return string(ssh.MarshalAuthorizedKey(pub)) }

// cert makes a valid user certificate for f.key, changes it with mod and
// signs it with signer (default f.ca).
func (f *fixture) cert(t testing.TB, signer ssh.Signer, mod func(c *ssh.Certificate)) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{
		Key: f.key, Serial: 42, CertType: ssh.UserCert, KeyId: "alice",
		ValidPrincipals: []string{"role-a"},
		ValidAfter:      uint64(f.now.Add(-5 * time.Minute).Unix()),
		ValidBefore:     uint64(f.now.Add(time.Hour).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if mod != nil {
		mod(c)
	}
	if signer == nil {
		signer = f.ca
	}
	if err := c.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	return c
}

// server trusts f.ca and maps role-a to the account through a principals file.
func (f *fixture) server() Server {
	return Server{
		TrustedUserCAKeys:    &File{Path: "/etc/ssh/ca.pub", Data: []byte(line(f.ca.PublicKey()))},
		AuthorizedPrincipals: &File{Path: "/etc/ssh/principals/deploy", Data: []byte("role-a\n")},
	}
}

func krlBytes(t testing.TB, build func(k *krl.KRL) error) []byte {
	t.Helper()
	k := &krl.KRL{}
	if err := build(k); err != nil {
		t.Fatal(err)
	}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExplain(t *testing.T) {
	f := getFixture(t)
	ca := f.ca.PublicKey()
	notExist := &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrNotExist}
	revoked := func(data []byte) func(s *Server) {
		return func(s *Server) { s.RevokedKeys = []File{{Path: "/etc/ssh/revoked", Data: data}} }
	}
	tests := []struct {
		name   string
		signer ssh.Signer
		cert   func(c *ssh.Certificate)
		srv    func(s *Server)
		in     func(in *Input)
		check  string   // "" for accept
		reason []string // substrings of Reason (or of Notes for an accept)
	}{
		{name: "ok/principals-file"},
		{name: "ok/login-name-without-principals-file", cert: func(c *ssh.Certificate) { c.ValidPrincipals = []string{"x", "deploy"} },
			srv: func(s *Server) { s.AuthorizedPrincipals = nil }},
		{name: "ok/forever", cert: func(c *ssh.Certificate) { c.ValidAfter, c.ValidBefore = 0, ssh.CertTimeInfinity }},
		{name: "ok/rsa-sha2-512", signer: f.rsaCA, srv: func(s *Server) { s.TrustedUserCAKeys.Data = []byte(line(f.rsaCA.PublicKey())) }},
		{name: "ok/ssh-rsa-allowed", signer: f.sha1CA, srv: func(s *Server) {
			s.TrustedUserCAKeys.Data = []byte(line(f.rsaCA.PublicKey()))
			s.CASignatureAlgorithms = "+ssh-rsa"
		}},
		{name: "ok/rsa-1024-default-size", cert: func(c *ssh.Certificate) { c.Key = f.rsa1024 }},
		{name: "ok/source-address-match", cert: func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8,127.0.0.1"}
		}},
		{name: "ok/source-address-unknown-client", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8"} },
			in: func(in *Input) { in.From = netip.Addr{} }, reason: []string{"not checked"}},
		{name: "ok/ipv4-mapped-client", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"source-address": "127.0.0.0/8"} },
			in: func(in *Input) { in.From = netip.MustParseAddr("::ffff:127.0.0.1") }},
		{name: "ok/force-command", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"force-command": "/bin/true"} },
			reason: []string{`forced command "/bin/true"`}},
		{name: "ok/no-pty", cert: func(c *ssh.Certificate) { c.Extensions = nil }, reason: []string{"no terminal"}},
		{name: "ok/unknown-extension", cert: func(c *ssh.Certificate) { c.Extensions["x@example.com"] = "" }, reason: []string{`unknown extension "x@example.com"`}},
		{name: "ok/empty-krl-file", srv: revoked(nil)},
		{name: "ok/krl-revokes-others", srv: revoked(krlBytes(t, func(k *krl.KRL) error {
			if err := k.RevokeSerials(ca, 43, 50); err != nil {
				return err
			}
			return k.RevokeSerials(f.other.PublicKey(), 42, 42)
		}))},
		{name: "ok/serial-0-never-revoked-by-serial", cert: func(c *ssh.Certificate) { c.Serial = 0 },
			srv: revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeSerials(nil, 1, 1<<40) }))},
		{name: "ok/principal-second-line", cert: func(c *ssh.Certificate) { c.ValidPrincipals = []string{"role-b"} },
			srv: func(s *Server) {
				s.AuthorizedPrincipals.Data = []byte("# roles\n\n  role-a\nrole-b   # trailing comment\n")
			}},
		{name: "ok/principals-from-match", srv: func(s *Server) { s.AuthorizedPrincipals.Data = []byte(`from="127.0.0.0/8" role-a` + "\n") }},
		{name: "ok/trust-file-garbage-after-ca", srv: func(s *Server) { s.TrustedUserCAKeys.Data = []byte("# CA\n" + line(ca) + "garbage\n") }},

		{name: "fail/pubkey-disabled", srv: func(s *Server) { s.PubkeyAuthenticationDisabled = true }, check: CheckPubkeyDisabled},
		{name: "fail/altered-certificate", in: func(in *Input) { in.Cert.KeyId = "mallory" }, check: CheckMalformed, reason: []string{"does not verify"}},
		{name: "fail/unknown-cert-type", cert: func(c *ssh.Certificate) { c.CertType = 3 }, check: CheckMalformed, reason: []string{"type is 3"}},
		{name: "fail/ssh-rsa-signature", signer: f.sha1CA, srv: func(s *Server) { s.TrustedUserCAKeys.Data = []byte(line(f.rsaCA.PublicKey())) },
			check: CheckSigAlg, reason: []string{"ssh-rsa (RSA with SHA-1)", "default CASignatureAlgorithms", "rsa-sha2-512"}},
		{name: "fail/sigalg-explicit-list", srv: func(s *Server) { s.CASignatureAlgorithms = "ecdsa-sha2-*" },
			check: CheckSigAlg, reason: []string{"ssh-ed25519", "CASignatureAlgorithms ecdsa-sha2-*"}},
		{name: "fail/sigalg-removed", srv: func(s *Server) { s.CASignatureAlgorithms = "-ssh-ed25519" }, check: CheckSigAlg},
		{name: "fail/rsa-key-too-small", cert: func(c *ssh.Certificate) { c.Key = f.rsa1024 }, srv: func(s *Server) { s.RequiredRSASize = 2048 },
			check: CheckRSASize, reason: []string{"1024 bits", "2048"}},
		{name: "fail/revoked-keys-missing", srv: func(s *Server) { s.RevokedKeys = []File{{Path: "/etc/ssh/revoked", Err: notExist}} },
			check: CheckRevokedKeysUnreadable, reason: []string{"/etc/ssh/revoked", "every public key"}},
		{name: "fail/revoked-keys-garbage", srv: revoked([]byte("not a key\n")), check: CheckRevokedKeysUnreadable, reason: []string{"line 1"}},
		{name: "fail/revoked-keys-bad-krl", srv: revoked([]byte("SSHKRL\n\x00\x00\x00\x00\x02")), check: CheckRevokedKeysUnreadable, reason: []string{"cannot load"}},
		{name: "fail/revoked-serial", srv: revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeSerials(ca, 42, 42) })),
			check: CheckRevokedSerial, reason: []string{"serial 42"}},
		{name: "fail/revoked-serial-range", srv: revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeSerials(ca, 40, 99) })),
			check: CheckRevokedSerial, reason: []string{"range 40-99"}},
		{name: "fail/revoked-serial-wildcard", srv: revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeSerials(nil, 42, 42) })),
			check: CheckRevokedSerial, reason: []string{"wildcard"}},
		{name: "fail/revoked-key-id", srv: revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeKeyID(ca, "alice") })),
			check: CheckRevokedKeyID, reason: []string{`"alice"`}},
		{name: "fail/revoked-key", srv: revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeKey(f.key) })),
			check: CheckRevokedKey, reason: []string{ssh.FingerprintSHA256(f.key)}},
		{name: "fail/revoked-key-sha256", srv: revoked(krlBytes(t, func(k *krl.KRL) error { k.RevokeSHA256(krl.FingerprintSHA256(f.key)); return nil })),
			check: CheckRevokedKey},
		{name: "fail/revoked-ca", srv: revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeKey(ca) })),
			check: CheckRevokedCA, reason: []string{ssh.FingerprintSHA256(ca)}},
		{name: "fail/revoked-key-in-list", srv: revoked([]byte("# list\n" + line(f.key2) + line(f.key))), check: CheckRevokedKey, reason: []string{"line 3"}},
		{name: "fail/revoked-ca-in-list", srv: revoked([]byte(line(ca))), check: CheckRevokedCA, reason: []string{"line 1"}},
		{name: "fail/trusted-ca-none", srv: func(s *Server) { s.TrustedUserCAKeys = nil }, check: CheckCANotTrusted, reason: []string{"TrustedUserCAKeys none"}},
		{name: "fail/trusted-ca-unreadable", srv: func(s *Server) { s.TrustedUserCAKeys.Err = notExist }, check: CheckCANotTrusted, reason: []string{"cannot be read"}},
		{name: "fail/trusted-ca-other", srv: func(s *Server) { s.TrustedUserCAKeys.Data = []byte(line(f.other.PublicKey())) },
			check: CheckCANotTrusted, reason: []string{ssh.FingerprintSHA256(ca), "trusts " + ssh.FingerprintSHA256(f.other.PublicKey())}},
		{name: "fail/trusted-ca-after-garbage", srv: func(s *Server) { s.TrustedUserCAKeys.Data = []byte("garbage\n" + line(ca)) },
			check: CheckCANotTrusted, reason: []string{"stops reading the file at line 1"}},
		{name: "fail/trusted-ca-with-options", srv: func(s *Server) { s.TrustedUserCAKeys.Data = []byte("cert-authority " + line(ca)) },
			check: CheckCANotTrusted, reason: []string{"line 1"}},
		{name: "fail/principal-not-in-file", cert: func(c *ssh.Certificate) { c.ValidPrincipals = []string{"role-b", "role-c"} },
			check: CheckNoPrincipal, reason: []string{`"role-b", "role-c"`, `allows "role-a"`}},
		{name: "fail/principals-file-missing", srv: func(s *Server) { s.AuthorizedPrincipals.Err = notExist }, check: CheckNoPrincipal, reason: []string{"cannot be read"}},
		{name: "fail/principals-crlf", srv: func(s *Server) { s.AuthorizedPrincipals.Data = []byte("role-a\r\n") }, check: CheckNoPrincipal, reason: []string{"CR LF"}},
		{name: "fail/principals-bad-options", srv: func(s *Server) { s.AuthorizedPrincipals.Data = []byte("bogus role-a\n") },
			check: CheckNoPrincipal, reason: []string{"unknown key option"}},
		{name: "fail/login-name-not-principal", srv: func(s *Server) { s.AuthorizedPrincipals = nil },
			check: CheckNoPrincipal, reason: []string{`"deploy" is not`, `"role-a"`}},
		{name: "fail/empty-principals-with-file", cert: func(c *ssh.Certificate) { c.ValidPrincipals = nil }, check: CheckEmptyPrincipals},
		{name: "fail/empty-principals-without-file", cert: func(c *ssh.Certificate) { c.ValidPrincipals = nil },
			srv: func(s *Server) { s.AuthorizedPrincipals = nil }, check: CheckEmptyPrincipals, reason: []string{"lacks principal list"}},
		{name: "fail/host-certificate", cert: func(c *ssh.Certificate) { c.CertType = ssh.HostCert }, check: CheckWrongCertType, reason: []string{"host certificate"}},
		{name: "fail/not-yet-valid", cert: func(c *ssh.Certificate) { c.ValidAfter = uint64(f.now.Add(time.Hour).Unix()) },
			check: CheckNotYetValid, reason: []string{"1h after", "2026-11-22T11:00:00Z"}},
		{name: "fail/not-yet-valid-skew", cert: func(c *ssh.Certificate) { c.ValidAfter = uint64(f.now.Add(90 * time.Second).Unix()) },
			check: CheckNotYetValid, reason: []string{"1m30s", "clock skew"}},
		{name: "fail/expired", cert: func(c *ssh.Certificate) { c.ValidBefore = uint64(f.now.Add(-2 * time.Hour).Unix()) },
			check: CheckExpired, reason: []string{"expired at 2026-11-22T08:00:00Z", "2h before"}},
		{name: "fail/expired-days", cert: func(c *ssh.Certificate) {
			c.ValidAfter, c.ValidBefore = uint64(f.now.Add(-30*24*time.Hour).Unix()), uint64(f.now.Add(-3*24*time.Hour).Unix())
		}, check: CheckExpired, reason: []string{"3d before"}},
		{name: "fail/expired-at-valid-before", cert: func(c *ssh.Certificate) { c.ValidBefore = uint64(f.now.Unix()) },
			check: CheckExpired, reason: []string{"clock skew"}},
		{name: "fail/unknown-critical-option", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"no-such": ""} },
			check: CheckInvalidOptions, reason: []string{`"no-such"`}},
		{name: "fail/source-address-host-bits", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"source-address": "10.1.2.3/8"} },
			check: CheckInvalidOptions, reason: []string{"beyond its mask"}},
		{name: "fail/force-command-empty", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"force-command": ""} }, check: CheckInvalidOptions},
		{name: "fail/extension-with-data", cert: func(c *ssh.Certificate) { c.Extensions = map[string]string{"permit-pty": "yes"} }, check: CheckInvalidOptions},
		{name: "fail/source-address", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8"} },
			check: CheckSourceAddress, reason: []string{"127.0.0.1", "10.0.0.0/8"}},
		{name: "fail/source-address-family", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"source-address": "::/0"} }, check: CheckSourceAddress},
		{name: "fail/principals-from", srv: func(s *Server) { s.AuthorizedPrincipals.Data = []byte(`from="10.*" role-a` + "\n") },
			check: CheckPrincipalsOptions, reason: []string{`from="10.*"`}},
		{name: "fail/principals-expiry", srv: func(s *Server) { s.AuthorizedPrincipals.Data = []byte(`expiry-time="20260101Z" role-a` + "\n") },
			check: CheckPrincipalsOptions, reason: []string{"expiry-time"}},
		{name: "fail/force-command-conflict", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"force-command": "a"} },
			srv: func(s *Server) { s.AuthorizedPrincipals.Data = []byte(`command="b" role-a` + "\n") }, check: CheckForceCommand},

		// Two problems: sshd's order decides which one it reports.
		{name: "fail/order-sigalg-before-revocation", signer: f.sha1CA,
			srv: func(s *Server) {
				revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeKey(f.rsaCA.PublicKey()) }))(s)
			}, check: CheckSigAlg},
		{name: "fail/order-revocation-before-trust", signer: f.other,
			srv: revoked(krlBytes(t, func(k *krl.KRL) error { return k.RevokeKeyID(nil, "alice") })), check: CheckRevokedKeyID},
		{name: "fail/order-trust-before-validity", signer: f.other, cert: func(c *ssh.Certificate) { c.ValidBefore = 1 }, check: CheckCANotTrusted},
		{name: "fail/order-principals-before-type", cert: func(c *ssh.Certificate) { c.CertType = ssh.HostCert; c.ValidPrincipals = []string{"h"} }, check: CheckNoPrincipal},
		{name: "fail/order-type-before-validity", cert: func(c *ssh.Certificate) { c.CertType = ssh.HostCert; c.ValidBefore = 1 }, check: CheckWrongCertType},
		{name: "fail/order-validity-before-name", cert: func(c *ssh.Certificate) { c.ValidBefore = 1 },
			srv: func(s *Server) { s.AuthorizedPrincipals = nil }, check: CheckExpired},
		{name: "fail/order-validity-before-options", cert: func(c *ssh.Certificate) {
			c.ValidBefore = 1
			c.CriticalOptions = map[string]string{"no-such": ""}
		}, check: CheckExpired},
		{name: "fail/order-cert-options-before-principals-options", cert: func(c *ssh.Certificate) { c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8"} },
			srv: func(s *Server) { s.AuthorizedPrincipals.Data = []byte(`from="10.*" role-a` + "\n") }, check: CheckSourceAddress},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := f.server()
			if tc.srv != nil {
				tc.srv(&srv)
			}
			in := Input{
				Cert: f.cert(t, tc.signer, tc.cert), User: "deploy",
				From: netip.MustParseAddr("127.0.0.1"), At: f.now, Server: srv,
			}
			if tc.in != nil {
				tc.in(&in)
			}
			v, err := Explain(in)
			if err != nil {
				t.Fatal(err)
			}
			if v.Accept != (tc.check == "") || v.Check != tc.check {
				t.Fatalf("verdict accept=%v check=%q, want check %q\nreason: %s", v.Accept, v.Check, tc.check, v.Reason)
			}
			text := v.Reason + "\n" + strings.Join(v.Notes, "\n")
			for _, want := range tc.reason {
				if !strings.Contains(text, want) {
					t.Errorf("reason lacks %q:\n%s", want, text)
				}
			}
			if !v.Accept && (v.Reason == "" || v.Fix == "") {
				t.Errorf("refusal without reason or fix: %+v", v)
			}
			if len(v.Steps) == 0 {
				t.Fatal("no steps recorded")
			}
			if last := v.Steps[len(v.Steps)-1]; !v.Accept && last.OK {
				t.Errorf("the last step should be the failing one: %+v", v.Steps)
			}
		})
	}
}

// TestExplainSteps checks that an accepted login runs every stage in
// sshd's order.
func TestExplainSteps(t *testing.T) {
	f := getFixture(t)
	srv := f.server()
	srv.RevokedKeys = []File{{Path: "/k", Data: nil}}
	srv.AuthorizedPrincipals.Data = []byte("from=\"127.0.0.1\" role-a\n")
	v, err := Explain(Input{Cert: f.cert(t, nil, nil), User: "deploy", From: netip.MustParseAddr("127.0.0.1"), At: f.now, Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range v.Steps {
		if !s.OK {
			t.Errorf("step %s failed: %s", s.Name, s.Detail)
		}
		got = append(got, s.Name)
	}
	want := []string{"pubkey-authentication", "signature", "ca-signature-algorithm", "revoked-keys", "trusted-ca",
		"principals-file", "certificate-type", "validity", "principal-list", "certificate-options", "source-address", "principals-options"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}

func TestExplainInputErrors(t *testing.T) {
	f := getFixture(t)
	c := f.cert(t, nil, nil)
	tests := []struct {
		name string
		in   Input
	}{
		{"fail/no-cert", Input{User: "u", At: f.now, Server: f.server()}},
		{"fail/no-user", Input{Cert: c, At: f.now, Server: f.server()}},
		{"fail/bad-sigalgs", Input{Cert: c, User: "u", At: f.now, Server: Server{CASignatureAlgorithms: "!ssh-rsa"}}},
		{"fail/no-sigalg-matches", Input{Cert: c, User: "u", At: f.now, Server: Server{CASignatureAlgorithms: "nothing-*"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Explain(tc.in); err == nil || !strings.HasPrefix(err.Error(), "explain: ") {
				t.Fatalf("err = %v, want an explain: error", err)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {10 * time.Second, "10s"}, {90 * time.Second, "1m30s"}, {time.Hour, "1h"},
		{2*time.Hour + 3*time.Minute + 4*time.Second, "2h3m4s"}, {47 * time.Hour, "47h"},
		{3 * 24 * time.Hour, "3d"}, {3*24*time.Hour + 5*time.Hour + 10*time.Minute, "3d5h"}, {-time.Minute, "1m"},
	} {
		name := "ok/" + tc.want
		t.Run(name, func(t *testing.T) {
			if got := humanDuration(tc.d); got != tc.want {
				t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
			}
		})
	}
}
