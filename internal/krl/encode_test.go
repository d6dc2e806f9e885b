package krl

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

func TestChooseNextState(t *testing.T) {
	const none, list, rng, bm = 0, subSerialList, subSerialRange, subSerialBitmap
	tests := []struct {
		name             string
		cur              byte
		contig           uint64
		final            bool
		lastGap, nextGap uint64
		want             byte
		restart          bool
	}{
		// list 9 bytes, range 17, bitmap 10
		{"ok/lone final serial is a list", none, 1, true, 0, 0, list, false},
		// list 18, range 26, bitmap 10 = restart 10: ties keep the bitmap
		{"ok/close neighbours start a bitmap", none, 1, false, 0, 2, bm, false},
		// bitmap 22, list 18, range 26, restart 19
		{"ok/far neighbour leaves the bitmap for a list", bm, 1, false, 100, 100, list, false},
		// bitmap 11, restart 10
		{"ok/restart when cheaper than bridging the gap", bm, 1, false, 80, 5, bm, true},
		// list 17 (already open), range 26, bitmap 19+
		{"ok/open list continues", list, 1, false, 1000, 1000, list, false},
		{"ok/long run is a range", none, 1000, false, 0, 5, rng, false},
		// bitmap 72+60=132 bits=17 bytes, range 136 bits=17 bytes: tie keeps bitmap
		{"ok/tie between bitmap and range keeps bitmap", none, 60, true, 0, 0, bm, false},
		// bitmap 72+65=137 bits=18 bytes > range 17
		{"ok/just past the tie is a range", none, 65, true, 0, 0, rng, false},
		{"ok/huge values are capped without overflow", bm, math.MaxUint64, false, math.MaxUint64, math.MaxUint64, rng, false},
		// list 17 = range 17 bytes, but a fresh bitmap costs 72+2 bits = 10
		{"ok/small run after a range restarts a bitmap", rng, 2, true, 1000, 0, bm, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, restart := chooseNextState(tt.cur, tt.contig, tt.final, tt.lastGap, tt.nextGap)
			if got != tt.want || restart != tt.restart {
				t.Errorf("chooseNextState = %#x restart=%v, want %#x restart=%v", got, restart, tt.want, tt.restart)
			}
		})
	}
}

