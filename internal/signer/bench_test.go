package signer_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/signer"
)

// benchKeyTypes are the CA key types the benchmarks measure.
var benchKeyTypes = []string{"ed25519", "ecdsa-p256", "rsa-3072"}

// benchCA generates a CA key of keyType wrapped as sshca wraps it (RSA
// pinned to rsa-sha2-512).
func benchCA(b *testing.B, keyType string) ssh.Signer {
	b.Helper()
	priv, err := signer.Generate(keyType, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s, err := signer.FromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchSubject returns a fresh ed25519 user key.
func benchSubject(b *testing.B) ssh.PublicKey {
	b.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// benchCert is a realistic user certificate: ed25519 subject, two
// principals, permit-pty, serial, key ID, ten minutes of validity.
func benchCert(sub ssh.PublicKey, serial uint64, now time.Time) *ssh.Certificate {
	return &ssh.Certificate{
		Key:             sub,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           "alice@example.com",
		ValidPrincipals: []string{"alice", "deploy"},
		ValidAfter:      uint64(now.Unix()),
		ValidBefore:     uint64(now.Add(10 * time.Minute).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
}

// benchMessage returns the bytes a realistic certificate signed by ca
// covers: the certificate without its signature.
func benchMessage(b *testing.B, ca ssh.Signer) []byte {
	b.Helper()
	c := benchCert(benchSubject(b), 1234567, time.Now())
	if err := c.SignCert(rand.Reader, ca); err != nil {
		b.Fatal(err)
	}
	full := c.Marshal()
	return full[:len(full)-4-len(ssh.Marshal(c.Signature))]
}

// BenchmarkSign is the bare signature of a CA signer over the bytes of a
// typical certificate.
func BenchmarkSign(b *testing.B) {
	for _, kt := range benchKeyTypes {
		b.Run(kt, func(b *testing.B) {
			ca := benchCA(b, kt)
			msg := benchMessage(b, ca)
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := ca.Sign(rand.Reader, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignParallel is BenchmarkSign on GOMAXPROCS goroutines.
func BenchmarkSignParallel(b *testing.B) {
	for _, kt := range benchKeyTypes {
		b.Run(kt, func(b *testing.B) {
			ca := benchCA(b, kt)
			msg := benchMessage(b, ca)
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := ca.Sign(rand.Reader, msg); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSignCert builds and signs a fresh realistic user certificate
// per operation.
func BenchmarkSignCert(b *testing.B) {
	for _, kt := range benchKeyTypes {
		b.Run(kt, func(b *testing.B) {
			ca := benchCA(b, kt)
			sub := benchSubject(b)
			now := time.Now()
			serial := uint64(0)
			for b.Loop() {
				serial++
				if err := benchCert(sub, serial, now).SignCert(rand.Reader, ca); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignCertParallel is BenchmarkSignCert on GOMAXPROCS goroutines.
func BenchmarkSignCertParallel(b *testing.B) {
	for _, kt := range benchKeyTypes {
		b.Run(kt, func(b *testing.B) {
			ca := benchCA(b, kt)
			sub := benchSubject(b)
			now := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				serial := uint64(0)
				for pb.Next() {
					serial++
					if err := benchCert(sub, serial, now).SignCert(rand.Reader, ca); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
