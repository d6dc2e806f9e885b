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
				return fmt.Errorf("tls: server certificate is %s, not the pinned %s", got, fingerprint)
			}
			return nil
		},
	}
}
