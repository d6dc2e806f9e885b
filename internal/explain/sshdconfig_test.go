package explain

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/testkit"
)

const (
	keygenPath = "/usr/bin/ssh-keygen"
)

var (
	hostKeyOnce sync.Once
	hostKeyDir  string
	hostKeyErr  error
)

// sshdT runs `sshd -T` of the sshd program on config (a HostKey line is
// added, since sshd wants one) and returns its lower-cased keyword ->
// value lines (9.2 prints them lower-cased, 10.5 not).
func sshdT(t *testing.T, sshd, config string) map[string]string {
	t.Helper()
	testkit.RequireTools(t, sshd, keygenPath)
	hostKeyOnce.Do(func() {
		hostKeyDir, hostKeyErr = os.MkdirTemp("", "explain-sshd-T-")
		if hostKeyErr == nil {
			hostKeyErr = exec.Command(keygenPath, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(hostKeyDir, "hk")).Run()
		}
	})
	if hostKeyErr != nil {
		t.Fatalf("host key: %v", hostKeyErr)
	}
	cfg := filepath.Join(t.TempDir(), "sshd_config")
	if err := os.WriteFile(cfg, []byte("HostKey "+filepath.Join(hostKeyDir, "hk")+"\n"+config), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sshd, "-T", "-f", cfg).CombinedOutput()
	if err != nil {
		t.Fatalf("sshd -T: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, " ")
		k = strings.ToLower(k)
		if _, dup := m[k]; !dup {
			m[k] = v
		} else {
			m[k] += " " + v // repeated keywords (none we compare, but be safe)
		}
	}
	return m
}

// TestCASignatureAlgorithmsMatchSSHD assembles CASignatureAlgorithms
// values for every OpenSSH release and compares them with what its sshd
// -T says.
func TestCASignatureAlgorithmsMatchSSHD(t *testing.T) {
	for _, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			caSigAlgsMatch(t, rel.SSHD, Version{rel.Major, rel.Minor})
		})
	}
}

func caSigAlgsMatch(t *testing.T, sshd string, version Version) {
	for _, value := range []string{
		"", "+ssh-rsa", "-rsa-sha2-*,ssh-ed25519", "^ssh-rsa", "ecdsa*,ssh-rsa", "ssh-ed25519",
		"+ssh-rsa*", "-*", "ssh-*", "*", "+webauthn-sk-ecdsa-sha2-nistp256@openssh.com", "rsa-sha2-512,ssh-ed25519,rsa-sha2-512",
		"-ssh-ed25519,nonexistent", "ecdsa-sha2-nistp2??",
	} {
		t.Run("ok/"+value, func(t *testing.T) {
			config := ""
			if value != "" {
				config = "CASignatureAlgorithms " + value + "\n"
			}
			want := sshdT(t, sshd, config)["casignaturealgorithms"]
			got, err := CASignatureAlgorithmsOf(value, version)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, strings.Join(got, ",")); diff != "" {
				t.Errorf("CASignatureAlgorithms(%q) (-sshd +ours):\n%s", value, diff)
			}
		})
	}
	for _, value := range []string{"!ssh-rsa", "nothing", "ssh-ed25519,!ssh-rsa"} {
		t.Run("fail/"+value, func(t *testing.T) {
			if _, err := CASignatureAlgorithmsOf(value, version); err == nil {
				t.Errorf("CASignatureAlgorithms(%q) accepted a value sshd refuses", value)
			}
		})
	}
}

// TestParseSSHDConfigMatchesSSHD parses configurations and compares the
// keywords we read with the sshd -T of every OpenSSH release.
func TestParseSSHDConfigMatchesSSHD(t *testing.T) {
	for _, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			parseMatches(t, rel.SSHD, Version{rel.Major, rel.Minor})
		})
	}
}

