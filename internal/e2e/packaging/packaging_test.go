// Package packaging tests the release (issue 16): scripts/release.sh builds
// a static binary (CGO_ENABLED=0: no program interpreter, no dynamic
// section) and a Debian package, which is installed with dpkg -i and whose
// units' commands are run as the unit runs them: sshca-serve's ExecStart as
// the sshca user on the CA home /var/lib/sshca, answering /healthz. The
// package test changes the machine (a package, a system user), so it runs
// only as root; under CI=true not being root is a failure. It has no
// non-test code.
package packaging

import (
	"bufio"
	"context"
	"crypto/tls"
	"debug/elf"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/testkit"
)

const version = "0.16.0~test1"

var (
	releaseOnce sync.Once
	releaseDir  string
	releaseErr  error
	releaseOut  []byte
)

// release runs scripts/release.sh once for the host architecture into a
// temporary directory (shared by the tests of this package).
func release(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("releases are linux binaries")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		testkit.SkipOrFatal(t, "dpkg-deb missing (scripts/setup.sh installs dpkg-dev)")
	}
	releaseOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sshca-release-")
		if err != nil {
			releaseErr = err
			return
		}
		releaseDir = dir
		cmd := exec.Command("../../../scripts/release.sh", version)
		cmd.Env = append(os.Environ(), "ARCHES="+runtime.GOARCH, "DIST="+dir)
		releaseOut, releaseErr = cmd.CombinedOutput()
	})
	if releaseErr != nil {
		t.Fatalf("scripts/release.sh: %v\n%s", releaseErr, releaseOut)
	}
	return releaseDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if releaseDir != "" {
		os.RemoveAll(releaseDir)
	}
	os.Exit(code)
}

