package opensshtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlavours(t *testing.T) {
	all := All(t)
	if len(all) != 2 {
		t.Fatalf("All returned %d flavours", len(all))
	}
	sys, latest := all[0], all[1]
	if sys.Built || !latest.Built {
		t.Errorf("Built: system %v, latest %v", sys.Built, latest.Built)
	}
	if latest.Version != Version || latest.Name != "openssh-"+Version || !strings.HasPrefix(latest.Release, "OpenSSH_"+Version) {
		t.Errorf("latest = %+v", latest)
	}
	if !latest.AtLeast(10, 3) || latest.AtLeast(10, 6) || latest.SSHDVersion() != "10.5" {
		t.Errorf("latest version checks: %+v", latest)
	}
	if sys.Major == 0 || sys.Name != "openssh-"+sys.Version {
		t.Errorf("system = %+v", sys)
	}
	for _, f := range all {
		for _, p := range []string{f.SSHD, f.SSH, f.Keygen, f.Agent, f.Add, f.Keyscan} {
			if fi, err := os.Stat(p); err != nil || fi.Mode()&0o111 == 0 {
				t.Errorf("%s: %s is not an executable: %v", f, p, err)
			}
		}
	}
	if latest.Built {
		// sshd runs its session and auth programs from the prefix it was
		// configured with, so the installation must not have moved.
		prefix := filepath.Dir(filepath.Dir(latest.SSHD))
		if _, err := os.Stat(filepath.Join(prefix, "libexec", "sshd-session")); err != nil {
			t.Errorf("sshd-session missing: %v", err)
		}
		if fi, err := os.Stat(filepath.Join(prefix, "empty")); err != nil || fi.Mode().Perm()&0o022 != 0 {
			t.Errorf("privilege separation directory: %v %v", fi, err)
		}
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	for _, tt := range []struct {
		name string
		hdr  tar.Header
		ok   bool
	}{
		{"ok/file", tar.Header{Name: "a/b.txt", Typeflag: tar.TypeReg, Mode: 0o755}, true},
		{"ok/relative-link", tar.Header{Name: "a/l", Typeflag: tar.TypeSymlink, Linkname: "b.txt"}, true},
		{"fail/dotdot", tar.Header{Name: "../x", Typeflag: tar.TypeReg, Mode: 0o644}, false},
		{"fail/absolute", tar.Header{Name: "/tmp/x", Typeflag: tar.TypeReg, Mode: 0o644}, false},
		{"fail/absolute-link", tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, false},
		{"fail/device", tar.Header{Name: "dev", Typeflag: tar.TypeChar}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			tw := tar.NewWriter(zw)
			if err := tw.WriteHeader(&tt.hdr); err != nil {
				t.Fatal(err)
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			err := extract(buf.Bytes(), t.TempDir())
			if (err == nil) != tt.ok {
				t.Errorf("extract: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
