package krl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/crypto/ssh"
)

// Default limits of Parse; see Options.
const (
	DefaultMaxSize         = 64 << 20
	DefaultMaxSerialRanges = 1 << 22
	DefaultMaxEntries      = 1 << 22
)

// Options tune ParseWith. The limits bound the resources spent on one
// input; a zero limit means its default. OpenSSH itself cannot load files
// over 128 MiB.
type Options struct {
	// MaxSize is the largest input accepted, in bytes.
	MaxSize int
	// MaxSerialRanges bounds the serial ranges held while decoding (a
	// bitmap of alternating bits yields four ranges per byte).
	MaxSerialRanges int
	// MaxEntries bounds the key IDs, explicit keys and fingerprints.
	MaxEntries int
	// Strict also refuses what OpenSSH 9.2 refuses but current OpenSSH
	// skips: extension sections and subsections (9.2 knows none) and
	// legacy signature sections (9.2 verifies them). Use it to validate a
	// KRL before installing it on servers that may run 9.2.
	Strict bool
}

func (l Options) withDefaults() Options {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxSerialRanges <= 0 {
		l.MaxSerialRanges = DefaultMaxSerialRanges
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	return l
}

// Parse decodes a KRL with the default Options. See ParseWith.
func Parse(b []byte) (*KRL, error) { return ParseWith(b, Options{}) }

// ParseWith decodes a KRL, accepting exactly what OpenSSH's
// ssh_krl_from_blob accepts (§3.4): the magic and format version 1, every
// field complete, no trailing bytes inside a section or subsection, known
// section types only, no serial 0, no reversed range, bitmaps that are
// non-negative, at most 16384 bits and do not wrap, fingerprints of the
// right length, no NUL inside a key ID or the comment, and no critical
// extension. Non-critical extensions and legacy SIGNATURE sections are
// skipped; several sections for one CA are merged. The result is
// normalised (see KRL.Normalize) with the CAs in the order in which OpenSSH
// would first have recorded a revocation for them.
//
// Beyond OpenSSH, DSA CA keys are refused (OpenSSH 10 cannot load them)
// and the limits of opt bound the memory spent on hostile input. With
// opt.Strict, what OpenSSH 9.2 refuses is refused too (see Options).
func ParseWith(b []byte, opt Options) (*KRL, error) {
	lim := opt.withDefaults()
	if len(b) > lim.MaxSize {
		return nil, fmt.Errorf("krl: %w", limitError(fmt.Sprintf("input of %d bytes exceeds %d", len(b), lim.MaxSize)))
	}
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return nil, ErrBadMagic
	}
	d := &decoder{lim: lim, k: &KRL{}}
	r := reader{b: b[len(magic):], base: len(magic)}
	if err := d.header(&r); err != nil {
		return nil, err
	}
	for r.len() > 0 {
		off := r.offset()
		typ, ok := r.u8()
		body, ok2 := r.str()
		if !ok || !ok2 {
			return nil, fmt.Errorf("krl: section at offset %d truncated", off)
		}
		if err := d.section(typ, body, &r); err != nil {
			return nil, fmt.Errorf("krl: section %#02x at offset %d: %w", typ, off, err)
		}
	}
	d.k.Normalize()
	return d.k, nil
}

// limitError is an ErrLimit with details, without repeating the prefix.
type limitError string

func (e limitError) Error() string        { return "limit exceeded: " + string(e) }
func (e limitError) Is(target error) bool { return target == ErrLimit }

type decoder struct {
	lim      Options
	k        *KRL
	ranges   int
	entries  int
	sections map[string]*CertSection // by CA identity; "" is the wildcard
}

func (d *decoder) header(r *reader) error {
	v, ok := r.u32()
	if !ok {
		return errors.New("krl: header truncated")
	}
	if v != formatVersion {
		return fmt.Errorf("krl: unsupported format version %d", v)
	}
	var ok1, ok2, ok3, ok4 bool
	d.k.Version, ok1 = r.u64()
	d.k.GeneratedDate, ok2 = r.u64()
	_, ok3 = r.u64() // flags: none defined, not checked
	_, ok4 = r.str() // reserved
	comment, ok5 := r.str()
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return errors.New("krl: header truncated")
	}
	c, err := cstring(comment)
	if err != nil {
		return fmt.Errorf("krl: header comment: %w", err)
	}
	d.k.Comment = c
	return nil
}

