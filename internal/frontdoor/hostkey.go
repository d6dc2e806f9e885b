package frontdoor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
)

// LoadOrCreateHostKey reads the front door's ed25519 host key from path,
// or creates it there (mode 0600) on first start.
func LoadOrCreateHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "sshca front door")
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, fmt.Errorf("frontdoor: write host key: %w", err)
		}
		return ssh.NewSignerFromKey(priv)
	}
	if err != nil {
		return nil, fmt.Errorf("frontdoor: read host key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("frontdoor: host key %s is readable by others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("frontdoor: host key %s: %w", path, err)
	}
	return s, nil
}

// HostActor is the admin caller that certifies the front door's host key:
// the service on the CA host, which holds the CA keys.
const HostActor = "sshca-serve"

// CertifyHost has the authority sign a host certificate for key under the
// host role, with names as principals, through the one issuance path
// (policy, serial, audit) as the admin caller HostActor, and returns a
// signer that presents it.
func CertifyHost(ctx context.Context, a *ca.Authority, key ssh.Signer, role string, names []string) (ssh.Signer, *ssh.Certificate, error) {
	cert, err := a.Sign(ctx, ca.Request{Caller: ca.Admin(HostActor), Type: policy.HostCert, Role: role, Principals: names,
		KeyID: "sshca front door " + ssh.FingerprintSHA256(key.PublicKey()), PublicKey: key.PublicKey(),
		Details: map[string]string{"door": "ssh", "purpose": "front door host certificate"}})
	if err != nil {
		return nil, nil, fmt.Errorf("frontdoor: certify host key: %w", err)
	}
	cs, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, nil, err
	}
	return cs, cert, nil
}

// RenewDue reports whether a host certificate should be renewed at now:
// once more than half of its validity has passed.
func RenewDue(cert *ssh.Certificate, now time.Time) bool {
	from, until := int64(cert.ValidAfter), int64(cert.ValidBefore)
	return now.Unix() >= from+(until-from)/2
}
