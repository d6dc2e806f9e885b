package cli_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/home"
)

const testPassphrase = "correct horse battery staple"

// refusalFixture is a home made by init (with the example policy init
// writes), one certificate already issued, and a work directory of subject
// key files.
type refusalFixture struct {
	home, work string
	passFile   string // the right passphrase ("" for an unencrypted home)
	wrongPass  string // a file with a wrong passphrase
	pub        string // an ed25519 public key
	cert       string // a certificate issued for pub (outside work)
}

func newRefusalFixture(t *testing.T, encrypted bool) *refusalFixture {
	t.Helper()
	f := &refusalFixture{work: t.TempDir()}
	secrets := t.TempDir()
	f.wrongPass = filepath.Join(secrets, "wrong")
	if err := os.WriteFile(f.wrongPass, []byte("not the passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var initArgs []string
	if encrypted {
		f.passFile = filepath.Join(secrets, "pass")
		if err := os.WriteFile(f.passFile, []byte(testPassphrase+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		initArgs = []string{"--passphrase-file", f.passFile}
	}
	f.home = initHome(t, initArgs...)
	f.pub = newKey(t, f.work, "id_ed25519", "-t", "ed25519")
	if encrypted {
		// Every bcrypt-pbkdf run costs seconds under the race detector:
		// no baseline certificate for the encrypted home.
		return f
	}
	// One issued certificate, so that "nothing changed" is checked against
	// a non-empty store (max serial 1, one row).
	f.cert = filepath.Join(secrets, "issued-cert.pub")
	mustRun(t, "--home", f.home, "sign", "user", "--role", "deploy", "--id", "baseline", "--out", f.cert, f.pub)
	return f
}

// write puts a file into the work directory and returns its path.
func (f *refusalFixture) write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(f.work, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// editPolicy rewrites one line of the home's sshca.yaml.
func (f *refusalFixture) editPolicy(t *testing.T, old, new string) {
	t.Helper()
	p := filepath.Join(f.home, home.ConfigFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), old) != 1 {
		t.Fatalf("sshca.yaml does not contain %q exactly once", old)
	}
	writePolicy(t, f.home, strings.Replace(string(b), old, new, 1))
}

// truncatedKey is pub's line with its key blob cut short but still valid
// base64, so that only the SSH wire decoding can notice.
func truncatedKey(t *testing.T, pubPath string) string {
	t.Helper()
	b, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	blob := pub.Marshal()
	return pub.Type() + " " + base64.StdEncoding.EncodeToString(blob[:len(blob)-7]) + " truncated\n"
}

// TestRefusals is acceptance 3 of issue 2: every refusal gets exit code,
// one error line (plus an optional hint), nothing on stdout, no certificate
// file, and an unchanged store — except that a sign refusal made after the
// home opened appends exactly one cert.deny audit entry.
func TestRefusals(t *testing.T) {
	t.Parallel()
	requireKeygen(t)
	tests := []refusalCase{
		{
			name: "fail/dsa-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				return signUser(newKey(t, f.work, "id_dsa", "-t", "dsa"))
			},
			code: 1, msg: "public key: DSA keys are not accepted", denials: 1,
		},
		{
			name: "fail/rsa-1024",
			args: func(t *testing.T, f *refusalFixture) []string {
				return signUser(newKey(t, f.work, "id_rsa", "-t", "rsa", "-b", "1024"))
			},
			code: 1, msg: "RSA key has 1024 bits; at least 2048 are required", denials: 1,
		},
		{
			name: "fail/malformed-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				return signUser(f.write(t, "bad.pub", "ssh-ed25519 this-is-not-base64!!\n"))
			},
			code: 1, msg: "not a valid OpenSSH public key", denials: 1,
		},
		{
			name: "fail/unknown-key-type",
			args: func(t *testing.T, f *refusalFixture) []string {
				return signUser(f.write(t, "x.pub", "ssh-foo AAAAB3NzaC1mb28AAAABAQ== x\n"))
			},
			code: 1, msg: "public key:", denials: 1,
		},
		{
			name: "fail/truncated-key-blob",
			args: func(t *testing.T, f *refusalFixture) []string {
				return signUser(f.write(t, "trunc.pub", truncatedKey(t, f.pub)))
			},
			code: 1, msg: "not a valid OpenSSH public key", denials: 1,
		},
		{
			name: "fail/truncated-file",
			args: func(t *testing.T, f *refusalFixture) []string {
				b, err := os.ReadFile(f.pub)
				if err != nil {
					t.Fatal(err)
				}
				return signUser(f.write(t, "half.pub", string(b[:len(b)/2])))
			},
			code: 1, msg: "not a valid OpenSSH public key", denials: 1,
		},
		{
			name: "fail/empty-file",
			args: func(t *testing.T, f *refusalFixture) []string {
				return signUser(f.write(t, "empty.pub", ""))
			},
			code: 1, msg: "public key: file is empty", denials: 1,
		},
		{
			name: "fail/private-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				return signUser(strings.TrimSuffix(f.pub, ".pub"))
			},
			code: 1, msg: "this is a private key", denials: 1,
		},
		{
			name: "fail/certificate-as-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				b, err := os.ReadFile(f.cert)
				if err != nil {
					t.Fatal(err)
				}
				return signUser(f.write(t, "id_ed25519-cert.pub", string(b)))
			},
			code: 1, msg: "this is a certificate", denials: 1,
		},
		{
			name: "fail/principal-not-in-role",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(signUser(f.pub), "--principals", "root")
			},
			code: 1, msg: `policy: principal "root" not allowed in role "deploy"`, hint: "principals", denials: 1,
		},
		{
			name: "fail/one-principal-not-in-role",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(signUser(f.pub), "--principals", "role-deploy,role-rsync")
			},
			code: 1, msg: `principal "role-rsync" not allowed in role "deploy"`, denials: 1,
		},
		{
			name: "fail/ttl-over-max",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(signUser(f.pub), "--ttl", "13h")
			},
			code: 1, msg: `exceeds max_ttl 12h0m0s of role "deploy"`, hint: "--ttl", denials: 1,
		},
		{
			name: "fail/unknown-role",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"sign", "user", "--role", "nope", "--id", "x", f.pub}
			},
			code: 1, msg: `policy: unknown role "nope"`, hint: "roles", denials: 1,
		},
		{
			name: "fail/host-principal-outside-globs",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"sign", "host", "--role", "servers", "--id", "x", "--principals", "app-01.corp,evil.example", f.pub}
			},
			code: 1, msg: `host principal "evil.example" matches no pattern of role "servers"`, hint: "pattern", denials: 1,
		},
		{
			name: "fail/host-principal-outside-cidr",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"sign", "host", "--role", "servers", "--id", "x", "--principals", "10.0.2.1", f.pub}
			},
			code: 1, msg: `host principal "10.0.2.1" matches no pattern`, denials: 1,
		},
		{
			name: "fail/user-role-for-host-cert",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"sign", "host", "--role", "deploy", "--id", "x", "--principals", "app-01.corp", f.pub}
			},
			code: 1, msg: `role "deploy" issues user certificates, not host certificates`, hint: "sign user", denials: 1,
		},
		{
			name: "fail/host-role-for-user-cert",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"sign", "user", "--role", "servers", "--id", "x", f.pub}
			},
			code: 1, msg: `role "servers" issues host certificates, not user certificates`, hint: "sign host", denials: 1,
		},
		{
			name: "fail/unknown-config-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				f.editPolicy(t, "    max_ttl: 12h ", "    max_tll: 12h ")
				return signUser(f.pub)
			},
			code: 1, msg: home.ConfigFile + ": roles.deploy.max_tll: unknown field (line 24)",
		},
		{
			name: "fail/invalid-config-value",
			args: func(t *testing.T, f *refusalFixture) []string {
				f.editPolicy(t, "    max_ttl: 12h ", "    max_ttl: 0s ")
				return signUser(f.pub)
			},
			code: 1, msg: "roles.deploy.max_ttl: must be > 0",
		},
		{
			name: "fail/unparsable-config-duration",
			args: func(t *testing.T, f *refusalFixture) []string {
				f.editPolicy(t, "    max_ttl: 12h ", "    max_ttl: twelve ")
				return signUser(f.pub)
			},
			code: 1, msg: `roles.deploy.max_ttl: invalid duration "twelve"`,
		},
		{
			name: "fail/unknown-flag",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(signUser(f.pub), "--roles", "deploy")
			},
			code: 2, msg: "sign user: flag provided but not defined: -roles", hint: "sshca sign user -h",
		},
		{
			name: "fail/missing-role",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"sign", "user", "--id", "x", f.pub}
			},
			code: 2, msg: "sign user: --role is required",
		},
		{
			name: "fail/missing-host-principals",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"sign", "host", "--role", "servers", "--id", "x", f.pub}
			},
			code: 2, msg: "sign host: --principals is required",
		},
		{
			name: "fail/bad-ttl",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(signUser(f.pub), "--ttl", "8 hours")
			},
			code: 2, msg: "sign user: --ttl:",
		},
		{
			name: "fail/init-existing-home",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"init", "--key-type", "ecdsa-p256"}
			},
			code: 1, msg: "home already contains a CA", hint: "never overwrites",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRefusal(t, newRefusalFixture(t, false), tt)
		})
	}
	// The passphrase cases share one encrypted home, in sequence:
	// bcrypt-pbkdf makes each encrypted home expensive.
	t.Run("fail/passphrase", func(t *testing.T) {
		t.Parallel()
		f := newRefusalFixture(t, true)
		// ssh-keygen opens the CA keys init encrypted.
		for _, ca := range []string{"user", "host"} {
			key := filepath.Join(f.home, home.KeyDir, ca+"-ca-1")
			pubLine, err := os.ReadFile(key + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			got := keygen(t, "-y", "-P", testPassphrase, "-f", key)
			if want := strings.Fields(string(pubLine)); !strings.HasPrefix(got, want[0]+" "+want[1]) {
				t.Errorf("ssh-keygen -y %s = %q, want %s %s", key, got, want[0], want[1])
			}
		}
		for _, tt := range []refusalCase{
			{
				name: "missing",
				args: func(t *testing.T, f *refusalFixture) []string { return signUser(f.pub) },
				code: 1, msg: "the CA key is encrypted", hint: "--passphrase-file", denials: 1,
			},
			{
				name: "wrong",
				args: func(t *testing.T, f *refusalFixture) []string {
					return append(signUser(f.pub), "--passphrase-file", f.wrongPass)
				},
				code: 1, msg: "wrong passphrase for the CA key", hint: "--passphrase-file", denials: 1,
			},
		} {
			t.Run(tt.name, func(t *testing.T) { checkRefusal(t, f, tt) })
		}
	})
}

