package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// MarshalLine returns e as one line of an audit file: its JSON and a newline.
func MarshalLine(e Entry) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		// Entry holds only strings, numbers and a time; Marshal cannot fail.
		panic(fmt.Sprintf("audit: marshal entry: %v", err))
	}
	return append(b, '\n')
}

// ParseLines reads an audit file: one JSON entry per line, as MarshalLine
// writes them, in the order they were committed (which is not always the
// order of their sequence numbers when several processes append). It
// refuses a line that is not exactly an entry, naming it.
func ParseLines(r io.Reader) ([]Entry, error) {
	var out []Entry
	err := EachLine(r, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachLine is ParseLines one entry at a time: fn gets each line's entry in
// file order, and an error from fn stops the reading.
func EachLine(r io.Reader, fn func(Entry) error) error {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				return fmt.Errorf("audit file: line %d: truncated (no newline at the end of the file)", n)
			}
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			var e Entry
			if derr := dec.Decode(&e); derr != nil {
				return fmt.Errorf("audit file: line %d: not an audit entry: %v", n, derr)
			}
			if dec.More() {
				return fmt.Errorf("audit file: line %d: more than one entry", n)
			}
			if e.Seq == 0 || e.Hash == "" {
				return fmt.Errorf("audit file: line %d: not an audit entry (no sequence number or hash)", n)
			}
			if ferr := fn(e); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("audit file: %w", err)
		}
	}
}

// Hashes is a verified log as the comparisons below need it: the hash of
// every entry, in order from entry 1, and nothing else of it (33 bytes an
// entry, so that a log of millions can be held).
type Hashes struct {
	sums []sum
}

// Append adds the hash of the next entry.
func (h *Hashes) Append(hash string) { h.sums = append(h.sums, sumOf(hash)) }

// Grow makes room for n more entries.
func (h *Hashes) Grow(n int) { h.sums = slices.Grow(h.sums, n) }

// Len returns the number of entries.
func (h Hashes) Len() int { return len(h.sums) }

// HashesOf returns the hashes of entries (complete: entry i at index i-1).
func HashesOf(entries []Entry) Hashes {
	h := Hashes{sums: make([]sum, len(entries))}
	for i := range entries {
		h.sums[i] = sumOf(entries[i].Hash)
	}
	return h
}

// A sum is a hash as the comparisons keep it: the 32 bytes its 64
// lower-case hex digits (what ComputeHash writes) stand for; a string of
// any other form, which no chain this package verified holds, is kept as
// its own SHA-256, marked as such in the last byte. Two sums are equal
// when the strings are (up to a SHA-256 collision between such strings).
type sum [sha256.Size + 1]byte

func sumOf(s string) (k sum) {
	if len(s) == 2*sha256.Size && isLowerHex(s) {
		if _, err := hex.Decode(k[:sha256.Size], []byte(s)); err == nil {
			return k
		}
	}
	h := sha256.Sum256([]byte(s))
	copy(k[:], h[:])
	k[sha256.Size] = 1
	return k
}

func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// mirrorLine is what MirrorCheck keeps of one audit file line: its
// sequence number and how it compares with the database's log, 16 bytes
// where its two hashes would take 66.
type mirrorLine struct {
	seq   uint64
	flags uint8
}

const (
	lineIntact uint8 = 1 << iota // its hash is the hash of its contents
	lineHashOK                   // its hash is the database's hash of its entry
	linePrevOK                   // its previous hash is the database's hash of the entry before it
)

// MirrorCheck is CompareMirror fed one file entry at a time (see
// EachLine): it compares each entry with the database's log as it is added
// and keeps its sequence number and the outcome, not the entry.
type MirrorCheck struct {
	db    Hashes
	lines []mirrorLine
}

// NewMirrorCheck returns a MirrorCheck of a file against db, a complete,
// verified database log.
func NewMirrorCheck(db Hashes) *MirrorCheck {
	m := &MirrorCheck{db: db}
	m.lines = make([]mirrorLine, 0, db.Len()) // a hint: a file holds about as many
	return m
}

// has reports whether the database holds entry seq with hash.
func (m *MirrorCheck) has(seq uint64, hash string) bool {
	return seq >= 1 && seq <= uint64(m.db.Len()) && m.db.sums[seq-1] == sumOf(hash)
}

// Add records one entry of the file, in file order.
func (m *MirrorCheck) Add(e Entry) {
	l := mirrorLine{seq: e.Seq}
	if ComputeHash(e) == e.Hash {
		l.flags |= lineIntact
	}
	if m.has(e.Seq, e.Hash) {
		l.flags |= lineHashOK
	}
	if e.Seq >= 2 && m.has(e.Seq-1, e.PrevHash) {
		l.flags |= linePrevOK
	}
	m.lines = append(m.lines, l)
}

