package atomicfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/atomicfile"
)

// TestStage: files added one at a time appear, after Finish and Commit,
// exactly as WriteMany would write them — only those added, nothing before
// Commit; a path not given, or given twice, is refused; after a failed Add,
// Finish fails and leaves nothing behind; Abort leaves nothing behind.
func TestStage(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	a, b, c := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "c")
	if err := os.WriteFile(b, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := atomicfile.NewStage([]string{a, b, root + "/./a"}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("a path given twice: %v", err)
	}

	sg, err := atomicfile.NewStage([]string{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	if err := sg.Add(atomicfile.File{Path: filepath.Join(root, "d"), Data: []byte("x"), Perm: 0o644}); err == nil {
		t.Fatal("a path not given was added")
	}
	if err := sg.Add(atomicfile.File{Path: a, Data: []byte("A"), Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	if err := sg.Add(atomicfile.File{Path: a, Data: []byte("A2"), Perm: 0o644}); err == nil {
		t.Fatal("a path was added twice")
	}
	if err := sg.Add(atomicfile.File{Path: b, Data: []byte("B"), Perm: 0o640}); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{"b": "old -rw-------"}
	if got := visible(t, root); !cmp.Equal(got, before) {
		t.Fatalf("before Finish: %v", cmp.Diff(before, got))
	}
	st, err := sg.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if st.Len() != 2 {
		t.Fatalf("%d files staged; want the 2 added", st.Len())
	}
	if got := visible(t, root); !cmp.Equal(got, before) {
		t.Fatalf("before Commit: %v", cmp.Diff(before, got))
	}
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "A -rw-r--r--", "b": "B -rw-r-----"}
	if got := tree(t, root); !cmp.Equal(got, want) {
		t.Fatalf("after Commit: %v", cmp.Diff(want, got))
	}

	// A failed Add (its directory removed meanwhile): Finish refuses,
	// nothing is left.
	gone := filepath.Join(root, "gone")
	if err := os.Mkdir(gone, 0o700); err != nil {
		t.Fatal(err)
	}
	sg, err = atomicfile.NewStage([]string{c, filepath.Join(gone, "e")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if err := sg.Add(atomicfile.File{Path: c, Data: []byte("C"), Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	if err := sg.Add(atomicfile.File{Path: filepath.Join(gone, "e"), Data: []byte("E"), Perm: 0o644}); err == nil {
		t.Fatal("a file in a removed directory was staged")
	}
	if _, err := sg.Finish(); err == nil {
		t.Fatal("Finish after a failed Add succeeded")
	}
	if got := tree(t, root); !cmp.Equal(got, want) {
		t.Fatalf("after a failed stage: %v", cmp.Diff(want, got))
	}

	// Abort.
	sg, err = atomicfile.NewStage([]string{c})
	if err != nil {
		t.Fatal(err)
	}
	if err := sg.Add(atomicfile.File{Path: c, Data: []byte("C"), Perm: 0o644}); err != nil {
		t.Fatal(err)
	}
	sg.Abort()
	if got := tree(t, root); !cmp.Equal(got, want) {
		t.Fatalf("after Abort: %v", cmp.Diff(want, got))
	}
}

// visible is tree without the temp files (names starting with a dot).
func visible(t *testing.T, dir string) map[string]string {
	m := tree(t, dir)
	for k := range m {
		if strings.HasPrefix(filepath.Base(k), ".") {
			delete(m, k)
		}
	}
	return m
}
