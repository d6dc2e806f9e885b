package sealbox_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/sealbox"
)

func newBox(t *testing.T) *sealbox.Box {
	t.Helper()
	key, err := sealbox.NewKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sealbox.New(key, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSealOpen checks that a sealed value opens only with its key and its
// additional data, and only unchanged.
func TestSealOpen(t *testing.T) {
	box, other := newBox(t), newBox(t)
	secret := []byte("0123456789abcdef0123")
	ad := []byte("totp\x00alice")
	sealed, err := box.Seal(secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(secret)+sealbox.Overhead {
		t.Errorf("sealed length %d, want %d", len(sealed), len(secret)+sealbox.Overhead)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("the sealed value contains the plaintext")
	}
	again, err := box.Seal(secret, ad)
	if err != nil {
		t.Fatal(err)
	}
	if box.KeyID() == other.KeyID() || len(box.KeyID()) != 16 {
		t.Errorf("key IDs %q and %q", box.KeyID(), other.KeyID())
	}
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: nonces repeat")
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	for _, tc := range []struct {
		name   string
		box    *sealbox.Box
		sealed []byte
		ad     []byte
	}{
		{name: "ok/same", box: box, sealed: sealed, ad: ad},
		{name: "ok/second-seal", box: box, sealed: again, ad: ad},
		{name: "fail/other-identity", box: box, sealed: sealed, ad: []byte("totp\x00bob")},
		{name: "fail/no-additional-data", box: box, sealed: sealed, ad: nil},
		{name: "fail/other-key", box: other, sealed: sealed, ad: ad},
		{name: "fail/changed", box: box, sealed: flipped, ad: ad},
		{name: "fail/truncated", box: box, sealed: sealed[:sealbox.Overhead-1], ad: ad},
		{name: "fail/empty", box: box, sealed: nil, ad: ad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.box.Open(tc.sealed, tc.ad)
			if strings.HasPrefix(tc.name, "ok/") {
				if err != nil || !bytes.Equal(got, secret) {
					t.Fatalf("Open = %q, %v; want the secret", got, err)
				}
				return
			}
			want := sealbox.ErrOpen
			if tc.name == "fail/other-key" {
				want = sealbox.ErrOtherKey
			}
			if !errors.Is(err, want) || got != nil {
				t.Fatalf("Open = %q, %v; want %v", got, err, want)
			}
		})
	}
}

// TestNewRefusesBadKeys checks the key length and the randomness source.
func TestNewRefusesBadKeys(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := sealbox.New(make([]byte, n), rand.Reader); err == nil {
			t.Errorf("New accepted a %d-byte key", n)
		}
	}
	if _, err := sealbox.New(make([]byte, sealbox.KeySize), nil); err == nil {
		t.Error("New accepted a nil randomness source")
	}
}
