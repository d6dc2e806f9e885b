package krl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// goldenStep is one `ssh-keygen -k` invocation of testdata/golden/make.sh:
// the -s argument ("" for none given, "none" for the wildcard) and the
// specification files.
type goldenStep struct {
	ca    string
	specs []string
}

// goldenKRLs mirrors make.sh.
var goldenKRLs = []struct {
	name    string
	version uint64
	comment string
	steps   []goldenStep
}{
	{"empty", 1, "", []goldenStep{{"", []string{"empty.spec"}}}},
	{"serial-list", 2, "", []goldenStep{{"ca1.pub", []string{"serial-list.spec"}}}},
	{"serial-range", 3, "", []goldenStep{{"ca1.pub", []string{"serial-range.spec"}}}},
	{"serial-bitmap", 4, "", []goldenStep{{"ca1.pub", []string{"serial-bitmap.spec"}}}},
	{"serial-topbit", 5, "", []goldenStep{{"ca1.pub", []string{"serial-topbit.spec"}}}},
	{"serial-mixed", 6, "", []goldenStep{{"ca2.pub", []string{"serial-mixed.spec"}}}},
	{"key-ids", 7, "", []goldenStep{{"ca1.pub", []string{"key-ids.spec"}}}},
	{"wildcard", 8, "", []goldenStep{{"none", []string{"wildcard.spec"}}}},
	{"explicit", 9, "", []goldenStep{{"", []string{"explicit.spec"}}}},
	{"sha1", 10, "", []goldenStep{{"", []string{"sha1.spec"}}}},
	{"sha256", 11, "", []goldenStep{{"", []string{"sha256.spec"}}}},
	{"certs", 12, "", []goldenStep{{"", []string{"certs.spec"}}}},
	{"comment", 13, "golden comment", []goldenStep{{"ca1.pub", []string{"serial-bitmap.spec"}}}},
	{"multi-ca", 14, "", []goldenStep{
		{"ca2.pub", []string{"ca2.spec"}},
		{"ca1.pub", []string{"ca1.spec"}},
		{"none", []string{"wildcard.spec"}},
		{"ca3.pub", []string{"ca3.spec", "certs.spec"}},
	}},
	{"everything", 15, "", []goldenStep{
		{"ca1.pub", []string{"ca1.spec", "serial-mixed.spec", "key-ids.spec", "explicit.spec", "sha1.spec"}},
		{"ca3.pub", []string{"ca3.spec", "sha256.spec", "certs.spec"}},
		{"none", []string{"wildcard.spec"}},
	}},
}

const goldenDir = "testdata/golden"

// fromSpecs builds a KRL from specification files the way the matching
// ssh-keygen invocations did.
func fromSpecs(t *testing.T, dir string, steps []goldenStep) *KRL {
	t.Helper()
	k := &KRL{}
	for _, st := range steps {
		var ca ssh.PublicKey
		wild := st.ca == "none"
		if st.ca != "" && !wild {
			ca = readPub(t, filepath.Join(dir, st.ca))
		}
		for _, sp := range st.specs {
			f, err := os.Open(filepath.Join(dir, sp))
			if err != nil {
				t.Fatal(err)
			}
			entries, err := ParseSpec(f, ca, wild)
			f.Close()
			if err != nil {
				t.Fatalf("%s: %v", sp, err)
			}
			if err := k.Apply(entries); err != nil {
				t.Fatalf("%s: %v", sp, err)
			}
		}
	}
	return k
}

func TestGolden(t *testing.T) {
	for _, g := range goldenKRLs {
		t.Run("ok/"+g.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(goldenDir, g.name+".krl"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := fromSpecs(t, goldenDir, g.steps)
			want.Version, want.Comment = g.version, g.comment
			want.GeneratedDate = got.GeneratedDate
			want.Normalize()
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decoded sections differ (-from spec +decoded):\n%s", diff)
			}
			if got.GeneratedDate < 1700000000 {
				t.Errorf("GeneratedDate = %d, want a recent time", got.GeneratedDate)
			}
			re, err := got.Marshal()
			if err != nil {
				t.Fatalf("Marshal(decoded): %v", err)
			}
			if !bytes.Equal(re, b) {
				t.Errorf("Marshal(decoded) differs from ssh-keygen's bytes\n got %x\nwant %x", re, b)
			}
			built, err := want.Marshal()
			if err != nil {
				t.Fatalf("Marshal(from spec): %v", err)
			}
			if !bytes.Equal(built, b) {
				t.Errorf("Marshal(from spec) differs from ssh-keygen's bytes\n got %x\nwant %x", built, b)
			}
		})
	}
	t.Run("fail/oversized-bitmap", func(t *testing.T) {
		// ssh-keygen wrote a 40001-bit bitmap it cannot read back itself.
		b, err := os.ReadFile(filepath.Join(goldenDir, "oversized-bitmap.krl"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(b)
		if err == nil || !strings.Contains(err.Error(), "larger than 16384 bits") {
			t.Fatalf("Parse = %v, want the 16384-bit limit error", err)
		}
		// Ours for the same input splits the bitmap and stays loadable.
		k := &KRL{Version: 16}
		ca := readPub(t, filepath.Join(goldenDir, "ca1.pub"))
		for s := uint64(1); s <= 40001; s += 2 {
			if err := k.RevokeSerials(ca, s, s); err != nil {
				t.Fatal(err)
			}
		}
		out, err := k.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(ours): %v", err)
		}
		if diff := cmp.Diff(k.normalized().Certs, back.Certs); diff != "" {
			t.Errorf("round trip differs:\n%s", diff)
		}
		// Three bitmaps of at most 16384 bits instead of one of 40001:
		// 34 bytes more than ssh-keygen's unloadable file.
		if d := len(out) - len(b); d < 0 || d > 60 {
			t.Errorf("ours %d bytes, ssh-keygen's %d", len(out), len(b))
		}
	})
}

// TestGoldenStructure pins the subsection layout of a few golden files to
// the worked examples of §3.6.
func TestGoldenStructure(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"serial-bitmap", []string{"0x22 offset=5 mpint=15"}},
		{"serial-topbit", []string{"0x22 offset=1 mpint=02ff"}},
		// 1 and 15-16 share a bitmap (bits 0, 14, 15), the rest are far apart.
		{"serial-list", []string{"0x22 offset=1 mpint=00c001", "0x20 n=4"}},
		{"serial-mixed", []string{
			"0x20 n=1", "0x21 100-200", "0x22 offset=300 mpint=022d", "0x20 n=1",
			"0x22 offset=500 mpint=00fc01", "0x20 n=1", "0x22 offset=1000000 mpint=09",
			"0x22 offset=1000500 mpint=03", "0x21 2000000-3000000", "0x20 n=1",
		}},
		{"key-ids", []string{"0x23 n=6"}},
	}
	for _, tt := range tests {
		t.Run("ok/"+tt.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(goldenDir, tt.name+".krl"))
			if err != nil {
				t.Fatal(err)
			}
			got := subsectionLayout(t, b)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("layout (-want +got):\n%s", diff)
			}
		})
	}
}