func parseMatches(t *testing.T, sshd string, version Version) {
	for _, tc := range []struct{ name, config string }{
		{"ok/defaults", ""},
		{"ok/typical", "PubkeyAuthentication yes\nTrustedUserCAKeys /etc/ssh/ca.pub\nAuthorizedPrincipalsFile /etc/ssh/principals/%u\nRevokedKeys /etc/ssh/revoked.krl\nAuthorizedKeysFile none\n"},
		{"ok/first-value-wins", "TrustedUserCAKeys /a\nTrustedUserCAKeys /b\nRevokedKeys /r1\nRevokedKeys /r2\nCASignatureAlgorithms +ssh-rsa\nCASignatureAlgorithms ssh-ed25519\nPubkeyAuthentication no\nPubkeyAuthentication yes\n"},
		{"ok/case-equals-quotes-comments", "  trustedusercakeys=/etc/ssh/ca.pub\nAUTHORIZEDPRINCIPALSFILE = \"/etc/ssh/with space/%u\" # comment\n# RevokedKeys /nope\nRevokedKeys\t'/etc/ssh/k l.krl'\n"},
		{"ok/none-values", "TrustedUserCAKeys none\nAuthorizedPrincipalsFile none\nRevokedKeys none\nAuthorizedKeysFile .ssh/a .ssh/b\nRequiredRSASize 2048\n"},
		{"ok/escapes", `AuthorizedPrincipalsFile /p/a\ b` + "\n" + `TrustedUserCAKeys /c"d e"f` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := sshdT(t, sshd, tc.config)
			c, err := ParseSSHDConfig(strings.NewReader(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			none := func(s string) string {
				if s == "" {
					return "none"
				}
				return s
			}
			algs, _ := CASignatureAlgorithmsOf(c.CASignatureAlgorithms, version)
			pk := "yes"
			if !c.PubkeyAuthentication {
				pk = "no"
			}
			rsaSize := c.RequiredRSASize
			if rsaSize == 0 {
				rsaSize = 1024
			}
			akf := strings.Join(c.AuthorizedKeysFile, " ")
			if akf == "" {
				akf = "none"
			}
			got := map[string]string{
				"pubkeyauthentication":     pk,
				"trustedusercakeys":        none(c.TrustedUserCAKeys),
				"authorizedprincipalsfile": none(c.AuthorizedPrincipalsFile),
				"revokedkeys":              none(strings.Join(c.RevokedKeys, " ")),
				"casignaturealgorithms":    strings.Join(algs, ","),
				"authorizedkeysfile":       akf,
				"requiredrsasize":          strconv.Itoa(rsaSize),
			}
			for k, v := range got {
				w, ok := want[k]
				if !ok {
					w = "none" // 10.5 leaves out empty lists
				}
				if w != v {
					t.Errorf("%s: sshd -T says %q, we read %q", k, w, v)
				}
			}
		})
	}
}

func TestParseSSHDConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		config  string
		want    *SSHDConfig
		wantErr string
	}{
		{name: "ok/match-stops", config: "TrustedUserCAKeys /a\nMatch User deploy\n  TrustedUserCAKeys /b\n  RevokedKeys /r\n",
			want: &SSHDConfig{PubkeyAuthentication: true, TrustedUserCAKeys: "/a", AuthorizedKeysFile: []string{".ssh/authorized_keys", ".ssh/authorized_keys2"},
				Notes: []string{"sshd_config line 2: the Match block", "sshd first tries the AuthorizedKeysFile"}}},
		{name: "ok/include-not-followed", config: "Include /etc/ssh/sshd_config.d/*.conf\nAuthorizedKeysFile none\n",
			want: &SSHDConfig{PubkeyAuthentication: true, Notes: []string{"Include /etc/ssh/sshd_config.d/*.conf was not followed"}}},
		{name: "ok/principals-command", config: "AuthorizedKeysFile none\nAuthorizedPrincipalsCommand /bin/p %u\n",
			want: &SSHDConfig{PubkeyAuthentication: true, AuthorizedPrincipalsCommand: "/bin/p %u", Notes: []string{"AuthorizedPrincipalsCommand /bin/p %u is not run"}}},
		{name: "ok/several-revoked-keys", config: "AuthorizedKeysFile none\nRevokedKeys /a /b\n",
			want: &SSHDConfig{PubkeyAuthentication: true, RevokedKeys: []string{"/a", "/b"}}},
		{name: "fail/no-argument", config: "TrustedUserCAKeys\n", wantErr: "no argument"},
		{name: "fail/bad-yes-no", config: "PubkeyAuthentication maybe\n", wantErr: "neither yes nor no"},
		{name: "fail/bad-sigalgs", config: "CASignatureAlgorithms !ssh-rsa\n", wantErr: "CASignatureAlgorithms"},
		{name: "fail/unterminated-quote", config: "TrustedUserCAKeys \"/a\n", wantErr: "unterminated quote"},
		{name: "fail/bad-rsa-size", config: "RequiredRSASize big\n", wantErr: "RequiredRSASize"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseSSHDConfig(strings.NewReader(tc.config))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "explain: ") {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Notes are compared by prefix.
			if len(c.Notes) != len(tc.want.Notes) {
				t.Fatalf("notes = %q, want %d like %q", c.Notes, len(tc.want.Notes), tc.want.Notes)
			}
			for i, n := range tc.want.Notes {
				if !strings.Contains(c.Notes[i], n) {
					t.Errorf("note %d = %q, want it to contain %q", i, c.Notes[i], n)
				}
			}
			c.Notes, tc.want.Notes = nil, nil
			if diff := cmp.Diff(tc.want, c); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSSHDConfigInclude(t *testing.T) {
	files := map[string][]File{
		"/etc/ssh/sshd_config.d/*.conf": {
			{Path: "/etc/ssh/sshd_config.d/10-ca.conf", Data: []byte("TrustedUserCAKeys /from/include\n")},
			{Path: "/etc/ssh/sshd_config.d/20-krl.conf", Data: []byte("RevokedKeys /r.krl\nMatch all\nRevokedKeys /never\n")},
		},
	}
	include := func(p string) ([]File, error) { return files[p], nil }
	c, err := ParseSSHDConfigInclude(strings.NewReader("Include sshd_config.d/*.conf\nTrustedUserCAKeys /main\nPubkeyAuthentication no\n"), include)
	if err != nil {
		t.Fatal(err)
	}
	if c.TrustedUserCAKeys != "/from/include" || !cmp.Equal(c.RevokedKeys, []string{"/r.krl"}) || !c.PubkeyAuthentication {
		t.Errorf("got %+v; want the included values first and nothing after the Match", c)
	}
}

func TestPrincipalsPath(t *testing.T) {
	a := Account{Name: "deploy", Home: "/home/deploy", UID: "1001"}
	for _, tc := range []struct{ name, tmpl, want, err string }{
		{name: "ok/none", tmpl: "", want: ""},
		{name: "ok/user", tmpl: "/etc/ssh/principals/%u", want: "/etc/ssh/principals/deploy"},
		{name: "ok/home", tmpl: "%h/.ssh/principals", want: "/home/deploy/.ssh/principals"},
		{name: "ok/relative", tmpl: ".ssh/principals", want: "/home/deploy/.ssh/principals"},
		{name: "ok/uid-percent", tmpl: "/p/%U/100%%", want: "/p/1001/100%"},
		{name: "fail/unknown-token", tmpl: "/p/%x", err: "unknown token"},
		{name: "fail/trailing-percent", tmpl: "/p/%", err: "ends in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &SSHDConfig{AuthorizedPrincipalsFile: tc.tmpl}
			got, err := c.PrincipalsPath(a)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("PrincipalsPath(%q) = %q, %v; want %q", tc.tmpl, got, err, tc.want)
			}
		})
	}
	t.Run("fail/home-unknown", func(t *testing.T) {
		c := &SSHDConfig{AuthorizedPrincipalsFile: ".ssh/p"}
		if _, err := c.PrincipalsPath(Account{Name: "x"}); err == nil {
			t.Error("a relative path without a home directory was accepted")
		}
	})
}

