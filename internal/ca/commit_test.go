package ca_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/signer"
	"github.com/sshca/sshca/internal/store"
)

// TestSignAfterRotationElsewhere: the authority caches the active CA key; a
// rotation committed by another process makes the batch transaction refuse
// the certificate signed with the old key, and Sign signs again with the new
// one. No certificate from the old key is recorded or returned.
func TestSignAfterRotationElsewhere(t *testing.T) {
	ctx := t.Context()
	_, k1, _ := ed25519.GenerateKey(rand.Reader)
	_, k2, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k1)
	s2, err := signer.FromKey(k2)
	if err != nil {
		t.Fatal(err)
	}
	fp2 := signer.Fingerprint(s2.PublicKey())
	a.LoadKey = func(_ context.Context, k store.CAKey) (ssh.Signer, error) {
		if k.Fingerprint == fp2 {
			return s2, nil
		}
		return signer.FromKey(k1)
	}
	req := ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "k", PublicKey: testKey(t), Caller: ca.Admin("test")}
	c1, err := a.Sign(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Rotate behind the authority's back (as `ca rotate --promote` in another process would).
	k := store.CAKey{CAType: "user", Generation: 2, State: store.StateNext, KeyType: "ed25519", Fingerprint: fp2,
		PublicKey: string(ssh.MarshalAuthorizedKey(s2.PublicKey())), Signer: "file", File: "y"}
	if err := st.AddCAKey(ctx, k, audit.Entry{Actor: "test", Action: audit.ActionCARotate, Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCAKeyStates(ctx, "user", map[int]string{1: store.StateRetiring, 2: store.StateActive},
		audit.Entry{Actor: "test", Action: audit.ActionCAPromote, Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	c2, err := a.Sign(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := signer.Fingerprint(c2.SignatureKey); got != fp2 {
		t.Fatalf("certificate after rotation signed by %s; want the new key %s", got, fp2)
	}
	if c2.Serial <= c1.Serial {
		t.Fatalf("serial %d after %d", c2.Serial, c1.Serial)
	}
	certs, err := st.ListCerts(ctx, store.CertFilter{})
	if err != nil || len(certs) != 2 || certs[1].CAFingerprint != fp2 || certs[1].Serial != c2.Serial {
		t.Fatalf("recorded certificates = %+v, %v; want 2, the second from the new key", certs, err)
	}
}

// TestSignManyBatch: SignMany records certificates and denials in one go,
// with distinct serials, one audit entry each, and bodies stored.
func TestSignManyBatch(t *testing.T) {
	ctx := t.Context()
	_, k1, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k1)
	var reqs []ca.Request
	for i := range 50 {
		r := ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "batch", PublicKey: testKey(t), Caller: ca.Admin("cli:test")}
		if i%10 == 3 {
			r.Principals = []string{"root"} // not granted by the role
		}
		reqs = append(reqs, r)
	}
	certs, errs, err := a.SignMany(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i := range reqs {
		if i%10 == 3 {
			var de *policy.DenyError
			if !errors.As(errs[i], &de) || certs[i] != nil {
				t.Fatalf("request %d: err %v, cert %v; want a policy denial", i, errs[i], certs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		c := certs[i]
		if seen[c.Serial] || c.Serial == 0 {
			t.Fatalf("serial %d repeated or zero", c.Serial)
		}
		seen[c.Serial] = true
		if err := (&ssh.CertChecker{SupportedCriticalOptions: []string{"source-address"}}).CheckCert("role-deploy", c); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		rec, err := st.GetCert(ctx, c.Serial)
		if err != nil || rec.Cert != string(ssh.MarshalAuthorizedKey(c)[:len(ssh.MarshalAuthorizedKey(c))-1]) {
			t.Fatalf("record of %d: %+v, %v", c.Serial, rec, err)
		}
	}
	issues, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionIssue})
	denies, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionDeny})
	if len(issues) != 45 || len(denies) != 5 {
		t.Fatalf("audit: %d issues, %d denials; want 45 and 5", len(issues), len(denies))
	}
}

// TestGroupCommitConcurrent: many concurrent Sign calls share transactions
// yet each returns only after its own record is durable and in the chain.
func TestGroupCommitConcurrent(t *testing.T) {
	ctx := t.Context()
	_, k1, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k1)
	const workers, each = 32, 20
	var wg sync.WaitGroup
	serials := make(chan uint64, workers*each)
	errc := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				c, err := a.Sign(ctx, ca.Request{Type: policy.UserCert, Role: "deploy", KeyID: "gc", PublicKey: testKey(t), Caller: ca.Admin("test")})
				if err != nil {
					errc <- err
					return
				}
				// Returned means recorded: the row must be readable now.
				if _, err := st.GetCert(ctx, c.Serial); err != nil {
					errc <- err
					return
				}
				serials <- c.Serial
			}
		}()
	}
	wg.Wait()
	close(serials)
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for s := range serials {
		if seen[s] {
			t.Fatalf("serial %d issued twice", s)
		}
		seen[s] = true
	}
	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(entries); err != nil {
		t.Fatal(err)
	}
	if n := len(seen); n != workers*each {
		t.Fatalf("%d certificates; want %d", n, workers*each)
	}
}
