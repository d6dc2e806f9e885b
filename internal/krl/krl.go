package krl

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Wire constants of PROTOCOL.krl (§3.1, §3.2).
const (
	magic         = "SSHKRL\n\x00"
	formatVersion = 1

	sectionCertificates = 1
	sectionExplicitKey  = 2
	sectionSHA1         = 3
	sectionSignature    = 4
	sectionSHA256       = 5
	sectionExtension    = 255

	subSerialList   = 0x20
	subSerialRange  = 0x21
	subSerialBitmap = 0x22
	subKeyID        = 0x23
	subExtension    = 0x39

	// maxBitmapBits is the largest bitmap OpenSSH's reader accepts: an mpint
	// magnitude of at most SSHBUF_MAX_BIGNUM = 2048 bytes (§0).
	maxBitmapBits = 16384

	// maxOpenSSHSize is SSHBUF_SIZE_MAX: OpenSSH cannot load a larger file.
	maxOpenSSHSize = 0x8000000
)

// ErrBadMagic is returned by Parse when the input does not start with the
// KRL magic. sshd then reads the file as a plain list of keys instead.
var ErrBadMagic = errors.New("krl: bad magic (not a KRL)")

// ErrLimit is returned (wrapped) by Parse and ParseWith when the input
// exceeds one of the limits of Options.
var ErrLimit = errors.New("krl: limit exceeded")

// KRL is a decoded or to-be-encoded OpenSSH key revocation list.
//
// The builder methods (RevokeSerials, RevokeKeyID, RevokeKey, RevokeSHA1,
// RevokeSHA256, Apply) only append; Marshal, Dump and Describe work on a
// sorted, merged and de-duplicated view, and Normalize rewrites the fields
// into that form. Parse always returns the normalised form.
type KRL struct {
	// Version is krl_version, chosen by the producer (ssh-keygen -z).
	Version uint64
	// GeneratedDate is the generation time in Unix seconds. Marshal writes
	// it as is; unlike ssh-keygen it never substitutes the current time.
	GeneratedDate uint64
	// Comment is free text; it may not contain NUL.
	Comment string
	// Certs holds one section per CA in first-added order. A section with
	// an empty CA is the wildcard CA: it applies to certificates of any CA.
	Certs []*CertSection
	// ExplicitKeys holds plain public key blobs (certificates stripped).
	ExplicitKeys [][]byte
	// SHA1 and SHA256 hold fingerprints of plain public key blobs.
	SHA1   [][20]byte
	SHA256 [][32]byte
}

// CertSection lists the certificates revoked under one CA.
type CertSection struct {
	// CA is the CA's public key blob; nil or empty means the wildcard CA.
	CA []byte
	// Serials are inclusive ranges with 1 <= Lo <= Hi.
	Serials []SerialRange
	// KeyIDs are revoked certificate key IDs; they may not contain NUL.
	KeyIDs []string
}

// SerialRange is an inclusive range of certificate serials, 1 <= Lo <= Hi.
type SerialRange struct{ Lo, Hi uint64 }

// Wildcard reports whether the section applies to certificates of any CA.
func (s *CertSection) Wildcard() bool { return len(s.CA) == 0 }

// caBlob returns the blob identifying ca in a certificates section: nil for
// the wildcard CA (ca == nil), otherwise the plain key blob.
func caBlob(ca ssh.PublicKey) ([]byte, error) {
	if ca == nil {
		return nil, nil
	}
	if _, ok := ca.(*ssh.Certificate); ok {
		return nil, errors.New("a CA key must be a plain key, not a certificate")
	}
	//lint:ignore SA1019 DSA is named only to refuse it
	if ca.Type() == ssh.KeyAlgoDSA {
		return nil, errors.New("DSA CA keys are not supported (OpenSSH 10 cannot load such a KRL)")
	}
	return ca.Marshal(), nil
}

// caIdentity returns the bytes two CA blobs are compared by: the plain key
// blob. OpenSSH compares CA keys with sshkey_equal, which ignores a
// certificate wrapped around a key.
func caIdentity(blob []byte) []byte {
	if !isCertBlob(blob) {
		return blob
	}
	pk, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return blob
	}
	if c, ok := pk.(*ssh.Certificate); ok {
		return c.Key.Marshal()
	}
	return blob
}

// isCertBlob reports whether a key blob's type name is a certificate type.
func isCertBlob(blob []byte) bool {
	if len(blob) < 4 {
		return false
	}
	n := uint32(blob[0])<<24 | uint32(blob[1])<<16 | uint32(blob[2])<<8 | uint32(blob[3])
	if uint64(n) > uint64(len(blob)-4) {
		return false
	}
	return strings.HasSuffix(string(blob[4:4+n]), "-cert-v01@openssh.com")
}

// plainBlob returns the blob of pub with any certificate stripped.
func plainBlob(pub ssh.PublicKey) []byte {
	if c, ok := pub.(*ssh.Certificate); ok {
		return c.Key.Marshal()
	}
	return pub.Marshal()
}

