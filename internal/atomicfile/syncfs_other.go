//go:build !linux

package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

func openFilesystems([]string) ([]*os.File, error) { return nil, nil }

// syncFilesystems has nothing to do: without syncfs(2), writeTemp fsyncs
// each temp file.
func syncFilesystems([]*os.File) error { return nil }

// writeTemp writes f's content to a new temp file beside f.Path, with f's
// permissions, fsyncs it, and returns its name (also on error, once created).
func writeTemp(f File) (string, error) {
	t, err := os.CreateTemp(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", f.Path, err)
	}
	name := t.Name()
	err = t.Chmod(f.Perm)
	if err == nil {
		_, err = t.Write(f.Data)
	}
	if err == nil {
		err = t.Sync()
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return name, fmt.Errorf("write %s: %w", f.Path, err)
	}
	return name, nil
}
