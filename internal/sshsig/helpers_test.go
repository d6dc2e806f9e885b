package sshsig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// keyNames are the CA key types sshca supports (product.md, `sshca init`).
var keyNames = []string{"ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa-3072", "rsa-4096"}

// keyCache generates each test key once per test binary: RSA generation
// dominates the run time otherwise. It is filled at init and never mutated.
var keyCache = func() map[string]func() (crypto.Signer, error) {
	gen := map[string]func() (crypto.Signer, error){
		"ed25519": func() (crypto.Signer, error) {
			// Fixed seed: Ed25519 signatures are then deterministic, which
			// keeps the fuzz seed corpus stable.
			return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)), nil
		},
		"ed25519-other": func() (crypto.Signer, error) {
			return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)), nil
		},
		"ecdsa-p256": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) },
		"ecdsa-p384": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P384(), rand.Reader) },
		"ecdsa-p521": func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P521(), rand.Reader) },
		"rsa-3072":   func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 3072) },
		"rsa-4096":   func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, 4096) },
	}
	m := make(map[string]func() (crypto.Signer, error), len(gen))
	for name, f := range gen {
		m[name] = sync.OnceValues(f)
	}
	return m
}()

// testKey returns the cached private key called name and its ssh.Signer.
func testKey(t testing.TB, name string) (crypto.Signer, ssh.Signer) {
	t.Helper()
	gen, ok := keyCache[name]
	if !ok {
		t.Fatalf("no test key %q", name)
	}
	priv, err := gen()
	if err != nil {
		t.Fatalf("generate %s: %v", name, err)
	}
	signer, err := ssh.NewSignerFromSigner(priv)
	if err != nil {
		t.Fatalf("signer %s: %v", name, err)
	}
	return priv, signer
}

// writeFile writes data to dir/name with mode 0600 and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writePrivateKey writes priv in OpenSSH format, as ssh-keygen -f expects.
func writePrivateKey(t *testing.T, dir, name string, priv crypto.Signer) string {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, pem.EncodeToMemory(block))
}

// writeAllowedSigners writes an allowed_signers file trusting pub as
// principal "sshca" for namespace sshca-krl.
func writeAllowedSigners(t *testing.T, dir, name string, pub ssh.PublicKey) string {
	t.Helper()
	line := append([]byte(`sshca namespaces="sshca-krl" `), ssh.MarshalAuthorizedKey(pub)...)
	return writeFile(t, dir, name, line)
}

// forgery describes an SSHSIG blob built field by field, so that tests can
// make blobs that are wrong in exactly one way yet correctly signed.
type forgery struct {
	magic     string
	version   uint32
	key       ssh.PublicKey // defaults to the signer's key
	namespace string
	reserved  string
	hashAlg   string
	sigAlgo   string // passed to SignWithAlgorithm; "" for the default
	format    string // overrides the signature's Format after signing
	trailing  []byte // appended to the blob
}

// forge signs message under f with signer and returns the armored blob.
func forge(t testing.TB, signer ssh.AlgorithmSigner, message []byte, f forgery) []byte {
	t.Helper()
	if f.magic == "" {
		f.magic = magic
	}
	if f.version == 0 {
		f.version = sigVersion
	}
	if f.key == nil {
		f.key = signer.PublicKey()
	}
	var digest []byte
	if f.hashAlg == HashSHA256 {
		d := sha256.Sum256(message)
		digest = d[:]
	} else {
		d := sha512.Sum512(message)
		digest = d[:]
	}
	var data []byte
	data = append(data, magic...)
	data = appendString(data, []byte(f.namespace))
	data = appendString(data, []byte(f.reserved))
	data = appendString(data, []byte(f.hashAlg))
	data = appendString(data, digest)
	sig, err := signer.SignWithAlgorithm(rand.Reader, data, f.sigAlgo)
	if err != nil {
		t.Fatalf("forge: %v", err)
	}
	if f.format != "" {
		sig.Format = f.format
	}
	var b []byte
	b = append(b, f.magic...)
	b = binary.BigEndian.AppendUint32(b, f.version)
	b = appendString(b, f.key.Marshal())
	b = appendString(b, []byte(f.namespace))
	b = appendString(b, []byte(f.reserved))
	b = appendString(b, []byte(f.hashAlg))
	b = appendString(b, ssh.Marshal(sig))
	b = append(b, f.trailing...)
	return armor(b)
}

// wantErr fails t unless err is non-nil, carries the sshsig prefix and
// contains substr.
func wantErr(t testing.TB, err error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", substr)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "sshsig: ") || !strings.Contains(msg, substr) {
		t.Fatalf("error %q, want prefix \"sshsig: \" and %q", msg, substr)
	}
}
