package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/sshca/sshca/internal/atomicfile"
)

// CertPath is where ssh looks for the certificate of private key path.
func CertPath(keyPath string) string { return keyPath + "-cert.pub" }

// EnsureKey loads the private key at path, creating an ed25519 key (and
// its .pub) when none exists. Encrypted keys are refused: sshca needs the
// key to prove possession and to load the agent.
func EnsureKey(path string) (ssh.Signer, any, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, nil, false, err
		}
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, false, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "sshca")
		if err != nil {
			return nil, nil, false, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, false, err
		}
		if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
			f.Close()
			return nil, nil, false, err
		}
		if err := f.Close(); err != nil {
			return nil, nil, false, err
		}
		s, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			return nil, nil, false, err
		}
		if err := atomicfile.Write(path+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
			return nil, nil, false, err
		}
		return s, priv, true, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, nil, false, fmt.Errorf("%s is passphrase-protected; sshca needs an unencrypted key (keep it in ssh-agent or use a dedicated key)", path)
		}
		return nil, nil, false, fmt.Errorf("%s: %w", path, err)
	}
	s, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, nil, false, err
	}
	return s, raw, false, nil
}

// WriteCert writes the certificate beside the key, atomically.
func WriteCert(keyPath string, cert *ssh.Certificate) error {
	return atomicfile.Write(CertPath(keyPath), ssh.MarshalAuthorizedKey(cert), 0o644)
}

// Remaining is how long cert stays valid after now (0 if expired).
func Remaining(cert *ssh.Certificate, now time.Time) time.Duration {
	if cert.ValidBefore == ssh.CertTimeInfinity {
		return 100 * 365 * 24 * time.Hour
	}
	d := time.Unix(int64(cert.ValidBefore), 0).Sub(now)
	if d < 0 {
		return 0
	}
	return d
}

// AddToAgent loads the key and certificate into the agent at sock, with a
// lifetime equal to the certificate's remaining validity.
func AddToAgent(sock string, priv any, cert *ssh.Certificate, now time.Time) error {
	conn, err := dialUnix(sock)
	if err != nil {
		return fmt.Errorf("ssh-agent: %w", err)
	}
	defer conn.Close()
	life := Remaining(cert, now)
	if life <= 0 {
		return errors.New("ssh-agent: certificate already expired")
	}
	ag := agent.NewClient(conn)
	return ag.Add(agent.AddedKey{PrivateKey: priv, Certificate: cert, LifetimeSecs: uint32(life.Seconds()),
		Comment: "sshca " + strings.ReplaceAll(cert.KeyId, " ", "_")})
}
