package signer

import (
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzParsePrivate feeds arbitrary key files to ParsePrivate without a
// passphrase: it must never panic, must refuse encrypted files with
// ErrPassphraseNeeded before any key derivation, and every signer it
// returns must be a CA signer: no DSA, and RSA certificates signed only
// with rsa-sha2-512.
func FuzzParsePrivate(f *testing.F) {
	for _, kt := range []string{"ed25519", "ecdsa-p256", "rsa-3072"} {
		priv, err := Generate(kt, rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		for _, pass := range [][]byte{nil, []byte("fuzz-seed-passphrase")} {
			data, err := MarshalPrivate(priv, "seed", pass)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, seed := range []string{
		"", "-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----\n",
		"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n-----END OPENSSH PRIVATE KEY-----\n",
		"-----BEGIN DSA PRIVATE KEY-----\nMIIBuwIBAAKBgQ==\n-----END DSA PRIVATE KEY-----\n",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKI8aWot06gDbSapq8+dGoBAfiLb8jVn2375xtw/fxIc x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParsePrivate(data, nil)
		if err != nil {
			return
		}
		switch s.PublicKey().Type() {
		case ssh.KeyAlgoRSA:
			// Certificates are signed through SignCert, which picks the
			// first of the signer's algorithms. (A plain Sign call on an
			// x/crypto MultiAlgorithmSigner would still use ssh-rsa.)
			cert := &ssh.Certificate{Key: s.PublicKey(), Serial: 1, CertType: ssh.UserCert, ValidPrincipals: []string{"p"}, ValidBefore: ssh.CertTimeInfinity}
			if err := cert.SignCert(rand.Reader, s); err != nil {
				t.Fatalf("sign certificate: %v", err)
			}
			if cert.Signature.Format != ssh.KeyAlgoRSASHA512 {
				t.Fatalf("RSA CA signer signs certificates with %s", cert.Signature.Format)
			}
		case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		default:
			t.Fatalf("CA signer of type %s", s.PublicKey().Type())
		}
	})
}
