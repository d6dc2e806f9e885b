package ca

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Limits on subject keys.
const (
	MinRSABits    = 2048
	MaxRSABits    = 16384
	MaxKeyFileLen = 16 << 10
)

// KeyError explains why a subject public key was refused.
type KeyError struct{ Msg string }

func (e *KeyError) Error() string { return "public key: " + e.Msg }

// ParseSubjectKey parses the contents of a public key file (one line in
// authorized_keys format, as ssh-keygen writes <key>.pub) and refuses
// anything that must not be certified: private keys, certificates, DSA, RSA
// below 2048 bits, malformed or truncated keys, options, several keys.
func ParseSubjectKey(data []byte) (ssh.PublicKey, error) {
	if len(data) > MaxKeyFileLen {
		return nil, &KeyError{fmt.Sprintf("file is %d bytes; a public key is at most %d", len(data), MaxKeyFileLen)}
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, &KeyError{"file is empty"}
	}
	if bytes.Contains(trimmed, []byte("PRIVATE KEY")) {
		return nil, &KeyError{"this is a private key; give the public key (the .pub file) instead"}
	}
	pub, _, options, rest, err := ssh.ParseAuthorizedKey(trimmed)
	if err != nil {
		return nil, &KeyError{"not a valid OpenSSH public key (expected one line like \"ssh-ed25519 AAAA... comment\")"}
	}
	if len(options) > 0 {
		return nil, &KeyError{"the line carries authorized_keys options; give a plain public key"}
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, &KeyError{"the file holds more than one key; give exactly one"}
	}
	if err := CheckSubjectKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// CheckSubjectKey refuses key types and sizes sshca will not certify.
func CheckSubjectKey(pub ssh.PublicKey) error {
	if _, ok := pub.(*ssh.Certificate); ok {
		return &KeyError{"this is a certificate; give the plain public key it certifies"}
	}
	switch pub.Type() {
	//lint:ignore SA1019 DSA is named only to refuse it
	case ssh.KeyAlgoDSA:
		return &KeyError{"DSA keys are not accepted (OpenSSH removed DSA); use ed25519"}
	case ssh.KeyAlgoRSA:
		cp, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return &KeyError{"unreadable RSA key"}
		}
		rk, ok := cp.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return &KeyError{"unreadable RSA key"}
		}
		if bits := rk.N.BitLen(); bits < MinRSABits {
			return &KeyError{fmt.Sprintf("RSA key has %d bits; at least %d are required", bits, MinRSABits)}
		} else if bits > MaxRSABits {
			return &KeyError{fmt.Sprintf("RSA key has %d bits; at most %d are accepted", bits, MaxRSABits)}
		}
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoSKED25519:
	default:
		return &KeyError{fmt.Sprintf("key type %q is not supported", pub.Type())}
	}
	return nil
}

// IsKeyError reports whether err is a subject-key refusal.
func IsKeyError(err error) bool {
	var ke *KeyError
	return errors.As(err, &ke)
}
