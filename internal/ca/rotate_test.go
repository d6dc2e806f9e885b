package ca

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

// TestRetireRenewedHostCerts: a host certificate of the retiring key that
// its host renewed (under the new key, by proof of possession) no longer
// blocks ca retire; one signed by hand, or not renewed, still does.
func TestRetireRenewedHostCerts(t *testing.T) {
	now := time.Now()
	gen1 := store.CAKey{CAType: "host", Generation: 1, State: store.StateActive, KeyType: "ed25519", Fingerprint: "SHA256:gen1", PublicKey: "x", Signer: "file", File: "1"}
	gen2 := store.CAKey{CAType: "host", Generation: 2, State: store.StateNext, KeyType: "ed25519", Fingerprint: "SHA256:gen2", PublicKey: "y", Signer: "file", File: "2"}
	old := store.CertRecord{Serial: 1, CAType: "host", CAFingerprint: "SHA256:gen1", KeyID: "web", SubjectFingerprint: "SHA256:web",
		ValidBefore: now.Add(365 * 24 * time.Hour), Cert: "x"}
	renewal := store.CertRecord{Serial: 2, CAType: "host", CAFingerprint: "SHA256:gen2", KeyID: "web", SubjectFingerprint: "SHA256:web",
		ValidBefore: now.Add(30 * 24 * time.Hour), Cert: "x", Lineage: store.Lineage{Renews: 1}}
	byHand := renewal
	byHand.Lineage = store.Lineage{}
	pending := renewal
	pending.Cert = "" // reserved, never signed (a row of an older store)
	for _, tc := range []struct {
		name string
		next []store.CertRecord // signed by gen2 after the promotion
		want error
	}{
		{"ok/renewed", []store.CertRecord{renewal}, nil},
		{"fail/not-renewed", nil, ErrUnexpired},
		{"fail/signed-by-hand", []store.CertRecord{byHand}, ErrUnexpired},
		{"fail/renewal-never-signed", []store.CertRecord{pending}, ErrUnexpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ev := audit.Entry{Actor: "test", Action: audit.ActionInit, Outcome: "ok"}
			for _, k := range []store.CAKey{gen1, gen2} {
				if err := st.AddCAKey(ctx, k, ev); err != nil {
					t.Fatal(err)
				}
			}
			record := func(c store.CertRecord) {
				t.Helper()
				if c.Cert == "" {
					// CommitBatch refuses a row without a body; older stores have them.
					_, err := st.SQL().ExecContext(ctx, `INSERT INTO certs (serial, ca_type, ca_fp, role, key_id, principals, valid_after, valid_before, subject_fp, subject_type, requester, issued_us, cert, lineage)
						VALUES (?, ?, ?, '', ?, '[]', 0, ?, ?, '', '', 0, '', '{"renews":1}')`, int64(c.Serial), c.CAType, c.CAFingerprint, c.KeyID, c.ValidBefore.Unix(), c.SubjectFingerprint)
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				errs, err := st.CommitBatch(ctx, []store.BatchItem{{Cert: &c, Event: audit.Entry{Time: now, Actor: "test", Action: audit.ActionIssue, Outcome: "ok"}}})
				if err == nil {
					err = errs[0]
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			record(old)
			if err := st.SetCAKeyStates(ctx, "host", map[int]string{1: store.StateRetiring, 2: store.StateActive}, ev); err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.next {
				record(c)
			}
			err = Retire(ctx, st, "host", 1, false, time.Hour, "test", now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Retire = %v, want %v", err, tc.want)
			}
			keys, err := st.ListCAKeys(ctx, "host")
			if err != nil {
				t.Fatal(err)
			}
			retired := keys[0].State == store.StateRetired
			if retired != (tc.want == nil) {
				t.Fatalf("generation 1 is %s after Retire = %v", keys[0].State, err)
			}
		})
	}
}