// CompareMirror checks entries copied out of the database as they were
// committed (an audit file, read by ParseLines) against the database's log
// (db: complete and verified, entry i at index i-1). Every file entry must
// be intact and in the database with the same hash, the file's entries must
// chain, and every database entry from the file's first one on must be in
// the file. It returns the difference with the lowest sequence number (a
// *VerifyError), and how many entries the file held.
func CompareMirror(file, db []Entry) (int, error) {
	m := NewMirrorCheck(HashesOf(db))
	for _, e := range file {
		m.Add(e)
	}
	return m.Result()
}

// Result compares the entries added so far with the database's log, as
// CompareMirror does.
//
// Only the difference with the lowest sequence number is reported, and the
// lines are taken in that order, so a comparison between two lines
// matters only while nothing is reported: then every line before has its
// entry's hash, and comparing with the previous line (or with the first
// line of the same number) is comparing with the database, which Add did.
func (m *MirrorCheck) Result() (int, error) {
	if len(m.lines) == 0 {
		return 0, nil
	}
	sorted := m.lines // sorted in place: the file's order is not needed again
	slices.SortStableFunc(sorted, func(a, b mirrorLine) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	var first *VerifyError
	report := func(seq uint64, format string, a ...any) {
		if first == nil || seq < first.Seq {
			first = &VerifyError{Seq: seq, Reason: fmt.Sprintf(format, a...)}
		}
	}
	last := uint64(m.db.Len())
	var prev *mirrorLine
	for i := range sorted {
		e := &sorted[i]
		if prev != nil && prev.seq == e.seq {
			if e.flags&lineHashOK == 0 {
				report(e.seq, "is in the audit file twice, with different contents")
			}
			continue
		}
		switch {
		case e.flags&lineIntact == 0:
			report(e.seq, "the audit file's copy does not match its hash (changed in the file)")
		case prev != nil && prev.seq+1 == e.seq && e.flags&linePrevOK == 0:
			report(e.seq, "does not chain to the previous entry in the audit file")
		case e.seq > last:
			report(e.seq, "is in the audit file but not in the database, whose log ends at entry %d (its tail was deleted)", last)
		case e.flags&lineHashOK == 0:
			report(e.seq, "differs between the audit file and the database (changed in one of them)")
		}
		prev = e
	}
	// The first entry from the file's first on that the file lacks.
	next := sorted[0].seq
	for i := range sorted {
		if s := sorted[i].seq; s > next {
			break
		} else if s == next {
			next++
		}
	}
	if next <= last {
		report(next, "is in the database but missing from the audit file (written after the file's first entry %d)", sorted[0].seq)
	}
	if first != nil {
		return len(m.lines), first
	}
	return len(m.lines), nil
}

// CheckHead checks the log (entries: complete and verified, entry i at
// index i-1) against a head recorded outside the database: entry seq, with
// hash, was committed once, so the log must still hold it unchanged. where
// names the record in the report.
func CheckHead(entries []Entry, seq uint64, hash, where string) error {
	return CheckHeadHashes(HashesOf(entries), seq, hash, where)
}

// CheckHeadHashes is CheckHead given the log's hashes.
func CheckHeadHashes(log Hashes, seq uint64, hash, where string) error {
	c := HeadCheck{Seq: seq, Hash: hash, Where: where}
	for i, s := range log.sums {
		c.last = uint64(i + 1)
		if c.last == seq {
			c.at, c.seen = s, true
		}
	}
	return c.Result()
}

// A HeadCheck is CheckHead for a log read a page at a time: given each
// entry in order (Add), it keeps the hash of the one entry the head names.
type HeadCheck struct {
	Seq   uint64 // the head recorded outside the database (0: none)
	Hash  string
	Where string // names the record in the report

	last uint64
	at   sum
	seen bool
}

// Add records the next entry of the verified log.
func (c *HeadCheck) Add(seq uint64, hash string) {
	c.last = seq
	if seq == c.Seq {
		c.at, c.seen = sumOf(hash), true
	}
}

// Result checks the log added (complete and verified) against the head.
func (c *HeadCheck) Result() error {
	if c.Seq == 0 {
		return nil
	}
	if c.Seq > c.last || !c.seen {
		return &VerifyError{Seq: c.last + 1, Reason: fmt.Sprintf("missing: the log ends at entry %d, but entry %d was committed (%s); the tail of the log was deleted", c.last, c.Seq, c.Where)}
	}
	if c.at != sumOf(c.Hash) {
		return &VerifyError{Seq: c.Seq, Reason: fmt.Sprintf("differs from the one recorded outside the database (%s); the log was rewritten from here or before", c.Where)}
	}
	return nil
}
