package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) {
	// As a program (TestMainCommand): print the arguments and exit with the
	// status the first one names.
	AsMain(func(args []string) int {
		fmt.Println(strings.Join(args, " "))
		fmt.Println("CI=" + os.Getenv("CI"))
		if len(args) > 0 && args[0] == "exit-3" {
			return 3
		}
		return 0
	})
	os.Exit(m.Run())
}

// recorder is a testing.TB that records how a helper ended the test. Like
// the real ones, its Fatalf and Skipf end the goroutine.
type recorder struct {
	testing.TB
	ended, msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.ended, r.msg = "fatal", fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) {
	r.ended, r.msg = "skip", fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// ends runs f on a recorder in a goroutine of its own and returns how it
// ended the test ("" when it did not).
func ends(t *testing.T, f func(testing.TB)) (ended, msg string) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.ended, r.msg
}

// TestSkipOrFatal: a missing tool skips a test, except when CI is exactly
// "true", where it fails it; the environment is injected.
func TestSkipOrFatal(t *testing.T) {
	for _, tc := range []struct {
		name, ci, want string
	}{
		{"ok/unset-skips", "", "skip"},
		{"ok/false-skips", "false", "skip"},
		{"ok/one-skips", "1", "skip"},
		{"fail/true-fails", "true", "fatal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "CI" {
					return tc.ci
				}
				return ""
			}
			ended, msg := ends(t, func(tb testing.TB) { skipOrFatal(tb, getenv, "%s is missing", "x") })
			if ended != tc.want || msg != "x is missing" {
				t.Errorf("ended with %s %q, want %s %q", ended, msg, tc.want, "x is missing")
			}
		})
	}
}

// TestRequireTool: a present tool (by name or path) gives its path and lets
// the test go on; a missing one ends it as SkipOrFatal does.
func TestRequireTool(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("no sh: %v", err)
	}
	for _, name := range []string{"sh", sh} {
		var got string
		if ended, msg := ends(t, func(tb testing.TB) { got = RequireTool(tb, name) }); ended != "" {
			t.Errorf("RequireTool(%q) ended the test: %s %s", name, ended, msg)
		}
		if got != sh {
			t.Errorf("RequireTool(%q) = %q, want %q", name, got, sh)
		}
	}
	t.Setenv("CI", "")
	ended, msg := ends(t, func(tb testing.TB) { RequireTools(tb, "sh", "sshca-testkit-no-such-tool") })
	if ended != "skip" || !strings.Contains(msg, "sshca-testkit-no-such-tool is missing") {
		t.Errorf("missing tool, CI unset: %s %q, want a skip naming the tool", ended, msg)
	}
	t.Setenv("CI", "true")
	if ended, _ := ends(t, func(tb testing.TB) { RequireTool(tb, "/nonexistent/sshca-testkit") }); ended != "fatal" {
		t.Errorf("missing tool, CI=true: %s, want a failure", ended)
	}
}

// TestChildMissingTool is the child of TestMissingToolUnderCI: a test that
// requires a tool no machine has.
func TestChildMissingTool(t *testing.T) {
	if !IsChild(t) {
		t.Skip("child process only")
	}
	RequireTool(t, "sshca-testkit-no-such-tool")
	t.Log("went on without the tool")
}