func TestMarshalSplitsOversizedBitmaps(t *testing.T) {
	_, ca := edKey(t, 1)
	tests := []struct {
		name    string
		serials func(k *KRL)
	}{
		{"ok/odd serials 1..40001", func(k *KRL) {
			for s := uint64(1); s <= 40001; s += 2 {
				k.RevokeSerials(ca, s, s)
			}
		}},
		{"ok/every third serial up to 100000, inserted backwards", func(k *KRL) {
			for s := uint64(99999); s >= 3; s -= 3 {
				k.RevokeSerials(ca, s, s)
			}
		}},
		{"ok/short runs with short gaps near 2^64", func(k *KRL) {
			for s := uint64(math.MaxUint64 - 60000); s < math.MaxUint64-10; s += 7 {
				k.RevokeSerials(ca, s, s+3)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &KRL{}
			tt.serials(k)
			b, err := k.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			bitmaps := 0
			for _, l := range subsectionLayout(t, b) {
				if !strings.HasPrefix(l, "0x22") {
					continue
				}
				bitmaps++
				mp := l[strings.Index(l, "mpint=")+6:]
				if len(mp)/2 > 2049 || (len(mp)/2 == 2049 && !strings.HasPrefix(mp, "00")) {
					t.Errorf("bitmap of %d bytes", len(mp)/2)
				}
			}
			if bitmaps < 2 {
				t.Errorf("%d bitmaps, want the serials split over several", bitmaps)
			}
			back, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse(Marshal): %v", err)
			}
			if diff := gocmp.Diff(k.normalized().Certs, back.Certs); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	_, ca := edKey(t, 1)
	caBlob := ca.Marshal()
	t.Run("ok/does not modify its input and merges sections of one CA", func(t *testing.T) {
		k := &KRL{Certs: []*CertSection{
			{CA: caBlob, Serials: []SerialRange{{9, 9}, {1, 2}}, KeyIDs: []string{"b", "a", "b"}},
			{CA: nil, KeyIDs: []string{"w"}},
			{CA: caBlob, Serials: []SerialRange{{3, 3}}},
			{CA: []byte{}},
		}}
		before := cloneKRL(k)
		b, err := k.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if diff := gocmp.Diff(before, k); diff != "" {
			t.Errorf("Marshal modified its input:\n%s", diff)
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		want := []*CertSection{
			{CA: caBlob, Serials: []SerialRange{{1, 3}, {9, 9}}, KeyIDs: []string{"a", "b"}},
			{KeyIDs: []string{"w"}},
		}
		if diff := gocmp.Diff(want, got.Certs); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		k.Normalize()
		if diff := gocmp.Diff(want, k.Certs); diff != "" {
			t.Errorf("Normalize (-want +got):\n%s", diff)
		}
	})
	t.Run("ok/empty KRL is the bare header", func(t *testing.T) {
		b, err := (&KRL{Version: 1, GeneratedDate: 2}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, header()) {
			t.Errorf("got %x want %x", b, []byte(header()))
		}
	})
	fails := []struct {
		name string
		k    *KRL
		err  string
	}{
		{"fail/comment with NUL", &KRL{Comment: "a\x00"}, "comment contains NUL"},
		{"fail/key ID with NUL", &KRL{Certs: []*CertSection{{KeyIDs: []string{"a\x00b"}}}}, "key ID contains NUL"},
		{"fail/serial 0", &KRL{Certs: []*CertSection{{Serials: []SerialRange{{0, 4}}}}}, "invalid serial range 0-4"},
		{"fail/reversed range", &KRL{Certs: []*CertSection{{Serials: []SerialRange{{5, 4}}}}}, "invalid serial range 5-4"},
		{"fail/CA blob is not a key", &KRL{Certs: []*CertSection{{CA: []byte("junk"), KeyIDs: []string{"a"}}}}, "CA key"},
		{"fail/DSA CA blob", &KRL{Certs: []*CertSection{{CA: dsaBlob(), KeyIDs: []string{"a"}}}}, "DSA"},
	}
	for _, tt := range fails {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.k.Marshal()
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "krl: ") {
				t.Fatalf("Marshal = %v, want %q", err, tt.err)
			}
		})
	}
}

func cloneKRL(k *KRL) *KRL {
	c := *k
	c.Certs = nil
	for _, s := range k.Certs {
		c.Certs = append(c.Certs, &CertSection{CA: bytes.Clone(s.CA), Serials: append([]SerialRange(nil), s.Serials...), KeyIDs: append([]string(nil), s.KeyIDs...)})
	}
	return &c
}

func TestRevoke(t *testing.T) {
	caSigner, ca := edKey(t, 1)
	_, u := edKey(t, 2)
	c := cert(t, caSigner, u, 5, "id")
	dsa, err := ssh.ParsePublicKey(dsaBlob())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    func(k *KRL) error
		err  string
	}{
		{"fail/serial 0", func(k *KRL) error { return k.RevokeSerials(ca, 0, 0) }, "krl: serial 0 cannot be revoked"},
		{"fail/reversed", func(k *KRL) error { return k.RevokeSerials(ca, 5, 4) }, "krl: serial range 5-4 is reversed"},
		{"fail/certificate as CA", func(k *KRL) error { return k.RevokeSerials(c, 1, 1) }, "not a certificate"},
		{"fail/certificate as CA for key ID", func(k *KRL) error { return k.RevokeKeyID(c, "x") }, "not a certificate"},
		{"fail/DSA CA", func(k *KRL) error { return k.RevokeKeyID(dsa, "x") }, "DSA"},
		{"fail/NUL in key ID", func(k *KRL) error { return k.RevokeKeyID(ca, "a\x00") }, "NUL"},
		{"fail/nil key", func(k *KRL) error { return k.RevokeKey(nil) }, "nil key"},
		{"fail/nil certificate", func(k *KRL) error { return k.RevokeCertificate(nil) }, "no signature key"},
		{"ok/full range", func(k *KRL) error { return k.RevokeSerials(ca, 1, math.MaxUint64) }, ""},
		{"ok/certificate by serial", func(k *KRL) error { return k.RevokeCertificate(c) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.f(&KRL{})
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %v, want %q", err, tt.err)
			}
		})
	}
	t.Run("ok/ascending inserts stay merged", func(t *testing.T) {
		k := &KRL{}
		for s := uint64(1); s <= 1000; s++ {
			k.RevokeSerials(nil, s, s)
		}
		k.RevokeSerials(nil, math.MaxUint64, math.MaxUint64)
		k.RevokeSerials(nil, math.MaxUint64-1, math.MaxUint64)
		want := []SerialRange{{1, 1000}, {math.MaxUint64, math.MaxUint64}, {math.MaxUint64 - 1, math.MaxUint64}}
		if diff := gocmp.Diff(want, k.Certs[0].Serials); diff != "" {
			t.Error(diff)
		}
		k.Normalize()
		if diff := gocmp.Diff([]SerialRange{{1, 1000}, {math.MaxUint64 - 1, math.MaxUint64}}, k.Certs[0].Serials); diff != "" {
			t.Error(diff)
		}
	})
}

