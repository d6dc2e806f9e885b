package e2etest

import (
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recorder captures how a test would end instead of ending it.
type recorder struct {
	testing.TB
	ended string
}

func (r *recorder) Helper()               {}
func (r *recorder) Skipf(string, ...any)  { r.ended = "skip"; runtime.Goexit() }
func (r *recorder) Fatalf(string, ...any) { r.ended = "fatal"; runtime.Goexit() }

// end runs f with a recorder and says how it ended ("" when it returned).
func end(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.ended
}

func TestRequireTool(t *testing.T) {
	for _, tc := range []struct {
		name, tool, ci, want string
	}{
		{name: "ok/present", tool: "sh", ci: "true", want: ""},
		{name: "ok/missing-skips", tool: "sshca-no-such-tool", ci: "", want: "skip"},
		{name: "fail/missing-under-ci", tool: "sshca-no-such-tool", ci: "true", want: "fatal"},
		{name: "fail/missing-path-under-ci", tool: "/nonexistent/ssh-keygen", ci: "true", want: "fatal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			if got := end(t, func(tb testing.TB) { RequireTool(tb, tc.tool) }); got != tc.want {
				t.Errorf("RequireTool(%q) with CI=%q ended %q, want %q", tc.tool, tc.ci, got, tc.want)
			}
		})
	}
}

func TestLines(t *testing.T) {
	got := Lines("a b\n\n  \nc\n")
	if diff := cmp.Diff([]string{"a b", "c"}, got); diff != "" {
		t.Errorf("Lines (-want +got):\n%s", diff)
	}
}

func TestChildEnv(t *testing.T) {
	t.Setenv("SSHCA_HOME", "/elsewhere")
	t.Setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
	t.Setenv("E2ETEST_KEPT", "yes")
	env := ChildEnv("/home/test", "tester")
	for k, want := range map[string]string{"HOME": "/home/test", "USER": "tester", "E2ETEST_KEPT": "yes", "SSHCA_HOME": "", "SSH_AUTH_SOCK": ""} {
		if env[k] != want {
			t.Errorf("ChildEnv: %s=%q, want %q", k, env[k], want)
		}
	}
}

func TestHomeWith(t *testing.T) {
	h := &Home{T: t, Dir: "/ca", Env: map[string]string{"USER": "e2e"}}
	w := h.With(map[string]string{"SSH_AUTH_SOCK": "/s"})
	if diff := cmp.Diff(map[string]string{"USER": "e2e", "SSH_AUTH_SOCK": "/s"}, w.Env); diff != "" {
		t.Errorf("With: env (-want +got):\n%s", diff)
	}
	if _, ok := h.Env["SSH_AUTH_SOCK"]; ok || w.Dir != h.Dir {
		t.Errorf("With changed the original home or lost its directory: %+v / %+v", h, w)
	}
	if got := (&Home{Dir: "/ca", DB: "postgres://x"}).args([]string{"list"}); !cmp.Equal(got, []string{"--database", "postgres://x", "--home", "/ca", "list"}) {
		t.Errorf("args with a database: %q", got)
	}
}