// TestMissingToolUnderCI runs a real test that lacks a tool in a child
// process, as `go test` would: it is skipped and passes when CI is unset or
// not "true", and it fails, with the tool named, under CI=true.
func TestMissingToolUnderCI(t *testing.T) {
	for _, tc := range []struct {
		name, ci string
		fails    bool
	}{
		{"ok/local-skips", "", false},
		{"ok/ci-false-skips", "false", false},
		{"fail/ci-fails", "true", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := ChildTest(t, "TestChildMissingTool", "CI="+tc.ci)
			cmd.Args = append(cmd.Args, "-test.v")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			text := out.String()
			if !strings.Contains(text, "=== RUN   TestChildMissingTool") || strings.Contains(text, "TestMissingToolUnderCI") {
				t.Fatalf("the child did not run exactly the child test:\n%s", text)
			}
			if strings.Contains(text, "went on without the tool") {
				t.Errorf("the child test went on without the tool:\n%s", text)
			}
			if !strings.Contains(text, "sshca-testkit-no-such-tool is missing") {
				t.Errorf("the child's output does not name the missing tool:\n%s", text)
			}
			wantMark := "--- SKIP: TestChildMissingTool"
			if tc.fails {
				wantMark = "--- FAIL: TestChildMissingTool"
			}
			if (err != nil) != tc.fails || !strings.Contains(text, wantMark) {
				t.Errorf("CI=%q: exit error %v, want failure %v and %q:\n%s", tc.ci, err, tc.fails, wantMark, text)
			}
		})
	}
}

// TestMainCommand runs this test binary as the program of its TestMain:
// the arguments arrive, the exit status comes back, and the environment is
// exactly the one given (the test's CI does not leak in).
func TestMainCommand(t *testing.T) {
	t.Setenv("CI", "leaked")
	out, err := MainCommand(t, nil, "hello", "world").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "hello world\nCI=\n" {
		t.Errorf("output %q, want %q", out, "hello world\nCI=\n")
	}
	out, err = MainCommand(t, []string{"CI=given"}, "exit-3").Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit-3: %v, want exit status 3", err)
	}
	if string(out) != "exit-3\nCI=given\n" {
		t.Errorf("output %q, want %q", out, "exit-3\nCI=given\n")
	}
}

// TestNewSigner: fresh, distinct Ed25519 keys whose authorized_keys line
// parses back to the same key.
func TestNewSigner(t *testing.T) {
	a, b := NewSigner(t), NewSigner(t)
	if a.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type %s", a.PublicKey().Type())
	}
	line := AuthorizedKey(a.PublicKey())
	if strings.ContainsAny(line, "\n") || !strings.HasPrefix(line, "ssh-ed25519 ") {
		t.Errorf("authorized key line %q", line)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub.Marshal(), a.PublicKey().Marshal()) || bytes.Equal(a.PublicKey().Marshal(), b.PublicKey().Marshal()) {
		t.Error("keys not fresh or not round-tripping")
	}
}

// TestClock: the zero Clock follows the real time; Advance moves it by
// exactly the offset, forward and back.
func TestClock(t *testing.T) {
	var c Clock
	before := time.Now()
	if got := c.Now(); got.Before(before) || got.After(time.Now()) {
		t.Fatalf("zero clock %v is not the real time (%v)", got, before)
	}
	c.Advance(time.Hour)
	c.Advance(-10 * time.Minute)
	start := time.Now()
	got := c.Now()
	end := time.Now()
	if got.Before(start.Add(50*time.Minute)) || got.After(end.Add(50*time.Minute)) {
		t.Errorf("after +1h -10m: %v, want 50m after %v", got, start)
	}
}

// TestWriteFile: parents are created, the content is written, and the mode
// is exactly the one asked for, even bits a umask would clear.
func TestWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "pass")
	if got := WriteFile(t, path, []byte("secret\n"), 0o666); got != path {
		t.Errorf("returned %q, want %q", got, path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o666 {
		t.Errorf("mode %v, want 0666", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != "secret\n" {
		t.Errorf("content %q", b)
	}
	WriteFile(t, path, []byte("x"), 0o600)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("rewritten mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestNotInTheBinary: no product binary links the test kit (or any
// package of it), so nothing test-only reaches an installation.
func TestNotInTheBinary(t *testing.T) {
	goBin := RequireTool(t, "go")
	for _, pkg := range []string{"github.com/sshca/sshca/cmd/sshca"} {
		out, err := exec.Command(goBin, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %q", pkg, deps)
		}
		for _, dep := range deps {
			if strings.HasPrefix(dep, "github.com/sshca/sshca/internal/testkit") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
