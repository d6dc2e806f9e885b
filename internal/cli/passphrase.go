package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/sshca/sshca/internal/signer"
)

// maxPassphraseFile bounds what is read of a passphrase file: only its first
// line is used.
const maxPassphraseFile = 64 << 10

// readPassphraseFile reads the passphrase of CA keys from a file: its first
// line, without the newline. Like ssh with a private key, it refuses a file
// that group or others may read or write, and anything but a regular file
// (a pipe or a device could be anyone's); the error names the file and its
// mode, never its content.
func readPassphraseFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // of the file opened, not of whatever the path names later
	if err != nil {
		return nil, fmt.Errorf("passphrase file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, withHint(fmt.Errorf("passphrase file %s is not a regular file (%s)", path, fileKind(fi.Mode())),
			"keep the passphrase in a regular file only its owner can read (chmod 600)")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, withHint(fmt.Errorf("passphrase file %s has mode %04o; it must not be readable or writable by group or others", path, perm),
			"chmod 600 "+path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPassphraseFile))
	if err != nil {
		return nil, fmt.Errorf("passphrase file %s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return nil, fmt.Errorf("passphrase file %s is empty", path)
	}
	return []byte(line), nil
}

// readNewPassphraseFile reads a passphrase that will encrypt new CA keys
// (init, ca rotate): readPassphraseFile, and at least
// signer.MinPassphraseLen characters. rotating says the home's existing
// keys use it too, so the hint says how to give them a longer one.
func readNewPassphraseFile(path string, rotating bool) ([]byte, error) {
	pass, err := readPassphraseFile(path)
	if err != nil {
		return nil, err
	}
	if err := signer.CheckNewPassphrase(pass); err != nil {
		msg := fmt.Errorf("the passphrase in %s is shorter than %d characters", path, signer.MinPassphraseLen)
		if rotating {
			return nil, withHint(msg, "new CA keys need a longer passphrase, and all of a home's keys share one: first re-encrypt each key file in keys/ with `ssh-keygen -p -f FILE`, then update the passphrase file")
		}
		return nil, withHint(msg, "use a longer passphrase, e.g. `openssl rand -base64 18` (and keep the file mode 0600)")
	}
	return pass, nil
}

// warnShortPassphrase warns when encrypted CA keys are opened with a
// passphrase shorter than new keys may have: old homes keep working, but
// the operator should re-encrypt. It says nothing of the passphrase itself.
func (e *env) warnShortPassphrase(pass []byte) {
	if len(pass) > 0 && signer.CheckNewPassphrase(pass) != nil {
		fmt.Fprintf(e.stderr, "sshca: warning: the CA key passphrase is shorter than %d characters; re-encrypt each key file in keys/ with a longer one (`ssh-keygen -p -f FILE`)\n", signer.MinPassphraseLen)
	}
}

// notice prints what opening the home changed (a mode tightened) as a
// warning line: not an error, but the operator should know.
func (e *env) notice(msg string) {
	fmt.Fprintf(e.stderr, "sshca: warning: %s\n", msg)
}

// fileKind names what a file that is not regular is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
}
