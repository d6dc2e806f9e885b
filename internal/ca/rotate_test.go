package ca

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
)

// fakeRotationStore holds two host CA generations and some certificates.
type fakeRotationStore struct {
	keys  []store.CAKey
	certs []store.CertRecord
	set   map[int]string
}

func (f *fakeRotationStore) ListCAKeys(context.Context, string) ([]store.CAKey, error) {
	return f.keys, nil
}
func (f *fakeRotationStore) AddCAKey(context.Context, store.CAKey, audit.Entry) error { return nil }
func (f *fakeRotationStore) SetCAKeyStates(_ context.Context, _ string, states map[int]string, _ audit.Entry) error {
	f.set = states
	return nil
}
func (f *fakeRotationStore) ListCerts(context.Context, store.CertFilter) ([]store.CertRecord, error) {
	return f.certs, nil
}

// TestRetireRenewedHostCerts: a host certificate of the retiring key that
// its host renewed (under the new key, by proof of possession) no longer
// blocks ca retire; one signed by hand, or not renewed, still does.
func TestRetireRenewedHostCerts(t *testing.T) {
	now := time.Now()
	keys := []store.CAKey{
		{CAType: "host", Generation: 1, State: store.StateRetiring, Fingerprint: "SHA256:gen1"},
		{CAType: "host", Generation: 2, State: store.StateActive, Fingerprint: "SHA256:gen2"},
	}
	old := store.CertRecord{Serial: 1, CAType: "host", CAFingerprint: "SHA256:gen1", SubjectFingerprint: "SHA256:web",
		ValidBefore: now.Add(365 * 24 * time.Hour), Cert: "x"}
	renewal := store.CertRecord{Serial: 2, CAType: "host", CAFingerprint: "SHA256:gen2", SubjectFingerprint: "SHA256:web",
		ValidBefore: now.Add(30 * 24 * time.Hour), Cert: "x", Lineage: store.Lineage{Renews: 1}}
	byHand := renewal
	byHand.Lineage = store.Lineage{}
	pending := renewal
	pending.Cert = "" // reserved, never signed
	for _, tc := range []struct {
		name  string
		certs []store.CertRecord
		want  error
	}{
		{"ok/renewed", []store.CertRecord{old, renewal}, nil},
		{"fail/not-renewed", []store.CertRecord{old}, ErrUnexpired},
		{"fail/signed-by-hand", []store.CertRecord{old, byHand}, ErrUnexpired},
		{"fail/renewal-never-signed", []store.CertRecord{old, pending}, ErrUnexpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeRotationStore{keys: keys, certs: tc.certs}
			err := Retire(t.Context(), st, "host", 1, false, time.Hour, "test", now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Retire = %v, want %v", err, tc.want)
			}
			if tc.want == nil && st.set[1] != store.StateRetired {
				t.Fatalf("states set %v", st.set)
			}
		})
	}
}