func TestSSHDConfigServer(t *testing.T) {
	c := &SSHDConfig{
		PubkeyAuthentication:     true,
		TrustedUserCAKeys:        "/ca.pub",
		AuthorizedPrincipalsFile: "/principals/%u",
		RevokedKeys:              []string{"/missing.krl"},
		CASignatureAlgorithms:    "+ssh-rsa",
		Notes:                    []string{"n"},
	}
	files := map[string]string{"/ca.pub": "ca", "/principals/deploy": "role-a\n"}
	s, err := c.Server(Account{Name: "deploy"}, func(p string) ([]byte, error) {
		if d, ok := files[p]; ok {
			return []byte(d), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(s.TrustedUserCAKeys.Data) != "ca" || string(s.AuthorizedPrincipals.Data) != "role-a\n" || s.AuthorizedPrincipals.Path != "/principals/deploy" {
		t.Errorf("files not read: %+v", s)
	}
	if len(s.RevokedKeys) != 1 || !errors.Is(s.RevokedKeys[0].Err, fs.ErrNotExist) {
		t.Errorf("missing KRL not reported: %+v", s.RevokedKeys)
	}
	if s.CASignatureAlgorithms != "+ssh-rsa" || s.PubkeyAuthenticationDisabled || len(s.Notes) != 1 {
		t.Errorf("settings not carried: %+v", s)
	}
}
