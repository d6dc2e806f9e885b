package cli_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// explainFiles writes a CA, a certificate valid for the next hour for
// principal role-a, a principals file and an sshd_config using them.
func explainFiles(t *testing.T) (dir, cert, ca string) {
	t.Helper()
	dir = t.TempDir()
	_, caKey, _ := ed25519.GenerateKey(rand.Reader)
	caSigner, err := ssh.NewSignerFromKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	userPub, _, _ := ed25519.GenerateKey(rand.Reader)
	pub, err := ssh.NewPublicKey(userPub)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := &ssh.Certificate{Key: pub, Serial: 9, CertType: ssh.UserCert, KeyId: "alice", ValidPrincipals: []string{"role-a"},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
	if err := c.SignCert(rand.Reader, caSigner); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert = write("id-cert.pub", string(ssh.MarshalAuthorizedKey(c)))
	ca = write("ca.pub", string(ssh.MarshalAuthorizedKey(caSigner.PublicKey())))
	write("principals-deploy", "role-a\n")
	write("sshd_config", "TrustedUserCAKeys "+ca+"\nAuthorizedPrincipalsFile "+filepath.Join(dir, "principals-%u")+"\nAuthorizedKeysFile none\n")
	return dir, cert, ca
}

func TestExplainCommand(t *testing.T) {
	dir, cert, ca := explainFiles(t)
	cfg := filepath.Join(dir, "sshd_config")
	tests := []struct {
		name string
		args []string
		code int
		out  []string // substrings of stdout
		err  string   // substring of stderr
	}{
		{name: "ok/sshd-config", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg}, out: []string{"accept\n"}},
		{name: "ok/flags", args: []string{"--cert", cert, "--user", "deploy", "--trusted-ca", ca, "--principals-file", filepath.Join(dir, "principals-deploy")}, out: []string{"accept"}},
		{name: "ok/verbose", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--verbose"}, out: []string{"step: trusted-ca: ok:", "accept"}},
		{name: "ok/at-rfc3339-inside", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--at", time.Now().Add(30 * time.Minute).UTC().Format(time.RFC3339)}, out: []string{"accept"}},
		{name: "fail/expired-later", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--at", "+2h"}, code: 1,
			out: []string{"refuse: the certificate expired", "check: expired\n", "fix: "}},
		{name: "fail/not-yet-valid-earlier", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--at", "-1d"}, code: 1, out: []string{"check: not-yet-valid"}},
		{name: "fail/other-account", args: []string{"--cert", cert, "--user", "root", "--sshd-config", cfg}, code: 1, out: []string{"check: no-principal"}},
		{name: "fail/login-name-without-principals-file", args: []string{"--cert", cert, "--user", "deploy", "--trusted-ca", ca}, code: 1, out: []string{"check: no-principal", `"deploy" is not`}},
		{name: "fail/trusted-ca-flag-overrides-config", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--trusted-ca", filepath.Join(dir, "nope")}, code: 1,
			out: []string{"check: ca-not-trusted", "cannot be read"}},
		{name: "fail/missing-krl", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--krl", filepath.Join(dir, "nope.krl")}, code: 1,
			out: []string{"check: revoked-keys-unreadable"}},
		{name: "fail/sigalgs-flag", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--ca-signature-algorithms", "rsa-sha2-512"}, code: 1,
			out: []string{"check: sigalg-not-allowed"}},
		{name: "fail/usage-no-cert", args: []string{"--user", "deploy", "--sshd-config", cfg}, code: 2, err: "--cert is required"},
		{name: "fail/usage-no-user", args: []string{"--cert", cert, "--sshd-config", cfg}, code: 2, err: "--user is required"},
		{name: "fail/usage-no-server", args: []string{"--cert", cert, "--user", "deploy"}, code: 2, err: "--sshd-config"},
		{name: "fail/usage-bad-from", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--from", "host.example"}, code: 2, err: "not an IP"},
		{name: "fail/usage-bad-at", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--at", "tomorrow"}, code: 2, err: "--at"},
		{name: "fail/usage-host-and-user", args: []string{"--cert", cert, "--user", "deploy", "--host", "h"}, code: 2, err: "--host"},
		{name: "fail/usage-host-without-known-hosts", args: []string{"--cert", cert, "--host", "h"}, code: 2, err: "--known-hosts"},
		{name: "fail/usage-bad-sigalgs", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--ca-signature-algorithms", "!x"}, code: 2, err: "--ca-signature-algorithms"},
		{name: "fail/not-a-cert", args: []string{"--cert", ca, "--user", "deploy", "--sshd-config", cfg}, code: 1, err: "sshca: error:"},
		{name: "fail/host-mode-user-cert", args: []string{"--cert", cert, "--host", "h", "--known-hosts", ca}, code: 1, out: []string{"check: "}},
		{name: "ok/sshd-version-default", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--verbose"}, out: []string{"rules: OpenSSH 9.2\n"}},
		{name: "ok/sshd-version", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--verbose", "--sshd-version", "10.5"}, out: []string{"rules: OpenSSH 10.5\n", "accept"}},
		{name: "ok/sshd-version-release-name", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--verbose", "--sshd-version", "OpenSSH_10.5p1"}, out: []string{"rules: OpenSSH 10.5\n"}},
		{name: "fail/usage-bad-sshd-version", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--sshd-version", "ten"}, code: 2, err: "--sshd-version"},
		{name: "fail/sshd-version-program-missing", args: []string{"--cert", cert, "--user", "deploy", "--sshd-config", cfg, "--sshd-version", filepath.Join(dir, "no-sshd")}, code: 1, err: "cannot read the OpenSSH version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, append([]string{"explain"}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, want := range tc.out {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			if tc.err != "" && !strings.Contains(r.stderr, tc.err) {
				t.Errorf("stderr lacks %q:\n%s", tc.err, r.stderr)
			}
		})
	}
}

func TestExplainCommandJSON(t *testing.T) {
	dir, cert, _ := explainFiles(t)
	r := runCLI(t, "explain", "--json", "--cert", cert, "--user", "root", "--sshd-config", filepath.Join(dir, "sshd_config"))
	if r.code != 1 {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	var v struct {
		Accept bool   `json:"accept"`
		Check  string `json:"check"`
		Reason string `json:"reason"`
		Steps  []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if v.Accept || v.Check != "no-principal" || v.Reason == "" || len(v.Steps) == 0 || v.Steps[len(v.Steps)-1].OK {
		t.Errorf("unexpected verdict: %+v", v)
	}
}
