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
	br := bufio.NewReader(r)
	var out []Entry
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				return nil, fmt.Errorf("audit file: line %d: truncated (no newline at the end of the file)", n)
			}
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.DisallowUnknownFields()
			var e Entry
			if derr := dec.Decode(&e); derr != nil {
				return nil, fmt.Errorf("audit file: line %d: not an audit entry: %v", n, derr)
			}
			if dec.More() {
				return nil, fmt.Errorf("audit file: line %d: more than one entry", n)
			}
			if e.Seq == 0 || e.Hash == "" {
				return nil, fmt.Errorf("audit file: line %d: not an audit entry (no sequence number or hash)", n)
			}
			out = append(out, e)
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("audit file: %w", err)
		}
	}
}

// CompareMirror checks entries copied out of the database as they were
// committed (an audit file, read by ParseLines) against the database's log
// (db: complete and verified, entry i at index i-1). Every file entry must
// be intact and in the database with the same hash, the file's entries must
// chain, and every database entry from the file's first one on must be in
// the file. It returns the difference with the lowest sequence number (a
// *VerifyError), and how many entries the file held.
func CompareMirror(file, db []Entry) (int, error) {
	if len(file) == 0 {
		return 0, nil
	}
	sorted := slices.Clone(file)
	slices.SortStableFunc(sorted, func(a, b Entry) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
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
	var prev *Entry
	for i := range sorted {
		e := &sorted[i]
		if prev != nil && prev.Seq == e.Seq {
			if prev.Hash != e.Hash {
				report(e.Seq, "is in the audit file twice, with different contents")
			}
			continue
		}
		inFile[e.Seq] = true
		switch {
		case ComputeHash(*e) != e.Hash:
			report(e.Seq, "the audit file's copy does not match its hash (changed in the file)")
		case prev != nil && prev.Seq+1 == e.Seq && e.PrevHash != prev.Hash:
			report(e.Seq, "does not chain to the previous entry in the audit file")
		case e.Seq > last:
			report(e.Seq, "is in the audit file but not in the database, whose log ends at entry %d (its tail was deleted)", last)
		case db[e.Seq-1].Hash != e.Hash:
			report(e.Seq, "differs between the audit file and the database (changed in one of them)")
		}
		prev = e
	}
	for seq := sorted[0].Seq; seq <= last; seq++ {
		if !inFile[seq] {
			report(seq, "is in the database but missing from the audit file (written after the file's first entry %d)", sorted[0].Seq)
			break
		}
	}
	if first != nil {
		return len(file), first
	}
	return len(file), nil
}

// CheckHead checks the log (entries: complete and verified, entry i at
// index i-1) against a head recorded outside the database: entry seq, with
// hash, was committed once, so the log must still hold it unchanged. where
// names the record in the report.
func CheckHead(entries []Entry, seq uint64, hash, where string) error {
	if seq == 0 {
		return nil
	}
	last := uint64(len(entries))
	if seq > last {
		return &VerifyError{Seq: last + 1, Reason: fmt.Sprintf("missing: the log ends at entry %d, but entry %d was committed (%s); the tail of the log was deleted", last, seq, where)}
	}
	if entries[seq-1].Hash != hash {
		return &VerifyError{Seq: seq, Reason: fmt.Sprintf("differs from the one recorded outside the database (%s); the log was rewritten from here or before", where)}
	}
	return nil
}
