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
	st, err := StageMany(files)
	if err != nil {
		return err
	}
	return st.Commit()
}

// Staged is a WriteMany cut in two: the temp files are written and durable,
// nothing is replaced yet. Exactly one of Commit or Abort must follow.
type Staged struct {
	files []File
	dirs  []string
	temps []string
}

// StageMany is the first half of WriteMany: it checks the paths, writes
// every temp file and makes them durable. On error nothing is left behind.
// A caller that must not let the files appear before something else is
// durable (a database commit) stages them meanwhile and commits after.
func StageMany(files []File) (*Staged, error) {
	st := &Staged{files: files, temps: make([]string, len(files))}
	if len(files) == 0 {
		return st, nil
	}
	seen := make(map[string]bool, len(files))
	dirSeen := map[string]bool{}
	for _, f := range files {
		p := filepath.Clean(f.Path)
		if seen[p] {
			return nil, fmt.Errorf("write %s: listed twice", f.Path)
		}
		seen[p] = true
		if d := filepath.Dir(p); !dirSeen[d] {
			dirSeen[d] = true
			st.dirs = append(st.dirs, d)
		}
	}
	// One open directory per filesystem, opened before any write (see syncfs).
	fsys, err := openFilesystems(st.dirs)
	if err != nil {
		return nil, err
	}
	defer closeAll(fsys)
	// One at a time: creating files in parallel in one directory only makes
	// the threads spin on the directory's lock.
	for i, f := range files {
		var err error
		if st.temps[i], err = writeTemp(f); err != nil {
			st.Abort()
			return nil, err
		}
	}
	if err := syncFilesystems(fsys); err != nil {
		st.Abort()
		return nil, err
	}
	return st, nil
}

// Abort removes the staged temp files; no file is replaced.
func (st *Staged) Abort() {
	for i, t := range st.temps {
		if t != "" {
			os.Remove(t)
			st.temps[i] = ""
		}
	}
}

// Commit renames every staged file into place, then fsyncs each distinct
// directory once. A rename that fails part way leaves the files before it
// replaced (each one whole and durable), removes the rest's temp files, and
// says how many were replaced.
func (st *Staged) Commit() error {
	renamed := 0
	defer func() {
		for _, t := range st.temps[renamed:] {
			if t != "" {
				os.Remove(t)
			}
		}
	}()
	for i, f := range st.files {
		if err := os.Rename(st.temps[i], f.Path); err != nil {
			err = fmt.Errorf("write %s: %w", f.Path, err)
			if renamed > 0 {
				err = fmt.Errorf("%w (%d of %d files were replaced)", err, renamed, len(st.files))
				// Make the replaced ones durable all the same.
				err = errors.Join(err, syncDirs(st.dirs))
			}
			return err
		}
		renamed++
	}
	return syncDirs(st.dirs)
}

func syncDirs(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		errs = append(errs, SyncDir(d))
	}
	return errors.Join(errs...)
}
