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
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.Path
	}
	sg, err := NewStage(paths)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := sg.Add(f); err != nil {
			sg.Abort()
			return nil, err
		}
	}
	return sg.Finish()
}

// Stage is StageMany for contents that become known one at a time: the
// paths that may be written are given first, each file is added (its temp
// file written) when its content is ready, and Finish makes the added ones
// durable. A Stage is used from one goroutine; after an error from Add,
// Abort.
type Stage struct {
	st      *Staged
	allowed map[string]bool // paths that may be added, false once added
	fsys    []*os.File
	failed  error // the first error of Add
}

// NewStage checks paths (none twice) and prepares to write temp files for
// any of them; one open directory per filesystem is opened before any write
// (see syncfs).
func NewStage(paths []string) (*Stage, error) {
	sg := &Stage{st: &Staged{}, allowed: make(map[string]bool, len(paths))}
	dirSeen := map[string]bool{}
	for _, path := range paths {
		p := filepath.Clean(path)
		if _, seen := sg.allowed[p]; seen {
			return nil, fmt.Errorf("write %s: listed twice", path)
		}
		sg.allowed[p] = true
		if d := filepath.Dir(p); !dirSeen[d] {
			dirSeen[d] = true
			sg.st.dirs = append(sg.st.dirs, d)
		}
	}
	if len(paths) == 0 {
		return sg, nil
	}
	fsys, err := openFilesystems(sg.st.dirs)
	if err != nil {
		return nil, err
	}
	sg.fsys = fsys
	return sg, nil
}

// Add writes f's temp file. f.Path must be one of the stage's paths, added
// once. Creating files in parallel in one directory only makes the threads
// spin on the directory's lock, so one goroutine adds them all.
func (sg *Stage) Add(f File) error {
	p := filepath.Clean(f.Path)
	if !sg.allowed[p] {
		return fmt.Errorf("write %s: not staged, or added twice", f.Path)
	}
	sg.allowed[p] = false
	temp, err := writeTemp(f)
	if temp != "" {
		sg.st.files = append(sg.st.files, f)
		sg.st.temps = append(sg.st.temps, temp)
	}
	if err != nil && sg.failed == nil {
		sg.failed = err
	}
	return err
}

// Finish makes every added temp file durable and returns them staged; on
// error nothing is left behind.
func (sg *Stage) Finish() (*Staged, error) {
	fsys := sg.fsys
	sg.fsys = nil
	defer closeAll(fsys)
	if sg.failed != nil {
		sg.st.Abort()
		return nil, sg.failed
	}
	if len(sg.st.files) > 0 {
		if err := syncFilesystems(fsys); err != nil {
			sg.st.Abort()
			return nil, err
		}
	}
	return sg.st, nil
}

// Abort removes the temp files added so far.
func (sg *Stage) Abort() {
	closeAll(sg.fsys)
	sg.fsys = nil
	sg.st.Abort()
}

// Len returns how many files are staged.
func (st *Staged) Len() int { return len(st.files) }

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
