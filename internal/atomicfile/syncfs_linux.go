package atomicfile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// openFilesystems opens one of dirs per distinct filesystem (by device).
func openFilesystems(dirs []string) ([]*os.File, error) {
	var out []*os.File
	devs := map[uint64]bool{}
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("open %s: %w", d, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			closeAll(out)
			return nil, fmt.Errorf("stat %s: %w", d, err)
		}
		if devs[st.Dev] {
			f.Close()
			continue
		}
		devs[st.Dev] = true
		out = append(out, f)
	}
	return out, nil
}

// syncFilesystems flushes every filesystem of fsys (one open directory each).
func syncFilesystems(fsys []*os.File) error {
	for _, f := range fsys {
		if err := unix.Syncfs(int(f.Fd())); err != nil {
			return fmt.Errorf("syncfs %s: %w", f.Name(), err)
		}
	}
	return nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// writeTemp writes f's content to a new temp file beside f.Path, with f's
// permissions, and returns its name (also on error, once created). The temp
// files are made durable together by syncfs, not one fsync each. It uses
// the system calls directly: os.OpenFile adds five more per file (poller
// registration of a regular file), which a batch of thousands notices.
func writeTemp(f File) (string, error) {
	prefix := filepath.Join(filepath.Dir(f.Path), "."+filepath.Base(f.Path)+".tmp-")
	var name string
	var fd int
	var err error
	for range 100 {
		name = prefix + strconv.FormatUint(rand.Uint64(), 36)
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err != unix.EEXIST && err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", f.Path, &os.PathError{Op: "open", Path: name, Err: err})
	}
	err = eintr(func() error { return unix.Fchmod(fd, uint32(f.Perm.Perm())) })
	for data := f.Data; err == nil && len(data) > 0; {
		var n int
		n, err = unix.Write(fd, data)
		switch {
		case err == unix.EINTR:
			err = nil
		case err == nil && n == 0:
			err = errors.New("short write")
		}
		data = data[n:]
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return name, fmt.Errorf("write %s: %w", f.Path, err)
	}
	return name, nil
}

func eintr(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
