package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.modified", Value: "true"},
		{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
	}}
	in := fromBuildInfo("devel", bi)
	if in.Version != "devel" || in.Revision != "0123456789abcdef0123" || !in.Modified || in.GoVersion != "go1.26.0" {
		t.Fatalf("got %+v", in)
	}
	if got, want := in.UserAgent(), "sshca/devel (0123456789ab-dirty)"; got != want {
		t.Errorf("UserAgent = %q, want %q", got, want)
	}
	if in := fromBuildInfo("1.2.0", bi); in.Version != "1.2.0" {
		t.Errorf("ldflags version lost: %+v", in)
	}
	bi.Main.Version = "v0.0.0-20261203101651-3aa16dd6285e+dirty"
	if in := fromBuildInfo("devel", bi); in.Version != "devel" {
		t.Errorf("pseudo-version used: %+v", in)
	}
	bi.Main.Version = "v1.3.0"
	if in := fromBuildInfo("devel", bi); in.Version != "v1.3.0" {
		t.Errorf("module version not used: %+v", in)
	}
	if in := fromBuildInfo("devel", &debug.BuildInfo{}); in.Revision != "unknown" || !strings.HasPrefix(in.GoVersion, "go") {
		t.Errorf("empty build info: %+v", in)
	}
}
