package sshsig

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// readGolden returns a file made by testdata/gen.sh.
func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func goldenKey(t testing.TB, name string) ssh.PublicKey {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey(readGolden(t, name+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestGolden verifies signatures made by ssh-keygen (testdata/gen.sh)
// without running it, and checks that re-armoring them is byte-identical.
func TestGolden(t *testing.T) {
	message := readGolden(t, "message.txt")
	tests := []struct {
		sig, key, hash, format string
	}{
		{"ed25519.sig", "ed25519", HashSHA512, ssh.KeyAlgoED25519},
		{"ed25519-sha256.sig", "ed25519", HashSHA256, ssh.KeyAlgoED25519},
		{"ecdsa-p256.sig", "ecdsa-p256", HashSHA512, ssh.KeyAlgoECDSA256},
		{"rsa-3072.sig", "rsa-3072", HashSHA512, ssh.KeyAlgoRSASHA512},
	}
	for _, tt := range tests {
		armored := readGolden(t, tt.sig)
		pub := goldenKey(t, tt.key)
		t.Run("ok/"+tt.sig, func(t *testing.T) {
			got, err := Verify(armored, bytes.NewReader(message), Namespace, []ssh.PublicKey{pub})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !bytes.Equal(got.Marshal(), pub.Marshal()) {
				t.Errorf("Verify returned key %s, want %s", ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(pub))
			}
			s, err := Parse(armored)
			if err != nil {
				t.Fatal(err)
			}
			if s.Namespace != Namespace || s.HashAlgorithm != tt.hash || s.Signature.Format != tt.format {
				t.Errorf("Parse = %q/%q/%q, want %q/%q/%q", s.Namespace, s.HashAlgorithm, s.Signature.Format, Namespace, tt.hash, tt.format)
			}
			if re := armor(s.marshal()); !bytes.Equal(re, armored) {
				t.Errorf("re-armored:\n%s\nwant:\n%s", re, armored)
			}
		})
		t.Run("fail/"+tt.sig+"/other-message", func(t *testing.T) {
			_, err := Verify(armored, strings.NewReader("other"), Namespace, []ssh.PublicKey{pub})
			wantErr(t, err, "bad signature")
		})
	}
}

// TestSignVerify is the round trip for every CA key type without OpenSSH.
func TestSignVerify(t *testing.T) {
	message := bytes.Repeat([]byte("krl"), 1000)
	for _, name := range keyNames {
		t.Run("ok/"+name, func(t *testing.T) {
			_, signer := testKey(t, name)
			armored, err := Sign(signer, Namespace, bytes.NewReader(message))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			s, err := Parse(armored)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantFormat := signer.PublicKey().Type()
			if wantFormat == ssh.KeyAlgoRSA {
				wantFormat = ssh.KeyAlgoRSASHA512
			}
			if s.Signature.Format != wantFormat || s.HashAlgorithm != HashSHA512 || s.Namespace != Namespace {
				t.Errorf("got %s/%s/%s, want %s/sha512/%s", s.Signature.Format, s.HashAlgorithm, s.Namespace, wantFormat, Namespace)
			}
			if _, err := Verify(armored, bytes.NewReader(message), Namespace, []ssh.PublicKey{signer.PublicKey()}); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

// TestVerifyRejects covers every rejection of Verify (and so of Parse).
func TestVerifyRejects(t *testing.T) {
	message := []byte("the KRL")
	_, ed := testKey(t, "ed25519")
	_, other := testKey(t, "ed25519-other")
	_, rsaSigner := testKey(t, "rsa-3072")
	edAS := ed.(ssh.AlgorithmSigner)
	rsaAS := rsaSigner.(ssh.AlgorithmSigner)
	good, err := Sign(ed, Namespace, bytes.NewReader(message))
	if err != nil {
		t.Fatal(err)
	}
	valid := forgery{namespace: Namespace, hashAlg: HashSHA512}
	with := func(f func(*forgery)) forgery { v := valid; f(&v); return v }

	certKey := func() ssh.PublicKey {
		cert := &ssh.Certificate{
			Key: ed.PublicKey(), CertType: ssh.UserCert, KeyId: "k", ValidPrincipals: []string{"p"},
			ValidBefore: ssh.CertTimeInfinity,
		}
		if err := cert.SignCert(rand.Reader, other); err != nil {
			t.Fatal(err)
		}
		return cert
	}()
	// The body of good with its last base64 line replaced.
	lines := strings.Split(string(good), "\n")

	trustEd := []ssh.PublicKey{ed.PublicKey()}
	trustBoth := []ssh.PublicKey{ed.PublicKey(), rsaSigner.PublicKey()}
	tests := []struct {
		name      string
		armored   []byte
		message   []byte // defaults to message
		namespace string // "" means Namespace, "-" the empty string
		trusted   []ssh.PublicKey
		wantErr   string // "" means success
	}{
		{name: "ok/ours", armored: good, trusted: trustEd},
		{name: "ok/forged-baseline", armored: forge(t, edAS, message, valid), trusted: trustEd},
		{name: "ok/rsa-sha2-256", armored: forge(t, rsaAS, message, with(func(f *forgery) { f.sigAlgo = ssh.KeyAlgoRSASHA256 })), trusted: trustBoth},
		{name: "ok/sha256", armored: forge(t, edAS, message, with(func(f *forgery) { f.hashAlg = HashSHA256 })), trusted: trustEd},
		{name: "ok/crlf", armored: bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")), trusted: trustEd},
		{name: "ok/trailing-blank-lines", armored: append(bytes.Clone(good), "\n\n"...), trusted: trustEd},
		{name: "ok/no-final-newline", armored: bytes.TrimSuffix(good, []byte("\n")), trusted: trustEd},
		{name: "ok/first-of-several-trusted", armored: good, trusted: []ssh.PublicKey{nil, other.PublicKey(), ed.PublicKey()}},

		{name: "fail/flipped-message", armored: good, message: []byte("the KRM"), trusted: trustEd, wantErr: "bad signature"},
		{name: "fail/wrong-namespace", armored: good, namespace: "file", trusted: trustEd, wantErr: `namespace "sshca-krl", want "file"`},
		{name: "fail/empty-namespace-argument", armored: good, namespace: "-", trusted: trustEd, wantErr: "empty namespace"},
		{name: "fail/untrusted", armored: good, trusted: []ssh.PublicKey{other.PublicKey()}, wantErr: "is not trusted"},
		{name: "fail/no-trusted-keys", armored: good, wantErr: "is not trusted"},
		{name: "fail/ssh-rsa-sha1", armored: forge(t, rsaAS, message, with(func(f *forgery) { f.sigAlgo = ssh.KeyAlgoRSA })), trusted: trustBoth, wantErr: "ssh-rsa (SHA-1)"},
		{name: "fail/unknown-hash", armored: forge(t, edAS, message, with(func(f *forgery) { f.hashAlg = "sha1" })), trusted: trustEd, wantErr: `unsupported hash algorithm "sha1"`},
		{name: "fail/version-2", armored: forge(t, edAS, message, with(func(f *forgery) { f.version = 2 })), trusted: trustEd, wantErr: "unsupported version 2"},
		{name: "fail/bad-magic", armored: forge(t, edAS, message, with(func(f *forgery) { f.magic = "SSHSIH" })), trusted: trustEd, wantErr: "missing SSHSIG magic"},
		{name: "fail/reserved-not-empty", armored: forge(t, edAS, message, with(func(f *forgery) { f.reserved = "tag" })), trusted: trustEd, wantErr: "reserved field not empty"},
		{name: "fail/empty-namespace-in-signature", armored: forge(t, edAS, message, with(func(f *forgery) { f.namespace = "" })), namespace: "x", trusted: trustEd, wantErr: "empty namespace"},
		{name: "fail/trailing-data-in-blob", armored: forge(t, edAS, message, with(func(f *forgery) { f.trailing = []byte{0} })), trusted: trustEd, wantErr: "trailing data after signature"},
		{name: "fail/format-does-not-fit-key", armored: forge(t, edAS, message, with(func(f *forgery) { f.format = ssh.KeyAlgoECDSA256 })), trusted: trustEd, wantErr: "does not fit"},
		{name: "fail/key-swapped", armored: forge(t, edAS, message, with(func(f *forgery) { f.key = other.PublicKey() })), trusted: []ssh.PublicKey{other.PublicKey()}, wantErr: "bad signature"},
		{name: "fail/certificate-key", armored: forge(t, edAS, message, with(func(f *forgery) { f.key = certKey })), trusted: []ssh.PublicKey{certKey}, wantErr: "unsupported key type"},
		{name: "fail/empty", armored: nil, trusted: trustEd, wantErr: "missing -----BEGIN SSH SIGNATURE----- header"},
		{name: "fail/leading-space", armored: append([]byte(" "), good...), trusted: trustEd, wantErr: "header"},
		{name: "fail/other-pem", armored: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), trusted: trustEd, wantErr: "header"},
		{name: "fail/header-without-newline", armored: bytes.Replace(good, []byte("-----\n"), []byte("----- "), 1), trusted: trustEd, wantErr: "no newline after header"},
		{name: "fail/truncated-armor", armored: good[:len(good)/2], trusted: trustEd, wantErr: "footer"},
		{name: "fail/footer-mid-line", armored: []byte(strings.Join(lines[:len(lines)-2], "\n") + armorEnd + "\n"), trusted: trustEd, wantErr: "footer does not start a line"},
		{name: "fail/trailing-data-after-footer", armored: append(bytes.Clone(good), "x"...), trusted: trustEd, wantErr: "trailing data after footer"},
		{name: "fail/second-signature-after-footer", armored: append(bytes.Clone(good), good...), trusted: trustEd, wantErr: "trailing data after footer"},
		{name: "fail/bad-base64", armored: bytes.Replace(good, []byte("U1NI"), []byte("U1N*"), 1), trusted: trustEd, wantErr: "base64"},
		{name: "fail/space-in-base64", armored: bytes.Replace(good, []byte("U1NI"), []byte("U1 NI"), 1), trusted: trustEd, wantErr: "base64"},
		{name: "fail/body-line-dropped", armored: []byte(strings.Join(append(lines[:2:2], lines[3:]...), "\n")), trusted: trustEd, wantErr: "sshsig: "},
		{name: "fail/oversized", armored: append(bytes.Clone(good), bytes.Repeat([]byte("\n"), MaxArmoredSize)...), trusted: trustEd, wantErr: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, ns := message, Namespace
			if tt.message != nil {
				msg = tt.message
			}
			switch tt.namespace {
			case "":
			case "-":
				ns = ""
			default:
				ns = tt.namespace
			}
			got, err := Verify(tt.armored, bytes.NewReader(msg), ns, tt.trusted)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got == nil {
					t.Fatal("Verify returned no key")
				}
				return
			}
			wantErr(t, err, tt.wantErr)
			if got != nil {
				t.Errorf("Verify returned key %s with an error", ssh.FingerprintSHA256(got))
			}
		})
	}
}

// plainSigner hides every interface of an ssh.Signer but ssh.Signer itself.
type plainSigner struct{ s ssh.Signer }

func (p plainSigner) PublicKey() ssh.PublicKey { return p.s.PublicKey() }
func (p plainSigner) Sign(r io.Reader, data []byte) (*ssh.Signature, error) {
	return p.s.Sign(r, data)
}

// badSigner returns a fixed signature, whatever the data.
type badSigner struct {
	pub ssh.PublicKey
	sig *ssh.Signature
	err error
}

func (b badSigner) PublicKey() ssh.PublicKey { return b.pub }
func (b badSigner) Sign(io.Reader, []byte) (*ssh.Signature, error) {
	return b.sig, b.err
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestSign(t *testing.T) {
	_, ed := testKey(t, "ed25519")
	_, ec := testKey(t, "ecdsa-p256")
	_, rsaSigner := testKey(t, "rsa-3072")
	rsaOnlySHA1, err := ssh.NewSignerWithAlgorithms(rsaSigner.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSA})
	if err != nil {
		t.Fatal(err)
	}
	rsaBoth, err := ssh.NewSignerWithAlgorithms(rsaSigner.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512})
	if err != nil {
		t.Fatal(err)
	}
	edSig, err := ed.Sign(rand.Reader, []byte("other data"))
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: ed.PublicKey(), CertType: ssh.UserCert, ValidPrincipals: []string{"p"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ec); err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(cert, ed)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		signer     ssh.Signer
		namespace  string
		message    io.Reader
		wantFormat string
		wantErr    string
	}{
		{name: "ok/ed25519", signer: ed, wantFormat: ssh.KeyAlgoED25519},
		{name: "ok/rsa-multi-algorithm", signer: rsaBoth, wantFormat: ssh.KeyAlgoRSASHA512},
		{name: "ok/empty-message", signer: ec, message: strings.NewReader(""), wantFormat: ssh.KeyAlgoECDSA256},
		{name: "fail/empty-namespace", signer: ed, namespace: "-", wantErr: "empty namespace"},
		{name: "fail/long-namespace", signer: ed, namespace: strings.Repeat("n", maxNamespaceLen+1), wantErr: "namespace is 257 bytes"},
		{name: "fail/nil-signer", wantErr: "nil signer"},
		{name: "fail/rsa-plain-signer", signer: plainSigner{rsaSigner}, wantErr: "not an ssh.AlgorithmSigner"},
		{name: "fail/rsa-sha1-only", signer: rsaOnlySHA1, wantErr: "rsa-sha2-512"},
		{name: "fail/wrong-format", signer: badSigner{pub: ed.PublicKey(), sig: &ssh.Signature{Format: ssh.KeyAlgoECDSA256, Blob: edSig.Blob}}, wantErr: "returned a \"ecdsa-sha2-nistp256\" signature"},
		{name: "fail/invalid-signature", signer: badSigner{pub: ed.PublicKey(), sig: edSig}, wantErr: "invalid signature"},
		{name: "fail/signer-error", signer: badSigner{pub: ed.PublicKey(), err: errors.New("agent gone")}, wantErr: "agent gone"},
		{name: "fail/no-signature", signer: badSigner{pub: ed.PublicKey()}, wantErr: "no signature"},
		{name: "fail/certificate", signer: certSigner, wantErr: "unsupported key type"},
		{name: "fail/read-error", signer: ed, message: errReader{}, wantErr: "disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := Namespace
			if tt.namespace == "-" {
				ns = ""
			} else if tt.namespace != "" {
				ns = tt.namespace
			}
			msg := tt.message
			if msg == nil {
				msg = strings.NewReader("message")
			}
			armored, err := Sign(tt.signer, ns, msg)
			if tt.wantErr != "" {
				wantErr(t, err, tt.wantErr)
				if armored != nil {
					t.Error("Sign returned output with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			s, err := Parse(armored)
			if err != nil {
				t.Fatal(err)
			}
			if s.Signature.Format != tt.wantFormat {
				t.Errorf("format %q, want %q", s.Signature.Format, tt.wantFormat)
			}
		})
	}
}

// FuzzParse feeds Parse arbitrary input. Whatever it accepts must survive a
// marshal/armor/Parse round trip unchanged and satisfy Parse's promises.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"ed25519.sig", "ed25519-sha256.sig", "ecdsa-p256.sig", "rsa-3072.sig"} {
		f.Add(readGolden(f, name))
	}
	_, ed := testKey(f, "ed25519")
	good, err := Sign(ed, Namespace, strings.NewReader("seed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")))
	f.Add(good[:len(good)/2])
	f.Add(append(bytes.Clone(good), "junk"...))
	f.Add(forge(f, ed.(ssh.AlgorithmSigner), []byte("seed"), forgery{namespace: "", hashAlg: "md5", reserved: "r", trailing: []byte{1, 2}}))
	f.Add([]byte(armorBegin + "\n" + armorEnd + "\n"))
	f.Add([]byte(armorBegin + "\nU1NIU0lH\n" + armorEnd + "\n"))
	f.Add([]byte(armorBegin + "\nU1NIU0lHAAAAAf////8=\n" + armorEnd + "\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "sshsig: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if s.Namespace == "" || (s.HashAlgorithm != HashSHA512 && s.HashAlgorithm != HashSHA256) || s.Signature.Format == ssh.KeyAlgoRSA {
			t.Fatalf("Parse accepted %q/%q/%q", s.Namespace, s.HashAlgorithm, s.Signature.Format)
		}
		blob := s.marshal()
		s2, err := Parse(armor(blob))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if !bytes.Equal(s2.marshal(), blob) {
			t.Fatal("round trip changed the blob")
		}
		// Verify must agree with Parse on the structure and never panic.
		if _, err := Verify(data, strings.NewReader("m"), s.Namespace, []ssh.PublicKey{s.PublicKey}); err != nil && !strings.HasPrefix(err.Error(), "sshsig: ") {
			t.Fatalf("Verify error without prefix: %v", err)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	message := bytes.Repeat([]byte{'k'}, 1<<20)
	for _, name := range []string{"ed25519", "ecdsa-p256", "rsa-3072"} {
		_, signer := testKey(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(message)))
			for b.Loop() {
				if _, err := Sign(signer, Namespace, bytes.NewReader(message)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	message := bytes.Repeat([]byte{'k'}, 1<<20)
	for _, name := range []string{"ed25519", "ecdsa-p256", "rsa-3072"} {
		_, signer := testKey(b, name)
		armored, err := Sign(signer, Namespace, bytes.NewReader(message))
		if err != nil {
			b.Fatal(err)
		}
		trusted := []ssh.PublicKey{signer.PublicKey()}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(message)))
			for b.Loop() {
				if _, err := Verify(armored, bytes.NewReader(message), Namespace, trusted); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