// refusalCase is one refused command.
type refusalCase struct {
	name string
	// args builds the command line (after --home) and may prepare files.
	args    func(t *testing.T, f *refusalFixture) []string
	code    int
	msg     string // substring of the error line
	hint    string // substring of the hint line; "" means no hint is required
	denials int    // cert.deny audit entries the refusal appends
}

// checkRefusal runs the refused command against f and checks exit code,
// output, store and files.
func checkRefusal(t *testing.T, f *refusalFixture, tt refusalCase) {
	t.Helper()
	args := append([]string{"--home", f.home}, tt.args(t, f)...)
	before := readStore(t, f.home)
	files := snapshotFiles(t, f.home, f.work)

	r := runCLI(t, args...)

	if r.code != tt.code {
		t.Errorf("exit code %d, want %d", r.code, tt.code)
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty: %q", r.stdout)
	}
	checkErrorOutput(t, r.stderr, tt.msg, tt.hint)

	after := readStore(t, f.home)
	if diff := cmp.Diff(before.certs, after.certs); diff != "" {
		t.Errorf("certificate rows changed (-before +after):\n%s", diff)
	}
	if after.maxSerial != before.maxSerial {
		t.Errorf("max serial %d, was %d", after.maxSerial, before.maxSerial)
	}
	checkDenials(t, before.audit, after.audit, tt.denials)
	if diff := cmp.Diff(files, snapshotFiles(t, f.home, f.work)); diff != "" {
		t.Errorf("files changed (-before +after):\n%s", diff)
	}
	if tt.denials > 0 {
		// The appended entry keeps the hash chain intact.
		mustRun(t, "--home", f.home, "audit", "verify")
	}
}

