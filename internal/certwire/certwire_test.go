package certwire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	mrand "math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func wireString(s []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

// testKeys returns a public key of every type a certificate can certify.
func testKeys(t testing.TB) []ssh.PublicKey {
	t.Helper()
	var keys []ssh.PublicKey
	add := func(k any) {
		pub, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, pub)
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	add(edPub)
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		add(&k.PublicKey)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	add(&rk.PublicKey)
	// Security keys, from their wire form.
	skEd := append(append(wireString([]byte("sk-ssh-ed25519@openssh.com")), wireString(edPub)...), wireString([]byte("ssh:"))...)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	point, err := ek.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	skEc := append(append(append(wireString([]byte("sk-ecdsa-sha2-nistp256@openssh.com")), wireString([]byte("nistp256"))...), wireString(point.Bytes())...), wireString([]byte("ssh:"))...)
	for _, w := range [][]byte{skEd, skEc} {
		k, err := ssh.ParsePublicKey(w)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func randomText(r *mrand.Rand) string {
	b := make([]byte, r.IntN(20))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

func randomTuples(r *mrand.Rand) map[string]string {
	if r.IntN(4) == 0 {
		return nil
	}
	m := map[string]string{}
	for range r.IntN(6) {
		v := ""
		if r.IntN(2) == 0 {
			v = randomText(r)
		}
		m[randomText(r)] = v
	}
	return m
}

// TestMarshalMatches holds Marshal and Line to what x/crypto writes, over
// every key type and random certificate fields, signed and not.
func TestMarshalMatches(t *testing.T) {
	keys := testKeys(t)
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	r := mrand.New(mrand.NewPCG(11, 12))
	for i := range 5000 {
		c := &ssh.Certificate{
			Key: keys[i%len(keys)], Serial: r.Uint64() >> r.IntN(64), CertType: uint32(1 + r.IntN(2)), KeyId: randomText(r),
			ValidAfter: r.Uint64() >> r.IntN(64), ValidBefore: r.Uint64() >> r.IntN(64),
			Permissions: ssh.Permissions{CriticalOptions: randomTuples(r), Extensions: randomTuples(r)},
		}
		for range r.IntN(4) {
			c.ValidPrincipals = append(c.ValidPrincipals, randomText(r))
		}
		if r.IntN(5) == 0 {
			c.Reserved = []byte(randomText(r))
		}
		switch i % 3 {
		case 0:
			if err := c.SignCert(rand.Reader, ca); err != nil {
				t.Fatal(err)
			}
		case 1:
			c.Nonce = []byte(randomText(r))
			c.SignatureKey = keys[r.IntN(len(keys))]
			c.Signature = &ssh.Signature{Format: randomText(r), Blob: []byte(randomText(r))}
			if r.IntN(2) == 0 {
				c.Signature.Rest = []byte(randomText(r))
			}
		default:
			c.SignatureKey = ca.PublicKey() // unsigned: no signature yet
		}
		if got, want := Marshal(c), c.Marshal(); !bytes.Equal(got, want) {
			t.Fatalf("certificate %d (%s): Marshal differs from x/crypto\n got %x\nwant %x", i, c.Key.Type(), got, want)
		}
		if got, want := Line(c), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c))); got != want {
			t.Fatalf("certificate %d: Line %q, want %q", i, got, want)
		}
	}
}

// benchCert returns an Ed25519 CA and a user certificate it signed, as
// the service issues them.
func benchCert(b *testing.B) (ssh.Signer, *ssh.Certificate) {
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := ssh.NewSignerFromKey(caPriv)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, _ := ssh.NewPublicKey(pub)
	c := &ssh.Certificate{Key: k, Serial: 12345, CertType: ssh.UserCert, KeyId: "token:ci role=deploy req=0123456789abcdef01234567",
		ValidPrincipals: []string{"role-deploy", "ci"}, ValidAfter: 1, ValidBefore: 2, Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		b.Fatal(err)
	}
	return ca, c
}

func BenchmarkLine(b *testing.B) {
	_, c := benchCert(b)
	b.Run("certwire", func(b *testing.B) {
		for b.Loop() {
			Line(c)
		}
	})
	b.Run("x/crypto", func(b *testing.B) {
		for b.Loop() {
			_ = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c)))
		}
	})
}

// FuzzMarshal: any certificate x/crypto parses is written back by Marshal
// as x/crypto's own Marshal writes it.
func FuzzMarshal(f *testing.F) {
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	ca, _ := ssh.NewSignerFromKey(caPriv)
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	k, _ := ssh.NewPublicKey(pub)
	c := &ssh.Certificate{Key: k, Serial: 7, CertType: ssh.UserCert, KeyId: "seed", ValidPrincipals: []string{"a", "b"}, ValidBefore: ssh.CertTimeInfinity,
		Permissions: ssh.Permissions{CriticalOptions: map[string]string{"force-command": "true"}, Extensions: map[string]string{"permit-pty": ""}}}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		f.Fatal(err)
	}
	f.Add(c.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		pk, err := ssh.ParsePublicKey(data)
		if err != nil {
			return
		}
		c, ok := pk.(*ssh.Certificate)
		if !ok {
			return
		}
		if got, want := Marshal(c), c.Marshal(); !bytes.Equal(got, want) {
			t.Fatalf("Marshal differs from x/crypto for %x:\n got %x\nwant %x", data, got, want)
		}
	})
}
