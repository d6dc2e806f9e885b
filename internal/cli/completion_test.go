package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/testkit"
)

// shellTimeout bounds one shell run of a completion test.
const shellTimeout = time.Minute

// completionCase is a command line being completed (the last word, maybe
// empty, is the one completed) and what the shell must and must not offer.
type completionCase struct {
	line string
	want []string
	not  []string
}

// completionCases derives from the command table what completing each
// line must offer: every top-level word after "sshca ", every second word
// of a group after "sshca GROUP ", and a few commands' flags.
func completionCases() []completionCase {
	t := newCommandTree(commands())
	cases := []completionCase{{line: "sshca ", want: t.top, not: []string{"rotate", "revoke-key", "--role"}}}
	for _, top := range t.top {
		if subs := t.subs[top]; len(subs) > 0 {
			cases = append(cases, completionCase{line: "sshca " + top + " ", want: subs, not: []string{"init", "serve"}})
		}
	}
	flagsOf := func(name string) []string {
		var fl []string
		for _, f := range commandFlags(t.byKey[name]) {
			fl = append(fl, "--"+f.name)
		}
		return fl
	}
	return append(cases,
		completionCase{line: "sshca sign user --r", want: []string{"--role"}, not: []string{"--out", "--home"}},
		completionCase{line: "sshca --home /x sign host --", want: flagsOf("sign host")},
		completionCase{line: "sshca login --", want: flagsOf("login"), not: []string{"--home", "--database", "--out"}},
		completionCase{line: "sshca store migrate --", want: []string{"--to", "--from"}, not: []string{"--role"}},
		completionCase{line: "sshca ca rotate --p", want: []string{"--promote"}, not: []string{"--type"}},
	)
}

// checkOffers compares what a shell offered for a line with the case.
func checkOffers(t *testing.T, shell string, c completionCase, got []string) {
	t.Helper()
	if len(c.want) == 0 {
		t.Fatalf("%s: the case %q expects nothing; the command table changed?", shell, c.line)
	}
	for _, w := range c.want {
		if !slices.Contains(got, w) {
			t.Errorf("%s: completing %q does not offer %s (offers %v)", shell, c.line, w, got)
		}
	}
	for _, w := range c.not {
		if slices.Contains(got, w) {
			t.Errorf("%s: completing %q offers %s", shell, c.line, w)
		}
	}
}

// writeScript writes `sshca completion SHELL` to dir/name.
func writeScript(t *testing.T, shell, dir, name string) string {
	t.Helper()
	code, script, stderr := runInProcess(t, "completion", shell)
	if code != 0 {
		t.Fatalf("completion %s: exit %d: %s", shell, code, stderr)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// shellCommand runs a shell in an empty directory (so that file name
// completion adds nothing) with HOME there too, bounded in time.
func shellCommand(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), shellTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"HOME=" + cmd.Dir, "PATH=" + os.Getenv("PATH"), "TERM=dumb", "LANG=C.UTF-8"}
	return cmd
}

// zshDriver runs an interactive zsh on a pseudo-terminal (zsh/zpty), as a
// user's shell: compinit finds _sshca through fpath (as an installed
// completion is found), and for each line typed a completion widget runs
// the real completion system (_main_complete, as Tab does) while a compadd
// wrapper writes every match it is given to the output file. The widget
// inserts and lists nothing, and the line is then killed; before each
// line the driver waits for the prompt, so nothing is typed ahead of ZLE.
//
// Arguments: the directory holding _sshca, the output file, the lines.
const zshDriver = `
fpdir=$1 out=$2; shift 2
zmodload zsh/zpty || exit 3
zpty z zsh -f -i
ready() { zpty -r z l '*RE''ADY> *' || exit 4 }
zpty -w z "PS1='REA''DY> ' PS2='' RPS1=''; unsetopt autolist listbeep beep; bindkey -e"
ready
zpty -w z "fpath=(${(q)fpdir} \$fpath); autoload -Uz compinit; compinit -u -D"
ready
zpty -w z "compadd() { local -a __m; builtin compadd -O __m \"\$@\"; (( \${#__m} )) && print -rl -- \"\${__m[@]}\" >> ${(q)out}; builtin compadd \"\$@\"; }"
ready
zpty -w z "_capture() { _main_complete; compstate[insert]=''; compstate[list]=''; }; zle -C capture complete-word _capture; bindkey '^T' capture"
ready
for line in "$@"; do
  zpty -w z "print -r -- '### '${(q)line} >> ${(q)out}"
  ready
  zpty -w z "$line"$'\x14'$'\x15'
  ready
done
zpty -w z "print -r -- '### end' >> ${(q)out}"
ready
zpty -d z
`

