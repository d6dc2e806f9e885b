package audit_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
)

// chain returns n sealed entries.
func chain(n int) []audit.Entry {
	var out []audit.Entry
	var prev *audit.Entry
	for i := range n {
		e := audit.Entry{Time: time.Date(2026, 12, 3, 10, 0, i, 0, time.UTC), Actor: "cli:root", Action: audit.ActionAdmin, Outcome: "ok"}
		audit.Seal(&e, prev)
		out = append(out, e)
		prev = &out[len(out)-1]
	}
	return out
}

func lines(es ...audit.Entry) string {
	var b bytes.Buffer
	for _, e := range es {
		b.Write(audit.MarshalLine(e))
	}
	return b.String()
}

func TestParseLines(t *testing.T) {
	db := chain(3)
	for _, tc := range []struct {
		name, in, wantErr string
		n                 int
	}{
		{name: "ok/empty", in: ""},
		{name: "ok/three", in: lines(db...), n: 3},
		{name: "fail/truncated-last-line", in: strings.TrimSuffix(lines(db...), "\n"), wantErr: "line 3: truncated"},
		{name: "fail/not-json", in: lines(db[0]) + "hello\n", wantErr: "line 2: not an audit entry"},
		{name: "fail/unknown-field", in: `{"seq":1,"hash":"x","evil":1}` + "\n", wantErr: "line 1: not an audit entry"},
		{name: "fail/no-seq", in: `{"actor":"x"}` + "\n", wantErr: "line 1: not an audit entry (no sequence number or hash)"},
		{name: "fail/two-on-a-line", in: strings.TrimSuffix(lines(db[0]), "\n") + lines(db[1]), wantErr: "line 1: more than one entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := audit.ParseLines(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(es) != tc.n {
				t.Fatalf("%d entries, err %v; want %d", len(es), err, tc.n)
			}
		})
	}
}

func TestCompareMirror(t *testing.T) {
	db := chain(6)
	changed := db[2]
	changed.Actor = "cli:mallory"
	forged := changed
	forged.Hash = audit.ComputeHash(forged)
	for _, tc := range []struct {
		name    string
		file    []audit.Entry
		db      []audit.Entry
		wantSeq uint64 // 0: no difference
		reason  string
	}{
		{name: "ok/all", file: db, db: db},
		{name: "ok/from-entry-3", file: db[2:], db: db},
		{name: "ok/out-of-order", file: []audit.Entry{db[1], db[3], db[2], db[4], db[5]}, db: db},
		{name: "ok/duplicate-line", file: []audit.Entry{db[4], db[4], db[5]}, db: db},
		{name: "ok/empty", db: db},
		{name: "fail/line-missing", file: []audit.Entry{db[0], db[1], db[3], db[4], db[5]}, db: db, wantSeq: 3, reason: "missing from the audit file"},
		{name: "fail/last-line-missing", file: db[:5], db: db, wantSeq: 6, reason: "missing from the audit file"},
		{name: "fail/line-changed", file: []audit.Entry{db[0], db[1], changed, db[3]}, db: db, wantSeq: 3, reason: "does not match its hash"},
		{name: "fail/line-forged", file: []audit.Entry{db[0], db[1], forged, db[3]}, db: db, wantSeq: 3, reason: "differs between the audit file and the database"},
		{name: "fail/line-forged-database-too", file: []audit.Entry{db[0], db[1], forged, db[3]}, db: append(append(append([]audit.Entry{}, db[:2]...), forged), db[3:]...), wantSeq: 4, reason: "does not chain"},
		{name: "fail/database-changed", file: db, db: append(append(append([]audit.Entry{}, db[:2]...), forged), db[3:]...), wantSeq: 3, reason: "differs between the audit file and the database"},
		{name: "fail/database-tail-cut", file: db, db: db[:4], wantSeq: 5, reason: "not in the database, whose log ends at entry 4"},
		{name: "fail/same-seq-twice", file: []audit.Entry{db[2], forged, db[3]}, db: db, wantSeq: 3, reason: "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := audit.CompareMirror(tc.file, tc.db)
			if n != len(tc.file) {
				t.Errorf("n = %d, want %d", n, len(tc.file))
			}
			if tc.wantSeq == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ve *audit.VerifyError
			if !errors.As(err, &ve) || ve.Seq != tc.wantSeq || !strings.Contains(ve.Reason, tc.reason) {
				t.Fatalf("err %v, want entry %d: ...%s", err, tc.wantSeq, tc.reason)
			}
		})
	}
}

func TestCheckHead(t *testing.T) {
	db := chain(5)
	for _, tc := range []struct {
		name    string
		seq     uint64
		hash    string
		wantSeq uint64
	}{
		{name: "ok/none", seq: 0},
		{name: "ok/last", seq: 5, hash: db[4].Hash},
		{name: "ok/behind", seq: 3, hash: db[2].Hash},
		{name: "fail/tail-cut", seq: 7, hash: "x", wantSeq: 6},
		{name: "fail/rewritten", seq: 4, hash: db[2].Hash, wantSeq: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := audit.CheckHead(db, tc.seq, tc.hash, "audit.head")
			if tc.wantSeq == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ve *audit.VerifyError
			if !errors.As(err, &ve) || ve.Seq != tc.wantSeq || !strings.Contains(ve.Reason, "audit.head") {
				t.Fatalf("err %v, want entry %d naming audit.head", err, tc.wantSeq)
			}
		})
	}
}
