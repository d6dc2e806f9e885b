package krl

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
)

// mpintBlob builds an ssh mpint body for v (minimal, with a sign byte).
func mpintBlob(v *big.Int) []byte {
	b := v.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

func rsaBlob(bits int) []byte {
	n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
	n.Add(n, big.NewInt(12345))
	return wire(nil).sstr("ssh-rsa").str(mpintBlob(big.NewInt(65537))).str(mpintBlob(n))
}

func dsaBlob() []byte {
	p := new(big.Int).Lsh(big.NewInt(1), 1023)
	p.Add(p, big.NewInt(7))
	q := new(big.Int).Lsh(big.NewInt(1), 159)
	q.Add(q, big.NewInt(3))
	return wire(nil).sstr("ssh-dss").str(mpintBlob(p)).str(mpintBlob(q)).str(mpintBlob(big.NewInt(2))).str(mpintBlob(big.NewInt(5)))
}

type parseCase struct {
	name string
	in   []byte
	want string // substring of the error
}

func rejectCases(t *testing.T) []parseCase {
	_, caPub := edKey(t, 1)
	ca := caPub.Marshal()
	list := func(serials ...uint64) wire {
		b := wire(nil)
		for _, s := range serials {
			b = b.u64(s)
		}
		return wire(nil).sect(subSerialList, b)
	}
	bitmap := func(off uint64, mp []byte) wire {
		return wire(nil).sect(subSerialBitmap, wire(nil).u64(off).str(mp))
	}
	certs := func(subs ...wire) wire { return header().sect(sectionCertificates, certBody(ca, subs...)) }
	big2049 := append([]byte{1}, make([]byte, 2048)...)

	return []parseCase{
		{"fail/empty input", nil, "bad magic"},
		{"fail/short magic", []byte("SSHKRL\n"), "bad magic"},
		{"fail/wrong magic", append([]byte("SSHKRL\n\x01"), header()[8:]...), "bad magic"},
		{"fail/format version 2", wire(magic).u32(2).u64(1).u64(2).u64(0).str(nil).str(nil), "unsupported format version 2"},
		{"fail/format version 0", wire(magic).u32(0), "unsupported format version 0"},
		{"fail/no format version", wire(magic).raw(0, 0, 1), "header truncated"},
		{"fail/header without comment", wire(magic).u32(1).u64(1).u64(2).u64(0).str(nil), "header truncated"},
		{"fail/header without reserved", wire(magic).u32(1).u64(1).u64(2).u64(0), "header truncated"},
		{"fail/header truncated date", wire(magic).u32(1).u64(1).raw(0, 0, 0), "header truncated"},
		{"fail/comment longer than input", wire(magic).u32(1).u64(1).u64(2).u64(0).str(nil).u32(10).raw('a'), "header truncated"},
		{"fail/comment with NUL", wire(magic).u32(1).u64(1).u64(2).u64(0).str(nil).sstr("a\x00b"), "embedded NUL"},
		{"fail/section type only", header().u8(sectionSHA1), "truncated"},
		{"fail/section length beyond input", header().u8(sectionSHA1).u32(100).raw(1, 2), "truncated"},
		{"fail/unknown section 6", header().sect(6, nil), "unknown section type"},
		{"fail/unknown section 0", header().sect(0, nil), "unknown section type"},
		{"fail/certificates without reserved", header().sect(sectionCertificates, wire(nil).str(ca)), "header truncated"},
		{"fail/certificates empty body", header().sect(sectionCertificates, nil), "header truncated"},
		{"fail/unparsable CA key", header().sect(sectionCertificates, certBody([]byte("\x00\x00\x00\x03abc"))), "CA key"},
		{"fail/CA key with trailing bytes", header().sect(sectionCertificates, certBody(append(bytes.Clone(ca), 0))), "CA key"},
		{"fail/DSA CA key", header().sect(sectionCertificates, certBody(dsaBlob(), list(1))), "DSA"},
		{"fail/RSA CA key of 512 bits", header().sect(sectionCertificates, certBody(rsaBlob(512), list(1))), "RSA modulus"},
		{"fail/unknown subsection 0x24", certs(wire(nil).sect(0x24, nil)), "subsection 0x24: unknown"},
		{"fail/subsection truncated", certs(wire(nil).u8(subSerialList)), "subsection truncated"},
		{"fail/list with partial serial", certs(wire(nil).sect(subSerialList, wire(nil).u64(5).raw(1, 2, 3))), "subsection 0x20: truncated"},
		{"fail/list serial 0", certs(list(5, 0)), "serial 0"},
		{"fail/range min 0", certs(wire(nil).sect(subSerialRange, wire(nil).u64(0).u64(5))), "serial 0"},
		{"fail/range min > max", certs(wire(nil).sect(subSerialRange, wire(nil).u64(6).u64(5))), "reversed"},
		{"fail/range truncated", certs(wire(nil).sect(subSerialRange, wire(nil).u64(6))), "truncated"},
		{"fail/range trailing bytes", certs(wire(nil).sect(subSerialRange, wire(nil).u64(1).u64(5).u8(0))), "subsection 0x21: trailing data"},
		{"fail/two ranges in one subsection", certs(wire(nil).sect(subSerialRange, wire(nil).u64(1).u64(5).u64(7).u64(9))), "subsection 0x21: trailing data"},
		{"fail/bitmap serial 0", certs(bitmap(0, []byte{0x05})), "serial 0"},
		{"fail/bitmap negative", certs(bitmap(1, []byte{0x80})), "negative"},
		{"fail/bitmap of 2050 bytes", certs(bitmap(1, append([]byte{0}, big2049...))), "larger than 16384 bits"},
		{"fail/bitmap of 2049 bytes without sign byte", certs(bitmap(1, big2049)), "larger than 16384 bits"},
		{"fail/bitmap wraps past 2^64", certs(bitmap(math.MaxUint64-1, []byte{0x07})), "wraps"},
		{"fail/bitmap wraps through unset bits", certs(bitmap(math.MaxUint64, []byte{0x02})), "wraps"},
		{"fail/bitmap trailing bytes", certs(wire(nil).sect(subSerialBitmap, wire(nil).u64(1).str([]byte{1}).u8(0))), "trailing data"},
		{"fail/bitmap without mpint", certs(wire(nil).sect(subSerialBitmap, wire(nil).u64(1))), "truncated"},
		{"fail/key ID with NUL", certs(wire(nil).sect(subKeyID, wire(nil).sstr("a\x00b"))), "embedded NUL"},
		{"fail/key ID truncated", certs(wire(nil).sect(subKeyID, wire(nil).u32(9).raw('a'))), "truncated"},
		{"fail/critical certificate extension", certs(wire(nil).sect(subExtension, wire(nil).sstr("x@example.com").u8(1).str(nil))), "critical"},
		{"fail/certificate extension with trailing data", certs(wire(nil).sect(subExtension, wire(nil).sstr("x").u8(0).str(nil).u8(0))), "trailing data"},
		{"fail/certificate extension truncated", certs(wire(nil).sect(subExtension, wire(nil).sstr("x"))), "truncated"},
		{"fail/critical extension", header().sect(sectionExtension, wire(nil).sstr("x@example.com").u8(1).sstr("v")), "critical"},
		{"fail/extension truncated", header().sect(sectionExtension, wire(nil).sstr("x")), "truncated"},
		{"fail/extension trailing data", header().sect(sectionExtension, wire(nil).sstr("x").u8(0).str(nil).raw(0)), "trailing data"},
		{"fail/extension name with NUL", header().sect(sectionExtension, wire(nil).sstr("x\x00y").u8(0).str(nil)), "embedded NUL"},
		{"fail/SHA1 of 19 bytes", header().sect(sectionSHA1, wire(nil).str(make([]byte, 19))), "fingerprint of 19 bytes, want 20"},
		{"fail/SHA256 of 33 bytes", header().sect(sectionSHA256, wire(nil).str(make([]byte, 33))), "fingerprint of 33 bytes, want 32"},
		{"fail/SHA256 of 20 bytes", header().sect(sectionSHA256, wire(nil).str(make([]byte, 20))), "want 32"},
		{"fail/explicit keys truncated", header().sect(sectionExplicitKey, wire(nil).u32(5).raw(1)), "truncated"},
		{"fail/signature without signature string", header().sect(sectionSignature, wire(nil).sstr("key")), "truncated"},
		{"fail/trailing garbage after sections", append(header().sect(sectionSHA1, nil), 1), "truncated"},
	}
}

func TestParseRejects(t *testing.T) {
	for _, tt := range rejectCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", k)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error %q does not mention %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "krl: ") {
				t.Errorf("error %q lacks the krl: prefix", err)
			}
		})
	}
}

