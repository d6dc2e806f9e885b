package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// testLocalUsers checks local users: keys unique across users, lookups by
// key, removal of keys and users (with their TOTP enrollment), refusals
// that change nothing, and an audit entry per change.
func testLocalUsers(t *testing.T, st store.ServiceStore) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ev := func(why string) audit.Entry {
		return audit.Entry{Time: now, Actor: "cli:test", Action: audit.ActionAdmin, Outcome: "ok", Reason: why}
	}
	k1 := store.LocalUserKey{Fingerprint: "SHA256:one", PublicKey: "ssh-ed25519 AAAA1", AddedAt: now}
	k2 := store.LocalUserKey{Fingerprint: "SHA256:two", PublicKey: "ssh-ed25519 AAAA2", AddedAt: now.Add(time.Second)}
	alice := store.LocalUser{Name: "alice", Groups: []string{"ops", "dev"}, Keys: []store.LocalUserKey{k1}, CreatedBy: "cli:test", CreatedAt: now}
	if err := st.AddLocalUser(ctx, alice, ev("user added")); err != nil {
		t.Fatal(err)
	}
	if err := st.AddLocalUser(ctx, alice, ev("user added")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second add: %v, want ErrExists", err)
	}
	// A key already registered cannot name a second user; nothing of the
	// refused user is left behind.
	bob := store.LocalUser{Name: "bob", Keys: []store.LocalUserKey{k1}, CreatedBy: "cli:test", CreatedAt: now}
	if err := st.AddLocalUser(ctx, bob, ev("user added")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("add with a taken key: %v, want ErrExists", err)
	}
	if _, err := st.GetLocalUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused user is there: %v", err)
	}
	got, err := st.LocalUserByKey(ctx, "SHA256:one")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&alice, got); diff != "" {
		t.Fatalf("LocalUserByKey (-want +got):\n%s", diff)
	}
	if err := st.AddLocalUserKey(ctx, "alice", k2, ev("key added")); err != nil {
		t.Fatal(err)
	}
	if err := st.AddLocalUserKey(ctx, "nobody", store.LocalUserKey{Fingerprint: "SHA256:three", PublicKey: "x", AddedAt: now}, ev("key added")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("key for unknown user: %v, want ErrNotFound", err)
	}
	if err := st.AddLocalUserKey(ctx, "alice", k2, ev("key added")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate key: %v, want ErrExists", err)
	}
	got, err = st.GetLocalUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 2 || got.Keys[1].Fingerprint != "SHA256:two" {
		t.Fatalf("keys = %+v", got.Keys)
	}
	if err := st.RemoveLocalUserKey(ctx, "alice", "SHA256:one", ev("key removed")); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveLocalUserKey(ctx, "alice", "SHA256:one", ev("key removed")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing a removed key: %v", err)
	}
	if _, err := st.LocalUserByKey(ctx, "SHA256:one"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed key still finds a user: %v", err)
	}
	if err := st.AddLocalUser(ctx, store.LocalUser{Name: "carol", CreatedBy: "cli:test", CreatedAt: now}, ev("user added")); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListLocalUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alice" || list[1].Name != "carol" || len(list[1].Keys) != 0 {
		t.Fatalf("list = %+v", list)
	}
	if err := st.PutTOTP(ctx, "local:alice", []byte("0123456789abcdef0123"), ev("totp enrolled")); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveLocalUser(ctx, "alice", ev("user removed")); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveLocalUser(ctx, "alice", ev("user removed")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if _, err := st.LocalUserByKey(ctx, "SHA256:two"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed user's key still finds a user: %v", err)
	}
	if _, _, err := st.GetTOTP(ctx, "local:alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removed user's TOTP enrollment is left: %v", err)
	}
	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		switch e.Reason {
		case "user added", "key added", "key removed", "user removed":
			n++
		}
	}
	// alice, carol added; one key added; one key removed; alice removed.
	if n != 5 {
		t.Fatalf("%d audit entries of local user changes, want 5", n)
	}
}
