package cli_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/cli"
	"github.com/sshca/sshca/internal/home"
)

// runCLIStdin runs sshca in-process with stdin.
func runCLIStdin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr, testEnv)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// writeKeys writes n fresh ed25519 public key files dir/<prefix><i>.pub
// (made in-process: ssh-keygen per key would dominate the test).
func writeKeys(t *testing.T, dir, prefix string, n int) []string {
	t.Helper()
	paths := make([]string, n)
	for i := range paths {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		paths[i] = filepath.Join(dir, fmt.Sprintf("%s%d.pub", prefix, i))
		if err := os.WriteFile(paths[i], ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// caPublicKey reads the public key of the home's first user or host CA.
func caPublicKey(t *testing.T, homeDir, caType string) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(homeDir, home.KeyDir, caType+"-ca-1.pub"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestSignBatch: several keys in one invocation, as arguments or listed
// with --keys-from, each certified beside its key with a distinct serial
// and an audit entry, with one machine-readable line per certificate.
func TestSignBatch(t *testing.T) {
	t.Parallel()
	requireKeygen(t)
	tests := []struct {
		name string
		// args builds the command line (after --home) and stdin; keys are
		// the key files it certifies, in output order.
		args       func(t *testing.T, dir string) (args []string, stdin string, keys []string)
		kind       string
		principals []string
	}{
		{
			name: "ok/arguments",
			args: func(t *testing.T, dir string) ([]string, string, []string) {
				keys := writeKeys(t, dir, "id_", 25)
				// One made by OpenSSH, with its comment.
				keys = append(keys, newKey(t, dir, "id_openssh", "-t", "ed25519"))
				return append([]string{"sign", "user", "--role", "deploy", "--id", "batch", "--ttl", "1h"}, keys...), "", keys
			},
			kind: "user", principals: []string{"role-deploy", "ci"},
		},
		{
			name: "ok/keys-from-stdin",
			args: func(t *testing.T, dir string) ([]string, string, []string) {
				keys := writeKeys(t, dir, "k", 6)
				list := "# CI runners\n\n" + strings.Join(keys[1:3], "\n") + "\n   " + keys[3] + "  \n# end\n" + strings.Join(keys[4:], "\n")
				// Arguments come first, then the list.
				return []string{"sign", "user", "--role", "deploy", "--id", "batch", "--principals", "ci", keys[0], "--keys-from", "-"}, list, keys
			},
			kind: "user", principals: []string{"ci"},
		},
		{
			name: "ok/keys-from-file",
			args: func(t *testing.T, dir string) ([]string, string, []string) {
				keys := writeKeys(t, dir, "k", 3)
				list := filepath.Join(t.TempDir(), "keys.txt")
				if err := os.WriteFile(list, []byte(strings.Join(keys, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"sign", "user", "--keys-from", list, "--role", "rsync", "--id", "backup"}, "", keys
			},
			kind: "user", principals: []string{"role-rsync"},
		},
		{
			name: "ok/host",
			args: func(t *testing.T, dir string) ([]string, string, []string) {
				keys := writeKeys(t, dir, "ssh_host_", 3)
				return append([]string{"sign", "host", "--role", "servers", "--id", "app-01", "--principals", "app-01.corp,10.0.1.10"}, keys...), "", keys
			},
			kind: "host", principals: []string{"app-01.corp", "10.0.1.10"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := initHome(t)
			dir := t.TempDir()
			args, stdin, keys := tt.args(t, dir)
			before := readStore(t, h)

			r := runCLIStdin(t, stdin, append([]string{"--home", h}, args...)...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}

			// stdout: "SERIAL CERTFILE" per key, in order, then the summary.
			lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(lines) != len(keys)+1 {
				t.Fatalf("%d stdout lines, want %d:\n%s", len(lines), len(keys)+1, r.stdout)
			}
			wantSummary := fmt.Sprintf("Signed %d %s certificates: serials %d-%d, key id ", len(keys), tt.kind, before.maxSerial+1, before.maxSerial+uint64(len(keys)))
			if !strings.HasPrefix(lines[len(keys)], wantSummary) {
				t.Errorf("summary %q, want it to start with %q", lines[len(keys)], wantSummary)
			}
			caKey := caPublicKey(t, h, tt.kind)
			serials := map[uint64]bool{}
			for i, key := range keys {
				certFile := strings.TrimSuffix(key, ".pub") + "-cert.pub"
				serial, path, _ := strings.Cut(lines[i], " ")
				if path != certFile {
					t.Errorf("line %d names %q, want %q", i, path, certFile)
				}
				c := readCert(t, certFile)
				if got := strconv.FormatUint(c.Serial, 10); got != serial {
					t.Errorf("%s: serial %s, stdout says %s", certFile, got, serial)
				}
				if c.Serial <= before.maxSerial || serials[c.Serial] {
					t.Errorf("%s: serial %d reused or not fresh", certFile, c.Serial)
				}
				serials[c.Serial] = true
				if !bytes.Equal(c.SignatureKey.Marshal(), caKey.Marshal()) {
					t.Errorf("%s: not signed by the %s CA", certFile, tt.kind)
				}
				b, _ := os.ReadFile(key)
				sub, _, _, _, _ := ssh.ParseAuthorizedKey(b)
				if !bytes.Equal(c.Key.Marshal(), sub.Marshal()) {
					t.Errorf("%s certifies another key than %s", certFile, key)
				}
				if diff := cmp.Diff(tt.principals, c.ValidPrincipals); diff != "" {
					t.Errorf("%s: principals (-want +got):\n%s", certFile, diff)
				}
				if i < 2 || i == len(keys)-1 {
					out := keygen(t, "-L", "-f", certFile) // OpenSSH checks the signature
					if !strings.Contains(out, "Serial: "+serial) {
						t.Errorf("ssh-keygen -L %s does not show serial %s:\n%s", certFile, serial, out)
					}
				}
			}
			// No temp file or probe left beside the keys.
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("left behind: %s", e.Name())
				}
			}

			after := readStore(t, h)
			if got := len(after.certs) - len(before.certs); got != len(keys) {
				t.Errorf("%d certificates recorded, want %d", got, len(keys))
			}
			issued := 0
			for _, e := range after.audit[len(before.audit):] {
				if e.Action == audit.ActionIssue && serials[e.Serial] {
					issued++
				}
			}
			if issued != len(keys) || len(after.audit)-len(before.audit) != len(keys) {
				t.Errorf("audit log grew by %d entries with %d cert.issue for the batch, want %d of each",
					len(after.audit)-len(before.audit), issued, len(keys))
			}
			mustRun(t, "--home", h, "audit", "verify")
			if out := mustRun(t, "--home", h, "list", "--id", args[slices.Index(args, "--id")+1]); strings.Count(out, "\n") < len(keys) {
				t.Errorf("list does not show the batch:\n%s", out)
			}
		})
	}
}

// TestSignBatchRefusals: bad input anywhere in a batch refuses all of it
// before anything is signed — no certificate file, no serial used, no
// certificate row — with one error line, and at most the one cert.deny
// entry the single-key path would record.
func TestSignBatchRefusals(t *testing.T) {
	t.Parallel()
	requireKeygen(t)
	batch := func(f *refusalFixture, keys ...string) []string {
		return append([]string{"sign", "user", "--role", "deploy", "--id", "refused"}, keys...)
	}
	many := func(t *testing.T, f *refusalFixture) []string { return writeKeys(t, f.work, "k", 5) }
	tests := []refusalCase{
		{
			name: "fail/one-malformed-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				keys := many(t, f)
				return batch(f, slices.Insert(keys, 3, f.write(t, "bad.pub", "ssh-ed25519 this-is-not-base64!!\n"))...)
			},
			code: 1, msg: "bad.pub: public key: not a valid OpenSSH public key", denials: 1,
		},
		{
			name: "fail/private-key-last",
			args: func(t *testing.T, f *refusalFixture) []string {
				return batch(f, append(many(t, f), strings.TrimSuffix(f.pub, ".pub"))...)
			},
			code: 1, msg: "this is a private key", denials: 1,
		},
		{
			name: "fail/weak-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				return batch(f, append(many(t, f), newKey(t, f.work, "id_rsa", "-t", "rsa", "-b", "1024"))...)
			},
			code: 1, msg: "id_rsa.pub: public key: RSA key has 1024 bits", denials: 1,
		},
		{
			name: "fail/certificate-in-glob",
			args: func(t *testing.T, f *refusalFixture) []string {
				b, err := os.ReadFile(f.cert)
				if err != nil {
					t.Fatal(err)
				}
				return batch(f, append(many(t, f), f.write(t, "id_ed25519-cert.pub", string(b)))...)
			},
			code: 1, msg: "id_ed25519-cert.pub: public key: this is a certificate", denials: 1,
		},
		{
			name: "fail/unreadable-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				return batch(f, append(many(t, f), filepath.Join(f.work, "missing.pub"))...)
			},
			code: 1, msg: "missing.pub: no such file or directory",
		},
		{
			name: "fail/duplicate-path",
			args: func(t *testing.T, f *refusalFixture) []string {
				keys := many(t, f)
				return batch(f, append(keys, filepath.Join(f.work, ".", filepath.Base(keys[1])))...)
			},
			code: 1, msg: "k1.pub: key file given twice", hint: "once",
		},
		{
			name: "fail/same-certificate-path",
			args: func(t *testing.T, f *refusalFixture) []string {
				keys := many(t, f)
				noSuffix := strings.TrimSuffix(keys[2], ".pub")
				if err := os.Rename(keys[2], noSuffix); err != nil {
					t.Fatal(err)
				}
				return batch(f, append(keys[:2], noSuffix, f.write(t, "k2.pub", ""))...)
			},
			code: 1, msg: "would both be certified into",
		},
		{
			name: "fail/duplicate-key",
			args: func(t *testing.T, f *refusalFixture) []string {
				b, err := os.ReadFile(f.pub)
				if err != nil {
					t.Fatal(err)
				}
				return batch(f, append(many(t, f), f.pub, f.write(t, "copy.pub", string(b)))...)
			},
			code: 1, msg: "copy.pub: public key: same key as", hint: "once", denials: 1,
		},
		{
			name: "fail/principal-not-in-role",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(batch(f, many(t, f)...), "--principals", "root")
			},
			code: 1, msg: `policy: principal "root" not allowed in role "deploy"`, hint: "principals", denials: 1,
		},
		{
			name: "fail/ttl-over-max",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(batch(f, many(t, f)...), "--ttl", "13h")
			},
			code: 1, msg: `exceeds max_ttl 12h0m0s of role "deploy"`, hint: "--ttl", denials: 1,
		},
		{
			name: "fail/host-role",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append([]string{"sign", "user", "--role", "servers", "--id", "x"}, many(t, f)...)
			},
			code: 1, msg: `role "servers" issues host certificates`, hint: "sign host", denials: 1,
		},
		{
			name: "fail/out-with-several-keys",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(batch(f, many(t, f)...), "--out", filepath.Join(f.work, "x-cert.pub"))
			},
			code: 2, msg: "sign user: --out takes one certificate", hint: "--out",
		},
		{
			name: "fail/out-with-keys-from",
			args: func(t *testing.T, f *refusalFixture) []string {
				return []string{"sign", "user", "--role", "deploy", "--id", "x", "--keys-from", "-", "--out", filepath.Join(f.work, "x-cert.pub")}
			},
			code: 2, msg: "--out takes one certificate",
		},
		{
			name: "fail/stdin-key-among-several",
			args: func(t *testing.T, f *refusalFixture) []string {
				return batch(f, append(many(t, f), "-")...)
			},
			code: 2, msg: "works only as the only PUBKEY", hint: "--keys-from -",
		},
		{
			name: "fail/empty-list",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(batch(f), "--keys-from", "-") // stdin is empty
			},
			code: 1, msg: "--keys-from - lists no key files",
		},
		{
			name: "fail/missing-list",
			args: func(t *testing.T, f *refusalFixture) []string {
				return append(batch(f), "--keys-from", filepath.Join(f.work, "nope.txt"))
			},
			code: 1, msg: "--keys-from: open",
		},
		{
			name: "fail/no-key",
			args: func(t *testing.T, f *refusalFixture) []string { return batch(f) },
			code: 2, msg: "sign user: wrong number of arguments", hint: "-h",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkRefusal(t, newRefusalFixture(t, false), tt)
		})
	}
	// A locked CA key refuses the batch before a serial is reserved.
	t.Run("fail/passphrase-missing", func(t *testing.T) {
		t.Parallel()
		checkRefusal(t, newRefusalFixture(t, true), refusalCase{
			args: func(t *testing.T, f *refusalFixture) []string { return batch(f, many(t, f)...) },
			code: 1, msg: "the CA key is encrypted", hint: "--passphrase-file", denials: 1,
		})
	})
}