func (d *decoder) section(typ byte, body []byte, outer *reader) error {
	r := reader{b: body}
	switch typ {
	case sectionCertificates:
		return d.certificates(&r)
	case sectionExplicitKey:
		return d.blobs(&r, 0, func(b []byte) {
			d.k.ExplicitKeys = append(d.k.ExplicitKeys, bytes.Clone(b))
		})
	case sectionSHA1:
		return d.blobs(&r, 20, func(b []byte) { d.k.SHA1 = append(d.k.SHA1, [20]byte(b)) })
	case sectionSHA256:
		return d.blobs(&r, 32, func(b []byte) { d.k.SHA256 = append(d.k.SHA256, [32]byte(b)) })
	case sectionExtension:
		if d.lim.Strict {
			return errors.New("extension section refused in strict mode (OpenSSH 9.2 cannot load it)")
		}
		return extension(&r)
	case sectionSignature:
		if d.lim.Strict {
			return errors.New("signature section refused in strict mode")
		}
		// Legacy signature: the body read so far is the signing key; the
		// signature follows as a second string. OpenSSH skips both.
		if _, ok := outer.str(); !ok {
			return errTruncated
		}
		return nil
	default:
		return errors.New("unknown section type")
	}
}

var errTruncated = errors.New("truncated")

func (d *decoder) blobs(r *reader, want int, add func([]byte)) error {
	for r.len() > 0 {
		b, ok := r.str()
		if !ok {
			return errTruncated
		}
		if want != 0 && len(b) != want {
			return fmt.Errorf("fingerprint of %d bytes, want %d", len(b), want)
		}
		if err := d.entry(); err != nil {
			return err
		}
		add(b)
	}
	return nil
}

func (d *decoder) entry() error {
	d.entries++
	if d.entries > d.lim.MaxEntries {
		return limitError(fmt.Sprintf("more than %d key IDs, keys and fingerprints", d.lim.MaxEntries))
	}
	return nil
}

// extension parses an extension body (section 255 or subsection 0x39):
// string name, boolean critical, string value. OpenSSH knows no extension,
// so a critical one is an error and the others are ignored.
func extension(r *reader) error {
	name, ok1 := r.str()
	critical, ok2 := r.u8()
	_, ok3 := r.str()
	if !ok1 || !ok2 || !ok3 {
		return errors.New("extension truncated")
	}
	n, err := cstring(name)
	if err != nil {
		return fmt.Errorf("extension name: %w", err)
	}
	if r.len() > 0 {
		return fmt.Errorf("extension %q: trailing data", n)
	}
	if critical != 0 {
		return fmt.Errorf("unsupported critical extension %q", n)
	}
	return nil
}

// certificates parses a CERTIFICATES section (§3.3).
func (d *decoder) certificates(r *reader) error {
	caRaw, ok1 := r.str()
	_, ok2 := r.str() // reserved
	if !ok1 || !ok2 {
		return errors.New("header truncated")
	}
	// OpenSSH stores and rewrites the key it parsed, so a plain key is kept
	// in canonical encoding; a certificate is kept as given.
	var ca []byte
	if len(caRaw) > 0 {
		pk, err := parseCAKey(caRaw)
		if err != nil {
			return err
		}
		if _, isCert := pk.(*ssh.Certificate); isCert {
			ca = bytes.Clone(caRaw)
		} else {
			ca = pk.Marshal()
		}
	}
	// The section for this CA is created on its first revocation, as in
	// OpenSSH, which decides the order of CAs on output.
	var sec *CertSection
	get := func() *CertSection {
		if sec == nil {
			sec = d.sectionFor(ca)
		}
		return sec
	}
	for r.len() > 0 {
		typ, ok := r.u8()
		body, ok2 := r.str()
		if !ok || !ok2 {
			return errors.New("subsection truncated")
		}
		sr := reader{b: body}
		if err := d.subsection(typ, &sr, get); err != nil {
			return fmt.Errorf("subsection %#02x: %w", typ, err)
		}
		if sr.len() > 0 {
			return fmt.Errorf("subsection %#02x: trailing data", typ)
		}
	}
	return nil
}

func (d *decoder) sectionFor(ca []byte) *CertSection {
	if d.sections == nil {
		d.sections = make(map[string]*CertSection)
	}
	id := string(caIdentity(ca))
	if s, ok := d.sections[id]; ok {
		return s
	}
	s := &CertSection{CA: ca}
	d.sections[id] = s
	d.k.Certs = append(d.k.Certs, s)
	return s
}

func (d *decoder) addRange(s *CertSection, lo, hi uint64) error {
	if lo == 0 {
		return errors.New("serial 0")
	}
	if lo > hi {
		return fmt.Errorf("range %d-%d is reversed", lo, hi)
	}
	n := len(s.Serials)
	s.Serials = appendRange(s.Serials, SerialRange{lo, hi})
	if len(s.Serials) > n {
		d.ranges++
		if d.ranges > d.lim.MaxSerialRanges {
			return limitError(fmt.Sprintf("more than %d serial ranges", d.lim.MaxSerialRanges))
		}
	}
	return nil
}

