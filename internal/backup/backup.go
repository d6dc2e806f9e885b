// Package backup writes and reads sshca's backup archive: one file holding
// a CA home's files (policy, CA keys and the secrets key as they are on
// disk, the audit head, the service's TLS files) and a consistent dump of
// its database (store.Dumper), encrypted with a passphrase. It never opens
// a CA key and never decides where a restored store lives: callers give it
// the store to read from or import into.
//
// The archive is age (filippo.io/age, scrypt recipient) over gzip over JSON
// lines: a manifest, the policy and the audit head, the dump's records, the
// other files, and an end record with what came before it. age
// authenticates every chunk and the end of the stream, so an archive that
// was changed or cut short does not read.
package backup

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/store"
)

// Format names the archive in its manifest.
const (
	Format  = "sshca-backup"
	Version = 1
)

// maxFile bounds one file of the archive (CA keys, policy, TLS files).
const maxFile = 4 << 20

// Manifest is the first record of an archive.
type Manifest struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Backend is the store the dump was taken from: "sqlite" or "postgres".
	Backend string `json:"backend"`
}

// File is one file of the home, by its slash path relative to the home.
type File struct {
	Path string      `json:"path"`
	Mode fs.FileMode `json:"mode"`
	Data []byte      `json:"data"`
}

// End is the last record: what the archive holds, checked on reading.
type End struct {
	Files  []string         `json:"files"`
	Counts store.DumpCounts `json:"counts"`
}

// record is one line of the archive; exactly one field is set.
type record struct {
	Manifest *Manifest         `json:"manifest,omitempty"`
	File     *File             `json:"file,omitempty"`
	Dump     *store.DumpRecord `json:"dump,omitempty"`
	End      *End              `json:"end,omitempty"`
}

// Summary is what an archive held (Read) or was given (Write).
type Summary struct {
	Manifest Manifest
	Files    []string
	Counts   store.DumpCounts
	// Skipped are files of the home left out (Write): not regular files,
	// or the audit file, which grows past the snapshot.
	Skipped []string
}

// Options configure Write.
type Options struct {
	Dir     string       // the home
	Store   store.Dumper // its database
	Backend string       // "sqlite" or "postgres"
	// Exclude are paths (relative to Dir, slash-separated) left out, such
	// as the audit file when it lives in the home.
	Exclude []string
	Now     time.Time
	// WorkFactor is age's scrypt work factor (log2 N); 0 is age's default.
	WorkFactor int
}

// first are the files written before the dump: the policy (a restore
// reads it to know where the database goes) and the audit head, read
// before the snapshot is taken so that it never records an entry the
// snapshot lacks.
var first = []string{home.ConfigFile, home.HeadFile}

// Write writes an archive of the home to w, encrypted with passphrase.
// The other files are read after the snapshot, so that every CA key the
// dump names (its file is written before its row) is in the archive.
func Write(ctx context.Context, w io.Writer, passphrase []byte, o Options) (Summary, error) {
	sum := Summary{Manifest: Manifest{Format: Format, Version: Version, Created: o.Now.UTC(), Backend: o.Backend}}
	r, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	if o.WorkFactor > 0 {
		r.SetWorkFactor(o.WorkFactor)
	}
	enc, err := age.Encrypt(w, r)
	if err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	zw := gzip.NewWriter(enc)
	bw := bufio.NewWriterSize(zw, 64<<10)
	je := json.NewEncoder(bw)
	put := func(rec record) error {
		if err := je.Encode(rec); err != nil {
			return fmt.Errorf("backup: write: %w", err)
		}
		return nil
	}
	if err := put(record{Manifest: &sum.Manifest}); err != nil {
		return sum, err
	}
	addFile := func(rel string) error {
		f, ok, err := readFile(o.Dir, rel)
		if err != nil {
			return err
		}
		if !ok {
			sum.Skipped = append(sum.Skipped, rel)
			return nil
		}
		sum.Files = append(sum.Files, rel)
		return put(record{File: &f})
	}
	for _, rel := range first {
		if err := addFile(rel); err != nil {
			return sum, err
		}
	}
	sum.Counts, err = o.Store.Export(ctx, func(d store.DumpRecord) error { return put(record{Dump: &d}) })
	if err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	rest, err := homeFiles(o.Dir, o.Exclude)
	if err != nil {
		return sum, err
	}
	for _, rel := range rest {
		if err := addFile(rel); err != nil {
			return sum, err
		}
	}
	if err := put(record{End: &End{Files: sum.Files, Counts: sum.Counts}}); err != nil {
		return sum, err
	}
	if err := bw.Flush(); err != nil {
		return sum, fmt.Errorf("backup: write: %w", err)
	}
	if err := zw.Close(); err != nil {
		return sum, fmt.Errorf("backup: write: %w", err)
	}
	if err := enc.Close(); err != nil {
		return sum, fmt.Errorf("backup: write: %w", err)
	}
	return sum, nil
}

