package e2etest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

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
