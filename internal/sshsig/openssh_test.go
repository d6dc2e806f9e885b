package sshsig

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
	"github.com/sshca/sshca/internal/testkit"
)

// keygenVerify runs `ssh-keygen -Y verify` on sig and message and returns
// its combined output and error.
func keygenVerify(ctx context.Context, keygen, allowed, namespace, sigPath string, message []byte) (string, error) {
	cmd := exec.CommandContext(ctx, keygen, "-Y", "verify", "-f", allowed, "-I", "sshca", "-n", namespace, "-s", sigPath)
	cmd.Stdin = bytes.NewReader(message)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOpenSSH checks Sign and Verify against ssh-keygen -Y sign/verify of
// every OpenSSH release for every CA key type, in both directions, and that
// both sides reject the same tampering.
func TestOpenSSH(t *testing.T) {
	for _, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			agreesWithSSHKeygen(t, rel.Keygen)
		})
	}
}

func agreesWithSSHKeygen(t *testing.T, keygen string) {
	message := []byte("KRL\n\x00\x01\x02 sshca test message\n")
	flipped := bytes.Clone(message)
	flipped[5] ^= 0x01
	_, other := testKey(t, "ed25519-other")

	for _, name := range keyNames {
		t.Run(name, func(t *testing.T) {
			priv, signer := testKey(t, name)
			pub := signer.PublicKey()
			dir := t.TempDir()
			keyPath := writePrivateKey(t, dir, "key", priv)
			msgPath := writeFile(t, dir, "msg", message)
			allowed := writeAllowedSigners(t, dir, "allowed_signers", pub)
			allowedOther := writeAllowedSigners(t, dir, "allowed_other", other.PublicKey())

			ours, err := Sign(signer, Namespace, bytes.NewReader(message))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			oursPath := writeFile(t, dir, "ours.sig", ours)

			cmd := exec.CommandContext(t.Context(), keygen, "-Y", "sign", "-n", Namespace, "-f", keyPath, msgPath)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
			}
			theirs, err := os.ReadFile(msgPath + ".sig")
			if err != nil {
				t.Fatal(err)
			}

			t.Run("ok/ours-verified-by-ssh-keygen", func(t *testing.T) {
				out, err := keygenVerify(t.Context(), keygen, allowed, Namespace, oursPath, message)
				if err != nil {
					t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
				}
				if want := `Good "sshca-krl" signature for sshca`; !strings.Contains(out, want) {
					t.Errorf("ssh-keygen output %q lacks %q", out, want)
				}
			})
			t.Run("ok/ssh-keygen-verified-by-ours", func(t *testing.T) {
				got, err := Verify(theirs, bytes.NewReader(message), Namespace, []ssh.PublicKey{other.PublicKey(), pub})
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if !bytes.Equal(got.Marshal(), pub.Marshal()) {
					t.Errorf("Verify returned %s, want %s", ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(pub))
				}
			})
			t.Run("ok/same-layout-as-ssh-keygen", func(t *testing.T) {
				// Ed25519 is deterministic, so both tools must agree byte for byte;
				// for the others compare the armor layout (line lengths) when
				// the blobs happen to be the same size (ECDSA's r and s vary).
				if name == "ed25519" && !bytes.Equal(ours, theirs) {
					t.Fatalf("ours:\n%s\nssh-keygen:\n%s", ours, theirs)
				}
				if got, want := lineLengths(ours), lineLengths(theirs); len(ours) == len(theirs) && got != want {
					t.Errorf("line lengths %s, ssh-keygen %s", got, want)
				}
				s, err := Parse(ours)
				if err != nil {
					t.Fatal(err)
				}
				ts, err := Parse(theirs)
				if err != nil {
					t.Fatal(err)
				}
				if s.Signature.Format != ts.Signature.Format || s.HashAlgorithm != ts.HashAlgorithm {
					t.Errorf("ours %s/%s, ssh-keygen %s/%s", s.Signature.Format, s.HashAlgorithm, ts.Signature.Format, ts.HashAlgorithm)
				}
			})

			for _, sig := range []struct {
				who   string
				bytes []byte
			}{{"ours", ours}, {"ssh-keygen", theirs}} {
				t.Run("fail/flipped-message/"+sig.who, func(t *testing.T) {
					_, err := Verify(sig.bytes, bytes.NewReader(flipped), Namespace, []ssh.PublicKey{pub})
					wantErr(t, err, "bad signature")
					p := writeFile(t, t.TempDir(), "sig", sig.bytes)
					if out, err := keygenVerify(t.Context(), keygen, allowed, Namespace, p, flipped); err == nil {
						t.Errorf("ssh-keygen accepted a flipped message:\n%s", out)
					}
				})
				t.Run("fail/wrong-namespace/"+sig.who, func(t *testing.T) {
					_, err := Verify(sig.bytes, bytes.NewReader(message), "file", []ssh.PublicKey{pub})
					wantErr(t, err, `namespace "sshca-krl", want "file"`)
					p := writeFile(t, t.TempDir(), "sig", sig.bytes)
					if out, err := keygenVerify(t.Context(), keygen, allowed, "file", p, message); err == nil {
						t.Errorf("ssh-keygen accepted the wrong namespace:\n%s", out)
					}
				})
				t.Run("fail/untrusted-key/"+sig.who, func(t *testing.T) {
					_, err := Verify(sig.bytes, bytes.NewReader(message), Namespace, []ssh.PublicKey{other.PublicKey()})
					wantErr(t, err, "is not trusted")
					p := writeFile(t, t.TempDir(), "sig", sig.bytes)
					if out, err := keygenVerify(t.Context(), keygen, allowedOther, Namespace, p, message); err == nil {
						t.Errorf("ssh-keygen accepted an untrusted key:\n%s", out)
					}
				})
				t.Run("fail/truncated-armor/"+sig.who, func(t *testing.T) {
					cut := sig.bytes[:len(sig.bytes)-len(armorEnd)-10]
					_, err := Verify(cut, bytes.NewReader(message), Namespace, []ssh.PublicKey{pub})
					wantErr(t, err, "missing -----END SSH SIGNATURE----- footer")
					p := writeFile(t, t.TempDir(), "sig", cut)
					if out, err := keygenVerify(t.Context(), keygen, allowed, Namespace, p, message); err == nil {
						t.Errorf("ssh-keygen accepted truncated armor:\n%s", out)
					}
				})
			}

			if pub.Type() == ssh.KeyAlgoRSA {
				t.Run("fail/ssh-rsa-sha1", func(t *testing.T) {
					sha1 := forge(t, signer.(ssh.AlgorithmSigner), message, forgery{
						namespace: Namespace, hashAlg: HashSHA512, sigAlgo: ssh.KeyAlgoRSA,
					})
					_, err := Verify(sha1, bytes.NewReader(message), Namespace, []ssh.PublicKey{pub})
					wantErr(t, err, "SHA-1")
					p := writeFile(t, t.TempDir(), "sig", sha1)
					if out, err := keygenVerify(t.Context(), keygen, allowed, Namespace, p, message); err == nil {
						t.Errorf("ssh-keygen accepted an ssh-rsa (SHA-1) signature:\n%s", out)
					}
				})
			}
		})
	}
}