func TestStaticBinary(t *testing.T) {
	dist := release(t)
	bin := filepath.Join(dist, "sshca_"+version+"_linux_"+runtime.GOARCH)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %v program header: not static", bin, p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Errorf("%s has a .dynamic section", bin)
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", bin, libs)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "sshca "+version+"\n") {
		t.Errorf("%s --version = %q, %v; want sshca %s", bin, out, err, version)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{filepath.Base(bin), "sshca_" + version + "_" + runtime.GOARCH + ".deb"} {
		if !strings.Contains(string(sums), "  "+name+"\n") {
			t.Errorf("SHA256SUMS lacks %s:\n%s", name, sums)
		}
	}
	check := exec.Command("sha256sum", "--check", "SHA256SUMS")
	check.Dir = dist
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum --check: %v\n%s", err, out)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

const home = "/var/lib/sshca"

func TestDebianPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		testkit.SkipOrFatal(t, "installing a .deb needs root (CI runs this test as root)")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		testkit.SkipOrFatal(t, "not a Debian system: %v", err)
	}
	if exec.Command("dpkg", "-s", "sshca").Run() == nil {
		t.Skip("an sshca package is installed on this machine; not touching it")
	}
	_, homeErr := os.Stat(home)
	userExisted := exec.Command("getent", "passwd", "sshca").Run() == nil
	dist := release(t)
	deb := filepath.Join(dist, "sshca_"+version+"_"+runtime.GOARCH+".deb")
	t.Cleanup(func() {
		exec.Command("dpkg", "--purge", "sshca").Run()
		if os.IsNotExist(homeErr) {
			os.RemoveAll(home)
		}
		if !userExisted {
			exec.Command("userdel", "sshca").Run()
			exec.Command("groupdel", "sshca").Run()
		}
	})

	run(t, "dpkg", "-i", deb)

	if out := run(t, "/usr/bin/sshca", "--version"); !strings.HasPrefix(out, "sshca "+version+"\n") {
		t.Errorf("sshca --version = %q", out)
	}
	fi, err := os.Stat(home)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 || !fi.IsDir() {
		t.Errorf("%s mode %v, want drwx------", home, fi.Mode())
	}
	uid, gid := lookupID(t, "passwd"), lookupID(t, "group")
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s owned by %d:%d, want sshca %d:%d", home, st.Uid, st.Gid, uid, gid)
	}
	for _, f := range []string{
		"/usr/share/man/man1/sshca.1.gz",
		"/usr/share/man/man1/sshca-sign-user.1.gz",
		"/usr/share/bash-completion/completions/sshca",
		"/usr/share/zsh/vendor-completions/_sshca",
		"/usr/share/fish/vendor_completions.d/sshca.fish",
		"/lib/systemd/system/sshca-serve.service",
		"/lib/systemd/system/sshca-sync.service",
		"/lib/systemd/system/sshca-sync.timer",
	} {
		if _, err := os.Stat(f); err != nil && !dpkgExcludes(f) {
			t.Error(err)
		}
	}
	if testkit.RequireTool(t, "man") != "" && !dpkgExcludes("/usr/share/man/man1/sshca.1.gz") {
		if out, err := exec.Command("man", "-w", "sshca").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "/usr/share/man/man1/sshca.1.gz" {
			t.Errorf("man -w sshca: %q, %v", out, err)
		}
	}
	units := []string{"/lib/systemd/system/sshca-serve.service", "/lib/systemd/system/sshca-sync.service", "/lib/systemd/system/sshca-sync.timer"}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...).CombinedOutput()
		if err != nil && strings.Contains(string(out), "sshca") {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		} else {
			t.Logf("systemd-analyze verify: %v %s", err, out)
		}
	}
	for _, u := range units[1:] {
		if b, _ := os.ReadFile(u); strings.Contains(string(b), "/usr/local/") {
			t.Errorf("%s still names /usr/local", u)
		}
	}

	// The service's unit, run as systemd runs it: its User, Environment and
	// ExecStart, on a CA home created by the sshca user.
	unit := readUnit(t, "/lib/systemd/system/sshca-serve.service")
	if unit["User"] != "sshca" || unit["Group"] != "sshca" {
		t.Errorf("sshca-serve.service runs as %q:%q", unit["User"], unit["Group"])
	}
	if unit["ReadWritePaths"] != home {
		t.Errorf("sshca-serve.service ReadWritePaths=%q, want %s", unit["ReadWritePaths"], home)
	}
	env := strings.Fields(unit["Environment"])
	if !slices.Contains(env, "SSHCA_HOME="+home) {
		t.Fatalf("sshca-serve.service Environment=%q lacks SSHCA_HOME=%s", unit["Environment"], home)
	}
	asUnit := func(ctx context.Context, args ...string) *exec.Cmd {
		a := append([]string{"-u", "sshca", "--", "env"}, env...)
		cmd := exec.CommandContext(ctx, "runuser", append(a, args...)...)
		cmd.Dir = "/"
		return cmd
	}
	if out, err := asUnit(context.Background(), "/usr/bin/sshca", "init").CombinedOutput(); err != nil {
		t.Fatalf("sshca init as the sshca user: %v\n%s", err, out)
	}
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := asUnit(ctx, append(strings.Fields(unit["ExecStart"]), "--listen", "127.0.0.1:"+strconv.Itoa(port))...)
	logPath := filepath.Join(t.TempDir(), "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	serve.Stdout, serve.Stderr = logFile, logFile
	serve.Cancel = func() error { return serve.Process.Signal(syscall.SIGTERM) }
	serve.WaitDelay = 10 * time.Second
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the service's self-signed certificate; only /healthz is read
	}}
	var healthy bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
		if err == nil {
			resp.Body.Close()
			healthy = resp.StatusCode == http.StatusOK
			break
		}
	}
	if !healthy {
		cancel()
		serve.Wait()
		log, _ := os.ReadFile(logPath)
		t.Fatalf("sshca-serve's ExecStart never answered /healthz:\n%s", log)
	}
	for _, f := range []string{"sshca.yaml", "sshca.db", "tls-cert.pem"} {
		fi, err := os.Stat(filepath.Join(home, f))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			t.Errorf("%s owned by uid %d, want sshca (%d)", f, st.Uid, uid)
		}
	}
	syncUnitCommand(t, asUnit, logPath, port, uid, gid)
	cancel()
	serve.Wait()

	// Remove, then purge: the binary and units go, the CA home stays.
	run(t, "dpkg", "-r", "sshca")
	for _, f := range []string{"/usr/bin/sshca", "/lib/systemd/system/sshca-serve.service", "/usr/share/man/man1/sshca.1.gz"} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("after dpkg -r, %s: %v", f, err)
		}
	}
	run(t, "dpkg", "--purge", "sshca")
	if _, err := os.Stat(filepath.Join(home, "keys")); err != nil {
		t.Errorf("purge removed the CA home: %v", err)
	}
	if out, _ := exec.Command("dpkg", "-L", "sshca").CombinedOutput(); !strings.Contains(string(out), "not installed") {
		t.Errorf("dpkg -L sshca after purge: %s", out)
	}
}

