package ca

import (
	"cmp"
	"encoding/hex"
	"math/rand/v2"
	"slices"
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

// TestCertTable runs random issuances, seals and deletions, with serials
// rising, late and repeated (enough late ones to merge several times),
// through a rowTable and through maps, and compares them.
func TestCertTable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var tab rowTable
	issued := map[uint64]uint64{}
	sealed := map[uint64]rowSeal{}
	var top uint64 = 1000
	for seq := uint64(1); seq < 60_000; seq++ {
		var serial uint64
		switch r.IntN(4) {
		case 0, 1:
			top += uint64(1 + r.IntN(3))
			serial = top
		case 2:
			serial = uint64(r.IntN(int(top))) // late, or seen before
		default:
			serial = top - uint64(r.IntN(10))
		}
		switch r.IntN(5) {
		case 0, 1:
			prev, twice := tab.made(serial, seq)
			want, wantTwice := issued[serial]
			if twice != wantTwice || prev != want {
				t.Fatalf("seq %d: issue %d: previous %d, %v; want %d, %v", seq, serial, prev, twice, want, wantTwice)
			}
			issued[serial] = seq
		case 2, 3:
			s := rowSeal{seq: seq, flags: uint8(r.IntN(2)) * sealDigestKept}
			if s.flags != 0 {
				s.digest[0], s.digest[15] = byte(seq), byte(serial)
			}
			if r.IntN(3) == 0 { // the issuance's own seal
				tab.made(serial, seq)
				issued[serial] = seq
			}
			tab.seal(serial, s)
			sealed[serial] = s
		default:
			tab.unseal(serial)
			delete(sealed, serial)
		}
	}
	tab.merge()
	if !slices.IsSortedFunc(tab.sorted, func(a, b rowEntry) int { return cmp.Compare(a.serial, b.serial) }) {
		t.Fatal("not sorted after merge")
	}
	n := 0
	for i := range tab.sorted {
		c := &tab.sorted[i]
		if i > 0 && tab.sorted[i-1].serial == c.serial {
			t.Fatalf("serial %d twice", c.serial)
		}
		if c.flags == 0 {
			continue
		}
		n++
		is, ok := issued[c.serial]
		if ok != (c.flags&rowMade != 0) || (ok && tab.madeSeq(c) != is) {
			t.Errorf("serial %d: issued %v at %d; want %v at %d", c.serial, c.flags&rowMade != 0, tab.madeSeq(c), ok, is)
		}
		s, ok := sealed[c.serial]
		if ok != (c.flags&rowSealed != 0) || (ok && c.rowSeal() != s) {
			t.Errorf("serial %d: sealed %v %+v; want %v %+v", c.serial, c.flags&rowSealed != 0, c.rowSeal(), ok, s)
		}
	}
	for serial := range issued {
		if c := tab.find(serial); c == nil || c.flags&rowMade == 0 {
			t.Errorf("serial %d: issued, not found", serial)
		}
	}
	for serial := range sealed {
		if c := tab.find(serial); c == nil || c.flags&rowSealed == 0 {
			t.Errorf("serial %d: sealed, not found", serial)
		}
	}
	for serial := range tab.split {
		if c := tab.find(serial); c == nil || c.flags&rowSplit == 0 {
			t.Errorf("serial %d: a split issuance left behind", serial)
		}
	}
	t.Logf("%d serials, %d split", n, len(tab.split))
}
