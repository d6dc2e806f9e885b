package witness_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/witness"
)

// hashOf is the made-up hash of entry seq.
func hashOf(seq uint64) string { return fmt.Sprintf("%064x", seq) }

func open(t *testing.T, o witness.Options) *witness.Witness {
	t.Helper()
	w, err := witness.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func readHead(t *testing.T, path string) witness.Head {
	t.Helper()
	h, err := witness.ReadHead(path)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRecord(t *testing.T) {
	dir := t.TempDir()
	headPath, file := filepath.Join(dir, "audit.head"), filepath.Join(dir, "audit.jsonl")
	var notices []string
	w := open(t, witness.Options{HeadFile: headPath, AuditFile: file, Notice: func(s string) { notices = append(notices, s) }})
	for _, seq := range []uint64{1, 3, 2} { // commits of several goroutines end in any order
		w.Record(audit.Entry{Seq: seq, Hash: hashOf(seq), Actor: "cli:root", Action: audit.ActionAdmin, Outcome: "ok"})
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if h := readHead(t, headPath); h.Seq != 3 || h.Hash != hashOf(3) {
		t.Errorf("head %+v, want entry 3", h)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	es, err := audit.ParseLines(f)
	if err != nil || len(es) != 3 || es[2].Seq != 2 {
		t.Fatalf("audit file: %+v, %v", es, err)
	}
	for _, p := range []string{headPath, file} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", p, err, fi.Mode())
		}
	}
	if len(notices) > 0 {
		t.Errorf("notices: %q", notices)
	}
}

// TestHeadOnlyForward: processes sharing a home move the head forward only,
// whoever writes last.
func TestHeadOnlyForward(t *testing.T) {
	headPath := filepath.Join(t.TempDir(), "audit.head")
	var ws []*witness.Witness
	for range 4 {
		ws = append(ws, open(t, witness.Options{HeadFile: headPath}))
	}
	var wg sync.WaitGroup
	for i, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 200 - i; n > 0; n -= 4 {
				seq := uint64(n)
				if err := w.Advance(t.Context(), witness.Head{Seq: seq, Hash: hashOf(seq)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if h := readHead(t, headPath); h.Seq != 200 || h.Hash != hashOf(200) {
		t.Errorf("head %+v, want entry 200", h)
	}
}

// TestHeadStaysOnRewrittenLog: once the database no longer holds the entry
// the head names, the head is not moved on, and the witness says so.
func TestHeadStaysOnRewrittenLog(t *testing.T) {
	headPath := filepath.Join(t.TempDir(), "audit.head")
	db := map[uint64]string{}
	var mu sync.Mutex
	lookup := func(_ context.Context, seq uint64) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return db[seq], nil
	}
	w := open(t, witness.Options{HeadFile: headPath, Lookup: lookup, Interval: time.Millisecond})
	for seq := uint64(1); seq <= 5; seq++ {
		db[seq] = hashOf(seq)
	}
	if err := w.Advance(t.Context(), witness.Head{Seq: 5, Hash: hashOf(5)}); err != nil {
		t.Fatal(err)
	}
	// The tail is cut and written anew: entries 4.. get other hashes.
	mu.Lock()
	db[4], db[5], db[6] = "other4", "other5", "other6"
	mu.Unlock()
	err := w.Advance(t.Context(), witness.Head{Seq: 6, Hash: "other6"})
	if err == nil || !strings.Contains(err.Error(), "records entry 5, but the database holds another entry there") {
		t.Fatalf("err %v", err)
	}
	mu.Lock()
	delete(db, 5)
	delete(db, 6)
	mu.Unlock()
	err = w.Advance(t.Context(), witness.Head{Seq: 7, Hash: "x"})
	if err == nil || !strings.Contains(err.Error(), "no longer holds it") {
		t.Fatalf("err %v", err)
	}
	if h := readHead(t, headPath); h.Seq != 5 || h.Hash != hashOf(5) {
		t.Errorf("head %+v, want it kept at entry 5", h)
	}
}

func TestReadHead(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		wantErr       bool
		want          witness.Head
	}{
		{name: "ok/missing"},
		{name: "ok/empty", content: ""},
		{name: "ok/head", content: "sshca-audit-head v1 12 " + hashOf(12) + "\n", want: witness.Head{Seq: 12, Hash: hashOf(12)}},
		{name: "fail/garbage", content: "hello\n", wantErr: true},
		{name: "fail/short-hash", content: "sshca-audit-head v1 12 abc\n", wantErr: true},
		{name: "fail/seq-zero", content: "sshca-audit-head v1 0 " + hashOf(0) + "\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, "/", "-"))
			if tc.name != "ok/missing" {
				if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			h, err := witness.ReadHead(p)
			if (err != nil) != tc.wantErr || h != tc.want {
				t.Fatalf("ReadHead = %+v, %v; want %+v (error %v)", h, err, tc.want, tc.wantErr)
			}
		})
	}
}
