package api

import (
	"crypto/sha256"
	"encoding/base64"
)

// CertFingerprint is the pin of the service's TLS certificate, as `sshca
// serve` prints it and clients take it (--ca-fingerprint): "SHA256:" and
// the unpadded base64 of the SHA-256 of the certificate's DER.
func CertFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
