// Package signer creates, stores and opens CA keys: OpenSSH private-key files
// (optionally passphrase-encrypted with bcrypt-pbkdf) and keys held by an
// ssh-agent. It never writes a decrypted copy of an encrypted key and never
// logs key material; keys are named by their SHA256 fingerprint.
package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// KeyTypes lists the CA key types sshca can create, in the order shown to users.
var keyTypes = []string{"ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-3072", "rsa-4096"}

// KeyTypes returns the CA key types sshca can create.
func KeyTypes() []string { return append([]string(nil), keyTypes...) }

// ErrWrongPassphrase is returned when an encrypted key cannot be decrypted with
// the given passphrase.
var ErrWrongPassphrase = errors.New("signer: wrong passphrase")

// ErrPassphraseNeeded is returned when a key is encrypted and no passphrase was given.
var ErrPassphraseNeeded = errors.New("signer: key is encrypted and no passphrase was given")

// Generate creates a new private key of the named type using rand.
func Generate(keyType string, rand io.Reader) (crypto.Signer, error) {
	switch keyType {
	case "ed25519":
		_, priv, err := ed25519.GenerateKey(rand)
		if err != nil {
			return nil, fmt.Errorf("signer: generate ed25519: %w", err)
		}
		return priv, nil
	case "ecdsa-p256", "ecdsa-p384", "ecdsa-p521":
		curve := map[string]elliptic.Curve{"ecdsa-p256": elliptic.P256(), "ecdsa-p384": elliptic.P384(), "ecdsa-p521": elliptic.P521()}[keyType]
		priv, err := ecdsa.GenerateKey(curve, rand)
		if err != nil {
			return nil, fmt.Errorf("signer: generate %s: %w", keyType, err)
		}
		return priv, nil
	case "rsa-3072", "rsa-4096":
		bits := 3072
		if keyType == "rsa-4096" {
			bits = 4096
		}
		priv, err := rsa.GenerateKey(rand, bits)
		if err != nil {
			return nil, fmt.Errorf("signer: generate %s: %w", keyType, err)
		}
		return priv, nil
	}
	return nil, fmt.Errorf("signer: unknown key type %q (want one of %s)", keyType, strings.Join(keyTypes, ", "))
}

// MinPassphraseLen is the fewest characters a passphrase that encrypts a new
// CA key may have. bcrypt-pbkdf slows each guess down, but a CA key file
// that leaks can be attacked offline for as long as the attacker likes; 12
// characters drawn at random from letters and digits are about 71 bits,
// out of reach, while a word or two is not. Existing keys encrypted with a
// shorter passphrase still open (see ParsePrivate): the rule applies when a
// passphrase is set, so no home is locked out.
const MinPassphraseLen = 12

// ErrShortPassphrase is returned when a new key would be encrypted with a
// passphrase shorter than MinPassphraseLen.
var ErrShortPassphrase = fmt.Errorf("signer: passphrase shorter than %d characters", MinPassphraseLen)

// CheckNewPassphrase refuses a passphrase too short to encrypt a new key.
// It counts characters (UTF-8 code points), not bytes, and never reports
// the passphrase or its length.
func CheckNewPassphrase(passphrase []byte) error {
	if utf8.RuneCount(passphrase) < MinPassphraseLen {
		return ErrShortPassphrase
	}
	return nil
}

