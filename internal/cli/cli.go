// Package cli is the sshca command line: one file per command, each with its
// own flag set and usage text with examples. It turns errors into one
// "sshca: error:" line (plus an optional hint) and an exit code; it never
// calls os.Exit itself.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/term"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/client"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/policy"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// env is what a command runs with; tests substitute buffers.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// ownsProcess is set by Main: the command is the whole process and may
	// tune the Go runtime (serve does); in-process callers (tests) are not.
	ownsProcess bool
	home        string // --home, resolved
	database    string // --database / SSHCA_DATABASE, resolved
}

type command struct {
	name    string // "sign user"
	summary string
	usage   string // argument synopsis
	example string
	flags   func(fs *flag.FlagSet) // registers flags, closures capture the destinations
	run     func(e *env, fs *flag.FlagSet, args []string) error
	// minArgs/maxArgs bound the positional arguments (-1: unbounded).
	minArgs, maxArgs int
	// noHome: the command does not use the CA home, so it has no --home
	// and --database flags (see local in commands.go).
	noHome bool
}

// usageError is a bad invocation: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// hintError carries a hint line shown after the error.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

func withHint(err error, hint string) error { return &hintError{err: err, hint: hint} }

// exitCodeError carries an exit code without an error message (e.g. krl check found a revoked key).
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Main runs sshca with args (without the program name) and returns the exit code.
func Main(args []string) int {
	// SSHCA_CPUPROFILE=FILE: a Go CPU profile of the whole command
	// (diagnostics of the batch commands; see BENCHMARKS.md).
	if path := os.Getenv("SSHCA_CPUPROFILE"); path != "" {
		stopProfile, err := startCPUProfile(path, "SSHCA_CPUPROFILE")
		if err != nil {
			fmt.Fprintf(os.Stderr, "sshca: error: %v\n", err)
			return 1
		}
		defer stopProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runEnv(&env{ctx: ctx, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, ownsProcess: true}, args)
}

// Run is Main with its environment injected.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	return runEnv(&env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}, args)
}

// lockedWriter serialises writes to w: background work of a command (the
// audit head's witness reporting a notice) may write while the command
// prints, and stdout and stderr may be one writer.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Sync flushes w when it can (a file), so that a supervisor reading the
// output sees what was printed.
func (l lockedWriter) Sync() error {
	if f, ok := l.w.(interface{ Sync() error }); ok {
		return f.Sync()
	}
	return nil
}

