package krl

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
)

// fuzzOptions keep each fuzz input cheap.
var fuzzOptions = Options{MaxSize: 1 << 20, MaxSerialRanges: 1 << 16, MaxEntries: 1 << 14}

// FuzzParse checks that Parse never panics and that whatever it accepts
// re-encodes stably: Marshal -> Parse -> Marshal gives the same bytes and
// the same KRL. The seed corpus is testdata/fuzz/FuzzParse (hand-made edge
// cases) plus the golden files.
func FuzzParse(f *testing.F) {
	golden, _ := filepath.Glob(filepath.Join(goldenDir, "*.krl"))
	for _, p := range golden {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	_, probeCA := edKey(f, 1)
	_, probeKey := edKey(f, 2)
	probe := &ssh.Certificate{Key: probeKey, Serial: 5, KeyId: "alice", SignatureKey: probeCA}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseWith(b, fuzzOptions)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "krl: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		out, err := k.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed KRL: %v", err)
		}
		k2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of our own output: %v", err)
		}
		if diff := cmp.Diff(k, k2); diff != "" {
			t.Fatalf("round trip changed the KRL:\n%s", diff)
		}
		out2, err := k2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("Marshal is not stable:\n%x\n%x", out, out2)
		}
		k.Check(probe)
		k.Check(probeKey)
		if err := k.Dump(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseSpec checks that ParseSpec never panics, names the line in its
// errors, and that what it accepts can be applied, encoded and read back.
func FuzzParseSpec(f *testing.F) {
	specs, _ := filepath.Glob(filepath.Join(goldenDir, "*.spec"))
	for _, p := range specs {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) < 4096 {
			f.Add(string(b), true, false)
		}
	}
	_, ca := edKey(f, 1)
	f.Fuzz(func(t *testing.T, spec string, useCA, wildcard bool) {
		var c ssh.PublicKey
		if useCA && !wildcard {
			c = ca
		}
		entries, err := ParseSpec(strings.NewReader(spec), c, wildcard)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "krl: spec line ") {
				t.Fatalf("error does not name the line: %v", err)
			}
			return
		}
		k := &KRL{}
		if err := k.Apply(entries); err != nil {
			t.Fatalf("Apply of parsed entries: %v", err)
		}
		b, err := k.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse of our own output: %v", err)
		}
		k.Normalize()
		if diff := cmp.Diff(k, back); diff != "" {
			t.Fatalf("round trip changed the KRL:\n%s", diff)
		}
	})
}
