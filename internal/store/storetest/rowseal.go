package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// testRowSeals: every write of a certificate, revocation, CA key or token
// row, through every method that writes one, seals the row into its audit
// entry as the row reads back, so that the row matches the seal in the last
// entry that wrote it (what audit verify checks).
func testRowSeals(t *testing.T, st store.ServiceStore) {
	ctx := t.Context()
	now := time.Now()
	AddActiveKey(t, st, "SHA256:ca")
	next := store.CAKey{CAType: "user", Generation: 2, State: store.StateNext, KeyType: "ed25519", Fingerprint: "SHA256:next",
		PublicKey: "ssh-ed25519 AAAB", Signer: "file", File: "user-ca-2"}
	if err := st.AddCAKey(ctx, next, ev(audit.ActionCARotate)); err != nil {
		t.Fatal(err)
	}
	if err := st.SetCAKeyStates(ctx, "user", map[int]string{1: store.StateRetiring, 2: store.StateActive}, ev(audit.ActionCAPromote)); err != nil {
		t.Fatal(err)
	}
	// A batch long enough to use every INSERT shape, with nanoseconds and
	// lineages the columns do not keep exactly as given.
	const n = 87
	first, err := st.ReserveSerials(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	var items []store.BatchItem
	for i := range n {
		r := signedRec(fmt.Sprint("batch-", i), "SHA256:next", first+uint64(i))
		r.ValidAfter = r.ValidAfter.Add(123 * time.Nanosecond)
		r.IssuedAt = now
		switch i % 3 {
		case 1:
			r.Principals = nil
		case 2:
			r.Lineage = store.Lineage{Caller: "person", Identity: "alice", Groups: []string{"ops"}, MFA: true, AuthTime: now, Origin: first}
		}
		items = append(items, store.BatchItem{Cert: r, Event: ev(audit.ActionIssue)})
	}
	if errs, err := st.CommitBatch(ctx, items); err != nil {
		t.Fatal(err)
	} else {
		for i, e := range errs {
			if e != nil {
				t.Fatalf("item %d: %v", i, e)
			}
		}
	}
	if _, err := st.AddRevocation(ctx, store.Revocation{CAType: "user", Kind: store.RevokeSerial, Lo: first, Hi: first, Reason: "r", Actor: "t",
		Expires: now.Add(time.Hour)}, ev(audit.ActionRevoke)); err != nil {
		t.Fatal(err)
	}
	var revs []store.Revocation
	var evs []audit.Entry
	for i := range 300 {
		revs = append(revs, store.Revocation{CAType: "host", Kind: store.RevokeKeyID, KeyID: fmt.Sprint("k", i), Reason: "bulk", Actor: "t"})
		if i%2 == 0 {
			revs[i].CreatedAt = now.Add(-time.Duration(i) * time.Nanosecond)
		}
		evs = append(evs, ev(audit.ActionRevoke))
	}
	if _, err := st.AddRevocations(ctx, revs, evs); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"00000000000000a1", "00000000000000a2", "00000000000000a3"} {
		tk := store.Token{ID: id, Name: "tok-" + id, Kind: store.TokenEnroll, Principals: []string{"h.corp"}, Hash: "h" + id, CreatedBy: "t",
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if id == "00000000000000a3" {
			tk.Kind, tk.Roles, tk.Principals = store.TokenRole, []string{"deploy"}, nil
		}
		if err := st.CreateToken(ctx, tk, ev(audit.ActionToken)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RevokeToken(ctx, "00000000000000a1", now, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}
	if err := st.ConsumeToken(ctx, "00000000000000a2", now, ev(audit.ActionToken)); err != nil {
		t.Fatal(err)
	}

	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seals := map[string]string{}
	for _, e := range entries {
		for k, v := range e.Details {
			if store.IsRowKey(k) {
				seals[k] = v
			}
		}
	}
	checked := 0
	check := func(key string, row any) {
		t.Helper()
		s, ok := seals[key]
		if !ok {
			t.Errorf("%s: no audit entry seals it", store.DescribeRowKey(key))
			return
		}
		if match, cols := store.CheckRowSeal(row, s); !match {
			t.Errorf("%s does not match its seal (%v)", store.DescribeRowKey(key), cols)
		}
		checked++
	}
	certs, err := st.ListCerts(ctx, store.CertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		check(store.CertRowKey(c.Serial), &c)
	}
	for _, typ := range []string{"user", "host"} {
		rs, err := st.ListRevocations(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			check(store.RevocationRowKey(r.ID), &r)
		}
		keys, err := st.ListCAKeys(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			check(store.CAKeyRowKey(k.CAType, k.Generation), &k)
		}
	}
	toks, err := st.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		check(store.TokenRowKey(tk.ID), &tk)
	}
	if want := n + 1 + 300 + 2 + 3; checked != want {
		t.Errorf("checked %d rows, want %d", checked, want)
	}
}
