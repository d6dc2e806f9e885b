package krl

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Kinds of SpecEntry.
const (
	SpecSerial = "serial" // Lo..Hi under CA
	SpecKeyID  = "id"     // KeyID under CA
	SpecKey    = "key"    // Key, explicitly
	SpecSHA1   = "sha1"   // SHA1
	SpecSHA256 = "sha256" // SHA256
)

// SpecEntry is one revocation read from an `ssh-keygen -k` specification
// file. Each entry carries everything needed to apply it.
type SpecEntry struct {
	// Line is the 1-based line number in the file.
	Line int
	// Kind is one of the Spec* constants.
	Kind string
	// CA scopes SpecSerial and SpecKeyID entries; nil is the wildcard CA.
	CA ssh.PublicKey
	// Lo and Hi (inclusive) are set for SpecSerial.
	Lo, Hi uint64
	// KeyID is set for SpecKeyID.
	KeyID string
	// Key is the plain key of a SpecKey entry (a certificate given with
	// `key:` or on a bare line is reduced to its key, as ssh-keygen does).
	Key ssh.PublicKey
	// SHA1 and SHA256 are set for SpecSHA1 and SpecSHA256.
	SHA1   [20]byte
	SHA256 [32]byte
}

// maxSpecLine bounds one line of a specification file.
const maxSpecLine = 1 << 20

// ParseSpec reads a KRL specification file with the rules of ssh-keygen's
// update_krl_from_file (§3.8). ca is the key given with `ssh-keygen -s`;
// wildcard stands for `-s none`. `serial:` and `id:` lines need one of the
// two and revoke under it (a nil CA in the entry means the wildcard).
//
// Lines: leading blanks skipped; everything from '#' dropped; trailing
// blanks trimmed; empty lines skipped; directive names case-insensitive.
//
//	serial: N | serial: A-B   strtoull base 0; B must be > A; 0 is refused
//	id: TEXT                  key ID (the rest of the line, may be empty)
//	key: PUBKEY               explicit key (a certificate's key)
//	sha1: PUBKEY | sha256: PUBKEY   fingerprint of the plain key
//	hash: SHA256:BASE64       a SHA-256 fingerprint as ssh-keygen -l prints it
//	PUBKEY                    plain key: explicit; certificate: by serial
//	                          under its own CA, or by key ID if serial is 0
//
// The first error stops parsing and names its line, e.g.
// `krl: spec line 7: serial 0 is not allowed`.
func ParseSpec(r io.Reader, ca ssh.PublicKey, wildcard bool) ([]SpecEntry, error) {
	if ca != nil && wildcard {
		return nil, errors.New("krl: spec: a CA key and the wildcard CA are mutually exclusive")
	}
	if ca != nil {
		if _, err := caBlob(ca); err != nil {
			return nil, fmt.Errorf("krl: spec: %w", err)
		}
	}
	var out []SpecEntry
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("krl: spec line %d: %w", n, err)
		}
		if len(line) == 0 && err != nil {
			return out, nil
		}
		e, ok, perr := parseSpecLine(line, ca, wildcard)
		if perr != nil {
			return nil, fmt.Errorf("krl: spec line %d: %w", n, perr)
		}
		if ok {
			e.Line = n
			out = append(out, e)
		}
		if err != nil {
			return out, nil
		}
	}
}

// readLine returns the next line including its '\n' (absent on the last
// line of a file without one); io.EOF comes with the last, possibly empty,
// line.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxSpecLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxSpecLine)
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