func (d *decoder) subsection(typ byte, r *reader, sec func() *CertSection) error {
	switch typ {
	case subSerialList:
		for r.len() > 0 {
			s, ok := r.u64()
			if !ok {
				return errTruncated
			}
			if err := d.addRange(sec(), s, s); err != nil {
				return err
			}
		}
	case subSerialRange:
		lo, ok1 := r.u64()
		hi, ok2 := r.u64()
		if !ok1 || !ok2 {
			return errTruncated
		}
		return d.addRange(sec(), lo, hi)
	case subSerialBitmap:
		off, ok1 := r.u64()
		mp, ok2 := r.str()
		if !ok1 || !ok2 {
			return errTruncated
		}
		return d.bitmap(off, mp, sec)
	case subKeyID:
		for r.len() > 0 {
			b, ok := r.str()
			if !ok {
				return errTruncated
			}
			id, err := cstring(b)
			if err != nil {
				return fmt.Errorf("key ID: %w", err)
			}
			if err := d.entry(); err != nil {
				return err
			}
			s := sec()
			s.KeyIDs = append(s.KeyIDs, id)
		}
	case subExtension:
		if d.lim.Strict {
			return errors.New("extension subsection refused in strict mode (OpenSSH 9.2 cannot load it)")
		}
		return extension(r)
	default:
		return errors.New("unknown subsection type")
	}
	return nil
}

// bitmap decodes a 0x22 body: bit k of the mpint revokes serial off+k. The
// mpint rules are sshbuf_get_bignum2_bytes_direct's (§0).
func (d *decoder) bitmap(off uint64, mp []byte, sec func() *CertSection) error {
	if len(mp) > maxBitmapBits/8+1 || (len(mp) == maxBitmapBits/8+1 && mp[0] != 0) {
		return fmt.Errorf("bitmap of %d bytes is larger than %d bits", len(mp), maxBitmapBits)
	}
	if len(mp) > 0 && mp[0]&0x80 != 0 {
		return errors.New("bitmap is negative")
	}
	mp = bytes.TrimLeft(mp, "\x00")
	if len(mp) == 0 {
		return nil
	}
	nbits := uint64(len(mp)*8 - bits.LeadingZeros8(mp[0]))
	// OpenSSH walks bits 0..nbits-1 and fails when off+k wraps to 0.
	if off != 0 && nbits-1 >= -off {
		return errors.New("bitmap wraps past 2^64")
	}
	if off == 0 && mp[len(mp)-1]&1 != 0 {
		return errors.New("serial 0")
	}
	// Walk the bits from the least significant, emitting runs of ones.
	var runStart uint64
	inRun := false
	for i := uint64(0); i < nbits; i++ {
		by := mp[len(mp)-1-int(i/8)]
		if i%8 == 0 && ((by == 0 && !inRun) || (by == 0xff && inRun)) {
			i += 7 // nothing changes within this byte
			continue
		}
		set := by&(1<<(i%8)) != 0
		switch {
		case set && !inRun:
			runStart, inRun = i, true
		case !set && inRun:
			if err := d.addRange(sec(), off+runStart, off+i-1); err != nil {
				return err
			}
			inRun = false
		}
	}
	if inRun {
		return d.addRange(sec(), off+runStart, off+nbits-1)
	}
	return nil
}

// cstring applies sshbuf_get_cstring's rule: no NUL except one at the end,
// which is dropped.
func cstring(b []byte) (string, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		if i != len(b)-1 {
			return "", errors.New("embedded NUL")
		}
		b = b[:i]
	}
	return string(b), nil
}

// reader reads RFC 4251 primitives from b; base is b's offset in the input.
type reader struct {
	b    []byte
	base int
	pos  int
}

func (r *reader) len() int    { return len(r.b) - r.pos }
func (r *reader) offset() int { return r.base + r.pos }

func (r *reader) u8() (byte, bool) {
	if r.len() < 1 {
		return 0, false
	}
	v := r.b[r.pos]
	r.pos++
	return v, true
}

func (r *reader) u32() (uint32, bool) {
	if r.len() < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(r.b[r.pos:])
	r.pos += 4
	return v, true
}

func (r *reader) u64() (uint64, bool) {
	if r.len() < 8 {
		return 0, false
	}
	v := binary.BigEndian.Uint64(r.b[r.pos:])
	r.pos += 8
	return v, true
}

func (r *reader) str() ([]byte, bool) {
	n, ok := r.u32()
	if !ok || uint64(n) > uint64(r.len()) {
		return nil, false
	}
	v := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return v, true
}
