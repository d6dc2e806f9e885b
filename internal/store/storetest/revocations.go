package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// runRevocations is the part of the suite about recording revocations in
// bulk and streaming them back.
func runRevocations(t *testing.T, open Opener) {
	t.Run("ok/add-revocations-batch", func(t *testing.T) { testAddRevocations(t, open(t)) })
	t.Run("ok/add-revocations-many", func(t *testing.T) { testAddRevocationsMany(t, open(t)) })
	t.Run("ok/add-revocations-nothing-new", func(t *testing.T) { testAddRevocationsNothingNew(t, open(t)) })
	t.Run("fail/add-revocations-mismatched-entries", func(t *testing.T) { testAddRevocationsMismatch(t, open(t)) })
	t.Run("ok/each-revocation", func(t *testing.T) { testEachRevocation(t, open(t)) })
}

// revEv is the audit entry a caller hands in with revocation i.
func revEv(i int) audit.Entry {
	e := ev(audit.ActionRevoke)
	e.Details = map[string]string{"i": strconv.Itoa(i)}
	return e
}

// checkRevocationAudit checks that the revoke entries of st are exactly
// one per recorded revocation, carrying the caller's details and the row's
// ID and digest, and that the chain verifies.
func checkRevocationAudit(t *testing.T, st store.Store) {
	t.Helper()
	ctx := t.Context()
	all, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(all); err != nil {
		t.Fatal(err)
	}
	rows := map[int64]store.Revocation{}
	for _, caType := range []string{"user", "host"} {
		list, err := st.ListRevocations(ctx, caType)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list {
			rows[r.ID] = r
		}
	}
	seen := map[int64]bool{}
	for _, e := range all {
		if e.Action != audit.ActionRevoke {
			continue
		}
		id, err := strconv.ParseInt(e.Details["revocation_id"], 10, 64)
		if err != nil {
			t.Fatalf("entry %d: revocation_id %q", e.Seq, e.Details["revocation_id"])
		}
		r, ok := rows[id]
		switch {
		case !ok:
			t.Errorf("entry %d names revocation %d, which has no row", e.Seq, id)
		case seen[id]:
			t.Errorf("revocation %d audited twice", id)
		case e.Details["revocation"] != r.Digest():
			t.Errorf("entry %d: digest %q, row %d has %q", e.Seq, e.Details["revocation"], id, r.Digest())
		case e.Details["i"] == "":
			t.Errorf("entry %d lost the caller's details: %v", e.Seq, e.Details)
		}
		seen[id] = true
	}
	if len(seen) != len(rows) {
		t.Errorf("%d revocation rows, %d audited", len(rows), len(seen))
	}
}

