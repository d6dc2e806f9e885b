package frontdoor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

func TestHostKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "frontdoor_host_ed25519_key")
	k1, err := LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v %v", fi, err)
	}
	k2, err := LoadOrCreateHostKey(path)
	if err != nil || string(k2.PublicKey().Marshal()) != string(k1.PublicKey().Marshal()) {
		t.Fatalf("second start: %v, same key %v", err, err == nil && string(k2.PublicKey().Marshal()) == string(k1.PublicKey().Marshal()))
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateHostKey(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("world-readable host key: %v", err)
	}
}

func TestCertifyHost(t *testing.T) {
	h := testhome.New(t, testPolicy, testhome.Options{})
	key := testkit.NewSigner(t)
	s, cert, err := CertifyHost(t.Context(), h.Authority, key, "servers", []string{"ca.corp"})
	if err != nil {
		t.Fatal(err)
	}
	if cert.CertType != ssh.HostCert || len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != "ca.corp" {
		t.Fatalf("certificate %+v", cert)
	}
	if _, ok := s.PublicKey().(*ssh.Certificate); !ok {
		t.Fatal("the signer does not present the certificate")
	}
	// Names outside the host role are refused by the policy, and audited.
	if _, _, err := CertifyHost(t.Context(), h.Authority, key, "servers", []string{"evil.com"}); err == nil || !strings.Contains(err.Error(), "host-principal") && !strings.Contains(err.Error(), "matches no pattern") {
		t.Fatalf("host name outside the role: %v", err)
	}
	if !RenewDue(cert, time.Unix(int64(cert.ValidBefore), 0)) || RenewDue(cert, time.Unix(int64(cert.ValidAfter), 0)) {
		t.Fatal("RenewDue")
	}
}
