package krl

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

func readPub(tb testing.TB, path string) ssh.PublicKey {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return pub
}

// edKey returns a deterministic Ed25519 signer and public key.
func edKey(tb testing.TB, seed byte) (ssh.Signer, ssh.PublicKey) {
	tb.Helper()
	var s [32]byte
	s[0], s[31] = seed, 0x5a
	priv := ed25519.NewKeyFromSeed(s[:])
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return signer, signer.PublicKey()
}

// cert signs a user certificate over pub with ca.
func cert(tb testing.TB, ca ssh.Signer, pub ssh.PublicKey, serial uint64, id string) *ssh.Certificate {
	tb.Helper()
	c := &ssh.Certificate{
		Key:             pub,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           id,
		ValidPrincipals: []string{"u"},
		ValidAfter:      0,
		ValidBefore:     ssh.CertTimeInfinity,
	}
	if err := c.SignCert(zeroReader{}, ca); err != nil {
		tb.Fatal(err)
	}
	return c
}

// zeroReader makes certificate nonces deterministic.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// wire builds KRL bytes by hand for the rejection tests.
type wire []byte

func (w wire) u8(v byte) wire     { return append(w, v) }
func (w wire) u32(v uint32) wire  { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire  { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) raw(b ...byte) wire { return append(w, b...) }
func (w wire) str(b []byte) wire  { return append(w.u32(uint32(len(b))), b...) }
func (w wire) sstr(s string) wire { return w.str([]byte(s)) }

// header is a valid KRL header: version 1, date 2, empty comment.
func header() wire {
	return wire(magic).u32(1).u64(1).u64(2).u64(0).str(nil).str(nil)
}

// sect appends a section of type typ with body.
func (w wire) sect(typ byte, body wire) wire { return w.u8(typ).str(body) }

// subsections is a certificates section body with the given CA blob.
func certBody(ca []byte, subs ...wire) wire {
	w := wire(nil).str(ca).str(nil)
	for _, s := range subs {
		w = append(w, s...)
	}
	return w
}

// subsectionLayout describes the serial and key-ID subsections of every
// certificates section of a KRL.
func subsectionLayout(tb testing.TB, b []byte) []string {
	tb.Helper()
	var out []string
	r := reader{b: b[len(magic):]}
	r.u32()
	r.u64()
	r.u64()
	r.u64()
	r.str()
	r.str()
	for r.len() > 0 {
		typ, _ := r.u8()
		body, ok := r.str()
		if !ok {
			tb.Fatal("truncated section")
		}
		if typ != sectionCertificates {
			continue
		}
		s := reader{b: body}
		s.str()
		s.str()
		for s.len() > 0 {
			st, _ := s.u8()
			sub, _ := s.str()
			ss := reader{b: sub}
			switch st {
			case subSerialList:
				out = append(out, fmt.Sprintf("%#02x n=%d", st, len(sub)/8))
			case subSerialRange:
				lo, _ := ss.u64()
				hi, _ := ss.u64()
				out = append(out, fmt.Sprintf("%#02x %d-%d", st, lo, hi))
			case subSerialBitmap:
				off, _ := ss.u64()
				mp, _ := ss.str()
				out = append(out, fmt.Sprintf("%#02x offset=%d mpint=%x", st, off, mp))
			case subKeyID:
				n := 0
				for ss.len() > 0 {
					ss.str()
					n++
				}
				out = append(out, fmt.Sprintf("%#02x n=%d", st, n))
			default:
				out = append(out, fmt.Sprintf("%#02x", st))
			}
		}
	}
	return out
}
