package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// ServiceOpener returns a fresh, empty service store.
type ServiceOpener func(t *testing.T) store.ServiceStore

// RunService runs Run plus the service-specific checks.
func RunService(t *testing.T, open ServiceOpener) {
	Run(t, func(t *testing.T) store.Store { return open(t) })
	t.Run("ok/tokens", func(t *testing.T) { testTokens(t, open(t)) })
	t.Run("fail/commit-batch-token", func(t *testing.T) { testBatchToken(t, open(t)) })
	t.Run("ok/totp-replay", func(t *testing.T) { testTOTP(t, open(t)) })
	t.Run("ok/challenges-once", func(t *testing.T) { testChallenges(t, open(t)) })
	t.Run("ok/hosts", func(t *testing.T) { testHosts(t, open(t)) })
	t.Run("ok/row-seals", func(t *testing.T) { testRowSeals(t, open(t)) })
	t.Run("ok/local-users", func(t *testing.T) { testLocalUsers(t, open(t)) })
}

func testTokens(t *testing.T, st store.ServiceStore) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	tk := store.Token{ID: "0123456789abcdef", Name: "ci", Kind: store.TokenRole, Roles: []string{"deploy"}, Hash: "h", CreatedBy: "t",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.CreateToken(ctx, tk, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	dup := tk
	dup.ID = "fedcba9876543210"
	if err := st.CreateToken(ctx, dup, ev(audit.ActionToken)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate name: %v, want ErrExists", err)
	}
	got, err := st.GetToken(ctx, tk.ID)
	if err != nil || got.Name != "ci" || len(got.Roles) != 1 || !got.ExpiresAt.Equal(tk.ExpiresAt) || !got.RevokedAt.IsZero() {
		t.Fatalf("GetToken = %+v, %v", got, err)
	}
	if _, err := st.GetToken(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing token: %v", err)
	}
	if err := st.RevokeToken(ctx, tk.ID, now, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetToken(ctx, tk.ID); got.RevokedAt.IsZero() {
		t.Fatal("token not revoked")
	}
	if err := st.RevokeToken(ctx, "nope", now, ev(audit.ActionToken)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke missing: %v", err)
	}
	en := tk
	en.ID, en.Name, en.Kind = "1111111111111111", "enroll-app", store.TokenEnroll
	if err := st.CreateToken(ctx, en, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	if err := st.ConsumeToken(ctx, en.ID, now, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	if err := st.ConsumeToken(ctx, en.ID, now, ev(audit.ActionToken)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second consume: %v, want ErrConflict", err)
	}
	list, err := st.ListTokens(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListTokens = %v, %v", list, err)
	}
}

func testTOTP(t *testing.T, st store.ServiceStore) {
	ctx := t.Context()
	if err := st.PutTOTP(ctx, "alice", []byte("secret-bytes"), ev(audit.ActionAdmin)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutTOTP(ctx, "alice", []byte("x"), ev(audit.ActionAdmin)); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second enroll: %v", err)
	}
	sec, last, err := st.GetTOTP(ctx, "alice")
	if err != nil || string(sec) != "secret-bytes" || last != 0 {
		t.Fatalf("GetTOTP = %q %d %v", sec, last, err)
	}
	if err := st.AdvanceTOTP(ctx, "alice", 100); err != nil {
		t.Fatal(err)
	}
	for _, step := range []uint64{100, 99} {
		if err := st.AdvanceTOTP(ctx, "alice", step); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("replayed step %d: %v, want ErrConflict", step, err)
		}
	}
	if err := st.DeleteTOTP(ctx, "alice", ev(audit.ActionAdmin)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.GetTOTP(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func testChallenges(t *testing.T, st store.ServiceStore) {
	ctx := t.Context()
	now := time.Now()
	if err := st.PutChallenge(ctx, "c1", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutChallenge(ctx, "old", now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := st.TakeChallenge(ctx, "c1", now); err != nil {
		t.Fatal(err)
	}
	if err := st.TakeChallenge(ctx, "c1", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second take: %v", err)
	}
	if err := st.TakeChallenge(ctx, "old", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired take: %v", err)
	}
}

func testHosts(t *testing.T, st store.ServiceStore) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Microsecond)
	h := store.Host{Name: "app-01.corp", LastSeen: now, KRLVersion: 3, CAKeys: []string{"SHA256:a"}, HostCertExpiry: now.Add(time.Hour),
		HostCertCA: "SHA256:host-1"}
	if err := st.ReportHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	h.KRLVersion, h.Stale, h.HostCertCA = 4, true, "SHA256:host-2"
	if err := st.ReportHost(ctx, h); err != nil {
		t.Fatal(err)
	}
	hosts, err := st.ListHosts(ctx)
	if err != nil || len(hosts) != 1 || hosts[0].KRLVersion != 4 || !hosts[0].Stale || !hosts[0].LastSeen.Equal(now) || hosts[0].HostCertCA != "SHA256:host-2" {
		t.Fatalf("ListHosts = %+v, %v", hosts, err)
	}
}

// testBatchToken: a certificate whose API token was revoked, has expired or
// never existed is left out of the batch with ErrTokenInvalid.
func testBatchToken(t *testing.T, st store.ServiceStore) {
	ctx := t.Context()
	AddActiveKey(t, st, "SHA256:ca")
	now := time.Now().Truncate(time.Microsecond)
	mk := func(id, name string, exp time.Duration) {
		tk := store.Token{ID: id, Name: name, Kind: store.TokenRole, Roles: []string{"deploy"}, Hash: "h", CreatedBy: "t",
			CreatedAt: now, ExpiresAt: now.Add(exp)}
		if err := st.CreateToken(ctx, tk, ev(audit.ActionToken)); err != nil {
			t.Fatal(err)
		}
	}
	mk("aaaaaaaaaaaaaaaa", "live", time.Hour)
	mk("bbbbbbbbbbbbbbbb", "revoked", time.Hour)
	mk("cccccccccccccccc", "expired", -time.Second)
	if err := st.RevokeToken(ctx, "bbbbbbbbbbbbbbbb", now, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	first, err := st.ReserveSerials(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", "cccccccccccccccc", "dddddddddddddddd"}
	var items []store.BatchItem
	for i, id := range ids {
		items = append(items, store.BatchItem{Cert: signedRec(id, "SHA256:ca", first+uint64(i)), Event: ev(audit.ActionIssue), TokenID: id})
	}
	errs, err := st.CommitBatch(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil {
		t.Fatalf("live token refused: %v", errs[0])
	}
	for i := 1; i < len(ids); i++ {
		if !errors.Is(errs[i], store.ErrTokenInvalid) {
			t.Errorf("token %s: err = %v; want ErrTokenInvalid", ids[i], errs[i])
		}
	}
	if certs, _ := st.ListCerts(ctx, store.CertFilter{}); len(certs) != 1 {
		t.Fatalf("%d certificates recorded; want 1", len(certs))
	}
}