// section finds the section for a CA blob (nil = wildcard), creating it at
// the end when create is set.
func (k *KRL) section(ca []byte, create bool) *CertSection {
	id := caIdentity(ca)
	for _, s := range k.Certs {
		if s == nil {
			continue
		}
		if len(ca) == 0 && len(s.CA) == 0 {
			return s
		}
		if len(ca) != 0 && len(s.CA) != 0 && bytes.Equal(caIdentity(s.CA), id) {
			return s
		}
	}
	if !create {
		return nil
	}
	s := &CertSection{CA: ca}
	k.Certs = append(k.Certs, s)
	return s
}

// RevokeSerials revokes the certificates with serials lo..hi (inclusive)
// signed by ca; a nil ca is the wildcard CA. Serial 0 cannot be revoked.
func (k *KRL) RevokeSerials(ca ssh.PublicKey, lo, hi uint64) error {
	return prefix(k.revokeSerials(ca, lo, hi))
}

// prefix names the package in errors of the exported builder methods.
func prefix(err error) error {
	if err != nil {
		return fmt.Errorf("krl: %w", err)
	}
	return nil
}

func (k *KRL) revokeSerials(ca ssh.PublicKey, lo, hi uint64) error {
	if err := checkSerials(lo, hi); err != nil {
		return err
	}
	blob, err := caBlob(ca)
	if err != nil {
		return err
	}
	s := k.section(blob, true)
	s.Serials = appendRange(s.Serials, SerialRange{lo, hi})
	return nil
}

func checkSerials(lo, hi uint64) error {
	if lo == 0 {
		return errors.New("serial 0 cannot be revoked")
	}
	if lo > hi {
		return fmt.Errorf("serial range %d-%d is reversed", lo, hi)
	}
	return nil
}

// Section returns the certificates section of ca (nil is the wildcard CA),
// appending a new one if there is none. Revoking through the section
// avoids encoding the CA key for every serial when many are added.
func (k *KRL) Section(ca ssh.PublicKey) (*CertSection, error) {
	blob, err := caBlob(ca)
	if err != nil {
		return nil, prefix(err)
	}
	return k.section(blob, true), nil
}

// RevokeSerials revokes serials lo..hi (inclusive) under the section's CA.
func (s *CertSection) RevokeSerials(lo, hi uint64) error {
	if err := checkSerials(lo, hi); err != nil {
		return prefix(err)
	}
	s.Serials = appendRange(s.Serials, SerialRange{lo, hi})
	return nil
}

// RevokeKeyID revokes key ID id under the section's CA.
func (s *CertSection) RevokeKeyID(id string) error {
	if strings.IndexByte(id, 0) >= 0 {
		return errors.New("krl: key ID contains NUL")
	}
	s.KeyIDs = append(s.KeyIDs, id)
	return nil
}

// appendRange appends r, merging it into the last range when it overlaps or
// abuts it from above, so that ascending input stays compact.
func appendRange(rs []SerialRange, r SerialRange) []SerialRange {
	if n := len(rs); n > 0 {
		last := &rs[n-1]
		if r.Lo >= last.Lo && (last.Hi == math.MaxUint64 || r.Lo <= last.Hi+1) {
			last.Hi = max(last.Hi, r.Hi)
			return rs
		}
	}
	return append(rs, r)
}

// RevokeKeyID revokes every certificate with key ID id signed by ca; a nil
// ca is the wildcard CA.
func (k *KRL) RevokeKeyID(ca ssh.PublicKey, id string) error {
	return prefix(k.revokeKeyID(ca, id))
}

func (k *KRL) revokeKeyID(ca ssh.PublicKey, id string) error {
	if strings.IndexByte(id, 0) >= 0 {
		return errors.New("key ID contains NUL")
	}
	blob, err := caBlob(ca)
	if err != nil {
		return err
	}
	s := k.section(blob, true)
	s.KeyIDs = append(s.KeyIDs, id)
	return nil
}

// RevokeCertificate revokes cert the way ssh-keygen does for a certificate
// listed in a specification file: by serial under its own CA, or by key ID
// when the serial is 0.
func (k *KRL) RevokeCertificate(cert *ssh.Certificate) error {
	if cert == nil || cert.SignatureKey == nil {
		return errors.New("krl: certificate has no signature key")
	}
	if cert.Serial == 0 {
		return k.RevokeKeyID(cert.SignatureKey, cert.KeyId)
	}
	return k.RevokeSerials(cert.SignatureKey, cert.Serial, cert.Serial)
}

// RevokeKey revokes pub explicitly. A certificate is reduced to its plain
// key, so every certificate over that key is revoked too.
func (k *KRL) RevokeKey(pub ssh.PublicKey) error { return prefix(k.revokeKey(pub)) }

func (k *KRL) revokeKey(pub ssh.PublicKey) error {
	if pub == nil {
		return errors.New("nil key")
	}
	k.ExplicitKeys = append(k.ExplicitKeys, plainBlob(pub))
	return nil
}

// RevokeSHA1 revokes every key whose plain blob has this SHA-1 digest.
func (k *KRL) RevokeSHA1(sum [20]byte) { k.SHA1 = append(k.SHA1, sum) }

