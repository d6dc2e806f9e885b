package krl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Marshal encodes k in the canonical form `ssh-keygen -k` writes (§3.5):
// the header; one CERTIFICATES section per CA in first-added order, each
// with its serial subsections chosen by ssh-keygen's cost model (§3.6) and
// then one key-ID subsection sorted by strcmp; then the explicit keys
// (sorted by memcmp, shorter first on a common prefix), the SHA-1 and the
// SHA-256 fingerprints, each sorted. Empty sections are omitted and no
// signature section is ever written.
//
// The one deliberate difference from ssh-keygen: a serial bitmap that would
// grow past the 16384 bits OpenSSH's reader accepts is closed and the
// encoding continues with a fresh subsection, so OpenSSH can always load
// the result. Whenever ssh-keygen's own output is loadable the bytes are
// identical.
func (k *KRL) Marshal() ([]byte, error) {
	if strings.IndexByte(k.Comment, 0) >= 0 {
		return nil, errors.New("krl: comment contains NUL")
	}
	n := k.normalized()
	for _, s := range n.Certs {
		if err := checkSection(s); err != nil {
			return nil, err
		}
	}

	w := make([]byte, 0, n.sizeHint())
	w = append(w, magic...)
	w = binary.BigEndian.AppendUint32(w, formatVersion)
	w = binary.BigEndian.AppendUint64(w, n.Version)
	w = binary.BigEndian.AppendUint64(w, n.GeneratedDate)
	w = binary.BigEndian.AppendUint64(w, 0) // flags
	w = appendString(w, nil)                // reserved
	w = appendString(w, []byte(n.Comment))

	for _, s := range n.Certs {
		w = append(w, sectionCertificates)
		var mark int
		w, mark = beginString(w)
		w = appendString(w, s.CA)
		w = appendString(w, nil) // reserved
		w = appendSerials(w, s.Serials)
		if len(s.KeyIDs) > 0 {
			w = append(w, subKeyID)
			var m int
			w, m = beginString(w)
			for _, id := range s.KeyIDs {
				w = appendString(w, []byte(id))
			}
			w = endString(w, m)
		}
		w = endString(w, mark)
	}
	if len(n.ExplicitKeys) > 0 {
		w = append(w, sectionExplicitKey)
		var mark int
		w, mark = beginString(w)
		for _, b := range n.ExplicitKeys {
			w = appendString(w, b)
		}
		w = endString(w, mark)
	}
	if len(n.SHA1) > 0 {
		w = append(w, sectionSHA1)
		var mark int
		w, mark = beginString(w)
		for _, h := range n.SHA1 {
			w = appendString(w, h[:])
		}
		w = endString(w, mark)
	}
	if len(n.SHA256) > 0 {
		w = append(w, sectionSHA256)
		var mark int
		w, mark = beginString(w)
		for _, h := range n.SHA256 {
			w = appendString(w, h[:])
		}
		w = endString(w, mark)
	}
	if len(w) > maxOpenSSHSize {
		return nil, fmt.Errorf("krl: encoded size %d exceeds the %d bytes OpenSSH can load", len(w), maxOpenSSHSize)
	}
	return w, nil
}

// checkSection refuses what would make OpenSSH reject the whole KRL.
func checkSection(s *CertSection) error {
	if len(s.CA) > 0 {
		if _, err := parseCAKey(s.CA); err != nil {
			return fmt.Errorf("krl: %w", err)
		}
	}
	for _, r := range s.Serials {
		if r.Lo == 0 || r.Lo > r.Hi {
			return fmt.Errorf("krl: invalid serial range %d-%d", r.Lo, r.Hi)
		}
	}
	for _, id := range s.KeyIDs {
		if strings.IndexByte(id, 0) >= 0 {
			return errors.New("krl: key ID contains NUL")
		}
	}
	return nil
}

// parseCAKey parses a CA key blob the way OpenSSH's sshkey_from_blob would
// for a KRL, and refuses keys that some supported OpenSSH cannot load.
func parseCAKey(blob []byte) (ssh.PublicKey, error) {
	pk, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if err := checkKeyLoadable(pk); err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if c, ok := pk.(*ssh.Certificate); ok {
		if err := checkKeyLoadable(c.Key); err != nil {
			return nil, fmt.Errorf("CA key: %w", err)
		}
		if err := verifyCertBlob(blob, c); err != nil {
			return nil, fmt.Errorf("CA key: %w", err)
		}
	}
	return pk, nil
}

func (k *KRL) sizeHint() int {
	n := 64 + len(k.Comment) + 36*len(k.SHA256) + 24*len(k.SHA1)
	for _, b := range k.ExplicitKeys {
		n += 4 + len(b)
	}
	for _, s := range k.Certs {
		n += 64 + len(s.CA) + 20*len(s.Serials)
		for _, id := range s.KeyIDs {
			n += 4 + len(id)
		}
	}
	return n
}

func appendString(w, b []byte) []byte {
	w = binary.BigEndian.AppendUint32(w, uint32(len(b)))
	return append(w, b...)
}

// beginString reserves a length field whose value endString fills in.
func beginString(w []byte) ([]byte, int) {
	return append(w, 0, 0, 0, 0), len(w)
}

func endString(w []byte, mark int) []byte {
	binary.BigEndian.PutUint32(w[mark:], uint32(len(w)-mark-4))
	return w
}

