package ca_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
)

// foreignCA returns the public key of a fresh CA that is not this home's.
func foreignCA(t *testing.T) ssh.PublicKey {
	t.Helper()
	return testkit.NewSigner(t).PublicKey()
}

// TestRevokeAllMatchesRevoke records the same requests with RevokeAll and
// with Revoke one by one, and checks that both give the same rows, the
// same audit details, the same KRL and a consistent audit log.
func TestRevokeAllMatchesRevoke(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	a1, st1 := newAuthority(t, filepath.Join(dir, "one"), ed25519.NewKeyFromSeed(caSeed))
	a2, st2 := newAuthority(t, filepath.Join(dir, "all"), ed25519.NewKeyFromSeed(caSeed))
	key := testKey(t)
	var serials []uint64
	for _, a := range []*ca.Authority{a1, a2} {
		a.Now = func() time.Time { return now.Add(-time.Hour) }
		serials = serials[:0]
		for range 4 {
			c, err := a.Sign(t.Context(), ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "alice", TTL: 2 * time.Hour, PublicKey: key, Caller: ca.Admin("t")})
			if err != nil {
				t.Fatal(err)
			}
			serials = append(serials, c.Serial)
		}
	}
	caB, caA := foreignCA(t), foreignCA(t)
	plain := testKey(t)
	sum256 := sha256.Sum256(testKey(t).Marshal())
	sum1 := sha1.Sum(testKey(t).Marshal())
	base := ca.Revocation{CAType: "user", Reason: "test", Actor: "t"}
	req := func(f func(r *ca.Revocation)) ca.Revocation {
		r := base
		f(&r)
		return r
	}
	rs := []ca.Revocation{
		req(func(r *ca.Revocation) { r.Lo, r.Hi = serials[3], serials[3] }),
		req(func(r *ca.Revocation) { r.Scope, r.Lo, r.Hi = caB, 500, 500 }), // caB appears before caA
		req(func(r *ca.Revocation) { r.Lo, r.Hi = serials[0], serials[1] }),
		req(func(r *ca.Revocation) { r.Scope, r.Lo, r.Hi = caA, 7, 9 }),
		req(func(r *ca.Revocation) { r.Lo, r.Hi, r.Force = 1000, 1000, true }),
		req(func(r *ca.Revocation) { r.KeyID = "alice" }),
		req(func(r *ca.Revocation) { r.Scope, r.KeyID = caA, "bob" }),
		req(func(r *ca.Revocation) { r.Key = plain }),
		req(func(r *ca.Revocation) { r.SHA256 = sum256[:] }),
		req(func(r *ca.Revocation) { r.SHA1 = sum1[:] }),
		req(func(r *ca.Revocation) { r.CAKey = foreignCA(t) }),
		req(func(r *ca.Revocation) { r.Scope, r.Lo, r.Hi = caB, 600, 601 }),
		req(func(r *ca.Revocation) { r.Lo, r.Hi = serials[3], serials[3] }), // duplicates
		req(func(r *ca.Revocation) { r.Key = plain }),
		{CAType: "host", Lo: 4, Hi: 4, Force: true, Actor: "t"},
	}

	rst1, rst2 := st1.(ca.RevocationStore), st2.(ca.RevocationStore)
	// Already recorded before the batch: neither new nor audited again.
	for _, st := range []ca.RevocationStore{rst1, rst2} {
		if _, err := ca.Revoke(t.Context(), st, rs[2], now); err != nil {
			t.Fatal(err)
		}
	}
	one := 0
	for _, r := range rs {
		added, err := ca.Revoke(t.Context(), rst1, r, now)
		if err != nil {
			t.Fatal(err)
		}
		if added {
			one++
		}
	}
	all, err := ca.RevokeAll(t.Context(), rst2, rs, now)
	if err != nil {
		t.Fatal(err)
	}
	if all != one || all != len(rs)-3 {
		t.Fatalf("RevokeAll: %d new, Revoke: %d new; want %d", all, one, len(rs)-3)
	}
	if v, _ := rst2.KRLVersion(t.Context(), "user"); v != 2 {
		t.Errorf("user KRL version %d after one revocation and one batch, want 2", v)
	}

	rows := func(st ca.RevocationStore) []store.Revocation {
		var out []store.Revocation
		for _, typ := range []string{"user", "host"} {
			list, err := st.ListRevocations(t.Context(), typ)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range list {
				r.ID = 0
				out = append(out, r)
			}
		}
		slices.SortFunc(out, func(a, b store.Revocation) int { return strings.Compare(a.Digest(), b.Digest()) })
		return out
	}
	if diff := cmp.Diff(rows(rst1), rows(rst2)); diff != "" {
		t.Errorf("rows (-Revoke +RevokeAll):\n%s", diff)
	}
	details := func(st store.Store) []audit.Entry {
		entries, err := st.AuditEntries(t.Context(), store.AuditFilter{Action: audit.ActionRevoke})
		if err != nil {
			t.Fatal(err)
		}
		for i := range entries {
			e := &entries[i]
			if e.Details["revocation_id"] == "" || e.Details["revocation"] == "" {
				t.Errorf("entry %d does not name its revocation: %v", e.Seq, e.Details)
			}
			// The row seal is keyed by the row's ID, which differs between
			// the stores: it must be there, its content is the row's.
			id, _ := strconv.ParseInt(e.Details["revocation_id"], 10, 64)
			if _, ok := e.Details[store.RevocationRowKey(id)]; !ok {
				t.Errorf("entry %d does not seal its revocation: %v", e.Seq, e.Details)
			}
			delete(e.Details, store.RevocationRowKey(id))
			delete(e.Details, "revocation_id")
			e.Seq, e.Hash, e.PrevHash = 0, "", ""
		}
		slices.SortFunc(entries, func(a, b audit.Entry) int { return strings.Compare(a.Details["revocation"], b.Details["revocation"]) })
		return entries
	}
	if diff := cmp.Diff(details(st1), details(st2)); diff != "" {
		t.Errorf("audit entries (-Revoke +RevokeAll):\n%s", diff)
	}

	krlOf := func(st ca.RevocationStore) []byte {
		k, err := ca.BuildKRL(t.Context(), st, "user", now)
		if err != nil {
			t.Fatal(err)
		}
		k.Version = 0
		b, err := ca.MarshalKRL(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Equal(krlOf(rst1), krlOf(rst2)) {
		t.Error("the KRL after RevokeAll differs from the KRL after Revoke one by one")
	}

	entries, err := st2.AuditEntries(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(entries); err != nil {
		t.Fatal(err)
	}
	problems, err := ca.CheckConsistency(t.Context(), st2.(ca.ConsistencyStore), entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		// The test's CA keys are added without the entry init writes.
		if strings.Contains(p, "revocation") {
			t.Errorf("audit consistency after RevokeAll: %s", p)
		}
	}
}

// TestRevokeAllRefusesAll checks that one bad request records nothing.
func TestRevokeAllRefusesAll(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	_, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), ed25519.NewKeyFromSeed(caSeed))
	rst := st.(ca.RevocationStore)
	rs := []ca.Revocation{
		{CAType: "user", Lo: 5, Hi: 5, Force: true, Actor: "t"},
		{CAType: "user", KeyID: "nobody", Actor: "t"}, // never issued, no --force
	}
	if _, err := ca.RevokeAll(t.Context(), rst, rs, now); !errors.Is(err, ca.ErrNeverIssued) {
		t.Fatalf("RevokeAll = %v, want ErrNeverIssued", err)
	}
	if list, _ := rst.ListRevocations(t.Context(), "user"); len(list) != 0 {
		t.Fatalf("a refused batch recorded %d revocations", len(list))
	}
	if v, _ := rst.KRLVersion(t.Context(), "user"); v != 0 {
		t.Fatalf("a refused batch bumped the KRL version to %d", v)
	}
}