type acceptCase struct {
	name string
	in   []byte
	want *KRL
}

func acceptCases(t *testing.T) []acceptCase {
	_, caPub := edKey(t, 1)
	ca := caPub.Marshal()
	_, ca2Pub := edKey(t, 2)
	ca2 := ca2Pub.Marshal()
	mp2049 := append([]byte{0, 0x80}, make([]byte, 2047)...) // bit 16383 only

	return []acceptCase{
		{"ok/empty", header(), &KRL{Version: 1, GeneratedDate: 2}},
		{"ok/comment with one trailing NUL", wire(magic).u32(1).u64(1).u64(2).u64(7).sstr("reserved").sstr("hi\x00"),
			&KRL{Version: 1, GeneratedDate: 2, Comment: "hi"}},
		{"ok/unsorted list, duplicates and overlaps are merged",
			header().sect(sectionCertificates, certBody(ca,
				wire(nil).sect(subSerialList, wire(nil).u64(9).u64(3).u64(4).u64(9)),
				wire(nil).sect(subSerialRange, wire(nil).u64(5).u64(7)),
				wire(nil).sect(subSerialList, nil),
			)),
			&KRL{Version: 1, GeneratedDate: 2, Certs: []*CertSection{{CA: ca, Serials: []SerialRange{{3, 7}, {9, 9}}}}}},
		{"ok/bitmap with extra leading zeros and offset 0 without bit 0",
			header().sect(sectionCertificates, certBody(ca, wire(nil).sect(subSerialBitmap, wire(nil).u64(0).str([]byte{0, 0, 0x06})))),
			&KRL{Version: 1, GeneratedDate: 2, Certs: []*CertSection{{CA: ca, Serials: []SerialRange{{1, 2}}}}}},
		{"ok/bitmap of exactly 16384 bits",
			header().sect(sectionCertificates, certBody(ca, wire(nil).sect(subSerialBitmap, wire(nil).u64(10).str(mp2049)))),
			&KRL{Version: 1, GeneratedDate: 2, Certs: []*CertSection{{CA: ca, Serials: []SerialRange{{10 + 16383, 10 + 16383}}}}}},
		{"ok/bitmap reaching 2^64-1 without wrapping",
			header().sect(sectionCertificates, certBody(ca, wire(nil).sect(subSerialBitmap, wire(nil).u64(math.MaxUint64-2).str([]byte{0x07})))),
			&KRL{Version: 1, GeneratedDate: 2, Certs: []*CertSection{{CA: ca, Serials: []SerialRange{{math.MaxUint64 - 2, math.MaxUint64}}}}}},
		{"ok/empty bitmap",
			header().sect(sectionCertificates, certBody(ca, wire(nil).sect(subSerialBitmap, wire(nil).u64(0).str(nil)))),
			&KRL{Version: 1, GeneratedDate: 2}},
		{"ok/sections of one CA merged, CA order by first revocation",
			header().
				sect(sectionCertificates, certBody(ca2, wire(nil).sect(subSerialList, nil))).
				sect(sectionCertificates, certBody(nil, wire(nil).sect(subKeyID, wire(nil).sstr("w")))).
				sect(sectionCertificates, certBody(ca, wire(nil).sect(subKeyID, wire(nil).sstr("b").sstr("a\x00")))).
				sect(sectionCertificates, certBody(ca2, wire(nil).sect(subSerialRange, wire(nil).u64(1).u64(2)))).
				sect(sectionCertificates, certBody(ca, wire(nil).sect(subKeyID, wire(nil).sstr("a")))),
			&KRL{Version: 1, GeneratedDate: 2, Certs: []*CertSection{
				{CA: nil, KeyIDs: []string{"w"}},
				{CA: ca, KeyIDs: []string{"a", "b"}},
				{CA: ca2, Serials: []SerialRange{{1, 2}}},
			}}},
		{"ok/non-critical extension section is skipped",
			header().
				sect(sectionExtension, wire(nil).sstr("x@example.com").u8(0).sstr("value")).
				sect(sectionSHA1, wire(nil).str(make([]byte, 20))),
			&KRL{Version: 1, GeneratedDate: 2, SHA1: [][20]byte{{}}}},
		{"ok/non-critical certificate extension is skipped",
			header().sect(sectionCertificates, certBody(ca, wire(nil).sect(subExtension, wire(nil).sstr("y").u8(0).str(nil)))),
			&KRL{Version: 1, GeneratedDate: 2}},
		{"ok/signature section is skipped",
			header().
				sect(sectionSignature, wire(nil).sstr("any key")).sstr("any signature").
				sect(sectionSHA1, wire(nil).str(make([]byte, 20))),
			&KRL{Version: 1, GeneratedDate: 2, SHA1: [][20]byte{{}}}},
		{"ok/explicit blobs are not parsed; hashes sorted and deduplicated",
			header().
				sect(sectionExplicitKey, wire(nil).sstr("zz").sstr("junk").str(nil).sstr("junk")).
				sect(sectionSHA256, wire(nil).str(bytes.Repeat([]byte{2}, 32)).str(bytes.Repeat([]byte{1}, 32))).
				sect(sectionSHA256, wire(nil).str(bytes.Repeat([]byte{2}, 32))),
			&KRL{Version: 1, GeneratedDate: 2,
				ExplicitKeys: [][]byte{{}, []byte("junk"), []byte("zz")},
				SHA256:       [][32]byte{[32]byte(bytes.Repeat([]byte{1}, 32)), [32]byte(bytes.Repeat([]byte{2}, 32))}}},
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tt := range acceptCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	_, caPub := edKey(t, 1)
	ca := caPub.Marshal()
	alternating := bytes.Repeat([]byte{0x55}, 2048)
	manyBitmaps := header()
	for range 4 {
		manyBitmaps = manyBitmaps.sect(sectionCertificates, certBody(ca,
			wire(nil).sect(subSerialBitmap, wire(nil).u64(1).str(alternating))))
	}
	ids := wire(nil)
	for range 100 {
		ids = ids.sstr("x")
	}
	tests := []struct {
		name string
		in   []byte
		lim  Options
	}{
		{"fail/input size", header(), Options{MaxSize: 10}},
		{"fail/serial ranges from bitmaps", manyBitmaps, Options{MaxSerialRanges: 10000}},
		{"fail/key IDs", header().sect(sectionCertificates, certBody(ca, wire(nil).sect(subKeyID, ids))), Options{MaxEntries: 99}},
		{"fail/hashes", header().sect(sectionSHA1, wire(nil).str(make([]byte, 20)).str(make([]byte, 20))), Options{MaxEntries: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWith(tt.in, tt.lim)
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("ParseWith = %v, want ErrLimit", err)
			}
		})
	}
	t.Run("ok/same input under default limits", func(t *testing.T) {
		k, err := Parse(manyBitmaps)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(k.Certs[0].Serials); n != 8192 {
			t.Errorf("got %d ranges, want 8192", n)
		}
	})
	t.Run("ok/bad magic is ErrBadMagic", func(t *testing.T) {
		if _, err := Parse([]byte("ssh-ed25519 AAAA")); !errors.Is(err, ErrBadMagic) {
			t.Fatalf("got %v", err)
		}
	})
}

