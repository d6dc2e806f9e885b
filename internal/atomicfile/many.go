package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File is one file for WriteMany: its path, content and permissions.
type File struct {
	Path string
	Data []byte
	Perm os.FileMode
}

// WriteMany replaces every file, as Write does for one, with a cost that
// does not grow by one fsync per file: it writes each file to a temp file
// beside it, makes all of them durable at once (on Linux one syncfs per
// filesystem they live on; elsewhere one fsync per temp file), renames each
// into place, then fsyncs each distinct directory once.
//
// If anything fails before the first rename, no file is replaced and every
// temp file is removed. A rename that fails part way leaves the files before
// it replaced (each one whole and durable) and the rest untouched; the error
// says how many were replaced. Two entries for the same path are refused.
//
// syncfs reports a writeback error only on Linux 5.8 and later; WriteMany
// opens the filesystem before writing so that such an error during the
// batch is not lost.
func WriteMany(files []File) error {
	if len(files) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(files))
	var dirs []string
	dirSeen := map[string]bool{}
	for _, f := range files {
		p := filepath.Clean(f.Path)
		if seen[p] {
			return fmt.Errorf("write %s: listed twice", f.Path)
		}
		seen[p] = true
		if d := filepath.Dir(p); !dirSeen[d] {
			dirSeen[d] = true
			dirs = append(dirs, d)
		}
	}
	// One open directory per filesystem, opened before any write (see syncfs).
	fsys, err := openFilesystems(dirs)
	if err != nil {
		return err
	}
	defer func() {
		for _, d := range fsys {
			d.Close()
		}
	}()

	temps := make([]string, len(files))
	renamed := 0
	defer func() {
		for _, t := range temps[renamed:] {
			if t != "" {
				os.Remove(t)
			}
		}
	}()
	// One at a time: creating files in parallel in one directory only makes
	// the threads spin on the directory's lock.
	for i, f := range files {
		var err error
		if temps[i], err = writeTemp(f); err != nil {
			return err
		}
	}
	if err := syncFilesystems(fsys); err != nil {
		return err
	}
	for i, f := range files {
		if err := os.Rename(temps[i], f.Path); err != nil {
			err = fmt.Errorf("write %s: %w", f.Path, err)
			if renamed > 0 {
				err = fmt.Errorf("%w (%d of %d files were replaced)", err, renamed, len(files))
				// Make the replaced ones durable all the same.
				err = errors.Join(err, syncDirs(dirs))
			}
			return err
		}
		renamed++
	}
	return syncDirs(dirs)
}

func syncDirs(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		errs = append(errs, SyncDir(d))
	}
	return errors.Join(errs...)
}
