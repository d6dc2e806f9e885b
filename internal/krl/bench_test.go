package krl

import (
	"bufio"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/testkit"
)

// benchOp is one revocation: a serial range or, with id set, a key ID.
type benchOp struct {
	lo, hi uint64
	id     string
}

// benchOps returns 1,000,000 revoked serials in mixed patterns plus 10,000
// key IDs, in shuffled order:
//   - 250,000 scattered serials below 2^40 (list subsections),
//   - 350,000 serials in clusters of ~200 at 50% density, 10,000 or more
//     apart (bitmaps),
//   - 400,000 serials in 40 ranges of 10,000 (range subsections).
func benchOps() (ops []benchOp, serials int) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	seen := map[uint64]bool{}
	for len(seen) < 250000 {
		s := 1 + rng.Uint64N(1<<40)
		if !seen[s] {
			seen[s] = true
			ops = append(ops, benchOp{lo: s, hi: s})
		}
	}
	serials = len(seen)
	base := uint64(1 << 41)
	for n := 0; n < 350000; {
		for i := uint64(0); i < 200 && n < 350000; i++ {
			if rng.IntN(2) == 0 {
				ops = append(ops, benchOp{lo: base + i, hi: base + i})
				n++
			}
		}
		base += 10000 + rng.Uint64N(10000)
	}
	serials += 350000
	base = 1 << 42
	for range 40 {
		ops = append(ops, benchOp{lo: base, hi: base + 9999})
		base += 20000 + rng.Uint64N(1<<20)
	}
	serials += 400000
	for i := range 10000 {
		ops = append(ops, benchOp{id: fmt.Sprintf("user-%d@corp.example.com", i)})
	}
	rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	return ops, serials
}

func buildBench(ca ssh.PublicKey, ops []benchOp) (*KRL, error) {
	k := &KRL{Version: 1, GeneratedDate: 1}
	s, err := k.Section(ca)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if op.id != "" {
			err = s.RevokeKeyID(op.id)
		} else {
			err = s.RevokeSerials(op.lo, op.hi)
		}
		if err != nil {
			return nil, err
		}
	}
	return k, nil
}

// BenchmarkKRLGenerate builds and marshals a KRL of 1,000,000 serials and
// 10,000 key IDs, and runs `ssh-keygen -k` on the equivalent specification
// file in the same iterations, reporting its time, the ratio of the two
// and both sizes.
func BenchmarkKRLGenerate(b *testing.B) {
	keygen := testkit.RequireTool(b, "ssh-keygen")
	_, ca := edKey(b, 1)
	ops, serials := benchOps()
	if serials != 1000000 {
		b.Fatalf("%d serials", serials)
	}
	dir := b.TempDir()
	caPath := writeFile(b, dir, "ca.pub", ssh.MarshalAuthorizedKey(ca))
	specPath := filepath.Join(dir, "bench.spec")
	f, err := os.Create(specPath)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for _, op := range ops {
		switch {
		case op.id != "":
			fmt.Fprintf(w, "id: %s\n", op.id)
		case op.lo == op.hi:
			fmt.Fprintf(w, "serial: %d\n", op.lo)
		default:
			fmt.Fprintf(w, "serial: %d-%d\n", op.lo, op.hi)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	outPath := filepath.Join(dir, "theirs.krl")

	var ours []byte
	var keygenTime time.Duration
	b.ResetTimer()
	for range b.N {
		k, err := buildBench(ca, ops)
		if err != nil {
			b.Fatal(err)
		}
		if ours, err = k.Marshal(); err != nil {
			b.Fatal(err)
		}

		b.StopTimer()
		os.Remove(outPath)
		start := time.Now()
		if out, err := exec.Command(keygen, "-q", "-k", "-f", outPath, "-z", "1", "-s", caPath, specPath).CombinedOutput(); err != nil {
			b.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		keygenTime += time.Since(start)
		b.StartTimer()
	}
	b.StopTimer()
	theirs, err := os.ReadFile(outPath)
	if err != nil {
		b.Fatal(err)
	}
	oursNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	keygenNs := float64(keygenTime.Nanoseconds()) / float64(b.N)
	b.ReportMetric(keygenNs, "ssh-keygen-ns/op")
	b.ReportMetric(keygenNs/oursNs, "ratio")
	b.ReportMetric(float64(len(ours)), "ours-bytes")
	b.ReportMetric(float64(len(theirs)), "ssh-keygen-bytes")
	if len(ours) > len(theirs) {
		b.Errorf("ours is %d bytes, ssh-keygen's %d", len(ours), len(theirs))
	}
}

// BenchmarkKRLParse decodes the KRL of BenchmarkKRLGenerate.
func BenchmarkKRLParse(b *testing.B) {
	_, ca := edKey(b, 1)
	ops, _ := benchOps()
	k, err := buildBench(ca, ops)
	if err != nil {
		b.Fatal(err)
	}
	data, err := k.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