func signUser(pub string) []string {
	return []string{"sign", "user", "--role", "deploy", "--id", "refused", pub}
}

// checkErrorOutput asserts that stderr is exactly one "sshca: error:" line
// containing msg, optionally followed by one "sshca: hint:" line (required
// and containing hint when hint is not empty).
func checkErrorOutput(t *testing.T, stderr, msg, hint string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if !strings.HasSuffix(stderr, "\n") || len(lines) > 2 {
		t.Fatalf("stderr is not one error line plus an optional hint:\n%s", stderr)
	}
	if !strings.HasPrefix(lines[0], "sshca: error: ") || !strings.Contains(lines[0], msg) {
		t.Errorf("error line %q, want \"sshca: error: ...%s...\"", lines[0], msg)
	}
	if len(lines) == 2 {
		if !strings.HasPrefix(lines[1], "sshca: hint: ") || strings.Contains(lines[1], "sshca: error") {
			t.Errorf("second stderr line %q is not a hint", lines[1])
		}
		if !strings.Contains(lines[1], hint) {
			t.Errorf("hint %q does not mention %q", lines[1], hint)
		}
	} else if hint != "" {
		t.Errorf("no hint line; want one mentioning %q", hint)
	}
}

// checkDenials asserts that after is before plus exactly n cert.deny entries.
func checkDenials(t *testing.T, before, after []audit.Entry, n int) {
	t.Helper()
	if len(after) != len(before)+n {
		t.Fatalf("audit log went from %d to %d entries, want %d added cert.deny entries", len(before), len(after), n)
	}
	if diff := cmp.Diff(before, after[:len(before)]); diff != "" {
		t.Errorf("existing audit entries changed (-before +after):\n%s", diff)
	}
	for _, e := range after[len(before):] {
		if e.Action != audit.ActionDeny || e.Outcome != "denied" || e.Reason == "" || e.Serial != 0 {
			t.Errorf("appended audit entry is not a denial without serial: %+v", e)
		}
	}
}

