package testkit

import (
	"os"
	"os/exec"
	"testing"
)

// mainEnv, set to "1", makes a test binary whose TestMain calls AsMain act
// as the program given there.
const mainEnv = "SSHCA_TESTKIT_AS_MAIN"

// childEnv names the test that a child process started by ChildTest runs.
const childEnv = "SSHCA_TESTKIT_CHILD"

// AsMain makes the test binary act as a program when MainCommand started
// it: it runs main with the command's arguments and exits with its status.
// Otherwise it returns at once. Call it first in TestMain:
//
//	func TestMain(m *testing.M) {
//		testkit.AsMain(cli.Main)
//		os.Exit(m.Run())
//	}
func AsMain(main func(args []string) int) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(main(os.Args[1:]))
	}
}

// MainCommand returns a command that runs this test binary as the program
// its TestMain gives AsMain, with args, and with env as its whole
// environment: nothing of the test process's environment leaks in. A test
// uses it for a real process of its own (to kill it, or to see what it
// really writes) without building a binary.
func MainCommand(t testing.TB, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(self(t), args...)
	cmd.Env = append([]string{mainEnv + "=1"}, env...)
	return cmd
}

// ChildTest returns a command that runs the test name (a top-level test
// of this test binary) alone in a child process, with the test process's
// environment plus env. That test calls IsChild to tell whether it runs as
// the child, and skips otherwise.
func ChildTest(t testing.TB, name string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(self(t), "-test.run=^"+name+"$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), childEnv+"="+name), env...)
	return cmd
}

// IsChild reports whether this process is the child that ChildTest started
// to run the test t.
func IsChild(t testing.TB) bool {
	return os.Getenv(childEnv) == t.Name()
}

// self returns the path of the running test binary, or fails the test.
func self(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("testkit: the test binary: %v", err)
	}
	return exe
}
