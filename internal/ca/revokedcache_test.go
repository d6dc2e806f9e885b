package ca_test

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
)

// TestRevokedCacheNeverStale: the service's Authority keeps its index of
// key and key ID revocations between requests without asking the store;
// a revocation committed by another process (another Authority on the same
// database, as `sshca revoke` is) must still refuse the very next request,
// and one for another key must still be issued.
func TestRevokedCacheNeverStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	svc, _ := newAuthority(t, path, ed25519.NewKeyFromSeed(caSeed))
	_, cliStore := newAuthority(t, path, ed25519.NewKeyFromSeed(caSeed))
	ctx := t.Context()
	key, other := testKey(t), testKey(t)
	sign := func(k ssh.PublicKey, keyID string) error {
		_, err := svc.Sign(ctx, ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: keyID, PublicKey: k, Caller: ca.Admin("test")})
		return err
	}
	// Warm the service's cache.
	if err := sign(key, "alice-1"); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		rev  ca.Revocation
		key  ssh.PublicKey
		id   string
		rule string
	}{
		{ca.Revocation{CAType: "user", Key: key, Reason: "laptop stolen", Actor: "test"}, key, "alice-2", ca.RuleRevokedKey},
		{ca.Revocation{CAType: "user", KeyID: "bob", Reason: "left", Actor: "test", Force: true}, other, "bob", ca.RuleRevokedKeyID},
	} {
		if _, err := ca.Revoke(ctx, cliStore.(ca.RevocationStore), tc.rev, time.Now()); err != nil {
			t.Fatalf("%d: revoke: %v", i, err)
		}
		err := sign(tc.key, tc.id)
		var de *policy.DenyError
		if !errors.As(err, &de) || de.Rule != tc.rule {
			t.Fatalf("%d: after a revocation by another process: err = %v, want rule %s", i, err, tc.rule)
		}
	}
	if err := sign(other, "carol"); err != nil {
		t.Fatalf("an unrevoked key and key ID: %v", err)
	}
}
