package e2eexplain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/explain"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/sshdtest"
)

// TestExplainHostAgreesWithSSH checks `sshca explain --host` against the
// real ssh client of every OpenSSH release: servers present host
// certificates, the client checks them against known_hosts,
// RevokedHostKeys and CASignatureAlgorithms, and explain must agree with
// the outcome and name the client's reason.
func TestExplainHostAgreesWithSSH(t *testing.T) {
	requireSSHDAsRoot(t)
	for _, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			hostAgreesWithSSH(t, rel)
		})
	}
}

func hostAgreesWithSSH(t *testing.T, rel *opensshtest.Flavour) {
	const account = "root"
	dir := t.TempDir()
	_, userKey, _ := ed25519.GenerateKey(rand.Reader)
	_, hostEd, _ := ed25519.GenerateKey(rand.Reader)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	userCA, hostCA, otherCA, rsaCA := newCA(t, "user", userKey), newCA(t, "host", hostEd), newCA(t, "other", otherKey), newCA(t, "rsa", rsaKey)

	// A user certificate every server accepts.
	subjPath, subjPub := sshdtest.GenerateKey(t, dir, "ed25519")
	uc := &ssh.Certificate{Key: subjPub, Serial: 1, CertType: ssh.UserCert, KeyId: "u", ValidPrincipals: []string{account},
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(2 * time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
	if err := uc.SignCert(rand.Reader, userCA.signer); err != nil {
		t.Fatal(err)
	}
	userCertPath := subjPath + "-cert.pub"
	if err := os.WriteFile(userCertPath, ssh.MarshalAuthorizedKey(uc), 0o644); err != nil {
		t.Fatal(err)
	}

	type hostServer struct {
		srv      *sshdtest.Server
		certPath string
	}
	start := func(name string, signer ssh.Signer, serial uint64, after, before time.Duration, principals ...string) hostServer {
		if principals == nil {
			principals = []string{"127.0.0.1", "web.test"}
		}
		srv := sshdtest.Start(t, sshdtest.Config{
			OpenSSH:           rel,
			TrustedUserCAKeys: []string{userCA.line()},
			SignHostKey: func(pub ssh.PublicKey) ([]byte, error) {
				c := &ssh.Certificate{Key: pub, Serial: serial, CertType: ssh.HostCert, KeyId: name,
					ValidPrincipals: principals,
					ValidAfter:      uint64(time.Now().Add(after).Unix()), ValidBefore: uint64(time.Now().Add(before).Unix())}
				if err := c.SignCert(rand.Reader, signer); err != nil {
					return nil, err
				}
				return ssh.MarshalAuthorizedKey(c), nil
			},
		})
		return hostServer{srv: srv, certPath: srv.HostCertPath}
	}
	good := start("good", hostCA.signer, 7, -time.Hour, 2*time.Hour)
	expired := start("expired", hostCA.signer, 8, -3*time.Hour, -time.Hour)
	sha1 := start("sha1", rsaCA.sha1, 9, -time.Hour, 2*time.Hour)
	// What changed in 10.3: principals are patterns, and an empty list is
	// refused rather than valid for every host.
	wild := start("wild", hostCA.signer, 10, -time.Hour, 2*time.Hour, "*.test", "127.0.0.?")
	empty := start("empty", hostCA.signer, 11, -time.Hour, 2*time.Hour, []string{}...)
	patterns := rel.AtLeast(10, 3)
	ifElse := func(cond bool, a, b string) string {
		if cond {
			return a
		}
		return b
	}

	krlPath := filepath.Join(dir, "revoked-hosts.krl")
	k := &krl.KRL{}
	if err := k.RevokeSerials(hostCA.pub, 7, 7); err != nil {
		t.Fatal(err)
	}
	b, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, krlPath, b)

	ca := func(pattern string, c *caKey) string { return "@cert-authority " + pattern + " " + c.line() }
	port := func(h hostServer) string { return h.srv.KnownHostsPattern() }
	for _, tc := range []struct {
		name    string
		h       hostServer
		known   []string
		alias   string
		opts    []string // ssh -o values
		krl     bool
		sigalgs string
		want    string
		stderr  string // what ssh prints, "" for the default
	}{
		{name: "ok/trusted", h: good, known: []string{ca(port(good), hostCA)}},
		{name: "ok/wildcard", h: good, known: []string{ca("*", hostCA)}},
		// The server's port is not 22, so ssh looks [127.0.0.1]:PORT up in
		// known_hosts and, when nothing there holds the CA, the bare name
		// again (sshconnect.c check_host_key, "checking without port identifier").
		{name: "ok/port-bare-host", h: good, known: []string{ca("127.0.0.1", hostCA)}},
		{name: "ok/port-bare-host-wildcard", h: good, known: []string{ca("127.0.0.*", hostCA)}},
		{name: "fail/port-22", h: good, known: []string{ca("[127.0.0.1]:22", hostCA)}, want: explain.CheckCANotTrusted, stderr: "Host key verification failed"},
		{name: "ok/port-wildcard", h: good, known: []string{ca("[127.0.0.1]:*", hostCA)}},
		{name: "ok/port-wildcard-host", h: good, known: []string{ca("[127.0.0.?]:*", hostCA)}},
		{name: "ok/port-in-list", h: good, known: []string{ca("web.test,"+port(good), hostCA)}},
		{name: "ok/port-negated-bare-host-retried", h: good, known: []string{ca("*,!"+port(good), hostCA)}},
		{name: "fail/port-negated-both", h: good, known: []string{ca("*,!"+port(good)+",!127.0.0.1", hostCA)}, want: explain.CheckCANotTrusted, stderr: "Host key verification failed"},
		{name: "ok/port-hashed", h: good, known: []string{ca(hashHost(port(good)), hostCA)}},
		{name: "ok/port-hashed-bare", h: good, known: []string{ca(hashHost("127.0.0.1"), hostCA)}},
		{name: "fail/port-bare-host-revoked-ca", h: good, known: []string{ca("127.0.0.1", hostCA), "@revoked 127.0.0.1 " + hostCA.line()}, want: explain.CheckRevokedCA,
			stderr: "REVOKED HOST KEY"},
		{name: "ok/port-revoked-only-bare-host", h: good, known: []string{ca(port(good), hostCA), "@revoked 127.0.0.1 " + hostCA.line()}},
		{name: "fail/port-revoked-marker", h: good, known: []string{ca("*", hostCA), "@revoked " + port(good) + " " + hostCA.line()}, want: explain.CheckRevokedCA,
			stderr: "REVOKED HOST KEY"},
		{name: "ok/port-revoked-marker-other-port", h: good, known: []string{ca("*", hostCA), "@revoked [127.0.0.1]:22 " + hostCA.line()}},
		{name: "ok/alias", h: good, alias: "web.test", known: []string{ca("*.test", hostCA)}},
		{name: "ok/ssh-rsa-allowed", h: sha1, known: []string{ca("*", rsaCA)}, opts: []string{"CASignatureAlgorithms=+ssh-rsa"}, sigalgs: "+ssh-rsa"},
		{name: "fail/other-ca", h: good, known: []string{ca("*", otherCA)}, want: explain.CheckCANotTrusted, stderr: "Host key verification failed"},
		{name: "fail/pattern", h: good, known: []string{ca("*.example", hostCA)}, want: explain.CheckCANotTrusted, stderr: "Host key verification failed"},
		{name: "fail/alias-not-principal", h: good, alias: "db.test", known: []string{ca("*.test", hostCA)}, want: explain.CheckNoPrincipal,
			stderr: "name is not a listed principal"},
		{name: "fail/revoked-ca-marker", h: good, known: []string{ca("*", hostCA), "@revoked * " + hostCA.line()}, want: explain.CheckRevokedCA,
			stderr: "REVOKED HOST KEY"},
		{name: "fail/revoked-host-keys", h: good, known: []string{ca("*", hostCA)}, opts: []string{"RevokedHostKeys=" + krlPath}, krl: true,
			want: explain.CheckRevokedSerial, stderr: "revoked by file"},
		{name: "fail/expired", h: expired, known: []string{ca("*", hostCA)}, want: explain.CheckExpired, stderr: "Certificate invalid: expired"},
		{name: "fail/ssh-rsa", h: sha1, known: []string{ca("*", rsaCA)}, want: explain.CheckSigAlg, stderr: "Host key verification failed"},
		{name: "wildcard-principal-alias", h: wild, alias: "web.test", known: []string{ca("*.test", hostCA)},
			want: ifElse(patterns, "", explain.CheckNoPrincipal), stderr: ifElse(patterns, "", "name is not a listed principal")},
		{name: "wildcard-principal-ip", h: wild, known: []string{ca("*", hostCA)},
			want: ifElse(patterns, "", explain.CheckNoPrincipal), stderr: ifElse(patterns, "", "name is not a listed principal")},
		{name: "fail/wildcard-principal-other-name", h: wild, alias: "web.example", known: []string{ca("*", hostCA)},
			want: explain.CheckNoPrincipal, stderr: "name is not a listed principal"},
		{name: "empty-principals", h: empty, known: []string{ca("*", hostCA)},
			want: ifElse(patterns, explain.CheckEmptyPrincipals, ""), stderr: ifElse(patterns, "Certificate lacks principal list", "")},
	} {
		name := tc.name
		if !strings.HasPrefix(name, "ok/") && !strings.HasPrefix(name, "fail/") {
			name = ifElse(tc.want == "", "ok/", "fail/") + name
		}
		t.Run(name, func(t *testing.T) {
			res := tc.h.srv.Login(t, sshdtest.LoginOptions{User: account, IdentityFile: subjPath, KnownHosts: tc.known,
				HostKeyAlias: tc.alias, Options: tc.opts})
			kh := filepath.Join(t.TempDir(), "known_hosts")
			if err := os.WriteFile(kh, []byte(strings.Join(tc.known, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			host, p := "127.0.0.1", strconv.Itoa(tc.h.srv.Port)
			if tc.alias != "" {
				host, p = tc.alias, "22" // ssh looks an alias up as is
			}
			args := []string{"explain", "--cert", tc.h.certPath, "--host", host, "--port", p, "--known-hosts", kh, "--verbose"}
			if tc.krl {
				args = append(args, "--krl", krlPath)
			}
			if tc.sigalgs != "" {
				args = append(args, "--ca-signature-algorithms", tc.sigalgs)
			}
			if versionArg(rel) != "" {
				// In host mode the release is the ssh client's.
				args = append(args, "--sshd-version", rel.SSH)
			}
			var stdout, stderr bytes.Buffer
			code := cli.Run(t.Context(), args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
			check := ""
			for _, l := range strings.Split(stdout.String(), "\n") {
				if v, ok := strings.CutPrefix(l, "check: "); ok {
					check = v
				}
			}
			report := fmt.Sprintf("\n--- explain (exit %d):\n%s%s\n--- ssh stderr:\n%s", code, stdout.String(), stderr.String(), res.Stderr)
			if res.OK != (code == 0) {
				t.Fatalf("ssh login ok=%v but explain exit %d%s", res.OK, code, report)
			}
			if check != tc.want {
				t.Errorf("explain names %q, want %q%s", check, tc.want, report)
			}
			if tc.stderr != "" && !strings.Contains(res.Stderr, tc.stderr) {
				t.Errorf("ssh's stderr lacks %q%s", tc.stderr, report)
			}
		})
	}
}

// hashHost hashes a known_hosts host name as ssh-keygen -H does
// ("|1|salt|HMAC-SHA1(salt, name)").
func hashHost(name string) string {
	salt := []byte("sshca-explain-salt-1")
	m := hmac.New(sha1.New, salt)
	m.Write([]byte(name))
	return "|1|" + base64.StdEncoding.EncodeToString(salt) + "|" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}
