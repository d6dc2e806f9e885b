package main

// Building the step-ca binary that the stepca suite measures: once per
// machine, from the Go module proxy, into the user's cache directory.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// The release the stepca suite compares against, and its main package.
const (
	stepcaModule  = "github.com/smallstep/certificates"
	stepcaVersion = "v0.30.2"
	stepcaPackage = stepcaModule + "/cmd/step-ca"
	// stepcaBuildTimeout bounds a cold build (downloading the module graph
	// and compiling about 700 packages on two busy cores).
	stepcaBuildTimeout = 20 * time.Minute
)

// stepcaCacheDir is where the binary is kept: $SSHCA_BENCH_CACHE, or
// sshca-bench in the user's cache directory (~/.cache). The directory's
// name is the cache key: the release and the platform. Whatever is there is
// used only if `go version -m` says it is that release's step-ca.
func stepcaCacheDir() (string, error) {
	root := os.Getenv("SSHCA_BENCH_CACHE")
	if root == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		root = filepath.Join(d, "sshca-bench")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, fmt.Sprintf("step-ca-%s-%s-%s", stepcaVersion, runtime.GOOS, runtime.GOARCH)), nil
}

// stepcaBuildInfo is what `go version -m` reports about a cached binary.
type stepcaBuildInfo struct {
	Path      string        // the binary
	GoVersion string        // the toolchain that built it
	Source    string        // where it came from, for the report
	BuildTime time.Duration // of this call's build (0: it was in the cache)
}

// stepcaBinary returns the cached step-ca of stepcaVersion, building it
// first (CGO_ENABLED=0 go install PACKAGE@VERSION with GOBIN in a staging
// directory, renamed into place when it is complete) if the cache holds
// none. A file lock makes concurrent test binaries wait for one build.
func stepcaBinary(ctx context.Context, logf func(string, ...any)) (*stepcaBuildInfo, error) {
	dir, err := stepcaCacheDir()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "step-ca")
	if info, err := stepcaCheckBinary(ctx, bin); err == nil {
		info.Source = "taken from the cache " + dir
		return info, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	unlock, err := stepcaLock(dir + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if info, err := stepcaCheckBinary(ctx, bin); err == nil { // built meanwhile by another process
		info.Source = "taken from the cache " + dir
		return info, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("building step-ca needs the go command: %w", err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(dir), ".step-ca-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)
	logf("stepca: building %s@%s into %s (once per machine; a cold build takes minutes)", stepcaPackage, stepcaVersion, dir)
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, stepcaBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(bctx, goBin, "install", stepcaPackage+"@"+stepcaVersion)
	// Outside any module, so that this repository's go.mod plays no part.
	cmd.Dir = stage
	cmd.Env = append(stepcaBuildEnv(os.Environ()), "CGO_ENABLED=0", "GOBIN="+stage, "GOWORK=off", "GOFLAGS=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("CGO_ENABLED=0 go install %s@%s: %w\n%s", stepcaPackage, stepcaVersion, err, stepcaTail(out.String(), 30))
	}
	took := time.Since(start)
	if _, err := stepcaCheckBinary(ctx, filepath.Join(stage, "step-ca")); err != nil {
		return nil, fmt.Errorf("the binary go install built: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil { // a stale or foreign one
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Join(stage, "step-ca"), bin); err != nil {
		return nil, err
	}
	logf("stepca: built step-ca %s in %v", stepcaVersion, took.Round(time.Second))
	info, err := stepcaCheckBinary(ctx, bin)
	if err != nil {
		return nil, err
	}
	info.BuildTime = took
	info.Source = fmt.Sprintf("built by this run in %v into the cache %s", took.Round(time.Second), dir)
	return info, nil
}

// stepcaBuildEnv drops the variables the build sets itself.
func stepcaBuildEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "CGO_ENABLED", "GOBIN", "GOWORK", "GOFLAGS":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// stepcaCheckBinary asks `go version -m` whether bin is the main package
// of the pinned release (built from the module proxy, not a replacement).
func stepcaCheckBinary(ctx context.Context, bin string) (*stepcaBuildInfo, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, "go", "version", "-m", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("go version -m %s: %w", bin, err)
	}
	return stepcaParseVersionM(bin, string(out))
}

// stepcaParseVersionM checks the output of `go version -m BIN`:
//
//	BIN: go1.26.8
//		path	github.com/smallstep/certificates/cmd/step-ca
//		mod	github.com/smallstep/certificates	v0.30.2	h1:...
//		build	CGO_ENABLED=0
func stepcaParseVersionM(bin, out string) (*stepcaBuildInfo, error) {
	info := &stepcaBuildInfo{Path: bin}
	var path, mod, cgo bool
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if i == 0 {
			if len(f) > 0 {
				info.GoVersion = f[len(f)-1]
			}
			continue
		}
		switch {
		case len(f) == 2 && f[0] == "path":
			path = f[1] == stepcaPackage
		case len(f) >= 3 && f[0] == "mod":
			mod = f[1] == stepcaModule && f[2] == stepcaVersion
		case len(f) == 2 && f[0] == "build" && f[1] == "CGO_ENABLED=0":
			cgo = true
		case len(f) >= 1 && f[0] == "=>":
			return nil, fmt.Errorf("%s: built with a replaced module (%s)", bin, strings.TrimSpace(line))
		}
	}
	switch {
	case !path:
		return nil, fmt.Errorf("%s is not %s", bin, stepcaPackage)
	case !mod:
		return nil, fmt.Errorf("%s is not built from %s %s", bin, stepcaModule, stepcaVersion)
	case !cgo:
		return nil, fmt.Errorf("%s was not built with CGO_ENABLED=0", bin)
	}
	return info, nil
}

// stepcaLock takes an exclusive lock on path, waiting for it; the kernel
// releases it if the process dies.
func stepcaLock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// stepcaTail returns the last n lines of s.
func stepcaTail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