func parseSpecLine(raw []byte, ca ssh.PublicKey, wildcard bool) (SpecEntry, bool, error) {
	// ssh-keygen works on C strings: a NUL ends the line.
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		raw = raw[:i]
	}
	s := strings.TrimLeft(string(raw), " \t")
	if i := strings.IndexAny(s, "#\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimRight(s, " \t")
	if s == "" {
		return SpecEntry{}, false, nil
	}
	arg := func(prefix string) (string, bool) {
		if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
			return "", false
		}
		return strings.TrimLeft(s[len(prefix):], " \t"), true
	}
	if v, ok := arg("serial:"); ok {
		if ca == nil && !wildcard {
			return SpecEntry{}, false, errors.New("revoking certificates by serial number needs a CA key (or the wildcard CA)")
		}
		lo, hi, err := parseSerialSpec(v)
		if err != nil {
			return SpecEntry{}, false, err
		}
		return SpecEntry{Kind: SpecSerial, CA: ca, Lo: lo, Hi: hi}, true, nil
	}
	if v, ok := arg("id:"); ok {
		if ca == nil && !wildcard {
			return SpecEntry{}, false, errors.New("revoking certificates by key ID needs a CA key (or the wildcard CA)")
		}
		return SpecEntry{Kind: SpecKeyID, CA: ca, KeyID: v}, true, nil
	}
	if v, ok := arg("hash:"); ok {
		sum, err := parseHashSpec(v)
		if err != nil {
			return SpecEntry{}, false, err
		}
		return SpecEntry{Kind: SpecSHA256, SHA256: sum}, true, nil
	}
	kind := ""
	v := s
	for _, d := range []struct{ prefix, kind string }{{"key:", SpecKey}, {"sha1:", SpecSHA1}, {"sha256:", SpecSHA256}} {
		if a, ok := arg(d.prefix); ok {
			kind, v = d.kind, a
			break
		}
	}
	pub, err := readKey(v)
	if err != nil {
		return SpecEntry{}, false, fmt.Errorf("invalid key: %w", err)
	}
	switch kind {
	case SpecKey:
		return SpecEntry{Kind: SpecKey, Key: plainKey(pub)}, true, nil
	case SpecSHA1:
		return SpecEntry{Kind: SpecSHA1, SHA1: sha1.Sum(plainBlob(pub))}, true, nil
	case SpecSHA256:
		return SpecEntry{Kind: SpecSHA256, SHA256: sha256.Sum256(plainBlob(pub))}, true, nil
	}
	// A bare key: ssh_krl_revoke_key.
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return SpecEntry{Kind: SpecKey, Key: pub}, true, nil
	}
	if _, err := caBlob(cert.SignatureKey); err != nil {
		return SpecEntry{}, false, err
	}
	if cert.Serial == 0 {
		return SpecEntry{Kind: SpecKeyID, CA: cert.SignatureKey, KeyID: cert.KeyId}, true, nil
	}
	return SpecEntry{Kind: SpecSerial, CA: cert.SignatureKey, Lo: cert.Serial, Hi: cert.Serial}, true, nil
}

func plainKey(pub ssh.PublicKey) ssh.PublicKey {
	if c, ok := pub.(*ssh.Certificate); ok {
		return c.Key
	}
	return pub
}

// parseSerialSpec parses the argument of `serial:` exactly as ssh-keygen
// does, quirks included: strtoull with base 0 (so "0x10", "020" and even
// "-1", which wraps to 2^64-1, are numbers), and "A-B" with B > A.
func parseSerialSpec(v string) (lo, hi uint64, err error) {
	lo, n, overflow := strtoull(v)
	rest := v[n:]
	if v == "" || (rest != "" && rest[0] != '-') {
		return 0, 0, fmt.Errorf("invalid serial %q", v)
	}
	if overflow {
		return 0, 0, fmt.Errorf("serial %q out of range", v)
	}
	hi = lo
	if rest != "" {
		v2 := rest[1:]
		var n2 int
		hi, n2, overflow = strtoull(v2)
		if v2 == "" || n2 != len(v2) {
			return 0, 0, fmt.Errorf("invalid serial %q", v2)
		}
		if overflow {
			return 0, 0, fmt.Errorf("serial %q out of range", v2)
		}
		if hi <= lo {
			return 0, 0, fmt.Errorf("invalid serial range %d-%d (the end must be greater than the start)", lo, hi)
		}
	}
	if lo == 0 {
		return 0, 0, errors.New("serial 0 is not allowed")
	}
	return lo, hi, nil
}

// strtoull mimics C's strtoull(s, &end, 0) on glibc. It returns the value,
// the number of bytes consumed (0 when nothing was converted) and whether
// the value overflowed (then it is 2^64-1, as with ERANGE).
func strtoull(s string) (v uint64, n int, overflow bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	base := uint64(10)
	if i < len(s) && s[i] == '0' {
		base = 8
		if i+2 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X') && digitValue(s[i+2]) < 16 {
			base = 16
			i += 2
		}
	}
	start := i
	for ; i < len(s); i++ {
		d := digitValue(s[i])
		if d >= base {
			break
		}
		if overflow {
			continue
		}
		h, l := bits.Mul64(v, base)
		sum, carry := bits.Add64(l, d, 0)
		if h != 0 || carry != 0 {
			overflow = true
			continue
		}
		v = sum
	}
	if i == start {
		return 0, 0, false
	}
	if overflow {
		return math.MaxUint64, i, true
	}
	if neg {
		v = -v
	}
	return v, i, false
}

func digitValue(c byte) uint64 {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0')
	case 'a' <= c && c <= 'z':
		return uint64(c-'a') + 10
	case 'A' <= c && c <= 'Z':
		return uint64(c-'A') + 10
	}
	return 36
}