// TestZshCompletionCompletes loads `sshca completion zsh` into a real
// interactive zsh with compinit and checks what Tab offers.
func TestZshCompletionCompletes(t *testing.T) {
	bin := testkit.RequireTool(t, "zsh") // scripts/setup.sh installs it
	dir := t.TempDir()
	writeScript(t, "zsh", dir, "_sshca") // the name compinit looks for
	driver := filepath.Join(dir, "driver.zsh")
	if err := os.WriteFile(driver, []byte(zshDriver), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "offered")
	cases := completionCases()
	args := []string{"-f", driver, dir, out}
	for _, c := range cases {
		args = append(args, c.line)
	}
	cmd := shellCommand(t, bin, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zsh: %v\n%s", err, b)
	}
	offered := parseOffered(t, out)
	if _, ok := offered["### end"]; !ok {
		t.Fatalf("the zsh driver did not finish:\n%s", readFile(t, out))
	}
	for _, c := range cases {
		got, ok := offered["### "+c.line]
		if !ok {
			t.Fatalf("zsh: no record of %q:\n%s", c.line, readFile(t, out))
		}
		checkOffers(t, "zsh", c, got)
	}
}

// parseOffered splits the zsh driver's output into the matches offered
// per "### LINE" header.
func parseOffered(t *testing.T, path string) map[string][]string {
	t.Helper()
	m := map[string][]string{}
	cur := ""
	for _, l := range strings.Split(readFile(t, path), "\n") {
		if strings.HasPrefix(l, "### ") {
			cur = l
			m[cur] = nil
			continue
		}
		if cur != "" && l != "" {
			m[cur] = append(m[cur], l)
		}
	}
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFishCompletionCompletes sources `sshca completion fish` into a real
// fish and asks it what it completes (complete -C, what Tab shows).
func TestFishCompletionCompletes(t *testing.T) {
	bin := testkit.RequireTool(t, "fish") // scripts/setup.sh installs it
	script := writeScript(t, "fish", t.TempDir(), "sshca.fish")
	for _, c := range completionCases() {
		// fish's own quoting of the line: single quotes, ' and \ escaped.
		q := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(c.line) + "'"
		cmd := shellCommand(t, bin, "--no-config", "-c", "source "+script+"; complete -C "+q)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fish, %q: %v\n%s", c.line, err, b)
		}
		var got []string
		for _, l := range strings.Split(string(b), "\n") {
			if w, _, _ := strings.Cut(l, "\t"); w != "" {
				got = append(got, w)
			}
		}
		checkOffers(t, "fish", c, got)
	}
}

// TestBashCompletionFromTable runs the bash function as bash's programmable
// completion calls it (COMP_WORDS, COMP_CWORD, then COMPREPLY) on the
// cases the zsh and fish tests check.
func TestBashCompletionFromTable(t *testing.T) {
	bin := testkit.RequireTool(t, "bash")
	script := writeScript(t, "bash", t.TempDir(), "sshca.bash")
	for _, c := range completionCases() {
		words := strings.Split(c.line, " ") // a trailing space: an empty word being completed
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, singleQuote(w))
		}
		cmd := shellCommand(t, bin, "--norc", "--noprofile", "-c",
			`source "$1"; COMP_WORDS=(`+strings.Join(quoted, " ")+`); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _sshca; printf '%s\n' "${COMPREPLY[@]}"`,
			"bash", script)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash, %q: %v\n%s", c.line, err, b)
		}
		checkOffers(t, "bash", c, strings.Fields(string(b)))
	}
}
