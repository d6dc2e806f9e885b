package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sshca/sshca/internal/buildinfo"
)

func newManCommand() *command {
	var dir string
	return &command{
		name:    "man",
		summary: "write the manual: sshca(1) and one page per command (sshca-sign-user(1), ...), in roff",
		usage:   "--dir DIR",
		example: `  sshca man --dir /usr/share/man/man1
  sshca man --dir /tmp/man && man -l /tmp/man/sshca-sign-user.1`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "", "write the pages into this `directory` (created if missing)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if dir == "" {
				return usagef("man: --dir is required")
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			cs := commands()
			pages := map[string]func(io.Writer){"sshca.1": func(w io.Writer) { manTop(w, cs) }}
			for _, c := range cs {
				pages[manName(c)+".1"] = func(w io.Writer) { manCommand(w, c) }
			}
			for name, write := range pages {
				var b strings.Builder
				write(&b)
				if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(e.stdout, "wrote %d man pages to %s\n", len(pages), dir)
			return nil
		},
	}
}

// manName is a command's page name: sshca-sign-user.
func manName(c *command) string {
	return "sshca-" + strings.ReplaceAll(c.name, " ", "-")
}

// roff escapes text for a roff line: backslashes, and a leading . or '
// that would make the line a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func manHeader(w io.Writer, title, summary string) {
	fmt.Fprintf(w, ".TH %s 1 \"\" \"sshca %s\" \"sshca Manual\"\n", strings.ToUpper(title), buildinfo.Get().Version)
	fmt.Fprintf(w, ".SH NAME\n%s \\- %s\n", roff(title), roff(summary))
}

func manTop(w io.Writer, cs []*command) {
	manHeader(w, "sshca", "an SSH certificate authority for OpenSSH fleets")
	fmt.Fprint(w, ".SH SYNOPSIS\n.B sshca\n[\\fB\\-\\-home\\fR \\fIDIR\\fR] [\\fB\\-\\-database\\fR \\fIURL\\fR] \\fICOMMAND\\fR [\\fIflags\\fR] [\\fIargs\\fR]\n.br\n.B sshca \\-\\-version\n")
	fmt.Fprint(w, ".SH DESCRIPTION\nsshca signs OpenSSH user and host certificates under a policy (sshca.yaml), keeps the revocation list, the audit log and the fleet's trust files current, and serves all of it over HTTPS to clients and servers.\nRun \\fBsshca\\fR \\fICOMMAND\\fR \\fB\\-h\\fR for a command's flags and examples.\n")
	fmt.Fprint(w, ".SH COMMANDS\n")
	for _, c := range cs {
		fmt.Fprintf(w, ".TP\n\\fBsshca %s\\fR %s\n%s (see \\fB%s\\fR(1))\n", roff(c.name), roff(c.usage), roff(c.summary), roff(manName(c)))
	}
	fmt.Fprint(w, `.SH GLOBAL OPTIONS
.TP
\fB\-\-home\fR \fIDIR\fR
The CA home (default $SSHCA_HOME or ./sshca\-data); commands that do not use it do not take it.
.TP
\fB\-\-database\fR \fIURL\fR
PostgreSQL URL instead of the home's SQLite file (or $SSHCA_DATABASE; overrides sshca.yaml).
.TP
\fB\-\-version\fR
Print the version, VCS revision and Go version.
.SH ENVIRONMENT
.TP
.B SSHCA_HOME
The CA home when \-\-home is not given.
.TP
.B SSHCA_DATABASE
The PostgreSQL URL when \-\-database is not given.
.TP
.B SSHCA_PASSPHRASE_FILE
File with the passphrase of encrypted CA keys.
.TP
.B SSH_AUTH_SOCK
The ssh\-agent holding CA keys kept in an agent.
.SH EXIT STATUS
0 on success, 1 on an error, 2 on a usage error.
Durations are Go durations plus d and w (90m, 8h, 7d, 52w).
.SH SEE ALSO
`)
	var refs []string
	for _, c := range cs {
		refs = append(refs, fmt.Sprintf(".BR %s (1)", roff(manName(c))))
	}
	fmt.Fprintln(w, strings.Join(refs, " ,\n"))
	fmt.Fprint(w, ".BR ssh\\-keygen (1),\n.BR sshd_config (5)\n")
}

func manCommand(w io.Writer, c *command) {
	manHeader(w, manName(c), c.summary)
	fmt.Fprintf(w, ".SH SYNOPSIS\n.B sshca %s\n%s\n", roff(c.name), roff(c.usage))
	fmt.Fprintf(w, ".SH DESCRIPTION\n%s.\n", roff(strings.ToUpper(c.summary[:1])+c.summary[1:]))
	fmt.Fprint(w, ".SH OPTIONS\n")
	for _, f := range commandFlags(c) {
		fmt.Fprintf(w, ".TP\n\\fB\\-\\-%s\\fR", roff(f.name))
		if f.arg != "" {
			fmt.Fprintf(w, " \\fI%s\\fR", roff(f.arg))
		}
		fmt.Fprintf(w, "\n%s\n", roff(oneLine(f.usage)))
	}
	fmt.Fprint(w, ".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nShow the usage and examples.\n")
	if ex := strings.TrimRight(c.example, "\n"); ex != "" {
		fmt.Fprint(w, ".SH EXAMPLES\n.nf\n")
		for _, line := range strings.Split(ex, "\n") {
			fmt.Fprintln(w, roff(line))
		}
		fmt.Fprint(w, ".fi\n")
	}
	fmt.Fprint(w, ".SH SEE ALSO\n.BR sshca (1)\n")
}
