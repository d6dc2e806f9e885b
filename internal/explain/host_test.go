package explain

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
)

func hashedHost(name string) string {
	salt := []byte("0123456789abcdefghij")
	m := hmac.New(sha1.New, salt)
	m.Write([]byte(name))
	return "|1|" + base64.StdEncoding.EncodeToString(salt) + "|" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestExplainHost(t *testing.T) {
	f := getFixture(t)
	ca := f.ca.PublicKey()
	hostCert := func(c *ssh.Certificate) {
		c.CertType = ssh.HostCert
		c.ValidPrincipals = []string{"web1.corp", "10.0.0.5"}
		c.Extensions = nil
	}
	kh := func(lines ...string) func(s *Server) {
		return func(s *Server) { s.KnownHosts = []File{{Path: "known_hosts", Data: []byte(strings.Join(lines, "\n"))}} }
	}
	caLine := "@cert-authority *.corp,10.0.0.* " + line(ca)
	tests := []struct {
		name   string
		signer ssh.Signer
		cert   func(c *ssh.Certificate)
		srv    func(s *Server)
		host   string
		port   int
		check  string
		reason []string
	}{
		{name: "ok/pattern", srv: kh(caLine)},
		{name: "ok/ip", host: "10.0.0.5", srv: kh(caLine)},
		{name: "ok/hashed", srv: kh("@cert-authority " + hashedHost("web1.corp") + " " + line(ca))},
		{name: "ok/port", port: 2222, srv: kh("@cert-authority [web1.corp]:2222 " + line(ca))},
		{name: "ok/empty-principals-in-9.2", cert: func(c *ssh.Certificate) { hostCert(c); c.ValidPrincipals = nil }, srv: kh(caLine),
			reason: []string{"10.3"}},
		{name: "ok/ssh-rsa-allowed", signer: f.sha1CA, srv: func(s *Server) {
			kh("@cert-authority * " + line(f.rsaCA.PublicKey()))(s)
			s.CASignatureAlgorithms = "+ssh-rsa"
		}},
		{name: "fail/user-certificate", cert: func(c *ssh.Certificate) { c.ValidPrincipals = []string{"web1.corp"} }, srv: kh(caLine),
			check: CheckWrongCertType, reason: []string{"user certificate"}},
		{name: "fail/no-known-hosts", check: CheckCANotTrusted, reason: []string{"none given"}},
		{name: "fail/pattern-mismatch", host: "db1.example", srv: kh(caLine), check: CheckCANotTrusted, reason: []string{"trusted for other hosts"}},
		// ssh checks again without the port when "[host]:port" finds nothing.
		{name: "ok/port-bare-name", port: 2222, srv: kh("@cert-authority web1.corp " + line(ca))},
		{name: "fail/port-other-port", port: 2222, srv: kh("@cert-authority [web1.corp]:22 " + line(ca)), check: CheckCANotTrusted,
			reason: []string{`"[web1.corp]:2222", nor "web1.corp"`, "trusted for other hosts"}},
		{name: "fail/port-bare-name-revoked", port: 2222, srv: kh("@cert-authority web1.corp "+line(ca), "@revoked web1.corp "+line(ca)), check: CheckRevokedCA,
			reason: []string{"without the port"}},
		{name: "ok/port-revoked-only-bare-name", port: 2222, srv: kh("@cert-authority [web1.corp]:2222 "+line(ca), "@revoked web1.corp "+line(ca))},
		{name: "fail/negated", srv: kh("@cert-authority *.corp,!web1.corp " + line(ca)), check: CheckCANotTrusted},
		{name: "fail/plain-line-is-not-ca", srv: kh("*.corp " + line(ca)), check: CheckCANotTrusted},
		{name: "fail/revoked-marker-key", srv: kh(caLine, "@revoked * "+line(f.key)), check: CheckRevokedKey},
		{name: "fail/revoked-marker-ca", srv: kh(caLine, "@revoked *.corp "+line(ca)), check: CheckRevokedCA},
		{name: "fail/revoked-host-keys", srv: func(s *Server) {
			kh(caLine)(s)
			s.RevokedKeys = []File{{Path: "revoked", Data: krlBytes(t, func(k *krl.KRL) error { return k.RevokeSerials(ca, 42, 42) })}}
		}, check: CheckRevokedSerial, reason: []string{"serial 42"}},
		{name: "fail/name-not-principal", host: "web2.corp", srv: kh(caLine), check: CheckNoPrincipal, reason: []string{`"web2.corp"`}},
		{name: "fail/expired", cert: func(c *ssh.Certificate) { hostCert(c); c.ValidBefore = uint64(f.now.Add(-time.Hour).Unix()) },
			srv: kh(caLine), check: CheckExpired},
		{name: "fail/critical-option", cert: func(c *ssh.Certificate) { hostCert(c); c.CriticalOptions = map[string]string{"force-command": "x"} },
			srv: kh(caLine), check: CheckInvalidOptions},
		{name: "fail/ssh-rsa", signer: f.sha1CA, srv: kh("@cert-authority * " + line(f.rsaCA.PublicKey())),
			check: CheckSigAlg, reason: []string{"checks this last"}},
		// The client checks the algorithm last, after the name.
		{name: "fail/order-name-before-sigalg", signer: f.sha1CA, host: "other.corp", srv: kh("@cert-authority * " + line(f.rsaCA.PublicKey())),
			check: CheckNoPrincipal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := Server{}
			if tc.srv != nil {
				tc.srv(&srv)
			}
			mod := tc.cert
			if mod == nil {
				mod = hostCert
			}
			host := tc.host
			if host == "" {
				host = "web1.corp"
			}
			v, err := Explain(Input{Cert: f.cert(t, tc.signer, mod), Host: host, Port: tc.port, At: f.now, Server: srv})
			if err != nil {
				t.Fatal(err)
			}
			if v.Check != tc.check || v.Accept != (tc.check == "") {
				t.Fatalf("check = %q (accept %v), want %q\nreason: %s", v.Check, v.Accept, tc.check, v.Reason)
			}
			text := v.Reason + "\n" + strings.Join(v.Notes, "\n")
			for _, want := range tc.reason {
				if !strings.Contains(text, want) {
					t.Errorf("reason lacks %q:\n%s", want, text)
				}
			}
		})
	}
}
