package signer_test

import (
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/signer"
)

// TestPinNeverSHA1 checks every way of signing with a pinned RSA CA signer:
// plain Sign must not fall back to ssh-rsa (SHA-1), and ssh-rsa is refused.
func TestPinNeverSHA1(t *testing.T) {
	priv, err := signer.Generate("rsa-3072", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signer.FromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("data")
	sig, err := s.Sign(rand.Reader, data)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Format != ssh.KeyAlgoRSASHA512 {
		t.Fatalf("plain Sign used %s, want %s", sig.Format, ssh.KeyAlgoRSASHA512)
	}
	if err := s.PublicKey().Verify(data, sig); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		t.Fatal("pinned signer is not an AlgorithmSigner")
	}
	if _, err := as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSA); err == nil {
		t.Fatal("pinned signer signed with ssh-rsa (SHA-1)")
	}
	ms, ok := s.(ssh.MultiAlgorithmSigner)
	if !ok || len(ms.Algorithms()) != 1 || ms.Algorithms()[0] != ssh.KeyAlgoRSASHA512 {
		t.Fatalf("algorithms = %v, want only %s", ms, ssh.KeyAlgoRSASHA512)
	}
	// A certificate signed with it carries rsa-sha2-512.
	cert := &ssh.Certificate{Key: s.PublicKey(), Serial: 1, CertType: ssh.UserCert, KeyId: "x", ValidPrincipals: []string{"a"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, s); err != nil {
		t.Fatal(err)
	}
	if cert.Signature.Format != ssh.KeyAlgoRSASHA512 {
		t.Fatalf("certificate signed with %s", cert.Signature.Format)
	}
}