// productExample is the sshca.yaml example of product.md §4, verbatim.
const productExample = `backdate: 5m                        # CA keys live in the home; their type is chosen by init and rotate
roles:
  deploy:
    type: user                      # user | host
    principals: [role-deploy, ci]   # what the role may grant; a request asks for a subset
    default_ttl: 8h
    max_ttl: 12h
    extensions: [permit-pty, permit-port-forwarding]     # the whole set; nothing else is granted
    source_address: [10.0.0.0/8, 192.168.0.0/16]         # optional critical option
  rsync:
    type: user
    principals: [role-rsync]
    max_ttl: 48h
    force_command: /usr/local/bin/rsync-wrapper          # optional critical option
    extensions: []
  servers:
    type: host
    principals: ["*.corp", "10.0.1.0/24"]   # host-name globs and CIDRs a host principal must match
    max_ttl: 52w
`

// TestHandWrittenPolicy: an admin who replaces the sshca.yaml of a home
// made by init with the example of the product specification gets a
// working CA, and the certificates carry exactly what the roles say.
func TestHandWrittenPolicy(t *testing.T) {
	t.Parallel()
	requireKeygen(t)
	if _, err := config.Parse([]byte(productExample)); err != nil {
		t.Fatalf("the product example does not parse: %v", err)
	}
	h := initHome(t)
	writePolicy(t, h, productExample)
	work := t.TempDir()
	none := map[string]string{}
	tests := []struct {
		name       string
		args       []string
		certType   uint32
		principals []string
		critical   map[string]string
		extensions []string
		life       time.Duration
	}{
		{"ok/deploy-default", []string{"sign", "user", "--role", "deploy", "--id", "vasya-2026-11-22"}, ssh.UserCert,
			[]string{"role-deploy", "ci"}, map[string]string{"source-address": "10.0.0.0/8,192.168.0.0/16"},
			[]string{"permit-port-forwarding", "permit-pty"}, 8*time.Hour + 5*time.Minute},
		{"ok/deploy-subset", []string{"sign", "user", "--role", "deploy", "--id", "ci-1", "--principals", "ci", "--ttl", "12h"}, ssh.UserCert,
			[]string{"ci"}, map[string]string{"source-address": "10.0.0.0/8,192.168.0.0/16"},
			[]string{"permit-port-forwarding", "permit-pty"}, 12*time.Hour + 5*time.Minute},
		{"ok/rsync-max-ttl", []string{"sign", "user", "--role", "rsync", "--id", "backup"}, ssh.UserCert,
			[]string{"role-rsync"}, map[string]string{"force-command": "/usr/local/bin/rsync-wrapper"},
			[]string{}, 48*time.Hour + 5*time.Minute},
		{"ok/servers", []string{"sign", "host", "--role", "servers", "--id", "app-01", "--principals", "app-01.corp,10.0.1.10", "--ttl", "7d"}, ssh.HostCert,
			[]string{"app-01.corp", "10.0.1.10"}, none, []string{}, 7*24*time.Hour + 5*time.Minute},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := newKey(t, work, filepath.Base(tt.name), "-t", "ed25519")
			out := mustRun(t, append(append([]string{"--home", h}, tt.args...), pub)...)
			certFile := strings.TrimSuffix(pub, ".pub") + "-cert.pub"
			if !strings.Contains(out, certFile) {
				t.Errorf("output does not name %s:\n%s", certFile, out)
			}
			c := readCert(t, certFile)
			keygen(t, "-L", "-f", certFile) // OpenSSH parses it
			got := listingOf(c)
			if c.CertType != tt.certType || c.Serial != uint64(i+1) {
				t.Errorf("type %d serial %d, want type %d serial %d", c.CertType, c.Serial, tt.certType, i+1)
			}
			if diff := cmp.Diff(tt.principals, got.Principals); diff != "" {
				t.Errorf("principals (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.critical, got.Critical); diff != "" {
				t.Errorf("critical options (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.extensions, got.Extensions); diff != "" {
				t.Errorf("extensions (-want +got):\n%s", diff)
			}
			if life := time.Duration(c.ValidBefore-c.ValidAfter) * time.Second; life != tt.life {
				t.Errorf("lifetime %v, want %v", life, tt.life)
			}
		})
	}
	t.Run("fail/outside-example-patterns", func(t *testing.T) {
		pub := newKey(t, work, "refused", "-t", "ed25519")
		r := runCLI(t, "--home", h, "sign", "host", "--role", "servers", "--id", "x", "--principals", "app-01.example.com", pub)
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		checkErrorOutput(t, r.stderr, `host principal "app-01.example.com" matches no pattern of role "servers"`, "")
	})
	t.Run("ok/list", func(t *testing.T) {
		st := readStore(t, h)
		ids := make([]string, 0, len(st.certs))
		for _, c := range st.certs {
			ids = append(ids, c.KeyID)
		}
		slices.Sort(ids)
		if diff := cmp.Diff([]string{"app-01", "backup", "ci-1", "vasya-2026-11-22"}, ids); diff != "" {
			t.Errorf("recorded key IDs (-want +got):\n%s", diff)
		}
		out := mustRun(t, "--home", h, "list", "--active")
		for _, id := range ids {
			if !strings.Contains(out, id) {
				t.Errorf("list --active does not show %s:\n%s", id, out)
			}
		}
	})
}