// chooseNextState is ssh-keygen's choose_next_state (krl.c, §3.6): given
// the open subsection type cur (0 = none), the length of the next run of
// revoked serials, whether it is the last run and the gaps to the previous
// and the next run, it estimates the cost in bytes of each encoding and
// returns the cheapest; restart means "a bitmap, but in a new subsection".
// The comparisons and their order (ties favour bitmap, then range, then
// list) decide the bytes, so they are reproduced exactly.
func chooseNextState(cur byte, contig uint64, final bool, lastGap, nextGap uint64) (next byte, restart bool) {
	const limit = 1 << 31
	contig, lastGap, nextGap = min(contig, limit), min(lastGap, limit), min(nextGap, limit)

	var costList, costBitmap, costRestart uint64
	costRange := uint64(8)
	switch cur {
	case subSerialList:
		costBitmap, costRestart = 8+64, 8+64
	case subSerialBitmap:
		costList, costRestart = 8, 8+64
	default: // range or none
		costBitmap, costRestart = 8+64, 8+64
		costList = 8
	}
	var tail, gapBits uint64
	if !final {
		tail = 8 + 64
		gapBits = min(nextGap, 8+64)
	}
	costList += 64*contig + tail
	costRange += 2*64 + tail
	costBitmap += lastGap + contig + gapBits
	costRestart += contig + gapBits

	costList, costRange = (costList+7)/8, (costRange+7)/8
	costBitmap, costRestart = (costBitmap+7)/8, (costRestart+7)/8

	next, cost := byte(subSerialBitmap), costBitmap
	if costRange < cost {
		next, cost = subSerialRange, costRange
	}
	if costList < cost {
		next, cost = subSerialList, costList
	}
	if costRestart < cost {
		next, restart = subSerialBitmap, true
	}
	return next, restart
}

// serialWriter emits serial subsections into w the way ssh-keygen's
// revoked_certs_generate does.
type serialWriter struct {
	w        []byte
	state    byte // type of the open subsection, 0 when none is open
	mark     int  // position of the open subsection's length field
	bmOffset uint64
	bmTop    uint64 // highest bit index set in the open bitmap
	bits     [maxBitmapBits / 8]byte
}

// appendSerials encodes merged, sorted ranges (§3.6).
func appendSerials(w []byte, rs []SerialRange) []byte {
	if len(rs) == 0 {
		return w
	}
	sw := &serialWriter{w: w}
	var last uint64
	for i, r := range rs {
		final := i == len(rs)-1
		var nextGap, lastGap uint64
		if !final {
			nextGap = rs[i+1].Lo - r.Hi
		}
		if sw.state != 0 {
			lastGap = r.Lo - last
		}
		contig := r.Hi - r.Lo + 1
		next, restart := chooseNextState(sw.state, contig, final, lastGap, nextGap)

		// Deliberate difference from ssh-keygen: never let a bitmap
		// outgrow what OpenSSH can read back. Close it and decide afresh,
		// as if this run started the serial list.
		if sw.state == subSerialBitmap && next == subSerialBitmap && !restart &&
			r.Hi-sw.bmOffset >= maxBitmapBits {
			sw.close()
			next, restart = chooseNextState(0, contig, final, 0, nextGap)
		}
		if next == subSerialBitmap && (restart || sw.state != subSerialBitmap) && contig > maxBitmapBits {
			// Unreachable with the cost model (a range is far cheaper),
			// kept so that no input can produce an oversized bitmap.
			next, restart = subSerialRange, false
		}

		if sw.state != 0 && (restart || next != sw.state || sw.state == subSerialRange) {
			sw.close()
		}
		if sw.state == 0 {
			sw.open(next, r.Lo)
		}
		switch next {
		case subSerialList:
			for s := r.Lo; ; s++ {
				sw.w = binary.BigEndian.AppendUint64(sw.w, s)
				if s == r.Hi {
					break
				}
			}
		case subSerialRange:
			sw.w = binary.BigEndian.AppendUint64(sw.w, r.Lo)
			sw.w = binary.BigEndian.AppendUint64(sw.w, r.Hi)
		case subSerialBitmap:
			sw.setBits(r.Lo-sw.bmOffset, r.Hi-sw.bmOffset)
		}
		last = r.Hi
	}
	sw.close()
	return sw.w
}

func (sw *serialWriter) open(typ byte, lo uint64) {
	sw.state = typ
	sw.w = append(sw.w, typ)
	sw.w, sw.mark = beginString(sw.w)
	if typ == subSerialBitmap {
		sw.bmOffset = lo
		sw.w = binary.BigEndian.AppendUint64(sw.w, lo)
	}
}

// setBits sets bits from..to (inclusive) of the open bitmap.
func (sw *serialWriter) setBits(from, to uint64) {
	for b := from; b <= to; b++ {
		sw.bits[b/8] |= 1 << (b % 8)
	}
	sw.bmTop = to
}

// close finishes the open subsection; a bitmap is written as an mpint.
func (sw *serialWriter) close() {
	if sw.state == 0 {
		return
	}
	if sw.state == subSerialBitmap {
		nbytes := int(sw.bmTop/8) + 1
		pad := 0
		if sw.bits[nbytes-1]&0x80 != 0 {
			pad = 1
		}
		sw.w = binary.BigEndian.AppendUint32(sw.w, uint32(nbytes+pad))
		if pad == 1 {
			sw.w = append(sw.w, 0)
		}
		for i := nbytes - 1; i >= 0; i-- {
			sw.w = append(sw.w, sw.bits[i])
			sw.bits[i] = 0
		}
	}
	sw.w = endString(sw.w, sw.mark)
	sw.state = 0
}
