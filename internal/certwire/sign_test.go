package certwire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSignMatches holds Sign to x/crypto's SignCert: given the same random
// stream, every CA key type and algorithm choice gives the same nonce,
// signature key, signature format and bytes signed, and — where the
// signature is deterministic (Ed25519, RSA) — the same certificate, byte
// for byte; every certificate verifies.
func TestSignMatches(t *testing.T) {
	keys := testKeys(t)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	signer := func(k any) ssh.Signer {
		s, err := ssh.NewSignerFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsaSigner := signer(rsaPriv)
	rsa256, err := ssh.NewSignerWithAlgorithms(rsaSigner.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSASHA256})
	if err != nil {
		t.Fatal(err)
	}
	cas := []struct {
		name          string
		s             ssh.Signer
		deterministic bool
		format        string
	}{
		{"ed25519", signer(edPriv), true, ssh.KeyAlgoED25519},
		{"rsa", rsaSigner, true, ssh.KeyAlgoRSASHA256}, // x/crypto's RSA signer offers rsa-sha2-256 first
		{"rsa, algorithm signer only", algorithmOnly{rsaSigner.(ssh.AlgorithmSigner)}, true, ssh.KeyAlgoRSASHA512},
		{"rsa-sha2-256 only", rsa256, true, ssh.KeyAlgoRSASHA256},
		{"ecdsa-p256", signer(ec256), false, ssh.KeyAlgoECDSA256},
		{"ecdsa-p384", signer(ec384), false, ssh.KeyAlgoECDSA384},
	}
	r := mrand.New(mrand.NewPCG(21, 22))
	for i := range 300 {
		ca := cas[i%len(cas)]
		c := &ssh.Certificate{
			Key: keys[r.IntN(len(keys))], Serial: r.Uint64(), CertType: uint32(1 + r.IntN(2)), KeyId: randomText(r),
			ValidAfter: r.Uint64() >> r.IntN(64), ValidBefore: r.Uint64() >> r.IntN(64),
			Permissions: ssh.Permissions{CriticalOptions: randomTuples(r), Extensions: randomTuples(r)},
		}
		for range r.IntN(4) {
			c.ValidPrincipals = append(c.ValidPrincipals, randomText(r))
		}
		want := *c
		seed := [32]byte{byte(i), byte(i >> 8)}
		if err := want.SignCert(mrand.NewChaCha8(seed), ca.s); err != nil {
			t.Fatal(err)
		}
		got := *c
		wire, err := Sign(&got, mrand.NewChaCha8(seed), ca.s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(wire, got.Marshal()) {
			t.Fatalf("%d (%s): Sign's bytes are not the certificate's wire format", i, ca.name)
		}
		if got.Signature.Format != ca.format || want.Signature.Format != ca.format {
			t.Fatalf("%d (%s): signature format %s (SignCert %s), want %s", i, ca.name, got.Signature.Format, want.Signature.Format, ca.format)
		}
		if !bytes.Equal(got.Nonce, want.Nonce) || !bytes.Equal(got.SignatureKey.Marshal(), want.SignatureKey.Marshal()) {
			t.Fatalf("%d (%s): nonce or signature key differ from SignCert's", i, ca.name)
		}
		if ca.deterministic && !bytes.Equal(wire, want.Marshal()) {
			t.Fatalf("%d (%s): certificate differs from SignCert's\n got %x\nwant %x", i, ca.name, wire, want.Marshal())
		}
		// The bytes signed are SignCert's: its signature verifies over
		// ours and ours over its, both through the parsed certificate.
		parsed, err := ssh.ParsePublicKey(wire)
		if err != nil {
			t.Fatal(err)
		}
		pc := parsed.(*ssh.Certificate)
		unsignedBytes := unsigned(pc)
		if err := ca.s.PublicKey().Verify(unsignedBytes, want.Signature); err != nil {
			t.Fatalf("%d (%s): SignCert's signature does not verify over Sign's bytes: %v", i, ca.name, err)
		}
		if err := ca.s.PublicKey().Verify(unsignedBytes, got.Signature); err != nil {
			t.Fatalf("%d (%s): %v", i, ca.name, err)
		}
		if LineOf(&got, wire) != strings.TrimSpace(string(ssh.MarshalAuthorizedKey(&got))) {
			t.Fatalf("%d (%s): LineOf differs from MarshalAuthorizedKey", i, ca.name)
		}
	}

	// A certificate cannot be an authority.
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	sub, _ := ssh.NewPublicKey(edPub)
	certAsCA := &ssh.Certificate{Key: cas[0].s.PublicKey(), CertType: ssh.UserCert}
	if err := certAsCA.SignCert(rand.Reader, cas[0].s); err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(certAsCA, cas[0].s)
	if err != nil {
		t.Fatal(err)
	}
	c := &ssh.Certificate{Key: sub, CertType: ssh.UserCert}
	if _, err := Sign(c, rand.Reader, certSigner); err == nil || !strings.Contains(err.Error(), "cannot be used as authority") {
		t.Fatalf("Sign with a certificate as authority: %v", err)
	}
}

// algorithmOnly is a signer that can choose its algorithm but does not
// list them (not a MultiAlgorithmSigner).
type algorithmOnly struct{ ssh.AlgorithmSigner }

func BenchmarkSign(b *testing.B) {
	ca, c := benchCert(b)
	c.Nonce, c.SignatureKey, c.Signature = nil, nil, nil
	b.Run("certwire", func(b *testing.B) {
		for b.Loop() {
			cc := *c
			wire, _ := Sign(&cc, rand.Reader, ca)
			_ = LineOf(&cc, wire)
		}
	})
	b.Run("x/crypto", func(b *testing.B) {
		for b.Loop() {
			cc := *c
			_ = cc.SignCert(rand.Reader, ca)
			_ = Line(&cc)
		}
	})
}
