package ca_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
)

// tokenStore is the part of the SQLite store that keeps API tokens.
type tokenStore interface {
	CreateToken(ctx context.Context, t store.Token, ev audit.Entry) error
	RevokeToken(ctx context.Context, id string, at time.Time, ev audit.Entry) error
	GetToken(ctx context.Context, id string) (*store.Token, error)
}

// newStoredToken creates an API token in st and returns its caller.
func newStoredToken(t *testing.T, st store.Store, name, kind string, roles, principals []string) (policy.Caller, store.Token) {
	t.Helper()
	now := time.Now()
	_, tok, err := ca.NewToken(name, kind, roles, principals, "test", now.Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.(tokenStore).CreateToken(t.Context(), tok, audit.Entry{Time: now, Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token created"}); err != nil {
		t.Fatal(err)
	}
	return policy.TokenCaller(ca.PolicyToken(&tok), now), tok
}

// TestSignManyRefusesWhatOnlySignDecides: the batch path decides with the
// access decision alone, so a request that Sign treats beyond it — a TOTP
// code to verify, an enrollment token to spend — is refused, per request,
// with rule batch-unsupported, recorded like any denial; nothing is signed
// for it, no factor is spent and the enrollment token stays unused.
func TestSignManyRefusesWhatOnlySignDecides(t *testing.T) {
	ctx := t.Context()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k)
	enrollCaller, enrollTok := newStoredToken(t, st, "web1", store.TokenEnroll, []string{"servers"}, []string{"web1.corp"})

	reqs := []ca.Request{
		{Type: policy.UserCert, Role: "deploy", KeyID: "ok", PublicKey: testKey(t), Caller: ca.Admin("test")},
		// Admin would be allowed by the decision alone: the code must not be ignored.
		{Type: policy.UserCert, Role: "deploy", KeyID: "with-totp", PublicKey: testKey(t), Caller: ca.Admin("test"), TOTP: "123456"},
		// The decision alone allows the token's host: it must not skip spending the token.
		{Type: policy.HostCert, Role: "servers", KeyID: "enroll", Principals: []string{"web1.corp"}, PublicKey: testKey(t), Caller: enrollCaller},
	}
	serialBefore, err := st.MaxSerial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	certs, errs, err := a.SignMany(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || certs[0] == nil {
		t.Fatalf("plain request: %v", errs[0])
	}
	for i := 1; i < len(reqs); i++ {
		var de *policy.DenyError
		if !errors.As(errs[i], &de) || de.Rule != ca.RuleBatchUnsupported || certs[i] != nil {
			t.Errorf("request %d (%s): cert %v, err %v; want a %s denial", i, reqs[i].KeyID, certs[i], errs[i], ca.RuleBatchUnsupported)
		}
	}
	if serialAfter, _ := st.MaxSerial(ctx); serialAfter != serialBefore+1 {
		t.Errorf("serials %d -> %d; want exactly one for the one certificate", serialBefore, serialAfter)
	}
	recs, err := st.ListCerts(ctx, store.CertFilter{})
	if err != nil || len(recs) != 1 || recs[0].KeyID != "ok" {
		t.Fatalf("recorded certificates %+v (%v); want only the plain one", recs, err)
	}
	denies, err := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionDeny})
	if err != nil {
		t.Fatal(err)
	}
	if len(denies) != 2 {
		t.Fatalf("%d denials recorded, want 2: %+v", len(denies), denies)
	}
	for _, e := range denies {
		if !strings.HasPrefix(e.Reason, ca.RuleBatchUnsupported+": ") || e.Outcome != "denied" {
			t.Errorf("denial %+v: want reason %s: ...", e, ca.RuleBatchUnsupported)
		}
	}
	if tok, err := st.(tokenStore).GetToken(ctx, enrollTok.ID); err != nil || !tok.UsedAt.IsZero() {
		t.Fatalf("enrollment token after the batch: %+v, %v; want it unspent", tok, err)
	}
	// The token still does what it is for, through the one-request path.
	if _, err := a.Sign(ctx, reqs[2]); err != nil {
		t.Fatalf("enrollment by a single request after the batch: %v", err)
	}
	if tok, _ := st.(tokenStore).GetToken(ctx, enrollTok.ID); tok.UsedAt.IsZero() {
		t.Fatal("single enrollment did not spend the token")
	}
}

