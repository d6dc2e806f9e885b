// Command bench is sshca's benchmark suite. It measures sshca where its users
// feel it — raw signing, batch signing on the command line, the issuance
// service over HTTPS, KRL generation and checking — and, in the same run,
// what they would use instead (bare signatures, ssh-keygen), so that every
// figure comes with a ratio that survives a noisy machine. It prints
// Markdown for BENCHMARKS.md.
//
//	go run ./bench                 # long mode: the figures in BENCHMARKS.md
//	go run ./bench -short          # seconds: what CI runs so the suite cannot rot
//	go run ./bench -suite service  # one suite (sign, cli, service, stepca, krl)
//
// It only listens on 127.0.0.1 and bounds every load loop in count and time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// options are shared by every suite.
type options struct {
	Short  bool   // a few seconds per suite, for CI
	Work   string // scratch directory, removed at the end
	SSHCA  string // the sshca binary (built without the race detector)
	StepCA string // the step-ca binary of the stepca suite ("": the cached build of stepcaVersion)
	Keygen string // ssh-keygen
	Log    io.Writer
}

// logf reports progress on stderr (the Markdown goes to stdout).
func (o *options) logf(format string, a ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench: "+format+"\n", a...)
	}
}

// section is one table of results.
type section struct {
	Title   string
	Command string     // how to reproduce it
	Header  []string   // column names
	Rows    [][]string // cells
	Notes   []string   // paragraphs under the table: ratios, targets met or missed
	// Checks are named pass/fail verdicts (targets, correctness) that the
	// short-mode test also asserts on where they do not depend on timing.
	Checks []check
}

// check is one verdict of a suite.
type check struct {
	Name   string
	OK     bool
	Timing bool // depends on wall-clock speed: reported, never asserted by tests
	Detail string
}

// suite runs one group of benchmarks.
type suite struct {
	name string
	run  func(ctx context.Context, o *options) ([]section, error)
}

// suites lists the groups in report order.
var suites = []suite{
	{"sign", runSign},
	{"cli", runCLI},
	{"service", runService},
	{"stepca", runStepCA},
	{"krl", runKRL},
	{"scale", runScale},
	{"storm", runStorm},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "run every suite for seconds (CI mode)")
	only := fs.String("suite", "", "comma-separated suites to run ("+suiteNames()+"); default all")
	sshca := fs.String("sshca", "", "sshca binary to measure (default: build ./cmd/sshca)")
	stepca := fs.String("stepca", "", "step-ca binary for the stepca suite (default: go install it once into ~/.cache/sshca-bench)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: error: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	secs, err := runSuites(ctx, *short, *only, *sshca, *stepca, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: %v\n", err)
		return 1
	}
	writeMarkdown(stdout, secs)
	return 0
}

// runSuites runs the selected suites and returns their sections.
func runSuites(ctx context.Context, short bool, only, sshca, stepca string, log io.Writer) ([]section, error) {
	want := map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			want[s] = true
		}
	}
	for name := range want {
		known := false
		for _, s := range suites {
			known = known || s.name == name
		}
		if !known {
			return nil, fmt.Errorf("unknown suite %q (have %s)", name, suiteNames())
		}
	}
	work, err := os.MkdirTemp("", "sshca-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	o := &options{Short: short, Work: work, SSHCA: sshca, StepCA: stepca, Log: log}
	if o.Keygen, err = exec.LookPath("ssh-keygen"); err != nil {
		return nil, errors.New("ssh-keygen not found: it is the comparison (apt-get install openssh-client)")
	}
	if o.SSHCA == "" {
		if o.SSHCA, err = buildSSHCA(work); err != nil {
			return nil, err
		}
	}
	secs := []section{machineSection(short)}
	for _, s := range suites {
		if len(want) > 0 && !want[s.name] {
			continue
		}
		o.logf("suite %s", s.name)
		start := time.Now()
		got, err := s.run(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		o.logf("suite %s done in %s", s.name, time.Since(start).Round(time.Millisecond))
		secs = append(secs, got...)
	}
	return secs, nil
}

// suiteNames lists the suites for messages.
func suiteNames() string {
	names := make([]string, len(suites))
	for i, s := range suites {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// buildSSHCA builds ./cmd/sshca of this module into dir.
func buildSSHCA(dir string) (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(dir, "sshca")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/sshca")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/sshca: %w\n%s", err, out)
	}
	return bin, nil
}

// machineSection describes the machine and the run.
func machineSection(short bool) section {
	mode := "long"
	if short {
		mode = "short (CI)"
	}
	rows := [][]string{
		{"date", time.Now().UTC().Format("2006-01-02 15:04 MST")},
		{"mode", mode},
		{"CPU", cpuModel()},
		{"logical CPUs", fmt.Sprint(runtime.NumCPU())},
		{"memory", memTotal()},
		{"load average at start", loadAvg()},
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"OpenSSH", sshVersion()},
	}
	return section{Title: "Machine", Header: []string{"", ""}, Rows: rows}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:")), "%d", &kb)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown"
}

// loadAvg returns the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func sshVersion() string {
	out, err := exec.Command("ssh", "-V").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// writeMarkdown prints the sections.
func writeMarkdown(w io.Writer, secs []section) {
	for _, s := range secs {
		fmt.Fprintf(w, "### %s\n\n", s.Title)
		if s.Command != "" {
			fmt.Fprintf(w, "```\n%s\n```\n\n", s.Command)
		}
		if len(s.Rows) > 0 {
			fmt.Fprintf(w, "| %s |\n|", strings.Join(s.Header, " | "))
			for range s.Header {
				fmt.Fprint(w, "---|")
			}
			fmt.Fprintln(w)
			for _, r := range s.Rows {
				fmt.Fprintf(w, "| %s |\n", strings.Join(r, " | "))
			}
			fmt.Fprintln(w)
		}
		for _, c := range s.Checks {
			mark := "met"
			if !c.OK {
				mark = "MISSED"
			}
			fmt.Fprintf(w, "- %s: **%s** — %s\n", c.Name, mark, c.Detail)
		}
		if len(s.Checks) > 0 {
			fmt.Fprintln(w)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "%s\n\n", n)
		}
	}
}