// TestOpenSSHHashSHA256 checks that Verify accepts ssh-keygen's
// -O hashalg=sha256 signatures and ssh-keygen accepts our forged sha256 one.
func TestOpenSSHHashSHA256(t *testing.T) {
	keygen := testkit.RequireTool(t, "ssh-keygen")
	priv, signer := testKey(t, "ecdsa-p256")
	dir := t.TempDir()
	message := []byte("sha256 message")
	keyPath := writePrivateKey(t, dir, "key", priv)
	msgPath := writeFile(t, dir, "msg", message)
	allowed := writeAllowedSigners(t, dir, "allowed_signers", signer.PublicKey())

	t.Run("ok/ssh-keygen-verified-by-ours", func(t *testing.T) {
		cmd := exec.CommandContext(t.Context(), keygen, "-Y", "sign", "-n", Namespace, "-O", "hashalg=sha256", "-f", keyPath, msgPath)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
		}
		sig, err := os.ReadFile(msgPath + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(sig)
		if err != nil {
			t.Fatal(err)
		}
		if s.HashAlgorithm != HashSHA256 {
			t.Fatalf("hash algorithm %q, want sha256", s.HashAlgorithm)
		}
		if _, err := Verify(sig, bytes.NewReader(message), Namespace, []ssh.PublicKey{signer.PublicKey()}); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})
	t.Run("ok/ours-verified-by-ssh-keygen", func(t *testing.T) {
		sig := forge(t, signer.(ssh.AlgorithmSigner), message, forgery{namespace: Namespace, hashAlg: HashSHA256})
		p := writeFile(t, t.TempDir(), "sig", sig)
		if out, err := keygenVerify(t.Context(), keygen, allowed, Namespace, p, message); err != nil {
			t.Errorf("ssh-keygen -Y verify: %v\n%s", err, out)
		}
	})
}

// lineLengths describes the armor layout, e.g. "29,70,70,12,27".
func lineLengths(armored []byte) string {
	var lens []string
	for line := range bytes.Lines(armored) {
		lens = append(lens, strconv.Itoa(len(bytes.TrimRight(line, "\r\n"))))
	}
	return strings.Join(lens, ",")
}