// TestSignManyTokenRevokedMeanwhile: a role token revoked between the
// decision (a cached copy) and the recording is refused at recording, and
// that refusal is in the audit log as Sign records it (token-invalid).
func TestSignManyTokenRevokedMeanwhile(t *testing.T) {
	ctx := t.Context()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k)
	caller, tok := newStoredToken(t, st, "ci", store.TokenRole, []string{"deploy"}, nil)
	if err := st.(tokenStore).RevokeToken(ctx, tok.ID, time.Now().Add(-time.Second), audit.Entry{Time: time.Now(), Actor: "test", Action: audit.ActionToken, Outcome: "ok", Reason: "token revoked"}); err != nil {
		t.Fatal(err)
	}
	reqs := []ca.Request{
		{Type: policy.UserCert, Role: "deploy", PublicKey: testKey(t), Caller: caller},
		{Type: policy.UserCert, Role: "deploy", PublicKey: testKey(t), Caller: caller},
	}
	certs, errs, err := a.SignMany(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		if certs[i] != nil || !errors.Is(errs[i], store.ErrTokenInvalid) {
			t.Errorf("request %d: cert %v, err %v; want ErrTokenInvalid", i, certs[i], errs[i])
		}
	}
	denies, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionDeny})
	if len(denies) != 2 {
		t.Fatalf("%d denials recorded, want 2", len(denies))
	}
	for _, e := range denies {
		if !strings.HasPrefix(e.Reason, "token-invalid: ") || e.Actor != "token:ci" {
			t.Errorf("denial %+v: want token-invalid by token:ci", e)
		}
	}
	if recs, _ := st.ListCerts(ctx, store.CertFilter{}); len(recs) != 0 {
		t.Errorf("%d certificates recorded, want none", len(recs))
	}
}

// revokeBeforeCommit is a store that revokes a key just before the first
// transaction recording a certificate: a revocation that comes in between
// a batch's check and its recording.
type revokeBeforeCommit struct {
	ca.Store
	krl  ca.RevocationStore
	key  ssh.PublicKey
	done bool
}

func (s *revokeBeforeCommit) EachRevocation(ctx context.Context, caType string, fn func(store.Revocation) error) error {
	return s.krl.EachRevocation(ctx, caType, fn)
}

func (s *revokeBeforeCommit) KRLVersion(ctx context.Context, caType string) (uint64, error) {
	return s.krl.KRLVersion(ctx, caType)
}

func (s *revokeBeforeCommit) CommitBatch(ctx context.Context, items []store.BatchItem) ([]error, error) {
	if !s.done && len(items) > 0 && items[0].Cert != nil {
		s.done = true
		if _, err := ca.Revoke(ctx, s.krl, ca.Revocation{CAType: "user", Key: s.key, Actor: "test", Force: true}, time.Now()); err != nil {
			return nil, err
		}
	}
	return s.Store.CommitBatch(ctx, items)
}

// TestSignManyRevokedMeanwhile: a key revoked between SignMany's check and
// its recording is not a failure to record: as in Sign, the request is
// decided again, and the revocation now refuses it — a recorded denial
// naming the rule — while the rest of the batch is issued once.
func TestSignManyRevokedMeanwhile(t *testing.T) {
	ctx := t.Context()
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	a, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), k)
	revoked := testKey(t)
	a.Store = &revokeBeforeCommit{Store: a.Store, krl: st.(ca.RevocationStore), key: revoked}
	reqs := []ca.Request{
		{Type: policy.UserCert, Role: "deploy", KeyID: "doomed", PublicKey: revoked, Caller: ca.Admin("test")},
		{Type: policy.UserCert, Role: "deploy", KeyID: "fine", PublicKey: testKey(t), Caller: ca.Admin("test")},
	}
	certs, errs, err := a.SignMany(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	var de *policy.DenyError
	if certs[0] != nil || !errors.As(errs[0], &de) || de.Rule != "revoked-key" {
		t.Fatalf("revoked meanwhile: cert %v, err %v; want a revoked-key denial", certs[0], errs[0])
	}
	if certs[1] == nil || errs[1] != nil {
		t.Fatalf("other request: %v", errs[1])
	}
	recs, _ := st.ListCerts(ctx, store.CertFilter{})
	if len(recs) != 1 || recs[0].KeyID != "fine" {
		t.Fatalf("recorded %+v; want only the other certificate", recs)
	}
	denies, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionDeny})
	if len(denies) != 1 || !strings.HasPrefix(denies[0].Reason, "revoked-key: ") || denies[0].KeyID != "doomed" {
		t.Fatalf("denials %+v; want one revoked-key denial of doomed", denies)
	}
}
