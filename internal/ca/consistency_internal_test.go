package ca

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/store"
)

// TestSealDigest: the digest kept of a seal decides a match exactly as
// store.CheckRowSeal does with the whole seal, for the seals the store
// writes and for rows changed in any column; seals of any other form are
// not kept as a digest (Check reads them again and asks CheckRowSeal).
func TestSealDigest(t *testing.T) {
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	base := store.CertRecord{Serial: 7, CAType: "user", CAFingerprint: "SHA256:ca", Role: "deploy", KeyID: "alice",
		Principals: []string{"a", "b"}, ValidAfter: at, ValidBefore: at.Add(time.Hour), SubjectFingerprint: "SHA256:s",
		SubjectType: "ssh-ed25519", Requester: "cli:root", IssuedAt: at, Cert: "ssh-ed25519-cert-v01@openssh.com AAAA",
		Lineage: store.Lineage{Caller: "admin:t", MFA: true, Origin: 3}}
	changes := []func(c *store.CertRecord){
		func(c *store.CertRecord) {},
		func(c *store.CertRecord) { c.KeyID = "mallory" },
		func(c *store.CertRecord) { c.Principals = []string{"a"} },
		func(c *store.CertRecord) { c.Principals = nil },
		func(c *store.CertRecord) { c.ValidBefore = c.ValidBefore.Add(time.Nanosecond) },
		func(c *store.CertRecord) { c.Lineage.MFA = false },
		func(c *store.CertRecord) { c.Requester = "" },
		func(c *store.CertRecord) { c.Serial = 8 },
	}
	for i, seal := range []string{store.SealRow(&base), store.SealRow(&store.Revocation{ID: 3, CAType: "user", Kind: "serial", Lo: 1, Hi: 1})} {
		d, ok := sealDigest(seal)
		if !ok {
			t.Fatalf("seal %d %q: no digest kept; audit verify would read every row's entry again", i, seal)
		}
		if i > 0 {
			continue
		}
		short := "v1 " + hex.EncodeToString(d[:])
		for j, change := range changes {
			row := base
			change(&row)
			want, _ := store.CheckRowSeal(&row, seal)
			got, _ := store.CheckRowSeal(&row, short)
			if got != want || want != (j == 0) {
				t.Errorf("change %d: match %v with the digest kept, %v with the seal", j, got, want)
			}
		}
	}
	good := store.SealRow(&base)
	dig := strings.Fields(good)[1]
	for _, s := range []string{"", "v1", "v1 ", "v2 " + dig, "v1 " + strings.ToUpper(dig), "v1 " + dig[:31], "v1 " + dig + "0", "v1  " + dig, "V1 " + dig, "v1 " + dig[:31] + "g", store.RowDeleted} {
		if _, ok := sealDigest(s); ok {
			t.Errorf("sealDigest(%q) kept a digest", s)
		}
	}
	for _, s := range []string{"v1 " + dig, "v1 " + dig + " ", "v1 " + dig + " anything at all"} {
		if d, ok := sealDigest(s); !ok || hex.EncodeToString(d[:]) != dig {
			t.Errorf("sealDigest(%q) = %x, %v; want %s", s, d, ok, dig)
		}
	}
}

// TestCertKeySerial: only the keys CertRowKey writes are taken as a
// certificate's (another spelling is a row key of its own, as it always
// was).
func TestCertKeySerial(t *testing.T) {
	for _, n := range []uint64{0, 1, 42, 1<<64 - 1} {
		if got, ok := certKeySerial(store.CertRowKey(n)); !ok || got != n {
			t.Errorf("certKeySerial(%q) = %d, %v", store.CertRowKey(n), got, ok)
		}
	}
	for _, k := range []string{"row:cert:", "row:cert:007", "row:cert:+7", "row:cert:-1", "row:cert:7 ", "row:cert:18446744073709551616", "row:token:7", "cert:7"} {
		if _, ok := certKeySerial(k); ok {
			t.Errorf("certKeySerial(%q) took it for a certificate's", k)
		}
	}
}
