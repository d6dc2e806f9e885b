package explain

import (
	//lint:ignore SA1019 DSA certificates must be judged: OpenSSH 10.1 refuses them
	"crypto/dsa"
	"crypto/rand"
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		ok   bool
	}{
		{"9.2", Version{9, 2}, true},
		{"10.5", Version{10, 5}, true},
		{"10.5p1", Version{10, 5}, true},
		{"OpenSSH_9.2p1", Version{9, 2}, true},
		{"OpenSSH_10.5p1 Debian-1", Version{10, 5}, true},
		{"10", Version{}, false},
		{"ten.five", Version{}, false},
		{"", Version{}, false},
		{"9.2x", Version{}, false},
		{"100.1", Version{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseVersion(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("ParseVersion(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
	out := "unknown option -- V\nOpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026\nusage: sshd [-46DdeGiqTtV] ..."
	if v, err := VersionFromOutput(out); err != nil || v != (Version{9, 2}) {
		t.Errorf("VersionFromOutput = %v, %v", v, err)
	}
	if _, err := VersionFromOutput("command not found"); err == nil {
		t.Error("VersionFromOutput found a version in garbage")
	}
	if (Version{}).String() != "OpenSSH 9.2" || !(Version{}).AtLeast(9, 2) || (Version{}).AtLeast(9, 3) {
		t.Error("the zero Version is not 9.2")
	}
}

// signedKRL is a KRL with a legacy signature section whose signature is
// garbage: OpenSSH 9.2 verifies it and fails to load the KRL, 9.4 and
// later skip it.
func signedKRL(t *testing.T, signer ssh.PublicKey) []byte {
	t.Helper()
	b := krlBytes(t, func(k *krl.KRL) error { return nil })
	str := func(b, s []byte) []byte { return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...) }
	b = append(b, 4)
	b = str(b, signer.Marshal())
	return str(b, []byte("not a signature"))
}

// TestVersionRules checks each rule that depends on the OpenSSH release.
func TestVersionRules(t *testing.T) {
	f := getFixture(t)
	v92, v105 := Version{9, 2}, Version{10, 5}
	hostCert := func(principals ...string) func(c *ssh.Certificate) {
		return func(c *ssh.Certificate) {
			c.CertType = ssh.HostCert
			c.ValidPrincipals = principals
			c.Extensions = nil
		}
	}
	known := []File{{Path: "known_hosts", Data: []byte("@cert-authority * " + line(f.ca.PublicKey()))}}
	dsaKey := new(dsa.PrivateKey)
	if err := dsa.GenerateParameters(&dsaKey.Parameters, rand.Reader, dsa.L1024N160); err != nil {
		t.Fatal(err)
	}
	if err := dsa.GenerateKey(dsaKey, rand.Reader); err != nil {
		t.Fatal(err)
	}
	dsaPub, err := ssh.NewPublicKey(&dsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		version Version
		cert    func(c *ssh.Certificate)
		srv     func(s *Server)
		host    string
		check   string
		text    string // in the reason, notes or a step
		notText string
	}{
		{name: "9.2/krl-signature-section-unloadable", version: v92, check: CheckRevokedKeysUnreadable, text: "OpenSSH 9.2 cannot load it",
			srv: func(s *Server) { s.RevokedKeys = []File{{Path: "/r.krl", Data: signedKRL(t, f.other.PublicKey())}} }},
		{name: "10.5/krl-signature-section-skipped", version: v105,
			srv: func(s *Server) { s.RevokedKeys = []File{{Path: "/r.krl", Data: signedKRL(t, f.other.PublicKey())}} }},
		{name: "9.2/several-revoked-keys-noted", version: v92, text: "OpenSSH 9.2 takes one",
			srv: func(s *Server) { s.RevokedKeys = []File{{Path: "/a", Data: nil}, {Path: "/b", Data: nil}} }},
		{name: "10.5/several-revoked-keys", version: v105, notText: "takes one",
			srv: func(s *Server) { s.RevokedKeys = []File{{Path: "/a", Data: nil}, {Path: "/b", Data: nil}} }},
		{name: "10.5/several-revoked-keys-second-revokes", version: v105, check: CheckRevokedSerial,
			srv: func(s *Server) {
				s.RevokedKeys = []File{{Path: "/a", Data: nil},
					{Path: "/b", Data: krlBytes(t, func(k *krl.KRL) error { return k.RevokeSerials(f.ca.PublicKey(), 42, 42) })}}
			}},
		{name: "9.2/default-sigalgs-named", version: v92, check: CheckSigAlg, text: "default CASignatureAlgorithms of OpenSSH 9.2",
			cert: func(c *ssh.Certificate) {}, srv: func(s *Server) {
				s.TrustedUserCAKeys = &File{Path: "/ca", Data: []byte(line(f.rsaCA.PublicKey()))}
			}},
		{name: "9.2/dsa-key-parsed", version: v92, cert: func(c *ssh.Certificate) { c.Key = dsaPub }},
		{name: "10.5/dsa-key-malformed", version: v105, check: CheckMalformed, text: "DSA was removed in OpenSSH 10.1",
			cert: func(c *ssh.Certificate) { c.Key = dsaPub }},
		{name: "9.2/host-wildcard-exact", version: v92, host: "web1.corp", cert: hostCert("*.corp"), check: CheckNoPrincipal,
			text: "OpenSSH 10.3 and later would match"},
		{name: "10.5/host-wildcard-matches", version: v105, host: "web1.corp", cert: hostCert("*.corp"), text: `matches the certificate's principal pattern "*.corp"`},
		{name: "10.5/host-wildcard-question", version: v105, host: "web1.corp", cert: hostCert("web?.corp")},
		{name: "10.5/host-wildcard-no-match", version: v105, host: "web1.example", cert: hostCert("*.corp"), check: CheckNoPrincipal,
			text: "matches them as patterns, and none matches"},
		{name: "10.5/host-wildcard-case-sensitive", version: v105, host: "web1.corp", cert: hostCert("*.CORP"), check: CheckNoPrincipal},
		{name: "9.2/host-empty-principals", version: v92, host: "web1.corp", cert: hostCert(), text: "OpenSSH 9.2 accepts for any host name"},
		{name: "10.5/host-empty-principals", version: v105, host: "web1.corp", cert: hostCert(), check: CheckEmptyPrincipals,
			text: "Certificate lacks principal list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := f.server()
			if tc.host != "" {
				srv = Server{KnownHosts: known}
			}
			if tc.srv != nil {
				tc.srv(&srv)
			}
			srv.Version = tc.version
			signer := ssh.Signer(nil)
			if strings.Contains(tc.name, "sigalgs") {
				signer = f.sha1CA
			}
			v, err := Explain(Input{Cert: f.cert(t, signer, tc.cert), User: "deploy", Host: tc.host, At: f.now, Server: srv})
			if err != nil {
				t.Fatal(err)
			}
			if v.Check != tc.check || v.Accept != (tc.check == "") {
				t.Fatalf("check = %q (accept %v), want %q\nreason: %s", v.Check, v.Accept, tc.check, v.Reason)
			}
			text := v.Reason + "\n" + strings.Join(v.Notes, "\n")
			for _, s := range v.Steps {
				text += "\n" + s.Detail
			}
			if tc.text != "" && !strings.Contains(text, tc.text) {
				t.Errorf("lacks %q:\n%s", tc.text, text)
			}
			if tc.notText != "" && strings.Contains(text, tc.notText) {
				t.Errorf("has %q:\n%s", tc.notText, text)
			}
		})
	}
}
