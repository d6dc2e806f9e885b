//go:build !linux

package atomicfile

import (
	"io"
	"os"
)

// ReadSmall reads at most limit bytes of the file at path.
func ReadSmall(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(limit)))
}
