package opensshtest

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The source release that Latest builds; see testdata/README.md.
const (
	Version       = "10.5p1"
	TarballName   = "openssh-10.5p1.tar.gz"
	TarballSHA256 = "71e7bba7e6c5d0b8d0b03d59362917bdaacd9f128d4519e4a833e2b222503a7c"
)

// doneMarker is written last into a finished installation.
const doneMarker = ".sshca-build-done"

// TarballPath returns the path of the source tarball beside this file.
func TarballPath() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("cannot locate the opensshtest package's source directory")
	}
	return filepath.Join(filepath.Dir(file), "testdata", TarballName), nil
}

// CacheRoot returns the directory that holds builds: $SSHCA_TEST_CACHE, or
// sshca-test in the user's cache directory ($XDG_CACHE_HOME, else
// ~/.cache).
func CacheRoot() (string, error) {
	if d := os.Getenv("SSHCA_TEST_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "sshca-test"), nil
}

// Build builds and installs the tarball's OpenSSH unless a finished build
// of the very same tarball is in the cache, and returns the installation
// prefix (DIR/sbin/sshd, DIR/bin/ssh, ...). The prefix is named after the
// tarball's sha256, so a changed tarball is built afresh. A file lock makes
// concurrent test binaries (go test runs packages in parallel) wait for one
// build instead of each starting their own. logf reports progress.
func Build(logf func(format string, args ...any)) (string, error) {
	tarball, err := TarballPath()
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(tarball)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != TarballSHA256 {
		return "", fmt.Errorf("%s has sha256 %s, want %s: check where it came from, then update TarballSHA256 (testdata/README.md)", tarball, got, TarballSHA256)
	}
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	name := "openssh-" + Version + "-" + TarballSHA256[:16]
	prefix := filepath.Join(root, name)
	if finished(prefix) {
		return prefix, nil
	}
	unlock, err := lockFile(filepath.Join(root, name+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if finished(prefix) { // built by another process while we waited
		return prefix, nil
	}
	start := time.Now()
	logf("opensshtest: building OpenSSH %s into %s (once per machine; log in %s.log)", Version, prefix, prefix)
	if err := build(data, root, prefix); err != nil {
		return "", err
	}
	logf("opensshtest: built OpenSSH %s in %v", Version, time.Since(start).Round(time.Second))
	return prefix, nil
}

func finished(prefix string) bool {
	_, err := os.Stat(filepath.Join(prefix, doneMarker))
	return err == nil
}

// build configures, compiles and installs into a staging directory, then
// renames the installation to prefix, so that prefix exists only complete.
// OpenSSH compiles its prefix in (sshd runs PREFIX/libexec/sshd-session),
// hence DESTDIR rather than building elsewhere.
func build(tarball []byte, root, prefix string) error {
	for _, tool := range []string{"cc", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: install build-essential libssl-dev zlib1g-dev (scripts/setup.sh does)", tool)
		}
	}
	work, err := os.MkdirTemp(root, ".build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := os.RemoveAll(prefix); err != nil { // an unfinished earlier attempt
		return err
	}
	if err := extract(tarball, work); err != nil {
		return fmt.Errorf("extract %s: %w", TarballName, err)
	}
	src := filepath.Join(work, "openssh-"+Version)
	stage := filepath.Join(work, "stage")
	logPath := prefix + ".log"
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	run := func(args ...string) error {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		fmt.Fprintf(logFile, "\n$ %s\n", strings.Join(args, " "))
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v; last lines of %s:\n%s", strings.Join(args, " "), err, logPath, tail(logPath, 25))
		}
		return nil
	}
	steps := [][]string{
		{"./configure", "--prefix=" + prefix, "--without-pam",
			"--with-privsep-path=" + filepath.Join(prefix, "empty"), "--with-privsep-user=sshd"},
		{"make", "-j" + strconv.Itoa(runtime.NumCPU())},
		// install-nokeys: host keys are the tests' business.
		{"make", "install-nokeys", "DESTDIR=" + stage},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return err
		}
	}
	staged := filepath.Join(stage, prefix)
	// sshd refuses a privilege separation directory that is missing or
	// writable by others.
	if err := os.MkdirAll(filepath.Join(staged, "empty"), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(staged, "empty"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(staged, doneMarker), []byte(TarballSHA256+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(staged, prefix)
}

// extract unpacks a .tar.gz into dir, refusing entries that would land
// outside it.
func extract(data []byte, dir string) error {
	zr, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q leaves the directory", h.Name)
		}
		path := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			// Keep the times: configure refuses to run when configure.ac
			// looks newer than configure.
			if err := os.Chtimes(path, h.ModTime, h.ModTime); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(h.Linkname) {
				return fmt.Errorf("entry %q links outside the directory", h.Name)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, path); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
		default:
			return fmt.Errorf("entry %q has unsupported type %q", h.Name, h.Typeflag)
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
