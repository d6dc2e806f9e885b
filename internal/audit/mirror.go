package audit

import (
	"bufio"
	"bytes"
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
// entry i at index i-1, and nothing else of it.
type Hashes []string

// HashesOf returns the hashes of entries (complete: entry i at index i-1).
func HashesOf(entries []Entry) Hashes {
	h := make(Hashes, len(entries))
	for i := range entries {
		h[i] = entries[i].Hash
	}
	return h
}

// mirrorLine is what MirrorCheck keeps of one audit file line.
type mirrorLine struct {
	seq        uint64
	hash, prev string
	intact     bool // its hash is the hash of its contents
}

// MirrorCheck is CompareMirror fed one file entry at a time (see
// EachLine): it keeps the sequence number and two hashes of each, not the
// entries.
type MirrorCheck struct {
	lines []mirrorLine
}

// Add records one entry of the file, in file order.
func (m *MirrorCheck) Add(e Entry) {
	m.lines = append(m.lines, mirrorLine{seq: e.Seq, hash: e.Hash, prev: e.PrevHash, intact: ComputeHash(e) == e.Hash})
}

// CompareMirror checks entries copied out of the database as they were
// committed (an audit file, read by ParseLines) against the database's log
// (db: complete and verified, entry i at index i-1). Every file entry must
// be intact and in the database with the same hash, the file's entries must
// chain, and every database entry from the file's first one on must be in
// the file. It returns the difference with the lowest sequence number (a
// *VerifyError), and how many entries the file held.
func CompareMirror(file, db []Entry) (int, error) {
	var m MirrorCheck
	for _, e := range file {
		m.Add(e)
	}
	return m.Result(HashesOf(db))
}

// Result compares the entries added so far with a complete, verified
// database log (db: the hash of entry i at index i-1), as CompareMirror
// does.
func (m *MirrorCheck) Result(db Hashes) (int, error) {
	if len(m.lines) == 0 {
		return 0, nil
	}
	sorted := slices.Clone(m.lines)
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
	last := uint64(len(db))
	inFile := map[uint64]bool{}
	var prev *mirrorLine
	for i := range sorted {
		e := &sorted[i]
		if prev != nil && prev.seq == e.seq {
			if prev.hash != e.hash {
				report(e.seq, "is in the audit file twice, with different contents")
			}
			continue
		}
		inFile[e.seq] = true
		switch {
		case !e.intact:
			report(e.seq, "the audit file's copy does not match its hash (changed in the file)")
		case prev != nil && prev.seq+1 == e.seq && e.prev != prev.hash:
			report(e.seq, "does not chain to the previous entry in the audit file")
		case e.seq > last:
			report(e.seq, "is in the audit file but not in the database, whose log ends at entry %d (its tail was deleted)", last)
		case db[e.seq-1] != e.hash:
			report(e.seq, "differs between the audit file and the database (changed in one of them)")
		}
		prev = e
	}
	for seq := sorted[0].seq; seq <= last; seq++ {
		if !inFile[seq] {
			report(seq, "is in the database but missing from the audit file (written after the file's first entry %d)", sorted[0].seq)
			break
		}
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
	if seq == 0 {
		return nil
	}
	last := uint64(len(log))
	if seq > last {
		return &VerifyError{Seq: last + 1, Reason: fmt.Sprintf("missing: the log ends at entry %d, but entry %d was committed (%s); the tail of the log was deleted", last, seq, where)}
	}
	if log[seq-1] != hash {
		return &VerifyError{Seq: seq, Reason: fmt.Sprintf("differs from the one recorded outside the database (%s); the log was rewritten from here or before", where)}
	}
	return nil
}
