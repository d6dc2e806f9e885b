package signer_test

import (
	"crypto/rand"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/signer"
)

// TestNewPassphraseLength checks that a new key is encrypted only under a
// passphrase of at least MinPassphraseLen characters (code points, not
// bytes), that the refusal does not repeat the passphrase, and that a key
// encrypted earlier under a shorter passphrase still opens with it.
func TestNewPassphraseLength(t *testing.T) {
	priv, err := signer.Generate("ed25519", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pass string
	}{
		{name: "ok/none", pass: ""},
		{name: "ok/12-ascii", pass: "abcdefghijkl"},
		{name: "ok/12-runes", pass: "ééééééééé123"},
		{name: "ok/long", pass: "correct horse battery staple"},
		{name: "fail/5", pass: "hunte"},
		{name: "fail/11", pass: "abcdefghijk"},
		{name: "fail/11-runes-22-bytes", pass: "ééééééééééé"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := signer.MarshalPrivate(priv, "test", []byte(tc.pass))
			if strings.HasPrefix(tc.name, "ok/") {
				if err != nil {
					t.Fatalf("MarshalPrivate: %v", err)
				}
				if _, err := signer.ParsePrivate(data, []byte(tc.pass)); err != nil {
					t.Fatalf("ParsePrivate: %v", err)
				}
				return
			}
			if !errors.Is(err, signer.ErrShortPassphrase) {
				t.Fatalf("MarshalPrivate = %v, want ErrShortPassphrase", err)
			}
			if strings.Contains(err.Error(), tc.pass) {
				t.Errorf("the refusal %q repeats the passphrase", err)
			}
		})
	}

	t.Run("ok/old-short-passphrase-opens", func(t *testing.T) {
		block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "old home", []byte("short"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := signer.ParsePrivate(pem.EncodeToMemory(block), []byte("short")); err != nil {
			t.Fatalf("a key encrypted under a short passphrase before the rule no longer opens: %v", err)
		}
	})
}
