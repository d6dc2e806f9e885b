// Package sealbox seals small secrets for storage with AES-256-GCM under a
// key kept apart from where the sealed values are stored, bound to the
// context they belong to (additional data), so that a sealed value copied
// to another place does not open. It only encrypts and decrypts bytes: it
// reads no files, and it never logs, prints or returns a key or a
// plaintext in an error.
package sealbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// KeySize is the length of a key: AES-256.
const KeySize = 32

// Overhead is how much longer a sealed value is than its plaintext: the
// key ID, the random nonce and the GCM tag.
const Overhead = idSize + nonceSize + tagSize

const (
	idSize    = 8
	nonceSize = 12
	tagSize   = 16
)

// ErrOpen is returned when a sealed value does not open: it was sealed for
// another context (additional data), or it was changed.
var ErrOpen = errors.New("sealbox: message authentication failed (sealed for another context, or changed)")

// ErrOtherKey is returned when a sealed value was sealed under another key.
var ErrOtherKey = errors.New("sealbox: sealed under another key")

// Box seals and opens values under one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
	id   [idSize]byte
	rand io.Reader
}

// New returns a Box for a KeySize-byte key; rand supplies the nonces
// (crypto/rand.Reader in production).
func New(key []byte, rand io.Reader) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealbox: key is %d bytes, want %d", len(key), KeySize)
	}
	if rand == nil {
		return nil, errors.New("sealbox: no randomness source")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealbox: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealbox: %w", err)
	}
	b := &Box{aead: aead, rand: rand}
	// The ID names the key in sealed values, so that a value sealed under
	// another key (another replica's, a lost one's) is reported as such. It
	// is a hash of the key: 64 bits of it say nothing useful about 256.
	sum := sha256.Sum256(append([]byte("sshca sealbox key id\x00"), key...))
	copy(b.id[:], sum[:])
	return b, nil
}

// KeyID names the key, in hex; it is not secret.
func (b *Box) KeyID() string { return hex.EncodeToString(b.id[:]) }

// NewKey reads a fresh key from rand.
func NewKey(rand io.Reader) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, fmt.Errorf("sealbox: new key: %w", err)
	}
	return key, nil
}

// Seal encrypts plaintext bound to additional (which is authenticated, not
// stored) and returns key ID || nonce || ciphertext || tag. Nonces are
// random: with 96 bits, a key can seal billions of values before a repeat
// is a concern, far more than any sshca store holds.
func (b *Box) Seal(plaintext, additional []byte) ([]byte, error) {
	out := make([]byte, idSize+nonceSize, Overhead+len(plaintext))
	copy(out, b.id[:])
	nonce := out[idSize:]
	if _, err := io.ReadFull(b.rand, nonce); err != nil {
		return nil, fmt.Errorf("sealbox: nonce: %w", err)
	}
	return b.aead.Seal(out, nonce, plaintext, additional), nil
}

// Open decrypts a value made by Seal with the same key and additional data:
// a value sealed under another key is ErrOtherKey (naming both keys), and
// anything else that does not open is ErrOpen.
func (b *Box) Open(sealed, additional []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrOpen
	}
	if id := sealed[:idSize]; !bytes.Equal(id, b.id[:]) {
		return nil, fmt.Errorf("%w %x (this key is %s)", ErrOtherKey, id, b.KeyID())
	}
	nonce := sealed[idSize : idSize+nonceSize]
	plain, err := b.aead.Open(nil, nonce, sealed[idSize+nonceSize:], additional)
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}