func runEnv(e *env, args []string) int {
	mu := &sync.Mutex{}
	e.stdout, e.stderr = lockedWriter{mu, e.stdout}, lockedWriter{mu, e.stderr}
	stderr := e.stderr
	err := run(e, args)
	if err == nil {
		return exitOK
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "sshca: error: %s\n", oneLine(err.Error()))
	var he *hintError
	if errors.As(err, &he) && he.hint != "" {
		fmt.Fprintf(stderr, "sshca: hint: %s\n", oneLine(he.hint))
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

// oneLine keeps an error message on one line whatever it wraps.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ")
}

func run(e *env, args []string) error {
	// Global flags before the command.
	global := flag.NewFlagSet("sshca", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	homeFlag := global.String("home", "", "")
	dbFlag := global.String("database", "", "")
	help := global.Bool("h", false, "")
	global.BoolVar(help, "help", false, "")
	version := global.Bool("version", false, "")
	if err := global.Parse(args); err != nil {
		return usagef("%v", err)
	}
	rest := global.Args()
	if *version {
		printVersion(e.stdout)
		return nil
	}
	commands := commands()
	if *help || len(rest) == 0 {
		printTopUsage(e.stdout, commands)
		if len(rest) == 0 && !*help {
			return usagef("no command given")
		}
		return nil
	}
	if rest[0] == "help" {
		if len(rest) > 1 {
			if c, _ := findCommand(commands, rest[1:]); c != nil {
				printCommandUsage(e.stdout, c, newFlagSet(c))
				return nil
			}
		}
		printTopUsage(e.stdout, commands)
		return nil
	}
	c, n := findCommand(commands, rest)
	if c == nil {
		return withHint(usagef("unknown command %q", strings.Join(rest[:min(len(rest), 2)], " ")), "run `sshca -h` for the list of commands")
	}
	fs := newFlagSet(c)
	pos, err := parseInterspersed(fs, rest[n:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandUsage(e.stdout, c, fs)
			return nil
		}
		return withHint(usagef("%s: %v", c.name, err), "run `sshca "+c.name+" -h` for usage")
	}
	if len(pos) < c.minArgs || (c.maxArgs >= 0 && len(pos) > c.maxArgs) {
		return withHint(usagef("%s: wrong number of arguments (usage: sshca %s %s)", c.name, c.name, c.usage), "run `sshca "+c.name+" -h` for usage")
	}
	cmdHome, cmdDB := flagString(fs, "home"), flagString(fs, "database")
	e.home = firstNonEmpty(cmdHome, *homeFlag, e.getenv("SSHCA_HOME"), "sshca-data")
	e.database = firstNonEmpty(cmdDB, *dbFlag, e.getenv("SSHCA_DATABASE"))
	return tlsHint(c.run(e, fs, pos))
}

// tlsHint adds the way out to a service's TLS certificate that this
// machine does not trust or that is not the pinned one.
func tlsHint(err error) error {
	var he *hintError
	if err == nil || errors.As(err, &he) {
		return err
	}
	var pin *client.PinMismatchError
	if errors.As(err, &pin) {
		return withHint(err, "the service presents another TLS certificate than --ca-fingerprint pins: compare with the fingerprint `sshca serve` prints (it changes when the certificate is replaced); if it did not change, someone is in between")
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var inv x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	if errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &inv) || errors.As(err, &cv) {
		return withHint(err, "this machine does not trust the service's TLS certificate: pin it with --ca-fingerprint SHA256:... as `sshca serve` prints it at start")
	}
	return err
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// newFlagSet is the command's flag set, with --home and --database unless
// the command does not use the CA home.
func newFlagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("sshca "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	if !c.noHome {
		fs.String("home", "", "CA home `directory` (default $SSHCA_HOME or ./sshca-data)")
		fs.String("database", "", "PostgreSQL `URL` instead of the home's SQLite file (or SSHCA_DATABASE; overrides sshca.yaml)")
	}
	return fs
}

// flagString is the value of a string flag, "" when fs has no such flag.
func flagString(fs *flag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// findCommand matches the longest command name at the start of args.
func findCommand(commands []*command, args []string) (*command, int) {
	var best *command
	bestN := 0
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(words) > len(args) || len(words) <= bestN {
			continue
		}
		match := true
		for i, w := range words {
			if args[i] != w {
				match = false
				break
			}
		}
		if match {
			best, bestN = c, len(words)
		}
	}
	return best, bestN
}

// parseInterspersed parses flags that may come before or after positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag stops at "--": everything after it is positional.
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func printTopUsage(w io.Writer, commands []*command) {
	fmt.Fprintln(w, "sshca — an SSH certificate authority for OpenSSH fleets")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: sshca [--home DIR] [--database URL] COMMAND [flags] [args]")
	fmt.Fprintln(w, "       sshca --version")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	cs := append([]*command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Global: --home DIR (or SSHCA_HOME; default ./sshca-data). Exit codes: 0 ok, 1 error, 2 usage.")
	fmt.Fprintln(w, "Durations: Go syntax plus d and w (90m, 8h, 7d, 52w). Run `sshca COMMAND -h` for examples.")
}

func printCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: sshca %s %s\n\n%s\n\nFlags:\n", c.name, c.usage, c.summary)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if c.example != "" {
		fmt.Fprintf(w, "\nExamples:\n%s\n", strings.TrimRight(c.example, "\n"))
	}
}

// errNoPassphrase is the refusal to sign with an encrypted CA key when no
// passphrase was given.
var errNoPassphrase = errors.New("the CA key is encrypted")

// openHome opens the CA home with a passphrase source from --passphrase-file
// or $SSHCA_PASSPHRASE_FILE.
func (e *env) openHome(passFile string) (*home.Home, error) {
	pf := firstNonEmpty(passFile, e.getenv("SSHCA_PASSPHRASE_FILE"))
	h, err := home.Open(e.ctx, e.home, home.Options{Database: e.database, AgentSock: e.getenv("SSH_AUTH_SOCK"), Notice: e.notice, Passphrase: func() ([]byte, error) {
		var p []byte
		var err error
		if pf == "" {
			var ok bool
			if p, ok, err = e.promptPassphrase(); !ok && err == nil {
				return nil, withHint(errNoPassphrase, "give --passphrase-file FILE (or set SSHCA_PASSPHRASE_FILE)")
			}
		} else {
			p, err = readPassphraseFile(pf)
		}
		if err == nil {
			e.warnShortPassphrase(p)
		}
		return p, err
	}})
	if err != nil {
		return nil, hintEmptyStore(err)
	}
	return h, nil
}

// readTokenFile reads the first line of a token file (an API or
// enrollment token), without the newline. Passphrases of CA keys are read
// with readPassphraseFile, which also checks the file's mode.
func readTokenFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path) // callers say "token file: ..."
	if err != nil {
		return nil, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return []byte(line), nil
}

// actor names the person running the CLI for the audit log.
func (e *env) actor() string {
	u := firstNonEmpty(e.getenv("SUDO_USER"), e.getenv("USER"), e.getenv("LOGNAME"))
	if u == "" {
		u = fmt.Sprintf("uid-%d", os.Getuid())
	}
	return "cli:" + u
}

// caller is the admin at this CLI, for the access decision.
func (e *env) caller() policy.Caller {
	return ca.Admin(strings.TrimPrefix(e.actor(), "cli:"))
}

// promptPassphrase asks on the terminal, without echo, when stdin is one.
// It reports ok=false when there is no terminal to ask on.
func (e *env) promptPassphrase() ([]byte, bool, error) {
	f, isFile := e.stdin.(*os.File)
	if !isFile || !term.IsTerminal(int(f.Fd())) {
		return nil, false, nil
	}
	fmt.Fprint(e.stderr, "CA key passphrase: ")
	p, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, true, fmt.Errorf("read passphrase: %w", err)
	}
	if len(p) == 0 {
		return nil, true, errors.New("empty passphrase")
	}
	return p, true, nil
}

// serviceFlags are the flags of every command that talks to the service.
type serviceFlags struct{ url, fingerprint string }

func (s *serviceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.url, "server", "", "service `URL` (https://...)")
	fs.StringVar(&s.fingerprint, "ca-fingerprint", "", "pin the service's TLS certificate to this `fingerprint` (SHA256:..., as sshca serve prints it)")
}

// client checks --server and returns a client for the service; cmd names
// the command in usage errors.
func (s *serviceFlags) client(cmd string) (*client.Client, error) {
	if s.url == "" {
		return nil, usagef("%s: --server is required", cmd)
	}
	c, err := client.New(s.url, s.fingerprint)
	if err != nil {
		return nil, usagef("%s: %v", cmd, err)
	}
	return c, nil
}
