package ca_test

import (
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// TestPruneExpired revokes certificates of which some have long expired and
// checks that pruning drops exactly those, bumps the KRL version, and leaves
// the remaining serials revoked.
func TestPruneExpired(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), ed25519.NewKeyFromSeed(caSeed))
	rs := st.(ca.RevocationStore)
	key := testKey(t)
	sign := func(at time.Time, ttl time.Duration) uint64 {
		a.Now = func() time.Time { return at }
		c, err := a.Sign(t.Context(), ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "k", TTL: ttl, PublicKey: key, Caller: ca.Admin("t")})
		if err != nil {
			t.Fatal(err)
		}
		return c.Serial
	}
	old1 := sign(now.Add(-5*time.Hour), time.Hour)      // expired 4h ago
	old2 := sign(now.Add(-5*time.Hour), time.Hour)      // expired 4h ago
	recent := sign(now.Add(-90*time.Minute), time.Hour) // expired 30m ago: within the grace
	live := sign(now, 2*time.Hour)
	for _, s := range []uint64{old1, recent, live} {
		if _, err := ca.Revoke(t.Context(), rs, ca.Revocation{CAType: "user", Lo: s, Hi: s, Actor: "t"}, now); err != nil {
			t.Fatal(err)
		}
	}
	// old2 is revoked through a range together with old1.
	if _, err := ca.Revoke(t.Context(), rs, ca.Revocation{CAType: "user", Lo: old1, Hi: old2, Actor: "t"}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Revoke(t.Context(), rs, ca.Revocation{CAType: "user", Lo: 999, Hi: 999, Actor: "t"}, now); !errors.Is(err, ca.ErrNeverIssued) {
		t.Fatalf("never-issued serial: %v", err)
	}
	if _, err := ca.Revoke(t.Context(), rs, ca.Revocation{CAType: "user", Lo: 999, Hi: 999, Force: true, Actor: "t"}, now); err != nil {
		t.Fatalf("forced serial: %v", err)
	}
	v0, _ := rs.KRLVersion(t.Context(), "user")
	n, err := ca.PruneExpired(t.Context(), rs, "user", "t", now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("pruned %d, want 2 (old1 alone and the old1-old2 range)", n)
	}
	if v, _ := rs.KRLVersion(t.Context(), "user"); v != v0+1 {
		t.Fatalf("KRL version %d after prune, want %d", v, v0+1)
	}
	k, err := ca.BuildKRL(t.Context(), rs, "user", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.MarshalKRL(k); err != nil {
		t.Fatal(err)
	}
	got := k.Certs[0].Serials
	want := map[uint64]bool{recent: true, live: true, 999: true}
	seen := map[uint64]bool{}
	for _, r := range got {
		for s := r.Lo; s <= r.Hi; s++ {
			seen[s] = true
		}
	}
	for s := range want {
		if !seen[s] {
			t.Errorf("serial %d no longer revoked after prune (KRL serials %v)", s, got)
		}
	}
	for _, s := range []uint64{old1, old2} {
		if seen[s] {
			t.Errorf("expired serial %d still in the KRL", s)
		}
	}
	revs, _ := rs.ListRevocations(t.Context(), "user")
	for _, r := range revs {
		if r.Kind != store.RevokeSerial {
			t.Errorf("unexpected revocation %+v", r)
		}
	}
}
