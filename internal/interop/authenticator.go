package interop

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
)

// Authenticator accepts sshca user certificates for an x/crypto/ssh server:
// use its PublicKeyCallback as ssh.ServerConfig.PublicKeyCallback.
//
// ssh.CertChecker alone checks the CA, the validity period, the principal
// and source-address, but it accepts a certificate with no principals (valid
// for every user, the CVE-2024-7594 class of bug) and a certificate signed
// with ssh-rsa (SHA-1). Authenticator refuses both, as current OpenSSH does, and
// checks every certificate against an sshca KRL the way sshd's RevokedKeys
// does. Plain keys are refused: only certificates log in.
type Authenticator struct {
	// UserCAs are the trusted user CA keys, every live generation
	// (`sshca ca show --type user`).
	UserCAs []ssh.PublicKey

	// KRL returns the current revocation list, typically parsed with
	// krl.Parse from the file `sshca krl` writes. It is called for every
	// authentication attempt. An error refuses every key, as sshd does when
	// its RevokedKeys file is missing or corrupt. A nil KRL func is a
	// configuration error and refuses every key too.
	KRL func() (*krl.KRL, error)

	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time

	// SupportedCriticalOptions are the critical options the server
	// enforces; a certificate with any other is refused. nil means
	// "source-address" only, which ssh.CertChecker enforces itself. A server
	// that lists "force-command" must run that command from the returned
	// Permissions.CriticalOptions instead of the requested one.
	SupportedCriticalOptions []string
}

// weakSignature reports whether a certificate signature algorithm is
// refused whatever the CA key: ssh-rsa (RSA with SHA-1) and ssh-dss.
func weakSignature(format string) bool {
	return format == "ssh-rsa" || format == "ssh-dss"
}

// PublicKeyCallback authenticates conn.User() with key. It returns the
// certificate's critical options and extensions in the Permissions, as
// ssh.CertChecker does, or an error saying why the key was refused.
func (a *Authenticator) PublicKeyCallback(conn ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("interop: %s key %s is not a certificate", key.Type(), ssh.FingerprintSHA256(key))
	}
	if cert.CertType != ssh.UserCert {
		return nil, fmt.Errorf("interop: certificate %d is not a user certificate", cert.Serial)
	}
	if len(cert.ValidPrincipals) == 0 {
		return nil, fmt.Errorf("interop: certificate %d has no principals", cert.Serial)
	}
	if cert.Signature == nil || weakSignature(cert.Signature.Format) {
		format := "none"
		if cert.Signature != nil {
			format = cert.Signature.Format
		}
		return nil, fmt.Errorf("interop: certificate %d is signed with %s, which is refused", cert.Serial, format)
	}
	if a.KRL == nil {
		return nil, errors.New("interop: no KRL configured")
	}
	list, err := a.KRL()
	if err != nil {
		return nil, fmt.Errorf("interop: load KRL: %w", err)
	}
	if list == nil {
		return nil, errors.New("interop: load KRL: no KRL")
	}
	if m := list.Check(cert); m != nil {
		return nil, fmt.Errorf("interop: certificate %d (key ID %q) is revoked: %s", cert.Serial, cert.KeyId, m.Detail)
	}
	opts := a.SupportedCriticalOptions
	if opts == nil {
		opts = []string{"source-address"}
	}
	checker := &ssh.CertChecker{
		IsUserAuthority:          a.trusted,
		Clock:                    a.Clock,
		SupportedCriticalOptions: opts,
	}
	perms, err := checker.Authenticate(conn, cert)
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	return perms, nil
}

// trusted reports whether auth is one of the user CAs.
func (a *Authenticator) trusted(auth ssh.PublicKey) bool {
	blob := auth.Marshal()
	for _, ca := range a.UserCAs {
		if ca != nil && bytes.Equal(ca.Marshal(), blob) {
			return true
		}
	}
	return false
}
