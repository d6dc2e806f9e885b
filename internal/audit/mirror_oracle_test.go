package audit_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/audit"
)

// oldCompareMirror is CompareMirror as it was before it kept hashes as
// 33-byte sums (commit afcd933): every hash a string, a map of the
// sequence numbers in the file. The oracle of TestCompareMirrorMatchesOracle.
func oldCompareMirror(file, db []audit.Entry) (int, error) {
	type mirrorLine struct {
		seq        uint64
		hash, prev string
		intact     bool
	}
	var lines []mirrorLine
	for _, e := range file {
		lines = append(lines, mirrorLine{seq: e.Seq, hash: e.Hash, prev: e.PrevHash, intact: audit.ComputeHash(e) == e.Hash})
	}
	if len(lines) == 0 {
		return 0, nil
	}
	sorted := slices.Clone(lines)
	slices.SortStableFunc(sorted, func(a, b mirrorLine) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	var first *audit.VerifyError
	report := func(seq uint64, format string, a ...any) {
		if first == nil || seq < first.Seq {
			first = &audit.VerifyError{Seq: seq, Reason: fmt.Sprintf(format, a...)}
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
		case db[e.seq-1].Hash != e.hash:
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
		return len(lines), first
	}
	return len(lines), nil
}

// TestCompareMirrorMatchesOracle compares random audit files with random
// databases — lines dropped, repeated, reordered, forged, their hashes
// rewritten (also as upper-case hex and as no hash at all), tails cut on
// either side — and checks that CompareMirror and CheckHead say exactly
// what they said when they kept every hash as a string.
func TestCompareMirrorMatchesOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	errText := func(err error) string {
		if err == nil {
			return "<nil>"
		}
		return err.Error()
	}
	for trial := range 3000 {
		db := chain(1 + r.IntN(12))
		file := slices.Clone(db[r.IntN(len(db)):])
		dbCut := db
		for range r.IntN(4) {
			switch r.IntN(8) {
			case 0: // a line dropped
				if len(file) > 1 {
					i := r.IntN(len(file))
					file = slices.Delete(file, i, i+1)
				}
			case 1: // a line repeated, maybe forged
				e := file[r.IntN(len(file))]
				if r.IntN(2) == 0 {
					e.Actor = "forged"
					if r.IntN(2) == 0 {
						e.Hash = audit.ComputeHash(e)
					}
				}
				file = append(file, e)
			case 2: // two lines swapped
				i, j := r.IntN(len(file)), r.IntN(len(file))
				file[i], file[j] = file[j], file[i]
			case 3: // a hash rewritten
				e := &file[r.IntN(len(file))]
				switch r.IntN(4) {
				case 0:
					e.Hash = strings.ToUpper(e.Hash)
				case 1:
					e.Hash = "x"
				case 2:
					e.PrevHash = strings.ToUpper(e.PrevHash)
					e.Hash = audit.ComputeHash(*e)
				default:
					e.PrevHash = "not a hash"
					e.Hash = audit.ComputeHash(*e)
				}
			case 4: // the database's tail cut
				dbCut = db[:1+r.IntN(len(db))]
			case 5: // the database's copy changed
				dbCut = slices.Clone(dbCut)
				i := r.IntN(len(dbCut))
				dbCut[i].Hash = []string{strings.ToUpper(dbCut[i].Hash), "y", db[(i+1)%len(db)].Hash}[r.IntN(3)]
			case 6: // the file's tail cut
				file = file[:1+r.IntN(len(file))]
			default: // a line forged and chained
				i := r.IntN(len(file))
				file[i].Reason = "forged"
				file[i].Hash = audit.ComputeHash(file[i])
			}
		}
		wantN, wantErr := oldCompareMirror(file, dbCut)
		n, err := audit.CompareMirror(file, dbCut)
		if n != wantN || errText(err) != errText(wantErr) {
			t.Fatalf("trial %d: %d, %v; the oracle says %d, %v", trial, n, err, wantN, wantErr)
		}
		// The head outside the database: any entry, maybe with a changed hash.
		seq := uint64(r.IntN(len(db) + 2))
		hash := ""
		if seq >= 1 && seq <= uint64(len(db)) {
			hash = db[seq-1].Hash
		}
		switch r.IntN(4) {
		case 0:
			hash = strings.ToUpper(hash)
		case 1:
			hash = "z"
		}
		wantErr = nil
		switch last := uint64(len(dbCut)); {
		case seq == 0:
		case seq > last:
			wantErr = &audit.VerifyError{Seq: last + 1, Reason: fmt.Sprintf("missing: the log ends at entry %d, but entry %d was committed (%s); the tail of the log was deleted", last, seq, "h")}
		case dbCut[seq-1].Hash != hash:
			wantErr = &audit.VerifyError{Seq: seq, Reason: fmt.Sprintf("differs from the one recorded outside the database (%s); the log was rewritten from here or before", "h")}
		}
		if err := audit.CheckHead(dbCut, seq, hash, "h"); errText(err) != errText(wantErr) {
			t.Fatalf("trial %d: CheckHead(%d, %q): %v; want %v", trial, seq, hash, err, wantErr)
		}
	}
}
