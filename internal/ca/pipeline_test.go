package ca_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/certwire"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// failingStore counts CommitBatch calls and fails the one numbered failAt
// (from 1; 0: none).
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

func pipelineRequests(t *testing.T, n int, deny func(i int) bool) []ca.Request {
	var reqs []ca.Request
	for i := range n {
		r := ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "pipe", PublicKey: testKey(t), Caller: ca.Admin("cli:test")}
		if deny(i) {
			r.Principals = []string{"root"} // not granted by the role
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// TestCommitSigningChunks: DecideMany + CommitSigning issue what
// SignMany would — each allowed request one verified
// certificate with a distinct serial, recorded with its audit entry, each
// refusal recorded — in a transaction per chunk, handing every signed
// certificate's line to the caller, in order, once.
func TestCommitSigningChunks(t *testing.T) {
	ctx := t.Context()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k)
	fs := &failingStore{Store: a.Store}
	a.Store = fs
	ca.SetPipeChunk(t, 4)
	denied := func(i int) bool { return i%7 == 2 }
	reqs := pipelineRequests(t, 23, denied)

	b, err := a.DecideMany(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[int]string{}
	last := -1
	certs, errs, err := b.CommitSigning(ctx, func(i int, line string) {
		if i <= last {
			t.Errorf("line for request %d after %d", i, last)
		}
		last = i
		lines[i] = line
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := fs.calls.Load(); n != 6 {
		t.Errorf("%d transactions for 23 requests in chunks of 4; want 6", n)
	}
	serials := map[uint64]bool{}
	for i := range reqs {
		if denied(i) {
			var de *policy.DenyError
			if !errors.As(errs[i], &de) || certs[i] != nil || lines[i] != "" {
				t.Fatalf("request %d: err %v, cert %v, line %q; want a policy denial and nothing signed", i, errs[i], certs[i], lines[i])
			}
			continue
		}
		c := certs[i]
		if errs[i] != nil || c == nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if err := (&ssh.CertChecker{SupportedCriticalOptions: []string{"source-address"}}).CheckCert("role-deploy", c); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if c.Serial == 0 || serials[c.Serial] {
			t.Fatalf("serial %d zero or repeated", c.Serial)
		}
		serials[c.Serial] = true
		if lines[i] != certwire.Line(c) {
			t.Fatalf("request %d: line handed out %q, certificate issued %q", i, lines[i], certwire.Line(c))
		}
		rec, err := st.GetCert(ctx, c.Serial)
		if err != nil || rec.Cert != lines[i] {
			t.Fatalf("record of %d: %+v, %v", c.Serial, rec, err)
		}
	}
	issues, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionIssue})
	denies, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionDeny})
	if len(issues) != 20 || len(denies) != 3 {
		t.Fatalf("audit: %d issues, %d denials; want 20 and 3", len(issues), len(denies))
	}
	if _, _, err := b.CommitSigning(ctx, nil); err == nil {
		t.Fatal("a batch signed twice")
	}
}

// TestCommitSigningFailsPartWay: a transaction that fails after others
// were recorded leaves their certificates issued and refuses every later
// one with its error, none of them recorded; one that fails first records
// nothing and is the call's error.
func TestCommitSigningFailsPartWay(t *testing.T) {
	ctx := t.Context()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k)
	fs := &failingStore{Store: a.Store, failAt: 3}
	a.Store = fs
	ca.SetPipeChunk(t, 4)
	reqs := pipelineRequests(t, 20, func(int) bool { return false })
	b, err := a.DecideMany(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	certs, errs, err := b.CommitSigning(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		switch {
		case i < 8 && (errs[i] != nil || certs[i] == nil):
			t.Fatalf("request %d, recorded before the failure: %v", i, errs[i])
		case i >= 8 && (!errors.Is(errs[i], errInjected) || certs[i] != nil):
			t.Fatalf("request %d, after the failure: cert %v, err %v; want the transaction's error", i, certs[i], errs[i])
		}
	}
	recs, err := st.ListCerts(ctx, store.CertFilter{})
	if err != nil || len(recs) != 8 {
		t.Fatalf("%d certificates recorded (%v); want the 8 of the first two chunks", len(recs), err)
	}
	if n := fs.calls.Load(); n != 3 {
		t.Errorf("%d transactions; want none after the one that failed", n)
	}

	fs2 := &failingStore{Store: st.(ca.Store), failAt: 1}
	a.Store = fs2
	b, err = a.DecideMany(ctx, reqs[:6])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.CommitSigning(ctx, nil); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "record certificates") {
		t.Fatalf("first transaction failed: err %v; want it as the call's error", err)
	}
	if recs, _ := st.ListCerts(ctx, store.CertFilter{}); len(recs) != 8 {
		t.Fatalf("%d certificates recorded after a batch that recorded nothing; want 8", len(recs))
	}
}