// homeFiles lists the files of the home besides those written first: the
// regular files at its top level and in keys/, without the SQLite
// database's files and the excluded ones.
func homeFiles(dir string, exclude []string) ([]string, error) {
	skip := map[string]bool{}
	for _, p := range append(append([]string{}, first...), exclude...) {
		skip[p] = true
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		skip[home.DBFile+suffix] = true
	}
	var out []string
	for _, sub := range []string{"", home.KeyDir} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if errors.Is(err, fs.ErrNotExist) && sub != "" {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		for _, e := range ents {
			rel := path.Join(sub, e.Name())
			if e.IsDir() || skip[rel] || !ValidPath(rel) {
				continue
			}
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return out, nil
}

// readFile reads a file of the home; ok is false when it does not exist or
// is not a regular file (after following a symlink).
func readFile(dir, rel string) (File, bool, error) {
	p := filepath.Join(dir, filepath.FromSlash(rel))
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, false, nil
	}
	if err != nil {
		return File{}, false, fmt.Errorf("backup: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return File{}, false, nil
	}
	if fi.Size() > maxFile {
		return File{}, false, fmt.Errorf("backup: %s is %d bytes; files of a home are at most %d", p, fi.Size(), maxFile)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return File{}, false, fmt.Errorf("backup: %w", err)
	}
	return File{Path: rel, Mode: fi.Mode().Perm(), Data: data}, true, nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]*$`)

// ValidPath reports whether rel names a file an archive may hold: a plain
// name at the top of the home or in keys/.
func ValidPath(rel string) bool {
	dir, name := path.Split(rel)
	return (dir == "" || dir == home.KeyDir+"/") && namePattern.MatchString(name)
}

// Handler receives what Read finds, in archive order.
type Handler struct {
	// Manifest is called first.
	Manifest func(Manifest) error
	// File is called with each file, its path checked by ValidPath.
	File func(File) error
	// Dump is called with each record of the dump.
	Dump func(store.DumpRecord) error
}

// ErrPassphrase is returned by Read when the passphrase does not open the archive.
var ErrPassphrase = errors.New("backup: wrong passphrase (or not an sshca backup)")

// Read reads the archive r, calling h, and checks that it is whole: its
// files and row counts are those its end record lists.
func Read(ctx context.Context, r io.Reader, passphrase []byte, h Handler) (Summary, error) {
	var sum Summary
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	dec, err := age.Decrypt(r, id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return sum, ErrPassphrase
		}
		return sum, fmt.Errorf("backup: not an sshca backup, or damaged: %w", err)
	}
	zr, err := gzip.NewReader(dec)
	if err != nil {
		return sum, fmt.Errorf("backup: damaged archive: %w", err)
	}
	jd := json.NewDecoder(zr)
	jd.UseNumber()
	counts := store.DumpCounts{}
	var end *End
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		var rec record
		err := jd.Decode(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			return sum, fmt.Errorf("backup: damaged archive: %w", err)
		}
		if end != nil {
			return sum, errors.New("backup: damaged archive: records after the end")
		}
		if n == 0 && rec.Manifest == nil {
			return sum, errors.New("backup: not an sshca backup (no manifest)")
		}
		switch {
		case rec.Manifest != nil:
			m := *rec.Manifest
			if n != 0 {
				return sum, errors.New("backup: damaged archive: a second manifest")
			}
			if m.Format != Format {
				return sum, fmt.Errorf("backup: not an sshca backup (format %q)", m.Format)
			}
			if m.Version != Version {
				return sum, fmt.Errorf("backup: archive version %d; this sshca reads version %d", m.Version, Version)
			}
			sum.Manifest = m
			if h.Manifest != nil {
				if err := h.Manifest(m); err != nil {
					return sum, err
				}
			}
		case rec.File != nil:
			if !ValidPath(rec.File.Path) {
				return sum, fmt.Errorf("backup: the archive holds a file %q outside what a home holds", rec.File.Path)
			}
			sum.Files = append(sum.Files, rec.File.Path)
			if h.File != nil {
				if err := h.File(*rec.File); err != nil {
					return sum, err
				}
			}
		case rec.Dump != nil:
			if rec.Dump.Columns != nil {
				if _, ok := counts[rec.Dump.Table]; !ok {
					counts[rec.Dump.Table] = 0
				}
			} else {
				counts[rec.Dump.Table]++
			}
			if h.Dump != nil {
				if err := h.Dump(*rec.Dump); err != nil {
					return sum, err
				}
			}
		case rec.End != nil:
			end = rec.End
		default:
			return sum, errors.New("backup: damaged archive: an empty record")
		}
	}
	if end == nil {
		return sum, errors.New("backup: the archive is cut short (no end record)")
	}
	if strings.Join(end.Files, "\x00") != strings.Join(sum.Files, "\x00") {
		return sum, errors.New("backup: damaged archive: its files differ from its end record")
	}
	for table, n := range end.Counts {
		if counts[table] != n {
			return sum, fmt.Errorf("backup: damaged archive: %d rows of %s, its end record says %d", counts[table], table, n)
		}
	}
	sum.Counts = end.Counts
	return sum, nil
}