func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// parseHashSpec parses the argument of `hash:` like ssh-keygen's
// hash_to_blob: a case-sensitive "SHA256:" prefix, base64 with or without
// '=' padding, 32 bytes.
func parseHashSpec(v string) ([32]byte, error) {
	b64, ok := strings.CutPrefix(v, "SHA256:")
	if !ok {
		return [32]byte{}, errors.New("unsupported hash algorithm (only SHA256: is accepted)")
	}
	for len(b64)%4 != 0 {
		b64 += "="
	}
	b, err := b64pton(b64)
	if err != nil {
		return [32]byte{}, fmt.Errorf("decode hash: %w", err)
	}
	if len(b) != 32 {
		return [32]byte{}, fmt.Errorf("hash of %d bytes, want 32", len(b))
	}
	return [32]byte(b), nil
}

const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// b64pton decodes base64 with the rules of OpenBSD's b64_pton, which
// OpenSSH uses: white space is skipped anywhere, padding must be complete
// and the unused bits of the last character must be zero.
func b64pton(s string) ([]byte, error) {
	errBad := errors.New("invalid base64")
	out := make([]byte, 0, len(s)*3/4)
	state := 0
	var cur byte
	i := 0
	pad := false
	for i < len(s) {
		ch := s[i]
		i++
		if isCSpace(ch) {
			continue
		}
		if ch == '=' {
			pad = true
			break
		}
		p := strings.IndexByte(base64Chars, ch)
		if p < 0 {
			return nil, errBad
		}
		pos := byte(p)
		switch state {
		case 0:
			cur = pos << 2
		case 1:
			out = append(out, cur|pos>>4)
			cur = (pos & 0x0f) << 4
		case 2:
			out = append(out, cur|pos>>2)
			cur = (pos & 0x03) << 6
		case 3:
			out = append(out, cur|pos)
			cur = 0
		}
		state = (state + 1) % 4
	}
	if !pad {
		if state != 0 {
			return nil, errBad
		}
		return out, nil
	}
	switch state {
	case 0, 1:
		return nil, errBad
	case 2:
		for i < len(s) && isCSpace(s[i]) {
			i++
		}
		if i >= len(s) || s[i] != '=' {
			return nil, errBad
		}
		i++
	}
	for ; i < len(s); i++ {
		if !isCSpace(s[i]) {
			return nil, errBad
		}
	}
	if cur != 0 {
		return nil, errBad
	}
	return out, nil
}

// lineKeyType maps a name sshkey_read accepts at the start of a key line
// to the type of the blob that must follow it: key type names, plus the
// RSA signature algorithm names (tested with ssh-keygen 9.2, which refuses
// short names such as "RSA").
func lineKeyType(name string) string {
	switch name {
	case "rsa-sha2-256", "rsa-sha2-512":
		return ssh.KeyAlgoRSA
	case "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com":
		return ssh.CertAlgoRSAv01
	}
	return name
}

// readKey parses "type base64 [comment]" like OpenSSH's sshkey_read.
func readKey(v string) (ssh.PublicKey, error) {
	sp := strings.IndexAny(v, " \t")
	if sp < 0 {
		return nil, errors.New("expected \"type base64\"")
	}
	name := v[:sp]
	want := lineKeyType(name)
	rest := strings.TrimLeft(v[sp:], " \t")
	if rest == "" {
		return nil, errors.New("missing key data")
	}
	if end := strings.IndexAny(rest, " \t"); end >= 0 {
		rest = rest[:end]
	}
	blob, err := b64pton(rest)
	if err != nil {
		return nil, err
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, err
	}
	if pub.Type() != want {
		return nil, fmt.Errorf("key type %q does not match %q on the line", pub.Type(), name)
	}
	if c, ok := pub.(*ssh.Certificate); ok {
		if err := verifyCertBlob(blob, c); err != nil {
			return nil, err
		}
	}
	return pub, nil
}

// Apply adds the revocations of entries to k, in order (the order decides
// the order of CA sections, as in ssh-keygen).
func (k *KRL) Apply(entries []SpecEntry) error {
	for _, e := range entries {
		var err error
		switch e.Kind {
		case SpecSerial:
			err = k.revokeSerials(e.CA, e.Lo, e.Hi)
		case SpecKeyID:
			err = k.revokeKeyID(e.CA, e.KeyID)
		case SpecKey:
			err = k.revokeKey(e.Key)
		case SpecSHA1:
			k.RevokeSHA1(e.SHA1)
		case SpecSHA256:
			k.RevokeSHA256(e.SHA256)
		default:
			err = fmt.Errorf("unknown entry kind %q", e.Kind)
		}
		if err != nil {
			return fmt.Errorf("krl: spec line %d: %w", e.Line, err)
		}
	}
	return nil
}