func TestDump(t *testing.T) {
	_, ca := edKey(t, 1)
	_, u := edKey(t, 2)
	k := &KRL{Version: 3, GeneratedDate: 1700000000, Comment: "weekly\x1b"}
	k.RevokeSerials(ca, 5, 9)
	k.RevokeSerials(ca, 1, 1)
	k.RevokeKeyID(ca, "alice")
	k.RevokeKeyID(ca, " odd#id")
	k.RevokeKeyID(nil, "")
	k.RevokeKey(u)
	k.RevokeSHA256([32]byte{1})
	k.RevokeSHA1([20]byte{2})
	var buf bytes.Buffer
	if err := k.Dump(&buf); err != nil {
		t.Fatal(err)
	}
	want := `# KRL version 3
# Generated at 2023-11-14T22:13:20Z
# Comment: weekly\x1b

# CA key ssh-ed25519 ` + ssh.FingerprintSHA256(ca) + `
serial: 1
serial: 5-9
# id: " odd#id"
id: alice

# Wildcard CA
id: 

# Explicitly revoked keys
hash: ` + ssh.FingerprintSHA256(u) + ` # ssh-ed25519

# Revoked SHA-256 fingerprints
hash: SHA256:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA

# Revoked SHA-1 fingerprints (no specification directive exists)
# hash SHA1:0200000000000000000000000000000000000000
`
	if diff := gocmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("Dump (-want +got):\n%s", diff)
	}

	j, err := json.Marshal(k.Describe())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"version":3`, `"serials":["1","5-9"]`, `"wildcard":true`, `"ca_fingerprint":"` + ssh.FingerprintSHA256(ca) + `"`, `"sha1":["0200000000000000000000000000000000000000"]`} {
		if !strings.Contains(string(j), s) {
			t.Errorf("JSON lacks %s:\n%s", s, j)
		}
	}
}

func TestSortRanges(t *testing.T) {
	for _, n := range []int{0, 1, 5, 1023, 1024, 5000} {
		t.Run(fmt.Sprintf("ok/%d ranges", n), func(t *testing.T) {
			rng := mrand.New(mrand.NewPCG(uint64(n), 1))
			in := make([]SerialRange, n)
			for i := range in {
				switch i % 3 {
				case 0:
					in[i].Lo = rng.Uint64()
				case 1:
					in[i].Lo = rng.Uint64N(1 << 20)
				default:
					in[i].Lo = math.MaxUint64 - rng.Uint64N(1<<17)
				}
				in[i].Hi = uint64(i)
			}
			orig := slices.Clone(in)
			got := sortRanges(in)
			if !slices.IsSortedFunc(got, func(a, b SerialRange) int { return cmp.Compare(a.Lo, b.Lo) }) {
				t.Error("not sorted by Lo")
			}
			both := func(a, b SerialRange) int { return cmp.Or(cmp.Compare(a.Lo, b.Lo), cmp.Compare(a.Hi, b.Hi)) }
			want := slices.Clone(in)
			slices.SortFunc(want, both)
			sorted := slices.Clone(got)
			slices.SortFunc(sorted, both)
			if diff := gocmp.Diff(want, sorted); diff != "" {
				t.Errorf("not a permutation of the input (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(orig, in); diff != "" {
				t.Errorf("input modified:\n%s", diff)
			}
		})
	}
}
