// Package buildinfo says which sshca this is: the release version (set at
// link time), the VCS revision and the Go version the binary was built with.
// The CLI prints it, the service exports it in /metrics and the client sends
// it in its User-Agent.
package buildinfo

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"sync"
)

// Version is the release version, set by the release build:
//
//	go build -ldflags "-X github.com/sshca/sshca/internal/buildinfo.Version=1.2.0" ./cmd/sshca
var Version = "devel"

// Info is what a binary knows about its build.
type Info struct {
	Version   string // release version, or "devel"
	Revision  string // VCS commit, "unknown" when built outside a checkout
	Modified  bool   // the working tree had uncommitted changes
	Time      string // commit time (RFC 3339), when known
	GoVersion string
}

// pseudoVersion matches the versions Go makes up for untagged commits
// (v0.0.0-20261203101651-3aa16dd6285e, +dirty): those stay "devel", the
// revision says which commit.
var pseudoVersion = regexp.MustCompile(`\d{14}-[0-9a-f]{12}(\+dirty)?$`)

var (
	once   sync.Once
	cached Info
)

// Get returns the build information of the running binary.
func Get() Info {
	once.Do(func() {
		cached = Info{Version: Version, Revision: "unknown", GoVersion: runtime.Version()}
		if bi, ok := debug.ReadBuildInfo(); ok {
			cached = fromBuildInfo(Version, bi)
		}
	})
	return cached
}

func fromBuildInfo(version string, bi *debug.BuildInfo) Info {
	in := Info{Version: version, Revision: "unknown", GoVersion: bi.GoVersion}
	if in.GoVersion == "" {
		in.GoVersion = runtime.Version()
	}
	if (in.Version == "" || in.Version == "devel") && bi.Main.Version != "" && bi.Main.Version != "(devel)" && !pseudoVersion.MatchString(bi.Main.Version) {
		in.Version = bi.Main.Version // go install module@version
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		case "vcs.time":
			in.Time = s.Value
		}
	}
	return in
}

// ShortRevision is the revision's first 12 characters, with "-dirty" when
// the tree was modified.
func (i Info) ShortRevision() string {
	r := i.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if i.Modified {
		r += "-dirty"
	}
	return r
}

// UserAgent is the User-Agent the client sends: sshca/VERSION (REVISION).
func (i Info) UserAgent() string {
	return "sshca/" + i.Version + " (" + i.ShortRevision() + ")"
}