// TestParseAgreesWithSSHKeygen loads every hand-made case with the
// ssh-keygen -Q of every OpenSSH release, which exits 255 when it cannot
// load a KRL: 9.2 must load exactly what strict Parse accepts, 9.4 and
// later what Parse accepts.
func TestParseAgreesWithSSHKeygen(t *testing.T) {
	for _, rel := range opensshtest.All(t) {
		t.Run(rel.Name, func(t *testing.T) {
			t.Parallel()
			parseAgrees(t, rel)
		})
	}
}

func parseAgrees(t *testing.T, rel *opensshtest.Flavour) {
	keygen := rel.Keygen
	dir := t.TempDir()
	_, probe := edKey(t, 9)
	probePath := writeFile(t, dir, "probe.pub", ssh.MarshalAuthorizedKey(probe))
	loads := func(t *testing.T, in []byte) bool {
		p := writeFile(t, dir, "x.krl", in)
		out, err := exec.Command(keygen, "-Q", "-f", p, probePath).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 255 {
			return false
		}
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		_ = out
		return true
	}
	strict := !rel.AtLeast(9, 4)
	for _, tt := range rejectCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			if reason := differs92[tt.name]; reason != "" && !rel.AtLeast(10, 1) {
				t.Skip(reason)
			}
			if loads(t, tt.in) {
				t.Errorf("ssh-keygen loads what Parse rejects")
			}
		})
	}
	for _, tt := range acceptCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWith(tt.in, Options{Strict: strict})
			if got := loads(t, tt.in); got != (err == nil) {
				t.Errorf("ssh-keygen loads: %v; Parse (strict %v) error: %v", got, strict, err)
			}
		})
	}
}

// differs92 lists the cases where OpenSSH before 10.1 and what Parse
// follows (current OpenSSH, plus refusing DSA CAs) disagree.
var differs92 = map[string]string{
	"fail/DSA CA key": "9.2 still loads DSA CA keys; OpenSSH 10.1 and later do not",
}
