package sqlstore_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
	"github.com/sshca/sshca/internal/store/storetest"
)

// TestOnAudit checks the hook behind service.audit_file: every committed
// entry is reported once, sealed, and entries of failed transactions never.
func TestOnAudit(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	var got []audit.Entry
	st.OnAudit(func(e audit.Entry) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
	})
	now := time.Now()
	ev := func(action, reason string) audit.Entry {
		return audit.Entry{Time: now, Actor: "test", Action: action, Outcome: "ok", Reason: reason}
	}
	key := store.CAKey{CAType: "user", Generation: 1, State: store.StateActive, KeyType: "ed25519", Fingerprint: "SHA256:x",
		PublicKey: "ssh-ed25519 AAAA", Signer: "file", File: "user-ca-1", CreatedAt: now}

	for _, tc := range []struct {
		name   string
		do     func() error
		wantOK bool
	}{
		{name: "ok/append", do: func() error { _, err := st.Append(ctx, ev(audit.ActionAdmin, "append")); return err }, wantOK: true},
		{name: "ok/add-ca-key", do: func() error { return st.AddCAKey(ctx, key, ev(audit.ActionInit, "add-ca-key")) }, wantOK: true},
		{name: "ok/issue", do: func() error {
			_, err := storetest.Issue(ctx, st, &store.CertRecord{CAType: "user", CAFingerprint: "SHA256:x", Role: "r", KeyID: "k", Principals: []string{"p"},
				ValidAfter: now, ValidBefore: now.Add(time.Hour), IssuedAt: now}, ev(audit.ActionIssue, "issue"))
			return err
		}, wantOK: true},
		{name: "fail/duplicate-ca-key", do: func() error { return st.AddCAKey(ctx, key, ev(audit.ActionInit, "duplicate-ca-key")) }},
		{name: "fail/no-active-key-left", do: func() error {
			return st.SetCAKeyStates(ctx, "user", map[int]string{1: store.StateRetired}, ev(audit.ActionAdmin, "no-active-key-left"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			before := len(got)
			mu.Unlock()
			err := tc.do()
			if (err == nil) != tc.wantOK {
				t.Fatalf("err = %v, want success %v", err, tc.wantOK)
			}
			mu.Lock()
			defer mu.Unlock()
			reported := got[before:]
			if !tc.wantOK {
				if len(reported) != 0 {
					t.Fatalf("a failed transaction reported %d entries: %+v", len(reported), reported)
				}
				return
			}
			if len(reported) != 1 {
				t.Fatalf("reported %d entries, want 1", len(reported))
			}
			e := reported[0]
			if e.Reason != tc.name[len("ok/"):] || e.Seq == 0 || e.Hash == "" || audit.ComputeHash(e) != e.Hash {
				t.Errorf("reported entry not sealed as stored: %+v", e)
			}
		})
	}
	entries, err := st.AuditEntries(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(entries); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	reported := append([]audit.Entry(nil), got...)
	mu.Unlock()
	if len(entries) != len(reported) {
		t.Errorf("store holds %d entries, hook reported %d", len(entries), len(reported))
	}
	for i := range min(len(entries), len(reported)) {
		if entries[i].Hash != reported[i].Hash {
			t.Errorf("entry %d: stored hash %s, reported %s", i, entries[i].Hash, reported[i].Hash)
		}
	}
	st.OnAudit(nil)
	if _, err := st.Append(ctx, ev(audit.ActionAdmin, "after")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(reported) {
		t.Error("the hook was called after OnAudit(nil)")
	}
}