// TestRevokeAllChunks records more than one chunk: the KRL version rises
// once per chunk and every revocation is in the KRL.
func TestRevokeAllChunks(t *testing.T) {
	if testing.Short() {
		t.Skip("records over 10^4 revocations")
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	_, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), ed25519.NewKeyFromSeed(caSeed))
	rst := st.(ca.RevocationStore)
	other := foreignCA(t)
	n := ca.RevokeChunk + 50
	rs := make([]ca.Revocation, n)
	for i := range rs {
		// Shuffled, as lines of a spec appended over the years are.
		s := uint64((i*7919)%n)*3 + 1
		rs[i] = ca.Revocation{CAType: "user", Scope: other, Lo: s, Hi: s, Actor: "t"}
	}
	added, err := ca.RevokeAll(t.Context(), rst, rs, now)
	if err != nil || added != n {
		t.Fatalf("RevokeAll = %d, %v; want %d", added, err, n)
	}
	if v, _ := rst.KRLVersion(t.Context(), "user"); v != 2 {
		t.Errorf("KRL version %d after two chunks, want 2", v)
	}
	k, err := ca.BuildKRL(t.Context(), rst, "user", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Certs) != 1 || len(k.Certs[0].Serials) != n {
		t.Fatalf("KRL has %d sections, want 1 with %d serials", len(k.Certs), n)
	}
	entries, _ := st.AuditEntries(t.Context(), store.AuditFilter{Action: audit.ActionRevoke})
	if len(entries) != n {
		t.Fatalf("%d revoke audit entries, want %d", len(entries), n)
	}
}
