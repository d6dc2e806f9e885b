package ca_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// failingStore fails its CommitBatch call numbered failAt (from 1).
type failingStore struct {
	ca.Store
	calls  atomic.Int32
	failAt int32
}

var errInjected = errors.New("injected: disk full")

func (f *failingStore) CommitBatch(ctx context.Context, items []store.BatchItem) ([]error, error) {
	if f.calls.Add(1) == f.failAt {
		return nil, errInjected
	}
	return f.Store.CommitBatch(ctx, items)
}

// TestCommitFailsPartWay: a batch larger than one transaction whose second
// transaction fails keeps the certificates the first recorded — returned
// as issued, recorded in the store — and refuses the rest with the
// failure; one whose first transaction fails records nothing and returns
// the failure.
func TestCommitFailsPartWay(t *testing.T) {
	ctx := t.Context()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k)
	const first = 1024 // one transaction's worth (ca.maxBatch)
	var reqs []ca.Request
	for range first + 76 {
		reqs = append(reqs, ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "partial", PublicKey: testKey(t), Caller: ca.Admin("cli:test")})
	}
	a.Store = &failingStore{Store: st.(ca.Store), failAt: 2}
	b, err := a.PrepareMany(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	certs, errs, err := b.Commit(ctx)
	if err != nil {
		t.Fatalf("Commit: %v; want the first transaction's certificates issued", err)
	}
	for i := range reqs {
		switch {
		case i < first && (errs[i] != nil || certs[i] == nil):
			t.Fatalf("request %d, recorded before the failure: %v", i, errs[i])
		case i >= first && (!errors.Is(errs[i], errInjected) || certs[i] != nil):
			t.Fatalf("request %d, after the failure: cert %v, err %v; want the failure", i, certs[i], errs[i])
		}
	}
	if recs, err := st.ListCerts(ctx, store.CertFilter{}); err != nil || len(recs) != first {
		t.Fatalf("%d certificates recorded (%v); want %d", len(recs), err, first)
	}

	a.Store = &failingStore{Store: st.(ca.Store), failAt: 1}
	b, err = a.PrepareMany(ctx, reqs[:3])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Commit(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("first transaction failed: %v; want it as Commit's error", err)
	}
	if recs, _ := st.ListCerts(ctx, store.CertFilter{}); len(recs) != first {
		t.Fatalf("%d certificates recorded after a batch that recorded nothing; want %d", len(recs), first)
	}
}
