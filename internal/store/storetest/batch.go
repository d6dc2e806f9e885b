package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// runBatch is the part of the suite about serial blocks and group commit.
func runBatch(t *testing.T, open Opener) {
	t.Run("ok/reserve-serials-disjoint", func(t *testing.T) { testReserve(t, open(t)) })
	t.Run("ok/commit-batch", func(t *testing.T) { testCommitBatch(t, open(t)) })
	t.Run("fail/commit-batch-inactive-ca-key", func(t *testing.T) { testBatchInactiveKey(t, open(t)) })
	t.Run("fail/commit-batch-duplicate-serial", func(t *testing.T) { testBatchDuplicate(t, open(t)) })
	t.Run("fail/commit-batch-renewal-of-revoked", func(t *testing.T) { testBatchRenewalRevoked(t, open(t)) })
}

// AddActiveKey records an active user CA key generation 1 with fingerprint
// fp, which CommitBatch requires of the certificates it records.
func AddActiveKey(t testing.TB, st store.Store, fp string) {
	t.Helper()
	k := store.CAKey{CAType: "user", Generation: 1, State: store.StateActive, KeyType: "ed25519", Fingerprint: fp,
		PublicKey: "ssh-ed25519 AAAA", Signer: "file", File: "user-ca-1"}
	if err := st.AddCAKey(t.Context(), k, ev(audit.ActionInit)); err != nil {
		t.Fatal(err)
	}
}

