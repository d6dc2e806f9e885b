// Package opensshtest tells tests which OpenSSH releases sshca is proven
// against and where their programs are: the system's (Debian 12's OpenSSH
// 9.2, in /usr) and the newest upstream release, built from the source
// tarball in testdata once per machine and cached.
//
// Each release is a Flavour: the paths of its sshd, ssh, ssh-keygen,
// ssh-agent and ssh-add, and its version. Tests that use OpenSSH as an
// oracle (a real sshd, the ssh client, ssh-keygen -k/-Q) loop over All, so
// that server, client and ssh-keygen come from the same release.
//
// It is a test helper: it takes a testing.TB, skips the test when a
// release is not available, and fails it instead when the environment
// variable CI is "true", where a missing oracle must never pass silently.
// It imports no other sshca package and never touches the system's
// OpenSSH installation or configuration.
package opensshtest

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sshca/sshca/internal/testkit"
)

// Flavour is one OpenSSH release: its programs and its version.
type Flavour struct {
	// Name labels the release in test names and reports: "openssh-9.2p1".
	Name string
	// Version is the upstream version, "9.2p1" or "10.5p1".
	Version string
	// Release is what ssh -V prints before the OpenSSL version, e.g.
	// "OpenSSH_9.2p1 Debian-2+deb12u10".
	Release string
	// Major and Minor are the version numbers (10 and 5 for 10.5p1).
	Major, Minor int

	SSHD    string // sshd, an absolute path (sshd re-executes itself)
	SSH     string // the ssh client
	Keygen  string // ssh-keygen
	Agent   string // ssh-agent
	Add     string // ssh-add
	Keyscan string // ssh-keyscan

	// Built is true for a release built from source by this package.
	Built bool
}

// AtLeast reports whether the release is major.minor or newer.
func (f *Flavour) AtLeast(major, minor int) bool {
	return f.Major > major || f.Major == major && f.Minor >= minor
}

// String returns Name.
func (f *Flavour) String() string { return f.Name }

// SSHDVersion returns the version as `sshca explain --sshd-version` and
// `sshca sshd-config --sshd-version` take it: "9.2", "10.5".
func (f *Flavour) SSHDVersion() string { return fmt.Sprintf("%d.%d", f.Major, f.Minor) }

// Paths of the system's OpenSSH programs, as Debian installs them.
const (
	SystemSSHD    = "/usr/sbin/sshd"
	SystemSSH     = "/usr/bin/ssh"
	SystemKeygen  = "/usr/bin/ssh-keygen"
	SystemAgent   = "/usr/bin/ssh-agent"
	SystemAdd     = "/usr/bin/ssh-add"
	SystemKeyscan = "/usr/bin/ssh-keyscan"
)

var (
	systemOnce sync.Once
	systemFlav *Flavour
	systemErr  error

	latestOnce sync.Once
	latestFlav *Flavour
	latestErr  error
)

// System returns the system's OpenSSH (Debian 12: 9.2p1). It skips the
// test (fails it under CI=true) when sshd or ssh is not installed.
func System(t testing.TB) *Flavour {
	t.Helper()
	systemOnce.Do(func() { systemFlav, systemErr = loadSystem() })
	if systemErr != nil {
		testkit.SkipOrFatal(t, "opensshtest: system OpenSSH: %v (install openssh-server and openssh-client; scripts/setup.sh does)", systemErr)
	}
	return systemFlav
}

func loadSystem() (*Flavour, error) {
	f := &Flavour{SSHD: SystemSSHD, SSH: SystemSSH, Keygen: SystemKeygen, Agent: SystemAgent, Add: SystemAdd, Keyscan: SystemKeyscan}
	for _, p := range []string{f.SSHD, f.SSH, f.Keygen} {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}
	if err := f.readVersion(); err != nil {
		return nil, err
	}
	return f, nil
}

// Latest returns the newest upstream release (Version), building it from
// testdata on first use on this machine (see Build). It skips the test
// when the build is impossible here, and fails it under CI=true.
func Latest(t testing.TB) *Flavour {
	t.Helper()
	latestOnce.Do(func() {
		var dir string
		dir, latestErr = Build(t.Logf)
		if latestErr != nil {
			return
		}
		latestFlav, latestErr = installed(dir)
	})
	if latestErr != nil {
		testkit.SkipOrFatal(t, "opensshtest: OpenSSH %s: %v", Version, latestErr)
	}
	return latestFlav
}

// All returns every release the tests run against: the system's, then the
// newest. Under CI=true both must be available.
func All(t testing.TB) []*Flavour {
	t.Helper()
	return []*Flavour{System(t), Latest(t)}
}

// installed describes the release installed under prefix dir.
func installed(dir string) (*Flavour, error) {
	f := &Flavour{
		SSHD:    dir + "/sbin/sshd",
		SSH:     dir + "/bin/ssh",
		Keygen:  dir + "/bin/ssh-keygen",
		Agent:   dir + "/bin/ssh-agent",
		Add:     dir + "/bin/ssh-add",
		Keyscan: dir + "/bin/ssh-keyscan",
		Built:   true,
	}
	if err := f.readVersion(); err != nil {
		return nil, err
	}
	if f.Version != Version {
		return nil, fmt.Errorf("%s reports version %s, want %s", f.SSH, f.Version, Version)
	}
	return f, nil
}

var versionRE = regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)(p\d+)?`)

// readVersion fills the version fields from ssh -V.
func (f *Flavour) readVersion() error {
	out, err := exec.Command(f.SSH, "-V").CombinedOutput()
	text := strings.TrimSpace(string(out))
	m := versionRE.FindStringSubmatchIndex(text)
	if m == nil {
		return fmt.Errorf("%s -V: cannot read a version from %q (%v)", f.SSH, text, err)
	}
	f.Major, _ = strconv.Atoi(text[m[2]:m[3]])
	f.Minor, _ = strconv.Atoi(text[m[4]:m[5]])
	f.Version = text[m[2]:m[1]]
	rel, _, _ := strings.Cut(text[m[0]:], ",")
	f.Release = strings.TrimSpace(rel)
	f.Name = "openssh-" + f.Version
	return nil
}