// RevokeSHA256 revokes every key whose plain blob has this SHA-256 digest
// (the value behind an `SHA256:...` fingerprint).
func (k *KRL) RevokeSHA256(sum [32]byte) { k.SHA256 = append(k.SHA256, sum) }

// FingerprintSHA1 returns the raw SHA-1 fingerprint of pub's plain blob.
func FingerprintSHA1(pub ssh.PublicKey) [20]byte { return sha1.Sum(plainBlob(pub)) }

// FingerprintSHA256 returns the raw SHA-256 fingerprint of pub's plain blob.
func FingerprintSHA256(pub ssh.PublicKey) [32]byte { return sha256.Sum256(plainBlob(pub)) }

// Normalize rewrites k into canonical form in place: sections of the same
// CA merged (first position kept), empty sections dropped, serial ranges
// sorted and merged (including adjacent ones), key IDs, keys and
// fingerprints sorted and de-duplicated.
func (k *KRL) Normalize() {
	n := k.normalized()
	k.Certs, k.ExplicitKeys, k.SHA1, k.SHA256 = n.Certs, n.ExplicitKeys, n.SHA1, n.SHA256
}

// normalized returns a canonical view of k without modifying it. Slices
// already in canonical form are shared, not copied.
func (k *KRL) normalized() *KRL {
	n := &KRL{Version: k.Version, GeneratedDate: k.GeneratedDate, Comment: k.Comment}
	n.Certs = normalizeSections(k.Certs)
	n.ExplicitKeys = sortedUnique(k.ExplicitKeys, bytes.Compare)
	n.SHA1 = sortedUnique(k.SHA1, func(a, b [20]byte) int { return bytes.Compare(a[:], b[:]) })
	n.SHA256 = sortedUnique(k.SHA256, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	return n
}

func normalizeSections(in []*CertSection) []*CertSection {
	var out []*CertSection
	var ids [][]byte
	for _, s := range in {
		if s == nil {
			continue
		}
		id := caIdentity(s.CA)
		j := slices.IndexFunc(ids, func(x []byte) bool { return bytes.Equal(x, id) })
		if j < 0 {
			ids = append(ids, id)
			out = append(out, &CertSection{CA: s.CA, Serials: s.Serials, KeyIDs: s.KeyIDs})
			continue
		}
		t := out[j]
		t.Serials = append(slices.Clip(t.Serials), s.Serials...)
		t.KeyIDs = append(slices.Clip(t.KeyIDs), s.KeyIDs...)
	}
	kept := out[:0]
	for _, s := range out {
		s.Serials = mergeRanges(s.Serials)
		s.KeyIDs = sortedUnique(s.KeyIDs, strings.Compare)
		if len(s.Serials) == 0 && len(s.KeyIDs) == 0 {
			continue
		}
		kept = append(kept, s)
	}
	return kept
}

// mergeRanges returns rs sorted by Lo with overlapping and adjacent ranges
// merged. It returns rs itself when it is already in that form.
func mergeRanges(rs []SerialRange) []SerialRange {
	canonical := true
	for i := 1; i < len(rs) && canonical; i++ {
		p := rs[i-1]
		canonical = p.Hi != math.MaxUint64 && rs[i].Lo > p.Hi+1
	}
	if canonical {
		return rs
	}
	out := sortRanges(rs)
	w := 0
	for _, r := range out[1:] {
		cur := &out[w]
		if cur.Hi == math.MaxUint64 || r.Lo <= cur.Hi+1 {
			cur.Hi = max(cur.Hi, r.Hi)
			continue
		}
		w++
		out[w] = r
	}
	return out[:w+1]
}

// sortRanges returns a copy of rs sorted by Lo. Large inputs (a KRL can
// hold millions of ranges) use an LSD radix sort on 16-bit digits, which
// skips digits where all keys agree; small ones a comparison sort.
func sortRanges(rs []SerialRange) []SerialRange {
	out := slices.Clone(rs)
	if len(rs) < 1024 {
		slices.SortFunc(out, func(a, b SerialRange) int { return cmp.Compare(a.Lo, b.Lo) })
		return out
	}
	tmp := make([]SerialRange, len(out))
	var count [1 << 16]int
	for shift := uint(0); shift < 64; shift += 16 {
		clear(count[:])
		for _, r := range out {
			count[(r.Lo>>shift)&0xffff]++
		}
		if count[(out[0].Lo>>shift)&0xffff] == len(out) {
			continue // every key has the same digit here
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, r := range out {
			d := (r.Lo >> shift) & 0xffff
			tmp[count[d]] = r
			count[d]++
		}
		out, tmp = tmp, out
	}
	return out
}

// sortedUnique returns s sorted and without duplicates; s itself when it is
// already strictly increasing.
func sortedUnique[T any](s []T, compare func(a, b T) int) []T {
	strict := true
	for i := 1; i < len(s) && strict; i++ {
		strict = compare(s[i-1], s[i]) < 0
	}
	if strict {
		return s
	}
	out := slices.Clone(s)
	slices.SortFunc(out, compare)
	return slices.CompactFunc(out, func(a, b T) bool { return compare(a, b) == 0 })
}
