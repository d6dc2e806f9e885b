package atomicfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sshca/sshca/internal/atomicfile"
)

// tree maps every entry under dir (relative path) to its content and
// mode; directories map to "dir".
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			m[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		m[rel] = fmt.Sprintf("%s %v", b, fi.Mode().Perm())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteMany(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup prepares root and returns the files to write.
		setup   func(t *testing.T, root string) []atomicfile.File
		wantErr string // substring; "" for success
		// want is the tree after the call; nil means "unchanged".
		want map[string]string
	}{
		{
			name: "ok/two-dirs-and-replace",
			setup: func(t *testing.T, root string) []atomicfile.File {
				mkdir(t, root, "a")
				mkdir(t, root, "b")
				write(t, root, "a/old", "previous")
				return []atomicfile.File{
					{Path: filepath.Join(root, "a/one"), Data: []byte("1"), Perm: 0o644},
					{Path: filepath.Join(root, "a/old"), Data: []byte("new"), Perm: 0o600},
					{Path: filepath.Join(root, "b/two"), Data: []byte("2"), Perm: 0o640},
				}
			},
			want: map[string]string{"a": "dir", "b": "dir", "a/one": "1 -rw-r--r--", "a/old": "new -rw-------", "b/two": "2 -rw-r-----"},
		},
		{
			name:  "ok/none",
			setup: func(t *testing.T, root string) []atomicfile.File { return nil },
			want:  map[string]string{},
		},
		{
			name: "fail/duplicate-path",
			setup: func(t *testing.T, root string) []atomicfile.File {
				return []atomicfile.File{
					{Path: filepath.Join(root, "x"), Data: []byte("1"), Perm: 0o644},
					{Path: filepath.Join(root, ".", "x"), Data: []byte("2"), Perm: 0o644},
				}
			},
			wantErr: "listed twice",
		},
		{
			name: "fail/missing-dir-writes-nothing",
			setup: func(t *testing.T, root string) []atomicfile.File {
				mkdir(t, root, "a")
				write(t, root, "a/old", "previous")
				return []atomicfile.File{
					{Path: filepath.Join(root, "a/old"), Data: []byte("new"), Perm: 0o644},
					{Path: filepath.Join(root, "a/one"), Data: []byte("1"), Perm: 0o644},
					{Path: filepath.Join(root, "missing/two"), Data: []byte("2"), Perm: 0o644},
				}
			},
			wantErr: "missing",
		},
		{
			name: "fail/rename-midway-keeps-earlier",
			setup: func(t *testing.T, root string) []atomicfile.File {
				// A non-empty directory where the second file goes:
				// its temp file is written, its rename fails.
				mkdir(t, root, "busy")
				write(t, root, "busy/inside", "x")
				return []atomicfile.File{
					{Path: filepath.Join(root, "first"), Data: []byte("1"), Perm: 0o644},
					{Path: filepath.Join(root, "busy"), Data: []byte("2"), Perm: 0o644},
					{Path: filepath.Join(root, "third"), Data: []byte("3"), Perm: 0o644},
				}
			},
			wantErr: "1 of 3 files were replaced",
			want:    map[string]string{"first": "1 -rw-r--r--", "busy": "dir", "busy/inside": "x -rw-r--r--"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			files := tt.setup(t, root)
			before := tree(t, root)
			err := atomicfile.WriteMany(files)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("WriteMany: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("WriteMany error %v, want one containing %q", err, tt.wantErr)
			}
			want := tt.want
			if want == nil {
				want = before
			}
			// No temp file is ever left behind.
			if diff := cmp.Diff(want, tree(t, root)); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func mkdir(t *testing.T, root, name string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(root, name), 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, root, name, content string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStageAbort: staged files are invisible under their names until
// Commit, and Abort leaves nothing behind.
func TestStageAbort(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "a-cert.pub")
	if err := os.WriteFile(target, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := atomicfile.StageMany([]atomicfile.File{{Path: target, Data: []byte("new\n"), Perm: 0o644}, {Path: filepath.Join(dir, "b-cert.pub"), Data: []byte("b\n"), Perm: 0o644}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "old\n" {
		t.Fatalf("staged content visible before Commit: %q", got)
	}
	st.Abort()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "a-cert.pub" {
		t.Fatalf("after Abort the directory holds %v; want only a-cert.pub", ents)
	}
	if got, _ := os.ReadFile(target); string(got) != "old\n" {
		t.Fatalf("Abort changed the target: %q", got)
	}
	st, err = atomicfile.StageMany([]atomicfile.File{{Path: target, Data: []byte("new\n"), Perm: 0o644}})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "new\n" {
		t.Fatalf("after Commit: %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
}

func TestReadSmall(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.pub")
	data := bytes.Repeat([]byte("x"), 10000)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 4096, 4097, 9999, 10000, 10001, 20000} {
		got, err := atomicfile.ReadSmall(p, limit)
		if err != nil || len(got) != min(limit, len(data)) || !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("ReadSmall(limit %d) = %d bytes, %v", limit, len(got), err)
		}
	}
	if _, err := atomicfile.ReadSmall(filepath.Join(t.TempDir(), "missing"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
