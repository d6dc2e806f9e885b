package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// ReadSmall reads at most limit bytes of the file at path. It is for
// batches of small files (keys): it uses the system calls directly, as
// os.Open registers a regular file with the poller (five more calls each).
func ReadSmall(path string, limit int) ([]byte, error) {
	var fd int
	err := eintr(func() error {
		var err error
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, min(limit, 4096))
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):min(cap(buf), limit)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}