func testAddRevocations(t *testing.T, st store.Store) {
	ctx := t.Context()
	created := time.Now().Add(-time.Minute).Truncate(time.Second)
	expires := created.Add(time.Hour)
	existing := store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: 7, Hi: 7, Actor: "t", CreatedAt: created}
	if added, err := st.AddRevocation(ctx, existing, revEv(-1)); err != nil || !added {
		t.Fatalf("AddRevocation = %v, %v", added, err)
	}
	v0, _ := st.KRLVersion(ctx, "user")
	revs := []store.Revocation{
		{CAType: "user", Kind: store.RevokeSerial, Lo: 10, Hi: 20, Reason: "r", Actor: "a", CreatedAt: created, Expires: expires},
		existing, // already recorded
		{CAType: "user", Kind: store.RevokeKeyID, KeyID: "alice", Actor: "a", CreatedAt: created},
		{CAType: "user", Kind: store.RevokeSerial, Lo: 10, Hi: 20, Reason: "again", Actor: "b", CreatedAt: created}, // duplicate within the batch
		{CAType: "user", Kind: store.RevokeSerial, Lo: 1<<63 + 5, Hi: 1<<64 - 1, Actor: "a", CreatedAt: created},    // serials above 2^63
		{CAType: "host", Kind: store.RevokeSHA256, Value: fmt.Sprintf("%064x", 1), Actor: "a", CreatedAt: created},
		{CAType: "user", Kind: store.RevokeSerial, Lo: 10, Hi: 20, Value: "ssh-ed25519 AAAAother", Actor: "a", CreatedAt: created}, // another scope: distinct
	}
	evs := make([]audit.Entry, len(revs))
	for i := range evs {
		evs[i] = revEv(i)
	}
	added, err := st.AddRevocations(ctx, revs, evs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]bool{true, false, true, false, true, true, true}, added); diff != "" {
		t.Fatalf("added (-want +got):\n%s", diff)
	}
	for i, e := range evs {
		if len(e.Details) != 1 {
			t.Fatalf("the caller's entry %d was changed: %v", i, e.Details)
		}
	}
	if v, _ := st.KRLVersion(ctx, "user"); v != v0+1 {
		t.Errorf("user KRL version %d after one batch, want %d", v, v0+1)
	}
	if v, _ := st.KRLVersion(ctx, "host"); v != 1 {
		t.Errorf("host KRL version %d after one batch, want 1", v)
	}
	list, err := st.ListRevocations(ctx, "user")
	if err != nil {
		t.Fatal(err)
	}
	var got []store.Revocation
	for _, r := range list {
		r.ID = 0
		got = append(got, r)
	}
	want := []store.Revocation{existing, revs[0], revs[2], revs[4], revs[6]}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Fatalf("user revocations (-want +got):\n%s", diff)
	}
	// The audit entries follow the batch's order.
	entries, _ := st.AuditEntries(ctx, store.AuditFilter{Action: audit.ActionRevoke})
	var order []string
	for _, e := range entries {
		order = append(order, e.Details["i"])
	}
	if diff := cmp.Diff([]string{"-1", "0", "2", "4", "5", "6"}, order); diff != "" {
		t.Errorf("audit entries (-want +got):\n%s", diff)
	}
	checkRevocationAudit(t, st)
}

// testAddRevocationsMany records more revocations than any one statement
// holds, with duplicates, and checks that each entry names its own row.
func testAddRevocationsMany(t *testing.T, st store.Store) {
	ctx := t.Context()
	const n = 1000
	var revs []store.Revocation
	var evs []audit.Entry
	for i := range n {
		r := store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: uint64(1 + i*3), Hi: uint64(1 + i*3 + i%3), Actor: "t"}
		if i%10 == 9 {
			r.Kind, r.Lo, r.Hi, r.KeyID = store.RevokeKeyID, 0, 0, fmt.Sprintf("id-%d", i)
		}
		revs = append(revs, r)
		evs = append(evs, revEv(i))
	}
	// Every 7th one again, at the end.
	for i := 0; i < n; i += 7 {
		revs = append(revs, revs[i])
		evs = append(evs, revEv(n+i))
	}
	added, err := st.AddRevocations(ctx, revs, evs)
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for i, a := range added {
		if a != (i < n) {
			t.Fatalf("added[%d] = %v", i, a)
		}
		if a {
			count++
		}
	}
	list, err := st.ListRevocations(ctx, "user")
	if err != nil || len(list) != n {
		t.Fatalf("%d revocations, %v; want %d", len(list), err, n)
	}
	if v, _ := st.KRLVersion(ctx, "user"); v != 1 {
		t.Errorf("KRL version %d after one batch, want 1", v)
	}
	// Again: nothing is new.
	added, err = st.AddRevocations(ctx, revs[:n], evs[:n])
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range added {
		if a {
			t.Fatalf("second batch: added[%d]", i)
		}
	}
	checkRevocationAudit(t, st)
}

