package cli

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/testkit"
)

// TestCommandTable: commands() lists every command constructor of the
// package exactly once, names are unique, and no command registers itself
// from init() any more.
func TestCommandTable(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	constructors := map[string]string{} // name -> file
	listed := map[string]int{}
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if fd.Recv == nil && (fd.Name.Name == "init" || fd.Name.Name == "register") {
				t.Errorf("%s: func %s: commands are listed in commands() in commands.go, not registered from init()", p, fd.Name.Name)
			}
			if fd.Recv == nil && fd.Type.Results != nil && len(fd.Type.Results.List) == 1 && strings.HasPrefix(fd.Name.Name, "new") {
				if star, ok := fd.Type.Results.List[0].Type.(*ast.StarExpr); ok {
					if id, ok := star.X.(*ast.Ident); ok && id.Name == "command" {
						constructors[fd.Name.Name] = p
					}
				}
			}
			if fd.Name.Name == "commands" && p == "commands.go" {
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					if call, ok := n.(*ast.CallExpr); ok {
						if id, ok := call.Fun.(*ast.Ident); ok {
							listed[id.Name]++
						}
					}
					return true
				})
			}
		}
	}
	if len(constructors) == 0 {
		t.Fatal("found no command constructors")
	}
	for name, file := range constructors {
		if listed[name] == 0 {
			t.Errorf("%s (%s) is not listed in commands()", name, file)
		}
	}
	seen := map[string]bool{}
	for _, c := range commands() {
		if seen[c.name] {
			t.Errorf("command %q listed twice", c.name)
		}
		seen[c.name] = true
		if c.summary == "" || c.run == nil {
			t.Errorf("command %q lacks a summary or a run function", c.name)
		}
	}
}

// TestFlagHelp: every flag's help names its argument with one word (a
// backquoted phrase in a usage string becomes the argument name, as in
// "-ca-fingerprint sshca serve"), and only commands that use the CA home
// offer --home and --database.
func TestFlagHelp(t *testing.T) {
	word := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.:-]*$`)
	for _, c := range commands() {
		for _, f := range commandFlags(c) {
			if f.arg != "" && !word.MatchString(f.arg) {
				t.Errorf("sshca %s --%s: argument name %q", c.name, f.name, f.arg)
			}
		}
		hasHome := newFlagSet(c).Lookup("home") != nil
		if hasHome == c.noHome {
			t.Errorf("sshca %s: --home offered %v, noHome %v", c.name, hasHome, c.noHome)
		}
	}
	for _, name := range []string{"login", "sync", "host enroll", "status", "ssh-config", "sshd-config", "inspect", "explain", "version"} {
		c, _ := findCommand(commands(), strings.Fields(name))
		if c == nil || !c.noHome {
			t.Errorf("sshca %s offers --home/--database, which it does not use", name)
		}
	}
}

func runInProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	return code, stdout.String(), stderr.String()
}

// TestCompletion: the scripts parse (bash -n; zsh and fish when
// installed) and offer every command, subcommand and flag of the table.
func TestCompletion(t *testing.T) {
	cs := commands()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			code, script, stderr := runInProcess(t, "completion", shell)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, c := range cs {
				for _, w := range strings.Fields(c.name) {
					if !strings.Contains(script, w) {
						t.Errorf("no %q (of %q)", w, c.name)
					}
				}
				for _, f := range commandFlags(c) {
					want := "--" + f.name
					if shell == "fish" {
						want = "-l " + f.name
					}
					if !strings.Contains(script, want) {
						t.Errorf("%s: no %s", c.name, want)
					}
				}
			}
			bin, err := exec.LookPath(shell)
			if err != nil {
				if shell == "bash" {
					t.Fatal("bash is required")
				}
				testkit.SkipOrFatal(t, "%s not installed (scripts/setup.sh installs it)", shell)
			}
			p := filepath.Join(t.TempDir(), "sshca."+shell)
			if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"-n", p}
			if shell == "fish" {
				args = []string{"--no-execute", p}
			}
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
	if code, _, _ := runInProcess(t, "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

// TestBashCompletionCompletes runs the bash function as bash would.
func TestBashCompletionCompletes(t *testing.T) {
	_, script, _ := runInProcess(t, "completion", "bash")
	p := filepath.Join(t.TempDir(), "sshca.bash")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string // words; the last one is completed
		want []string
		not  []string
	}{
		{"sshca ''", []string{"sign", "ca", "login", "version", "completion"}, nil},
		{"sshca ca ''", []string{"show", "rotate", "revoke-key"}, nil},
		{"sshca sign user --r", []string{"--role"}, nil},
		{"sshca --home /x sign host --", []string{"--role", "--home"}, nil},
		{"sshca login --", []string{"--ca-fingerprint", "--token-file"}, []string{"--home", "--database"}},
		{"sshca krl --", []string{"--out"}, nil},
	} {
		words := "(" + tc.line + ")"
		cmd := exec.Command("bash", "-c", `source "$1"; COMP_WORDS=`+words+`; COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _sshca; printf '%s\n' "${COMPREPLY[@]}"`, "bash", p)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.line, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range tc.want {
			if !contains(got, w) {
				t.Errorf("%s: no %s in %v", tc.line, w, got)
			}
		}
		for _, w := range tc.not {
			if contains(got, w) {
				t.Errorf("%s: offers %s", tc.line, w)
			}
		}
	}
}

func contains(ws []string, w string) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// TestManPages: sshca(1) names every command and one page per command
// documents each of its flags; man -l renders them when man is installed.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runInProcess(t, "man", "--dir", dir); code != 0 {
		t.Fatalf("man: exit %d: %s", code, stderr)
	}
	top, err := os.ReadFile(filepath.Join(dir, "sshca.1"))
	if err != nil {
		t.Fatal(err)
	}
	unroff := strings.NewReplacer(`\-`, "-", `\e`, `\`, `\&`, "")
	for _, c := range commands() {
		if !strings.Contains(unroff.Replace(string(top)), "sshca "+c.name) {
			t.Errorf("sshca.1 lacks %q", c.name)
		}
		page, err := os.ReadFile(filepath.Join(dir, manName(c)+".1"))
		if err != nil {
			t.Fatal(err)
		}
		text := unroff.Replace(string(page))
		if !strings.HasPrefix(text, ".TH ") || !strings.Contains(text, c.summary) {
			t.Errorf("%s.1: no header or summary", manName(c))
		}
		for _, f := range commandFlags(c) {
			if !strings.Contains(text, `\fB--`+f.name+`\fR`) {
				t.Errorf("%s.1 lacks --%s", manName(c), f.name)
			}
		}
	}
	if code, _, _ := runInProcess(t, "man"); code != 2 {
		t.Errorf("man without --dir: exit %d, want 2", code)
	}
	man := testkit.RequireTool(t, "man")
	for _, page := range []string{"sshca.1", "sshca-sign-user.1", "sshca-login.1"} {
		cmd := exec.Command(man, "-l", filepath.Join(dir, page))
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "PAGER=cat", "MANWIDTH=100")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("man -l %s: %v\n%s", page, err, out)
		}
		if bytes.Contains(out, []byte("warning")) || !bytes.Contains(out, []byte("NAME")) {
			t.Errorf("man -l %s:\n%s", page, out)
		}
	}
}
