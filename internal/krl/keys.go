package krl

import (
	"crypto/rsa"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// checkKeyLoadable refuses CA keys that OpenSSH refuses in sshkey_from_blob
// (RSA moduli under 1024 or over 16384 bits) and DSA keys, which OpenSSH 10
// no longer parses at all: one such CA key makes the whole KRL unloadable
// and sshd then refuses every public-key login.
func checkKeyLoadable(pk ssh.PublicKey) error {
	//lint:ignore SA1019 DSA is named only to refuse it
	if pk.Type() == ssh.KeyAlgoDSA || pk.Type() == ssh.CertAlgoDSAv01 {
		return errors.New("DSA keys are not supported by OpenSSH 10")
	}
	cp, ok := pk.(ssh.CryptoPublicKey)
	if !ok {
		return nil
	}
	if k, ok := cp.CryptoPublicKey().(*rsa.PublicKey); ok {
		if n := k.N.BitLen(); n < 1024 || n > 16384 {
			return fmt.Errorf("RSA modulus of %d bits is outside OpenSSH's 1024..16384", n)
		}
	}
	return nil
}

// verifyCertBlob checks the CA signature of a certificate given as its raw
// blob, as OpenSSH's cert_parse does whenever it parses a certificate. The
// signed data is the blob up to the final signature string.
func verifyCertBlob(blob []byte, c *ssh.Certificate) error {
	if c.Signature == nil || c.SignatureKey == nil {
		return errors.New("certificate is not signed")
	}
	if err := checkKeyLoadable(c.SignatureKey); err != nil {
		return fmt.Errorf("certificate signature key: %w", err)
	}
	sig := ssh.Marshal(c.Signature)
	n := len(blob) - 4 - len(sig)
	if n < 0 {
		return errors.New("malformed certificate")
	}
	if err := c.SignatureKey.Verify(blob[:n], c.Signature); err != nil {
		return fmt.Errorf("certificate signature: %w", err)
	}
	return nil
}
