package lifecycle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/sshdtest"
)

// TestAgentCA is acceptance 2 of issue 6: a CA key that only a real
// ssh-agent holds (added with ssh-add, its file deleted) becomes the user
// CA through rotation and signs certificates that sshd accepts, while the
// home never holds its private key. The sshd, ssh and ssh-keygen of each
// OpenSSH release judge the certificate.
func TestAgentCA(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keyType string // sshdtest.GenerateKey type
		sigAlg  string // the certificate's signature algorithm
	}{
		{name: "ok/ed25519", keyType: "ed25519", sigAlg: ssh.KeyAlgoED25519},
		{name: "ok/rsa-3072-signs-rsa-sha2-512", keyType: "rsa-3072", sigAlg: ssh.KeyAlgoRSASHA512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHome(t, "ed25519")
			sock := sshdtest.StartAgent(t)
			withAgent := h.with("SSH_AUTH_SOCK", sock)

			// The CA key is made outside the home, loaded into the agent,
			// and its file deleted: only the agent has it.
			outside := t.TempDir()
			caKey, caPub := sshdtest.GenerateKey(t, outside, tc.keyType)
			secret := privateSecret(t, caKey)
			sshdtest.AgentAdd(t, sock, caKey)
			if err := os.Remove(caKey); err != nil {
				t.Fatal(err)
			}
			caFP := ssh.FingerprintSHA256(caPub)

			withAgent.Must("ca", "rotate", "--type", "user", "--ca-agent", caKey+".pub")
			gens := h.wantStates("user", map[int]string{1: "active", 2: "next"})
			if gens[2].fingerprint != caFP || gens[2].signer != "agent" {
				t.Fatalf("ca list: generation 2 is %+v, want the agent's key %s with signer agent", gens[2], caFP)
			}
			srvs := startSSHDs(t, sshdtest.Config{
				TrustedUserCAKeys: h.wantPublished(gens, []int{1, 2}, "--type", "user"),
				Principals:        map[string][]string{e2etest.CurrentUser(t): {"role-deploy"}},
			})
			withAgent.Must("ca", "rotate", "--type", "user", "--promote")
			// Generation 1 signed nothing, so it retires at once.
			h.wantStates("user", map[int]string{1: "retired", 2: "active"})

			dir := t.TempDir()
			key, cert := withAgent.signUser(dir, "agent-signed", "10m")
			signedBy(t, "certificate", cert, caFP)
			if cert.Signature == nil || cert.Signature.Format != tc.sigAlg {
				t.Fatalf("certificate signature algorithm %v, want %s", cert.Signature, tc.sigAlg)
			}
			for _, srv := range srvs {
				// ssh-keygen agrees on the signing CA and algorithm.
				out, err := exec.Command(srv.OpenSSH.Keygen, "-L", "-f", key+"-cert.pub").CombinedOutput()
				if err != nil {
					t.Fatalf("%s: ssh-keygen -L: %v: %s", srv.OpenSSH, err, out)
				}
				if !strings.Contains(string(out), caFP+" (using "+tc.sigAlg+")") {
					t.Fatalf("%s: ssh-keygen -L does not show signing CA %s using %s:\n%s", srv.OpenSSH, caFP, tc.sigAlg, out)
				}
				mustLogin(t, srv, key, srv.OpenSSH.Name+": certificate signed through ssh-agent")
			}

			// Without SSH_AUTH_SOCK sshca cannot sign, says why, and writes nothing.
			bare, _ := sshdtest.GenerateKey(t, dir, "ed25519")
			_, errs, code := h.Run("sign", "user", "--role", "deploy", "--id", "no-agent", bare+".pub")
			if code != 1 || !strings.Contains(errs, "sshca: error: ") || !strings.Contains(errs, "SSH_AUTH_SOCK is not set") {
				t.Fatalf("sign without SSH_AUTH_SOCK: exit %d, stderr %q; want exit 1 naming SSH_AUTH_SOCK", code, errs)
			}
			if _, err := os.Stat(bare + "-cert.pub"); err == nil {
				t.Fatal("sign without SSH_AUTH_SOCK wrote a certificate")
			}

			// The home holds no private key of generation 2, under any name.
			assertNotInHome(t, h.Dir, caPub, secret)
		})
	}
}

// privateSecret returns the secret part of an unencrypted private key file:
// the ed25519 seed or the RSA private exponent.
func privateSecret(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	switch k := k.(type) {
	case *ed25519.PrivateKey:
		return k.Seed()
	case *rsa.PrivateKey:
		return k.D.Bytes()
	}
	t.Fatalf("%s: unexpected key type %T", path, k)
	return nil
}

// assertNotInHome walks the whole home (keys/, the database, the policy)
// and fails if a file is a private key for pub or holds its raw secret.
func assertNotInHome(t *testing.T, dir string, pub ssh.PublicKey, secret []byte) {
	t.Helper()
	want := pub.Marshal()
	var keyFiles []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if strings.HasPrefix(rel, "keys"+string(filepath.Separator)) {
			keyFiles = append(keyFiles, rel)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, secret) {
			t.Errorf("%s holds the agent key's private key material", rel)
		}
		if k, err := ssh.ParseRawPrivateKey(b); err == nil {
			s, err := ssh.NewSignerFromKey(k)
			if err == nil && bytes.Equal(s.PublicKey().Marshal(), want) {
				t.Errorf("%s is the agent key's private key", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keyFiles) == 0 {
		t.Fatal("the home has no keys/ directory to check")
	}
	t.Logf("files under the home's keys/: %v", keyFiles)
}
