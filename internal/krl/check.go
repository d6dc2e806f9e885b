package krl

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Sections a Match can name.
const (
	MatchSHA1        = "sha1"
	MatchSHA256      = "sha256"
	MatchExplicitKey = "explicit-key"
	MatchKeyID       = "key-id"
	MatchSerial      = "serial"
	MatchCAKey       = "ca-key"
)

// Match explains why a key is revoked.
type Match struct {
	// Section is one of the Match* constants. MatchCAKey means the key is
	// a certificate whose CA key itself is revoked.
	Section string `json:"section"`
	// Detail is a human-readable explanation.
	Detail string `json:"detail"`
}

// Check reports whether sshd would refuse pub under this KRL, following
// OpenSSH's ssh_krl_check_key (§3.7), and returns nil if it would not.
// The order of the tests is OpenSSH's: the SHA-1, SHA-256 and explicit
// lists for the plain key; for a certificate, its CA's section and then
// the wildcard section (key ID first, then the serial unless it is 0);
// finally the same three lists for the certificate's CA key.
func (k *KRL) Check(pub ssh.PublicKey) *Match {
	if pub == nil {
		return nil
	}
	if m := k.checkPlain(plainBlob(pub)); m != nil {
		return m
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.SignatureKey == nil {
		return nil
	}
	caPlain := plainBlob(cert.SignatureKey)
	caFP := ssh.FingerprintSHA256(cert.SignatureKey)
	for _, s := range k.Certs {
		if s == nil || len(s.CA) == 0 || !bytes.Equal(caIdentity(s.CA), caPlain) {
			continue
		}
		if m := checkCert(s, cert, "CA "+caFP); m != nil {
			return m
		}
	}
	for _, s := range k.Certs {
		if s == nil || len(s.CA) != 0 {
			continue
		}
		if m := checkCert(s, cert, "the wildcard CA"); m != nil {
			return m
		}
	}
	if m := k.checkPlain(caPlain); m != nil {
		return &Match{Section: MatchCAKey, Detail: fmt.Sprintf("CA key %s is revoked: %s", caFP, m.Detail)}
	}
	return nil
}

// checkPlain looks a plain key blob up in the fingerprint and explicit lists.
func (k *KRL) checkPlain(blob []byte) *Match {
	if len(k.SHA1) > 0 {
		sum := sha1.Sum(blob)
		for _, h := range k.SHA1 {
			if h == sum {
				return &Match{Section: MatchSHA1, Detail: fmt.Sprintf("key SHA1:%x is revoked by SHA-1 fingerprint", sum)}
			}
		}
	}
	sum := sha256.Sum256(blob)
	for _, h := range k.SHA256 {
		if h == sum {
			return &Match{Section: MatchSHA256, Detail: fmt.Sprintf("key %s is revoked by SHA-256 fingerprint", fingerprint(sum))}
		}
	}
	for _, b := range k.ExplicitKeys {
		if bytes.Equal(b, blob) {
			return &Match{Section: MatchExplicitKey, Detail: fmt.Sprintf("key %s is revoked explicitly", fingerprint(sum))}
		}
	}
	return nil
}

func checkCert(s *CertSection, cert *ssh.Certificate, scope string) *Match {
	for _, id := range s.KeyIDs {
		if id == cert.KeyId {
			return &Match{Section: MatchKeyID, Detail: fmt.Sprintf("key ID %q is revoked under %s", id, scope)}
		}
	}
	// Serial 0 is what a CA writes when it assigns none; OpenSSH never
	// matches it against serial revocations.
	if cert.Serial == 0 {
		return nil
	}
	for _, r := range s.Serials {
		if r.Lo <= cert.Serial && cert.Serial <= r.Hi {
			d := fmt.Sprintf("serial %d is revoked under %s", cert.Serial, scope)
			if r.Lo != r.Hi {
				d = fmt.Sprintf("serial %d is revoked under %s (range %d-%d)", cert.Serial, scope, r.Lo, r.Hi)
			}
			return &Match{Section: MatchSerial, Detail: d}
		}
	}
	return nil
}

// fingerprint formats a SHA-256 digest the way ssh-keygen -l prints it.
func fingerprint(sum [32]byte) string {
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
