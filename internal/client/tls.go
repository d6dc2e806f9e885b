package client

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/sshca/sshca/internal/api"
)

// PinnedTLSConfig returns a client TLS config that accepts exactly the server
// certificate with the given fingerprint ("SHA256:..."); with an empty
// fingerprint the system roots are used.
func PinnedTLSConfig(fingerprint string) *tls.Config {
	if fingerprint == "" {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: server sent no certificate")
			}
			if got := api.CertFingerprint(cs.PeerCertificates[0].Raw); got != fingerprint {
				return &PinMismatchError{Got: got, Pinned: fingerprint}
			}
			return nil
		},
	}
}

// PinMismatchError is the refusal of a server whose TLS certificate is not
// the pinned one.
type PinMismatchError struct{ Got, Pinned string }

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("tls: server certificate is %s, not the pinned %s", e.Got, e.Pinned)
}
