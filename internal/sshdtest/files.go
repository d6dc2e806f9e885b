package sshdtest

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// keygen makes a key pair with the ssh-keygen program at path (private)
// and path.pub and returns the public key.
func keygen(t testing.TB, program, path string, typeArgs []string, comment string) ssh.PublicKey {
	t.Helper()
	args := append([]string{"-q", "-N", "", "-C", comment, "-f", path}, typeArgs...)
	if out, err := exec.Command(program, args...).CombinedOutput(); err != nil {
		t.Fatalf("sshdtest: ssh-keygen %s: %v: %s", strings.Join(args, " "), err, out)
	}
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatalf("sshdtest: %s: %v", path+".pub", err)
	}
	return pub
}

func writeFile(t testing.TB, path, body string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), perm); err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}

// writeFileAtomic replaces path so that sshd, which may read it at any
// moment, sees either the old or the new content.
func writeFileAtomic(t testing.TB, path, body string) {
	t.Helper()
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	_, err = f.WriteString(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		t.Fatalf("sshdtest: %v", err)
	}
}

// readFile returns the file's content, or "" if it cannot be read; it is
// used for logs, which may not exist yet.
func readFile(path string) string {
	return readFrom(path, 0)
}

func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(f)
	return b.String()
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
