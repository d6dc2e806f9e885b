// Package storetest is the conformance suite every store.Store backend must
// pass; backends call Run from their own tests with a constructor for an
// empty store. It only exercises the interface; it knows no backend.
package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// Opener returns a fresh, empty store. Each call must give an independent store.
type Opener func(t *testing.T) store.Store

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	t.Run("ok/serials-unique-nonzero-increasing", func(t *testing.T) { testSerials(t, open(t)) })
	t.Run("ok/serials-concurrent", func(t *testing.T) { testConcurrentSerials(t, open(t)) })
	t.Run("ok/cert-roundtrip", func(t *testing.T) { testCertRoundTrip(t, open(t)) })
	t.Run("ok/cert-lineage", func(t *testing.T) { testCertLineage(t, open(t)) })
	t.Run("ok/ca-keys", func(t *testing.T) { testCAKeys(t, open(t)) })
	t.Run("fail/ca-keys-two-active", func(t *testing.T) { testCAKeysTwoActive(t, open(t)) })
	t.Run("ok/revocations-idempotent", func(t *testing.T) { testRevocations(t, open(t)) })
	t.Run("ok/audit-chain", func(t *testing.T) { testAudit(t, open(t)) })
	runBatch(t, open)
	runRevocations(t, open)
	runConsole(t, open)
}

func ev(action string) audit.Entry {
	return audit.Entry{Time: time.Now(), Actor: "test", Action: action, Outcome: "ok"}
}

func rec(keyID string) *store.CertRecord {
	now := time.Now().Truncate(time.Second)
	return &store.CertRecord{CAType: "user", CAFingerprint: "SHA256:ca", Role: "deploy", KeyID: keyID, Principals: []string{"a", "b"},
		ValidAfter: now.Add(-5 * time.Minute), ValidBefore: now.Add(time.Hour), SubjectFingerprint: "SHA256:sub", SubjectType: "ssh-ed25519",
		Requester: "test", IssuedAt: now}
}

func testSerials(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	var last uint64
	for i := range 20 {
		s, err := Issue(ctx, st, rec(fmt.Sprint("id-", i)), ev(audit.ActionIssue))
		if err != nil {
			t.Fatal(err)
		}
		if s == 0 || s <= last {
			t.Fatalf("serial %d after %d", s, last)
		}
		last = s
	}
	max, err := st.MaxSerial(ctx)
	if err != nil || max != last {
		t.Fatalf("MaxSerial = %d, %v; want %d", max, err, last)
	}
	entries, err := st.AuditEntries(ctx, store.AuditFilter{Serial: last})
	if err != nil || len(entries) != 1 || entries[0].Serial != last {
		t.Fatalf("audit entry for serial %d: %v %v", last, entries, err)
	}
}

func testConcurrentSerials(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	const workers, each = 8, 25
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s, err := Issue(ctx, st, rec(fmt.Sprintf("w%d-%d", w, i)), ev(audit.ActionIssue))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if seen[s] {
					mu.Unlock()
					errs <- fmt.Errorf("serial %d issued twice", s)
					return
				}
				seen[s] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(seen) != workers*each {
		t.Fatalf("%d serials, want %d", len(seen), workers*each)
	}
	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != workers*each+1 {
		t.Fatalf("%d audit entries, want %d (the CA key's, then one per certificate)", len(entries), workers*each+1)
	}
	if err := audit.Verify(entries); err != nil {
		t.Fatal(err)
	}
}

func testCertRoundTrip(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	r := rec("alice")
	s, err := Issue(ctx, st, r, ev(audit.ActionIssue))
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.GetCert(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.Serial = s
	want.Cert = fmt.Sprintf("ssh-ed25519-cert-v01@openssh.com AAAA%d", s)
	if diff := cmp.Diff(want, *got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	if _, err := st.GetCert(ctx, s+1000); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetCert(missing) = %v, want ErrNotFound", err)
	}
	list, err := st.ListCerts(ctx, store.CertFilter{KeyID: "alice", ActiveAt: time.Now()})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListCerts active alice = %v, %v", list, err)
	}
	list, err = st.ListCerts(ctx, store.CertFilter{ActiveAt: time.Now().Add(2 * time.Hour)})
	if err != nil || len(list) != 0 {
		t.Fatalf("ListCerts in 2h = %v, %v", list, err)
	}
}