// testReserve: concurrent reservations and single issues never overlap, never give 0.
func testReserve(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				n := 1 + (w+i)%7
				first, err := st.ReserveSerials(ctx, n)
				if err == nil && w%2 == 0 {
					var s uint64
					s, err = Issue(ctx, st, rec(fmt.Sprintf("w%d-%d", w, i)), ev(audit.ActionIssue))
					mu.Lock()
					if seen[s] || s == 0 {
						err = fmt.Errorf("Issue: serial %d handed out twice or zero", s)
					}
					seen[s] = true
					mu.Unlock()
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for s := first; s < first+uint64(n); s++ {
					if s == 0 || seen[s] {
						mu.Unlock()
						errs <- fmt.Errorf("serial %d reserved twice or zero", s)
						return
					}
					seen[s] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := st.ReserveSerials(ctx, 0); err == nil {
		t.Fatal("ReserveSerials(0) succeeded")
	}
}

func signedRec(keyID, fp string, serial uint64) *store.CertRecord {
	r := rec(keyID)
	r.CAFingerprint, r.Serial, r.Cert = fp, serial, fmt.Sprintf("ssh-ed25519-cert-v01@openssh.com AAAA%d", serial)
	return r
}

// testCommitBatch: a batch of certificates and denials lands in order with
// one chained audit entry each, and the certificate rows carry their bodies.
func testCommitBatch(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	first, err := st.ReserveSerials(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	var items []store.BatchItem
	for i := range 300 { // more than one multi-row INSERT
		items = append(items, store.BatchItem{Cert: signedRec(fmt.Sprint("b", i), "SHA256:ca", first+uint64(i)), Event: ev(audit.ActionIssue)})
		if i%100 == 0 {
			d := ev(audit.ActionDeny)
			d.Outcome, d.Reason = "denied", "policy: test"
			items = append(items, store.BatchItem{Event: d})
		}
	}
	errs, err := st.CommitBatch(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range errs {
		if e != nil {
			t.Fatalf("item %d: %v", i, e)
		}
	}
	certs, err := st.ListCerts(ctx, store.CertFilter{})
	if err != nil || len(certs) != 300 {
		t.Fatalf("ListCerts = %d, %v; want 300", len(certs), err)
	}
	for i, c := range certs {
		if c.Serial != first+uint64(i) || c.Cert == "" || c.KeyID != fmt.Sprint("b", i) {
			t.Fatalf("cert %d = serial %d key ID %q body %q", i, c.Serial, c.KeyID, c.Cert)
		}
	}
	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(entries); err != nil {
		t.Fatal(err)
	}
	issues, denies := 0, 0
	for _, e := range entries {
		switch e.Action {
		case audit.ActionIssue:
			if e.Serial != first+uint64(issues) {
				t.Fatalf("issue entry %d has serial %d, want %d", e.Seq, e.Serial, first+uint64(issues))
			}
			issues++
		case audit.ActionDeny:
			denies++
		}
	}
	if issues != 300 || denies != 3 {
		t.Fatalf("audit has %d issues and %d denials; want 300 and 3", issues, denies)
	}
	if seq, _, err := st.AuditHead(ctx); err != nil || seq != entries[len(entries)-1].Seq {
		t.Fatalf("AuditHead = %d, %v; want %d", seq, err, entries[len(entries)-1].Seq)
	}
}

// testBatchInactiveKey: an item signed by a key that is not active is left
// out with ErrCAKeyNotActive; the rest of the batch is recorded.
func testBatchInactiveKey(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	first, err := st.ReserveSerials(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	items := []store.BatchItem{
		{Cert: signedRec("good", "SHA256:ca", first), Event: ev(audit.ActionIssue)},
		{Cert: signedRec("old-key", "SHA256:retired", first+1), Event: ev(audit.ActionIssue)},
		{Cert: signedRec("good2", "SHA256:ca", first+2), Event: ev(audit.ActionIssue)},
	}
	errs, err := st.CommitBatch(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], store.ErrCAKeyNotActive) {
		t.Fatalf("errs = %v; want only item 1 refused with ErrCAKeyNotActive", errs)
	}
	if _, err := st.GetCert(ctx, first+1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused certificate was recorded: %v", err)
	}
	entries, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionIssue})
	if len(entries) != 2 {
		t.Fatalf("%d issue entries; want 2", len(entries))
	}
}

// testBatchDuplicate: a serial recorded twice fails the whole batch, which
// then records nothing.
func testBatchDuplicate(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	first, err := st.ReserveSerials(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CommitBatch(ctx, []store.BatchItem{{Cert: signedRec("a", "SHA256:ca", first), Event: ev(audit.ActionIssue)}}); err != nil {
		t.Fatal(err)
	}
	seq, _, _ := st.AuditHead(ctx)
	_, err = st.CommitBatch(ctx, []store.BatchItem{
		{Event: ev(audit.ActionDeny)},
		{Cert: signedRec("b", "SHA256:ca", first), Event: ev(audit.ActionIssue)},
	})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate serial: err = %v; want ErrExists", err)
	}
	if seq2, _, _ := st.AuditHead(ctx); seq2 != seq {
		t.Fatalf("audit head moved from %d to %d after a failed batch", seq, seq2)
	}
	if _, err := st.CommitBatch(ctx, []store.BatchItem{{Cert: signedRec("c", "SHA256:ca", 0), Event: ev(audit.ActionIssue)}}); err == nil {
		t.Fatal("certificate with serial 0 was accepted")
	}
}

// Issue records rec (its CA key must be active: see AddActiveKey) with a
// fresh serial, a placeholder certificate body and ev, as the authority
// does, and returns the serial.
func Issue(ctx context.Context, st store.Store, rec *store.CertRecord, ev audit.Entry) (uint64, error) {
	serial, err := st.ReserveSerials(ctx, 1)
	if err != nil {
		return 0, err
	}
	r := *rec
	r.Serial, r.Cert = serial, fmt.Sprintf("ssh-ed25519-cert-v01@openssh.com AAAA%d", serial)
	errs, err := st.CommitBatch(ctx, []store.BatchItem{{Cert: &r, Event: ev}})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		return 0, err
	}
	rec.Serial = serial
	return serial, nil
}

// testBatchRenewalRevoked: a renewal is not recorded once the certificate
// it renews has been revoked by serial, even if it was signed before.
func testBatchRenewalRevoked(t *testing.T, st store.Store) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	first, err := st.ReserveSerials(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	renewal := func(serial, renews uint64) store.BatchItem {
		r := signedRec("k", "SHA256:ca", serial)
		r.Lineage = store.Lineage{Caller: "person", Identity: "alice", Origin: renews, Renews: renews}
		return store.BatchItem{Cert: r, Event: ev(audit.ActionIssue)}
	}
	rev := store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: 1000, Hi: 2000, Actor: "t", CreatedAt: time.Now()}
	if _, err := st.AddRevocation(ctx, rev, ev(audit.ActionRevoke)); err != nil {
		t.Fatal(err)
	}
	errs, err := st.CommitBatch(ctx, []store.BatchItem{renewal(first, 1500), renewal(first+1, 5000)})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], store.ErrRenewedRevoked) {
		t.Errorf("renewal of revoked serial 1500: %v, want ErrRenewedRevoked", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("renewal of a live serial: %v", errs[1])
	}
	if _, err := st.GetCert(ctx, first); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused renewal was recorded: %v", err)
	}
	if _, err := st.GetCert(ctx, first+1); err != nil {
		t.Errorf("the allowed renewal was not recorded: %v", err)
	}
}