// syncUnitCommand runs sshca-sync.service's ExecStart as the unit runs it
// (as root, ${SSHCA_SERVER} and ${SSHCA_CA_FINGERPRINT} from its
// EnvironmentFile) against the running service, for a host whose key the CA
// signed, with --dir, --host-key and --reload-command pointed at a scratch
// directory instead of /etc/ssh.
func syncUnitCommand(t *testing.T, asUnit func(context.Context, ...string) *exec.Cmd, serveLog string, port, uid, gid int) {
	t.Helper()
	unit := readUnit(t, "/lib/systemd/system/sshca-sync.service")
	if unit["EnvironmentFile"] != "/etc/default/sshca-sync" {
		t.Errorf("sshca-sync.service EnvironmentFile=%q", unit["EnvironmentFile"])
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		if testkit.CI() {
			t.Fatalf("ssh-keygen is missing: %v", err)
		}
		t.Log("ssh-keygen missing: sshca-sync's command not run")
		return
	}
	log, _ := os.ReadFile(serveLog)
	_, fp, ok := strings.Cut(string(log), "TLS certificate fingerprint: ")
	if !ok {
		t.Fatalf("serve printed no TLS fingerprint:\n%s", log)
	}
	fp, _, _ = strings.Cut(fp, "\n")
	dir, err := os.MkdirTemp("", "sshca-sync-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if out, err := asUnit(context.Background(), "/usr/bin/sshca", "sign", "host", "--role", "servers", "--id", "pkg-test",
		"--principals", "pkg-test.corp", hostKey+".pub").CombinedOutput(); err != nil {
		t.Fatalf("sign host as the sshca user: %v\n%s", err, out)
	}
	vars := map[string]string{
		"SSHCA_SERVER":         fmt.Sprintf("https://127.0.0.1:%d", port),
		"SSHCA_CA_FINGERPRINT": strings.TrimSpace(fp),
	}
	replace := map[string]string{"--dir": filepath.Join(dir, "sshca"), "--host-key": hostKey, "--reload-command": "true"}
	args := splitExec(t, unit["ExecStart"])
	for i, a := range args {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "${"+k+"}", v)
		}
		if i > 0 {
			if v, ok := replace[args[i-1]]; ok {
				a = v
			}
		}
		args[i] = a
	}
	for k := range replace {
		if !slices.Contains(args, k) {
			t.Errorf("sshca-sync.service ExecStart lacks %s: %q", k, unit["ExecStart"])
		}
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("sshca-sync's ExecStart %q: %v\n%s", args, err, out)
	}
	for _, f := range []string{"sshca/trusted_user_ca_keys", "sshca/revoked.krl"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("after sshca-sync's command: %v\n%s", err, out)
		}
	}
}

// splitExec splits an ExecStart line into words, honouring double quotes
// (enough for the units sshca ships).
func splitExec(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quotes in %q", line)
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// readUnit returns a unit file's Key=Value settings (the last of each key).
func readUnit(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func lookupID(t *testing.T, db string) int {
	t.Helper()
	out := run(t, "getent", db, "sshca")
	fields := strings.Split(strings.TrimSpace(out), ":")
	if len(fields) < 3 {
		t.Fatalf("getent %s sshca: %q", db, out)
	}
	id, err := strconv.Atoi(fields[2])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// dpkgExcludes reports whether this machine's dpkg configuration drops
// path on install (minimal container images exclude /usr/share/man and
// /usr/share/doc with path-exclude lines).
func dpkgExcludes(path string) bool {
	files, _ := filepath.Glob("/etc/dpkg/dpkg.cfg.d/*")
	excluded := false
	for _, name := range append(files, "/etc/dpkg/dpkg.cfg") {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, pattern, _ := strings.Cut(strings.TrimSpace(line), "=")
			if k != "path-exclude" && k != "path-include" {
				continue
			}
			if ok, _ := filepath.Match(pattern, path); ok || (strings.HasSuffix(pattern, "/*") && strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))) {
				excluded = k == "path-exclude"
			}
		}
	}
	return excluded
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
