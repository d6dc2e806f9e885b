package ca_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
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

// TestRecordingRecheckIsPrecise: when the KRL version moved between the
// revocation check and the recording transaction, the transaction looks
// up what would revoke this certificate: a revocation of something else
// lets it through (a stream of unrelated revocations must not starve
// issuance), one of its key, key fingerprint or key ID refuses it.
func TestRecordingRecheckIsPrecise(t *testing.T) {
	ctx := t.Context()
	caKey := ed25519.NewKeyFromSeed(caSeed)
	_, st := newAuthority(t, filepath.Join(t.TempDir(), "db"), caKey)
	rst := st.(ca.RevocationStore)
	caSigner, err := ssh.NewSignerFromKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	caLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(caSigner.PublicKey())))
	caFP := ssh.FingerprintSHA256(caSigner.PublicKey())
	subject := testKey(t)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(subject)))
	sum := sha256.Sum256(subject.Marshal())
	probe := store.RevocationProbe{KeyLine: line, SHA256: hex.EncodeToString(sum[:]), SHA1: "00", KeyID: "alice", CALine: caLine}
	serial := uint64(1000)
	record := func(at uint64, p store.RevocationProbe) error {
		t.Helper()
		serial++
		c := &store.CertRecord{Serial: serial, CAType: "user", CAFingerprint: caFP, KeyID: p.KeyID, Principals: []string{"x"},
			ValidAfter: time.Now(), ValidBefore: time.Now().Add(time.Hour), SubjectFingerprint: ssh.FingerprintSHA256(subject), Cert: "body"}
		errs, err := st.CommitBatch(ctx, []store.BatchItem{{Cert: c, Event: audit.Entry{Time: time.Now(), Actor: "test", Action: audit.ActionIssue, Outcome: "ok"},
			CheckRevocations: true, RevocationsAt: at, Probe: func() store.RevocationProbe { return p }}})
		if err != nil {
			t.Fatal(err)
		}
		return errs[0]
	}
	revoke := func(r ca.Revocation) uint64 {
		t.Helper()
		r.CAType, r.Actor, r.Force = "user", "test", true
		if _, err := ca.Revoke(ctx, rst, r, time.Now()); err != nil {
			t.Fatal(err)
		}
		v, err := rst.KRLVersion(ctx, "user")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := revoke(ca.Revocation{KeyID: "someone-else"})
	if err := record(v-1, probe); err != nil {
		t.Fatalf("an unrelated key ID revoked meanwhile refused the record: %v", err)
	}
	v = revoke(ca.Revocation{Key: testKey(t)})
	if err := record(v-1, probe); err != nil {
		t.Fatalf("an unrelated key revoked meanwhile refused the record: %v", err)
	}
	for _, tc := range []struct {
		name string
		rev  ca.Revocation
		p    store.RevocationProbe
	}{
		{"key", ca.Revocation{Key: subject}, probe},
		{"key-id", ca.Revocation{KeyID: "bob"}, func() store.RevocationProbe { p := probe; p.KeyID = "bob"; p.KeyLine, p.SHA256 = "x", "y"; return p }()},
	} {
		before := revoke(tc.rev) - 1
		if err := record(before, tc.p); !errors.Is(err, store.ErrRevocationsChanged) {
			t.Fatalf("%s revoked meanwhile: record err = %v, want ErrRevocationsChanged", tc.name, err)
		}
		if err := record(before+1, tc.p); err != nil {
			t.Fatalf("%s: checked at the current version, the store still refused: %v", tc.name, err)
		}
	}
	// A SHA-256 revocation of another subject's key.
	other := testKey(t)
	osum := sha256.Sum256(other.Marshal())
	p := store.RevocationProbe{KeyLine: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other))), SHA256: hex.EncodeToString(osum[:]), SHA1: "00", KeyID: "carol", CALine: caLine}
	before := revoke(ca.Revocation{SHA256: osum[:]}) - 1
	if err := record(before, p); !errors.Is(err, store.ErrRevocationsChanged) {
		t.Fatalf("sha256 revoked meanwhile: record err = %v, want ErrRevocationsChanged", err)
	}
}
