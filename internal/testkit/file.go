package testkit

import (
	"os"
	"path/filepath"
	"testing"
)

// WriteFile writes data to path, creating the missing parent directories
// (0755), and gives the file exactly the mode perm, whatever the umask
// (a test of file permissions needs the mode it asked for). It returns
// path, or fails the test.
func WriteFile(t testing.TB, path string, data []byte, perm os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}
