package explain

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func FuzzParseSSHDConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		"TrustedUserCAKeys /etc/ssh/ca.pub\nAuthorizedPrincipalsFile /etc/ssh/principals/%u\nRevokedKeys /etc/ssh/revoked.krl\n",
		"casignaturealgorithms=+ssh-rsa\nPubkeyAuthentication no\n",
		"AuthorizedPrincipalsFile \"/a b/%u\" # c\nMatch User x\nRevokedKeys /x\n",
		"TrustedUserCAKeys 'unterminated\n",
		"Include /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysFile none\nRequiredRSASize 3072\n",
		`AuthorizedPrincipalsFile a\ b"c d"e` + "\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, config string) {
		c, err := ParseSSHDConfig(strings.NewReader(config))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "explain: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if _, err := CASignatureAlgorithms(c.CASignatureAlgorithms); err != nil {
			t.Fatalf("accepted CASignatureAlgorithms %q that does not assemble: %v", c.CASignatureAlgorithms, err)
		}
		_, _ = c.PrincipalsPath(Account{Name: "u", Home: "/home/u", UID: "1"})
	})
}

func FuzzPrincipalsFile(f *testing.F) {
	for _, seed := range []string{
		"role-a\n", "# c\n\n  role-b # x\n", `from="10.0.0.0/8",no-pty role-c` + "\n",
		`command="a \"b\"",expiry-time="20300101Z" role-d`, "bad opt\trole-e\r\n", `permitopen="[::1]:22" x`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		for _, pl := range parsePrincipals([]byte(data), time.UTC) {
			if pl.name == "" || strings.ContainsAny(pl.name, "#\n") {
				t.Fatalf("line %d: bad principal %q", pl.n, pl.name)
			}
			if (pl.opts == nil) == (pl.optErr == nil) {
				t.Fatalf("line %d: options %v and error %v", pl.n, pl.opts, pl.optErr)
			}
		}
	})
}

func FuzzMatchCIDRList(f *testing.F) {
	for _, seed := range [][2]string{
		{"127.0.0.1", "127.0.0.0/8"}, {"::1", "::1/128,10.0.0.0/8"}, {"10.1.2.3", "10.1.2.3/8"},
		{"127.0.0.1", "bogus,"}, {"", "0.0.0.0/0"}, {"192.168.1.1", "!192.168.*,*"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, addr, list string) {
		a, _ := netip.ParseAddr(addr)
		got, why := matchCIDRList(a, list)
		syntax, _ := matchCIDRList(netip.Addr{}, list)
		if (got < 0) != (syntax < 0) {
			t.Fatalf("list %q: result %d (%s) but syntax check %d", list, got, why, syntax)
		}
		if got == 1 && !a.IsValid() {
			t.Fatalf("match without an address")
		}
		if a.IsValid() {
			_ = matchHostAndIP(a, list)
		}
	})
}

// FuzzExplain runs Explain on arbitrary certificates: it must never fail
// for a parsed certificate, and must name a known check.
func FuzzExplain(f *testing.F) {
	fx := getFixture(f)
	for _, c := range []*ssh.Certificate{
		fx.cert(f, nil, nil),
		fx.cert(f, nil, func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "10.0.0.0/8", "force-command": "ls"}
		}),
		fx.cert(f, fx.sha1CA, func(c *ssh.Certificate) { c.CertType = ssh.HostCert; c.ValidPrincipals = nil }),
	} {
		f.Add(c.Marshal(), "deploy", "role-a\n")
	}
	known := map[string]bool{"": true}
	for _, c := range Checks() {
		known[c] = true
	}
	f.Fuzz(func(t *testing.T, blob []byte, user, principals string) {
		pub, err := ssh.ParsePublicKey(blob)
		if err != nil {
			return
		}
		cert, ok := pub.(*ssh.Certificate)
		if !ok || user == "" {
			return
		}
		srv := fx.server()
		srv.AuthorizedPrincipals.Data = []byte(principals)
		v, err := Explain(Input{Cert: cert, User: user, From: netip.MustParseAddr("127.0.0.1"), At: fx.now, Server: srv})
		if err != nil {
			t.Fatal(err)
		}
		if !known[v.Check] || v.Accept != (v.Check == "") {
			t.Fatalf("verdict %+v", v)
		}
	})
}