// MarshalPrivate encodes key in the OpenSSH private-key format; with a
// non-empty passphrase the key is encrypted (aes256-ctr, bcrypt-pbkdf) so
// that ssh-keygen can read it too. A non-empty passphrase shorter than
// MinPassphraseLen is refused with ErrShortPassphrase.
func MarshalPrivate(key crypto.Signer, comment string, passphrase []byte) ([]byte, error) {
	var block *pem.Block
	var err error
	if len(passphrase) > 0 {
		if err := CheckNewPassphrase(passphrase); err != nil {
			return nil, err
		}
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, comment, passphrase)
	} else {
		block, err = ssh.MarshalPrivateKey(key, comment)
	}
	if err != nil {
		return nil, fmt.Errorf("signer: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// IsEncrypted reports whether an OpenSSH private-key file needs a passphrase.
func IsEncrypted(pemBytes []byte) bool {
	_, err := ssh.ParseRawPrivateKey(pemBytes)
	var missing *ssh.PassphraseMissingError
	return errors.As(err, &missing)
}

// ParsePrivate opens an OpenSSH private-key file, decrypting it with
// passphrase when it is encrypted, and returns a CA signer (see FromKey).
func ParsePrivate(pemBytes, passphrase []byte) (ssh.Signer, error) {
	var raw any
	var err error
	if IsEncrypted(pemBytes) {
		if len(passphrase) == 0 {
			return nil, ErrPassphraseNeeded
		}
		raw, err = ssh.ParseRawPrivateKeyWithPassphrase(pemBytes, passphrase)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, ErrWrongPassphrase
		}
	} else {
		raw, err = ssh.ParseRawPrivateKey(pemBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("signer: parse private key: %w", err)
	}
	return FromKey(raw)
}

// FromKey wraps a private key as a CA signer. RSA keys are pinned to
// rsa-sha2-512 so that no certificate is ever signed with SHA-1.
func FromKey(raw any) (ssh.Signer, error) {
	s, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return Pin(s)
}

// Pin returns s restricted to a safe signature algorithm: rsa-sha2-512 for
// RSA keys, the key's own algorithm otherwise. DSA keys are refused.
func Pin(s ssh.Signer) (ssh.Signer, error) {
	switch s.PublicKey().Type() {
	case ssh.KeyAlgoRSA:
		as, ok := s.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("signer: RSA signer cannot choose its algorithm; refusing SHA-1")
		}
		ms, err := ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512})
		if err != nil {
			return nil, err
		}
		return rsaSHA512Signer{ms}, nil
	//lint:ignore SA1019 DSA is named only to refuse it
	case ssh.KeyAlgoDSA:
		return nil, errors.New("signer: DSA keys cannot be CA keys")
	}
	return s, nil
}

// Fingerprint is the SHA256 fingerprint of a public key, as ssh-keygen -l prints it.
func Fingerprint(pub ssh.PublicKey) string { return ssh.FingerprintSHA256(pub) }

// KeyTypeOf names the sshca key type of a public key ("ed25519", "rsa-3072", ...).
func KeyTypeOf(pub ssh.PublicKey) string {
	switch pub.Type() {
	case ssh.KeyAlgoED25519:
		return "ed25519"
	case ssh.KeyAlgoECDSA256:
		return "ecdsa-p256"
	case ssh.KeyAlgoECDSA384:
		return "ecdsa-p384"
	case ssh.KeyAlgoECDSA521:
		return "ecdsa-p521"
	case ssh.KeyAlgoRSA:
		if cp, ok := pub.(ssh.CryptoPublicKey); ok {
			if rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey); ok {
				return fmt.Sprintf("rsa-%d", rk.N.BitLen())
			}
		}
		return "rsa"
	}
	return pub.Type()
}

// FromAgent returns a CA signer backed by an ssh-agent key equal to pub. The
// private key never leaves the agent (or the hardware token behind it).
func FromAgent(ag agentLister, pub ssh.PublicKey) (ssh.Signer, error) {
	signers, err := ag.Signers()
	if err != nil {
		return nil, fmt.Errorf("signer: list agent keys: %w", err)
	}
	want := pub.Marshal()
	for _, s := range signers {
		if string(s.PublicKey().Marshal()) == string(want) {
			return Pin(s)
		}
	}
	return nil, fmt.Errorf("signer: ssh-agent holds no key %s", Fingerprint(pub))
}

// agentLister is the part of agent.ExtendedAgent that FromAgent needs.
type agentLister interface {
	Signers() ([]ssh.Signer, error)
}

// rsaSHA512Signer makes even the plain Sign method of an RSA CA signer use
// rsa-sha2-512: the embedded signer's Sign would fall back to ssh-rsa (SHA-1).
type rsaSHA512Signer struct{ ssh.MultiAlgorithmSigner }

// Sign signs with rsa-sha2-512.
func (s rsaSHA512Signer) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	return s.SignWithAlgorithm(rand, data, ssh.KeyAlgoRSASHA512)
}
