package main

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
)

// TestKRLShort runs the krl suite in short mode (10^4 serials): OpenSSH
// loads every KRL sshca writes with the expected verdicts, sshca's KRL is
// never larger, `sshca krl` stays under the memory target, and every
// figure is present.
func TestKRLShort(t *testing.T) {
	secs, err := runKRL(t.Context(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	requireChecks(t, secs)
	if len(secs) != 2 {
		t.Fatalf("%d sections, want generation and check", len(secs))
	}
	gen, chk := secs[0], secs[1]
	tools := map[string]bool{}
	for _, r := range gen.Rows {
		if strings.Contains(r[3], "not measured") || strings.Contains(r[3], "stopped") {
			t.Errorf("%s: %s", r[2], r[3])
			continue
		}
		tools[r[2]] = true
		if v := parseFigure(t, r[3]); v <= 0 {
			t.Errorf("%s: time %q", r[2], r[3])
		}
		if r[5] != "—" && parseFigure(t, r[5]) <= 0 {
			t.Errorf("%s: size %q", r[2], r[5])
		}
	}
	if len(tools) != 5 {
		t.Errorf("rows for %d tools, want 5 (ssh-keygen, two library paths, sshca krl, import): %v", len(tools), tools)
	}
	var loads int
	for _, c := range gen.Checks {
		if strings.Contains(c.Name, "OpenSSH loads") {
			loads++
		}
	}
	if loads != 2 {
		t.Errorf("%d loadability checks, want 2 (library and `sshca krl`)", loads)
	}
	if len(chk.Rows) != 2 {
		t.Fatalf("check section: %d rows, want 2", len(chk.Rows))
	}
	for _, r := range chk.Rows {
		if parseFigure(t, r[2]) <= 0 || parseFigure(t, r[3]) <= 0 {
			t.Errorf("check times %q, %q", r[2], r[3])
		}
	}
}

// TestKRLWorkload checks the workload against the library's own Check,
// without OpenSSH: the right number of serials, and every probe's expected
// verdict.
func TestKRLWorkload(t *testing.T) {
	const n = 10000
	w, err := newKRLWorkload(n)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.count(); got != n {
		t.Fatalf("%d serials, want %d", got, n)
	}
	for name, v := range map[string]uint64{"scattered": w.scattered, "in batch": w.inBatch, "batch gap": w.inBatchGap, "in range": w.inRange, "after range": w.afterRange} {
		if v == 0 {
			t.Errorf("no %s serial", name)
		}
	}
	ca, err := newCASigner("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	other, err := newCASigner("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	data, err := w.build(ca.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	k, err := krl.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	probes, err := krlFiles(dir, w, ca, other)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := krlBatch(dir+"/batch", w, ca, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(probes, batch...) {
		b, err := os.ReadFile(p.path)
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.Check(pub) != nil; got != p.revoked {
			t.Errorf("%s: revoked=%v, want %v", p.name, got, p.revoked)
		}
	}
	// The spec file says the same as the revocations.
	spec := dir + "/spec"
	if err := w.writeSpec(spec); err != nil {
		t.Fatal(err)
	}
	fromSpec, err := krlFromSpec(spec, ca.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	k2, err := krl.Parse(fromSpec)
	if err != nil {
		t.Fatal(err)
	}
	k.GeneratedDate, k2.GeneratedDate = 0, 0
	a, _ := k.Marshal()
	b, _ := k2.Marshal()
	if string(a) != string(b) {
		t.Error("the KRL from the spec file differs from the KRL from the revocations")
	}
}