func testAddRevocationsNothingNew(t *testing.T, st store.Store) {
	ctx := t.Context()
	r := store.Revocation{CAType: "user", Kind: store.RevokeKeyID, KeyID: "bob", Actor: "t"}
	if _, err := st.AddRevocation(ctx, r, revEv(0)); err != nil {
		t.Fatal(err)
	}
	seq0, _, _ := st.AuditHead(ctx)
	for _, revs := range [][]store.Revocation{nil, {r}, {r, r}} {
		evs := make([]audit.Entry, len(revs))
		for i := range evs {
			evs[i] = revEv(i)
		}
		added, err := st.AddRevocations(ctx, revs, evs)
		if err != nil || len(added) != len(revs) {
			t.Fatalf("AddRevocations(%d) = %v, %v", len(revs), added, err)
		}
		for i, a := range added {
			if a {
				t.Fatalf("AddRevocations(%d): added[%d]", len(revs), i)
			}
		}
	}
	if v, _ := st.KRLVersion(ctx, "user"); v != 1 {
		t.Errorf("KRL version %d, want 1: nothing new must not bump it", v)
	}
	if seq, _, _ := st.AuditHead(ctx); seq != seq0 {
		t.Errorf("audit head moved from %d to %d: nothing new must audit nothing", seq0, seq)
	}
}

func testAddRevocationsMismatch(t *testing.T, st store.Store) {
	ctx := t.Context()
	revs := []store.Revocation{{CAType: "user", Kind: store.RevokeKeyID, KeyID: "carol", Actor: "t"}}
	if _, err := st.AddRevocations(ctx, revs, nil); err == nil {
		t.Fatal("AddRevocations with no audit entries succeeded")
	}
	if list, _ := st.ListRevocations(ctx, "user"); len(list) != 0 {
		t.Fatalf("a refused batch recorded %d revocations", len(list))
	}
}

func testEachRevocation(t *testing.T, st store.Store) {
	ctx := t.Context()
	created := time.Now().Truncate(time.Second)
	revs := []store.Revocation{
		{CAType: "user", Kind: store.RevokeSerial, Lo: 3, Hi: 3, Value: "ssh-ed25519 AAAAscope", Reason: "r", Actor: "a", CreatedAt: created, Expires: created.Add(time.Hour)},
		{CAType: "host", Kind: store.RevokeKeyID, KeyID: "host-id", Actor: "a", CreatedAt: created},
		{CAType: "user", Kind: store.RevokeKeyID, KeyID: "dave", Actor: "a", CreatedAt: created.Add(time.Second)},
		{CAType: "user", Kind: store.RevokeSerial, Lo: 1 << 63, Hi: 1<<63 + 9, Value: "ssh-ed25519 AAAAscope", Actor: "a", CreatedAt: created},
		{CAType: "user", Kind: store.RevokeSHA1, Value: fmt.Sprintf("%040x", 5), Actor: "a", CreatedAt: created},
	}
	for i, r := range revs {
		if _, err := st.AddRevocation(ctx, r, revEv(i)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := st.ListRevocations(ctx, "user")
	if err != nil {
		t.Fatal(err)
	}
	var want []store.Revocation
	for _, r := range list {
		// Only what a KRL is built from.
		want = append(want, store.Revocation{ID: r.ID, CAType: r.CAType, Kind: r.Kind, Lo: r.Lo, Hi: r.Hi, KeyID: r.KeyID, Value: r.Value, CreatedAt: r.CreatedAt})
	}
	var got []store.Revocation
	if err := st.EachRevocation(ctx, "user", func(r store.Revocation) error {
		got = append(got, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("EachRevocation (-ListRevocations +got):\n%s", diff)
	}
	if len(got) != 4 {
		t.Fatalf("%d user revocations, want 4", len(got))
	}
	stop := errors.New("stop")
	calls := 0
	err = st.EachRevocation(ctx, "user", func(store.Revocation) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("EachRevocation after fn failed: %v after %d calls; want fn's error after 1", err, calls)
	}
	n := 0
	if err := st.EachRevocation(ctx, "none", func(store.Revocation) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("EachRevocation of an unknown CA type: %d, %v", n, err)
	}
}