// testCertLineage: the lineage round-trips and selects certificates by identity.
func testCertLineage(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	auth := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	mk := func(keyID, requester string, lin store.Lineage) uint64 {
		r := rec(keyID)
		r.Requester, r.Lineage = requester, lin
		s, err := Issue(ctx, st, r, ev(audit.ActionIssue))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice := store.Lineage{Caller: "person", Identity: "alice", Groups: []string{"ops", "dev"}, MFA: true, AuthTime: auth}
	s1 := mk("k1", "oidc:alice", alice)
	renewed := alice
	renewed.Origin, renewed.Renews = s1, s1
	s2 := mk("k1", "oidc:alice", renewed)
	mk("k3", "oidc:al_ce", store.Lineage{Caller: "person", Identity: "al_ce", AuthTime: auth})
	mk("k4", "oidc:alice2", store.Lineage{Caller: "person", Identity: "alice2", AuthTime: auth})
	mk("k5", "cli:root", store.Lineage{})
	mk("k6", "token:alice", store.Lineage{}) // a record from before lineages

	got, err := st.GetCert(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(renewed, got.Lineage, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Fatalf("lineage round trip (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		identity string
		want     []string
	}{
		{"alice", []string{"k1", "k1", "k6"}},
		{"oidc:alice", []string{"k1", "k1"}},
		{"al_ce", []string{"k3"}}, // '_' is not a wildcard
		{"al%", nil},
		{"cli:root", []string{"k5"}},
		{"token:alice", []string{"k6"}},
		{"bob", nil},
	} {
		list, err := st.ListCerts(ctx, store.CertFilter{Identity: tc.identity})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range list {
			ids = append(ids, c.KeyID)
		}
		if diff := cmp.Diff(tc.want, ids); diff != "" {
			t.Errorf("ListCerts(identity %q) (-want +got):\n%s", tc.identity, diff)
		}
	}
}

func testCAKeys(t *testing.T, st store.Store) {
	ctx := t.Context()
	k := store.CAKey{CAType: "user", Generation: 1, State: store.StateActive, KeyType: "ed25519", Fingerprint: "SHA256:one", PublicKey: "ssh-ed25519 AAAA1", Signer: "file", File: "user-ca-1", CreatedAt: time.Now()}
	if err := st.AddCAKey(ctx, k, ev(audit.ActionInit)); err != nil {
		t.Fatal(err)
	}
	if err := st.AddCAKey(ctx, k, ev(audit.ActionInit)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate generation: %v, want ErrExists", err)
	}
	k2 := k
	k2.Generation, k2.State, k2.Fingerprint = 2, store.StateNext, "SHA256:two"
	if err := st.AddCAKey(ctx, k2, ev(audit.ActionCARotate)); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCAKeyStates(ctx, "user", map[int]string{1: store.StateRetiring, 2: store.StateActive}, ev(audit.ActionCAPromote)); err != nil {
		t.Fatal(err)
	}
	keys, err := st.ListCAKeys(ctx, "user")
	if err != nil || len(keys) != 2 || keys[0].State != store.StateRetiring || keys[1].State != store.StateActive {
		t.Fatalf("ListCAKeys = %+v, %v", keys, err)
	}
	if keys, _ := st.ListCAKeys(ctx, "host"); len(keys) != 0 {
		t.Fatalf("host keys = %v", keys)
	}
}

func testCAKeysTwoActive(t *testing.T, st store.Store) {
	ctx := t.Context()
	for g := 1; g <= 2; g++ {
		state := store.StateActive
		if g == 2 {
			state = store.StateNext
		}
		k := store.CAKey{CAType: "host", Generation: g, State: state, KeyType: "ed25519", Fingerprint: fmt.Sprint("SHA256:", g), PublicKey: "x", Signer: "file", File: "f"}
		if err := st.AddCAKey(ctx, k, ev(audit.ActionInit)); err != nil {
			t.Fatal(err)
		}
	}
	err := st.SetCAKeyStates(ctx, "host", map[int]string{2: store.StateActive}, ev(audit.ActionCAPromote))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("two active keys: %v, want ErrConflict", err)
	}
	keys, _ := st.ListCAKeys(ctx, "host")
	if keys[1].State != store.StateNext {
		t.Fatalf("failed update was not rolled back: %+v", keys)
	}
}

func testRevocations(t *testing.T, st store.Store) {
	ctx := t.Context()
	v0, err := st.KRLVersion(ctx, "user")
	if err != nil || v0 != 0 {
		t.Fatalf("initial KRL version %d, %v", v0, err)
	}
	r := store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: 5, Hi: 9, Reason: "test", Actor: "t", Expires: time.Now().Add(-time.Hour)}
	added, err := st.AddRevocation(ctx, r, ev(audit.ActionRevoke))
	if err != nil || !added {
		t.Fatalf("AddRevocation = %v, %v", added, err)
	}
	added, err = st.AddRevocation(ctx, r, ev(audit.ActionRevoke))
	if err != nil || added {
		t.Fatalf("second AddRevocation = %v, %v; want not added", added, err)
	}
	if _, err := st.AddRevocation(ctx, store.Revocation{CAType: "user", Kind: store.RevokeKeyID, KeyID: "alice", Actor: "t"}, ev(audit.ActionRevoke)); err != nil {
		t.Fatal(err)
	}
	v, _ := st.KRLVersion(ctx, "user")
	if v != 2 {
		t.Fatalf("KRL version %d after two changes, want 2", v)
	}
	if hv, _ := st.KRLVersion(ctx, "host"); hv != 0 {
		t.Fatalf("host KRL version %d, want 0", hv)
	}
	list, err := st.ListRevocations(ctx, "user")
	if err != nil || len(list) != 2 || list[0].Lo != 5 || list[0].Hi != 9 || list[1].KeyID != "alice" {
		t.Fatalf("ListRevocations = %+v, %v", list, err)
	}
	n, err := st.PruneRevocations(ctx, "user", time.Now(), ev(audit.ActionRevoke))
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if v, _ := st.KRLVersion(ctx, "user"); v != 3 {
		t.Fatalf("KRL version %d after prune, want 3", v)
	}
	entries, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionRevoke})
	if len(entries) != 3 {
		t.Fatalf("%d revoke audit entries, want 3 (two adds + prune; the duplicate records nothing)", len(entries))
	}
}

func testAudit(t *testing.T, st store.Store) {
	ctx := t.Context()
	for i := range 5 {
		e := ev(audit.ActionAdmin)
		e.Details = map[string]string{"i": fmt.Sprint(i)}
		got, err := st.Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != uint64(i+1) {
			t.Fatalf("seq %d, want %d", got.Seq, i+1)
		}
	}
	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(entries); err != nil {
		t.Fatal(err)
	}
	seq, hash, err := st.AuditHead(ctx)
	if err != nil || seq != 5 || hash != entries[4].Hash {
		t.Fatalf("head = %d %s %v", seq, hash, err)
	}
	if got, _ := st.AuditEntries(ctx, store.AuditFilter{Limit: 2}); len(got) != 2 {
		t.Fatalf("limit 2 gave %d", len(got))
	}
}
