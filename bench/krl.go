package main

// The krl suite: KRL generation time, size and peak memory for 10^4, 10^5
// and 10^6 revoked serials in realistic patterns, against `ssh-keygen -k`
// on the same specification file; every KRL sshca writes is loaded by
// OpenSSH (`ssh-keygen -Q`) and its verdicts compared with the expected
// ones; and the cost of `sshca krl check` against `ssh-keygen -Q`.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/krl"
)

// krlPeakRSSTarget is the target for building a KRL of 10^6 revocations.
const krlPeakRSSTarget = 256 << 20

// krlBounds are the repetition and time bounds of one mode.
type krlBounds struct {
	scales      []int         // revoked serials per workload
	reps        int           // at most this many timed rounds per cell
	budget      time.Duration // stop repeating a cell after this much time (at least one round)
	importLimit time.Duration // give up the store import after this long
	cmdLimit    time.Duration // any other command
}

func krlMode(o *options) krlBounds {
	if o.Short {
		return krlBounds{scales: []int{1e4}, reps: 3, budget: 2 * time.Second, importLimit: time.Minute, cmdLimit: time.Minute}
	}
	return krlBounds{scales: []int{1e4, 1e5, 1e6}, reps: 5, budget: 30 * time.Second, importLimit: 4 * time.Minute, cmdLimit: 2 * time.Minute}
}

// krlOp is one line of the specification: a serial range (Lo == Hi for one
// serial), a key ID, or a plain key revoked explicitly or by its SHA-256
// fingerprint.
type krlOp struct {
	lo, hi uint64
	id     string
	key    ssh.PublicKey
	hash   bool
	sum    [32]byte
}

// krlWorkload is one realistic revocation set and what the probes need to
// know about it.
type krlWorkload struct {
	serials int // revoked serials
	ops     []krlOp
	// Examples for the probes.
	scattered, inBatch, inBatchGap, inRange, afterRange uint64
	keyID                                               string
	explicit, hashed                                    ssh.Signer
}

// Serial regions of the workload: they never overlap, so a serial in one
// region's gap is known to be unrevoked.
const (
	krlScatterSpace = 1 << 40   // scattered serials: [1, 2^40)
	krlBatchBase    = 1 << 41   // CI batches from 2^41
	krlRangeBase    = 1 << 42   // long ranges from 2^42
	krlFreeSerial   = 1<<40 + 7 // between the regions: never revoked
)

// newKRLWorkload returns n revoked serials in the patterns of a real fleet,
// in shuffled (roughly chronological rather than sorted) order:
//   - 15% scattered single serials (people who left, lost laptops),
//   - 35% in CI batches: runs of 100-1000 consecutive serials of which
//     about 75% are revoked (other certificates were issued in between),
//     written as maximal runs `serial: A-B`, batches 5,000-20,000 apart,
//   - 50% in 45 long ranges (compromised issuing windows),
//
// plus n/100 key IDs, and max(10, n/10^4) plain keys revoked by key and as
// many by SHA-256 fingerprint (`hash:`).
func newKRLWorkload(n int) (*krlWorkload, error) { return newKRLMix(n, krlMixed) }

// krlMix is the share of the revoked serials in each pattern, in percent
// (the rest is in long ranges); name labels its rows ("" for the default).
type krlMix struct {
	name           string
	scatter, batch int
}

// The workloads: the default mix of a real fleet, and the two extremes
// issue 17 asks about (each keeps a little of every pattern, so that every
// probe has something to probe).
var (
	krlMixed        = krlMix{scatter: 15, batch: 35}
	krlRangeHeavy   = krlMix{name: "range-heavy", scatter: 2, batch: 3}
	krlScatterHeavy = krlMix{name: "scatter-heavy", scatter: 90, batch: 5}
)

// newKRLMix is newKRLWorkload with the shares of mix.
func newKRLMix(n int, mix krlMix) (*krlWorkload, error) {
	rng := mrand.New(mrand.NewPCG(uint64(n), 0x5eed))
	w := &krlWorkload{serials: n}
	nScatter, nBatch := n*mix.scatter/100, n*mix.batch/100
	nRange := n - nScatter - nBatch

	seen := make(map[uint64]bool, nScatter)
	for len(seen) < nScatter {
		s := 1 + rng.Uint64N(krlScatterSpace-1)
		if s == krlFreeSerial || seen[s] {
			continue
		}
		seen[s] = true
		w.ops = append(w.ops, krlOp{lo: s, hi: s})
		if w.scattered == 0 {
			w.scattered = s
		}
	}

	base := uint64(krlBatchBase)
	for got := 0; got < nBatch; {
		span := uint64(100 + rng.IntN(900))
		var runLo, prev uint64
		for s := base; s < base+span && got < nBatch; s++ {
			if rng.IntN(4) == 0 { // issued to someone else in between: not revoked
				if w.inBatchGap == 0 && w.inBatch != 0 {
					w.inBatchGap = s
				}
				if runLo != 0 {
					w.ops = append(w.ops, krlOp{lo: runLo, hi: prev})
					runLo = 0
				}
				continue
			}
			if runLo == 0 {
				runLo = s
			}
			prev = s
			got++
			if w.inBatch == 0 {
				w.inBatch = s
			}
		}
		if runLo != 0 {
			w.ops = append(w.ops, krlOp{lo: runLo, hi: prev})
		}
		base += span + 5000 + uint64(rng.IntN(15000))
	}

	const nRanges = 45
	base = krlRangeBase
	left := nRange
	for i := range nRanges {
		size := left / (nRanges - i)
		if i < nRanges-1 {
			size = max(1, size/2+rng.IntN(size+1)) // around the mean
			size = min(size, left-(nRanges-1-i))
		}
		if size <= 0 {
			break
		}
		lo, hi := base, base+uint64(size)-1
		w.ops = append(w.ops, krlOp{lo: lo, hi: hi})
		if i == nRanges/2 {
			w.inRange, w.afterRange = lo+uint64(size)/2, hi+1
		}
		left -= size
		base = hi + 20000 + rng.Uint64N(1<<20)
	}

	for i := range n / 100 {
		id := fmt.Sprintf("user-%d@corp.example.com", i)
		if i%3 == 0 {
			id = fmt.Sprintf("ci-runner-%d.build.example.com", i)
		}
		w.ops = append(w.ops, krlOp{id: id})
		if w.keyID == "" {
			w.keyID = id
		}
	}
	nKeys := max(10, n/10000)
	for i := range 2 * nKeys {
		var seed [ed25519.SeedSize]byte
		for j := range seed {
			seed[j] = byte(rng.Uint32())
		}
		s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
		if err != nil {
			return nil, err
		}
		op := krlOp{key: s.PublicKey()}
		if i%2 == 1 {
			op.hash, op.sum = true, krl.FingerprintSHA256(s.PublicKey())
			w.hashed = s
		} else {
			w.explicit = s
		}
		w.ops = append(w.ops, op)
	}
	rng.Shuffle(len(w.ops), func(i, j int) { w.ops[i], w.ops[j] = w.ops[j], w.ops[i] })
	if got := w.count(); got != n {
		return nil, fmt.Errorf("krl workload: %d serials, want %d", got, n)
	}
	return w, nil
}

// count returns the revoked serials of w's ops.
func (w *krlWorkload) count() int {
	n := 0
	for _, op := range w.ops {
		if op.id == "" && op.key == nil {
			n += int(op.hi - op.lo + 1)
		}
	}
	return n
}

// writeSpec writes w as an `ssh-keygen -k` specification file.
func (w *krlWorkload) writeSpec(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	fmt.Fprintf(bw, "# %d revoked serials in realistic patterns (go run ./bench -suite krl)\n", w.serials)
	for _, op := range w.ops {
		switch {
		case op.id != "":
			fmt.Fprintf(bw, "id: %s\n", op.id)
		case op.hash:
			fmt.Fprintf(bw, "hash: %s\n", ssh.FingerprintSHA256(op.key))
		case op.key != nil:
			fmt.Fprintf(bw, "key: %s", ssh.MarshalAuthorizedKey(op.key))
		case op.lo == op.hi:
			fmt.Fprintf(bw, "serial: %d\n", op.lo)
		default:
			fmt.Fprintf(bw, "serial: %d-%d\n", op.lo, op.hi)
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// build is sshca's library path: build the KRL from the revocations and
// marshal it, in-process.
func (w *krlWorkload) build(ca ssh.PublicKey) ([]byte, error) {
	k := &krl.KRL{Version: 1, GeneratedDate: uint64(time.Now().Unix())}
	s, err := k.Section(ca)
	if err != nil {
		return nil, err
	}
	for _, op := range w.ops {
		switch {
		case op.id != "":
			err = s.RevokeKeyID(op.id)
		case op.hash:
			k.RevokeSHA256(op.sum)
		case op.key != nil:
			err = k.RevokeKey(op.key)
		default:
			err = s.RevokeSerials(op.lo, op.hi)
		}
		if err != nil {
			return nil, err
		}
	}
	return k.Marshal()
}

// krlFromSpec is the library path from the file ssh-keygen reads: parse
// the specification, apply it, marshal.
func krlFromSpec(path string, ca ssh.PublicKey) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := krl.ParseSpec(f, ca, false)
	if err != nil {
		return nil, err
	}
	k := &krl.KRL{Version: 1, GeneratedDate: uint64(time.Now().Unix())}
	if err := k.Apply(entries); err != nil {
		return nil, err
	}
	return k.Marshal()
}

// krlProc is one finished process.
type krlProc struct {
	elapsed time.Duration
	maxRSS  int64 // bytes
	stdout  []byte
	code    int
}

// krlExec runs a command with a time limit, timing it (process start and
// exit included) and recording its peak RSS. Exit codes other than those
// in ok are errors.
//
// The command runs under a runner (this binary again, see krlRunner) that
// reports the command's time and peak RSS: a process started directly by
// this one inherits this one's peak RSS as its own ru_maxrss (Linux counts
// the memory the child shared until exec), which at 10^6 serials is the
// workload's 200 MiB, whatever the command itself uses.
func krlExec(ctx context.Context, limit time.Duration, ok []int, name string, args ...string) (krlProc, error) {
	return benchExec(ctx, limit, ok, nil, name, args...)
}

// benchExec is krlExec with the command's standard output sent to out
// instead of kept (nil keeps it in krlProc.stdout).
func benchExec(ctx context.Context, limit time.Duration, ok []int, out io.Writer, name string, args ...string) (krlProc, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		return krlProc{}, err
	}
	report, w, err := os.Pipe()
	if err != nil {
		return krlProc{}, err
	}
	defer report.Close()
	cmd := exec.CommandContext(ctx, self, append([]string{name}, args...)...)
	cmd.Env = append(krlEnv(), krlRunnerEnv+"=1")
	cmd.ExtraFiles = []*os.File{w}
	// The runner and the command form a process group, stopped together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if out != nil {
		cmd.Stdout = out
	}
	start := time.Now()
	err = cmd.Start()
	w.Close()
	if err == nil {
		err = cmd.Wait()
	}
	p := krlProc{elapsed: time.Since(start), stdout: stdout.Bytes()}
	if cmd.ProcessState != nil {
		p.code = cmd.ProcessState.ExitCode()
	}
	var rssKiB, ns int64
	if line, _ := io.ReadAll(report); len(line) > 0 {
		if _, serr := fmt.Sscan(string(line), &rssKiB, &ns); serr == nil {
			p.maxRSS, p.elapsed = rssKiB<<10, time.Duration(ns)
		}
	}
	var exitErr *exec.ExitError
	if ctx.Err() != nil {
		return p, fmt.Errorf("%s %s: stopped after %s: %w", filepath.Base(name), strings.Join(krlShort(args), " "), limit, ctx.Err())
	}
	if err != nil && (!errors.As(err, &exitErr) || !slices.Contains(ok, p.code)) {
		return p, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(krlShort(args), " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return p, nil
}

// krlRunnerEnv, set in its environment, makes this binary krlRunner.
const krlRunnerEnv = "BENCH_KRL_RUNNER"

func init() {
	if os.Getenv(krlRunnerEnv) != "" {
		os.Exit(krlRunner(os.Args[1:]))
	}
}

// krlRunner runs args as a command with this process's standard files and
// exit code, and writes the command's peak RSS (KiB) and wall time (ns),
// as measured here, to file descriptor 3. Started small, it passes no
// memory of its own on to the command.
func krlRunner(args []string) int {
	if len(args) == 0 {
		return 2
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, krlRunnerEnv+"=") {
			env = append(env, kv)
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		return 127
	}
	if ru, isRU := cmd.ProcessState.SysUsage().(*syscall.Rusage); isRU {
		report := os.NewFile(3, "report")
		fmt.Fprintf(report, "%d %d\n", ru.Maxrss, elapsed.Nanoseconds()) // Maxrss: KiB on Linux
		report.Close()
	}
	if code := cmd.ProcessState.ExitCode(); code >= 0 {
		return code
	}
	return 128 + 9 // killed by a signal
}

// krlShort shortens paths in an argument list for error messages.
func krlShort(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsRune(a, os.PathSeparator) {
			a = filepath.Base(a)
		}
		out[i] = a
	}
	if len(out) > 8 {
		out = append(out[:8], "...")
	}
	return out
}

// krlEnv is the environment of the commands: this one without SSHCA_*
// settings, so that only the flags choose the home and database.
func krlEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSHCA_") {
			env = append(env, kv)
		}
	}
	return env
}

// krlTimes collects the times of one cell over the rounds.
type krlTimes []time.Duration

func (t krlTimes) median() time.Duration {
	if len(t) == 0 {
		return 0
	}
	s := slices.Clone(t)
	slices.Sort(s)
	return s[len(s)/2]
}

// krlRounds runs round up to b.reps times, stopping after b.budget (but
// always once). Rounds run every tool of a cell in turn, so that all of
// them see the same noise from the machine.
func krlRounds(ctx context.Context, b krlBounds, round func() error) (int, error) {
	start := time.Now()
	n := 0
	for n < b.reps && (n == 0 || time.Since(start) < b.budget) {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := round(); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// krlProbe is a key or certificate file and whether the KRL must revoke it.
type krlProbe struct {
	name    string
	path    string
	revoked bool
}

// krlFiles writes the probe files of w under dir: certificates of the
// spec's CA (and one of another CA) and plain keys, each with its expected
// verdict.
func krlFiles(dir string, w *krlWorkload, ca, otherCA ssh.Signer) ([]krlProbe, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	type spec struct {
		name    string
		revoked bool
		pub     ssh.PublicKey // a plain key file when set
		signer  ssh.Signer
		serial  uint64
		keyID   string
		subject ssh.PublicKey
	}
	var specs []spec
	add := func(name string, revoked bool, signer ssh.Signer, serial uint64, keyID string) error {
		sub, err := newSubjectKey()
		specs = append(specs, spec{name: name, revoked: revoked, signer: signer, serial: serial, keyID: keyID, subject: sub})
		return err
	}
	for _, err := range []error{
		add("scattered-serial", true, ca, w.scattered, "x"),
		add("ci-batch-serial", true, ca, w.inBatch, "x"),
		add("range-serial", true, ca, w.inRange, "x"),
		add("revoked-key-id", true, ca, krlFreeSerial, w.keyID),
		add("ci-batch-gap", false, ca, w.inBatchGap, "x"),
		add("after-range", false, ca, w.afterRange, "x"),
		add("other-ca-revoked-serial", false, otherCA, w.scattered, w.keyID),
		add("unrevoked-serial-and-id", false, ca, krlFreeSerial, "nobody@corp.example.com"),
	} {
		if err != nil {
			return nil, err
		}
	}
	specs = append(specs,
		spec{name: "explicit-key", revoked: true, pub: w.explicit.PublicKey()},
		spec{name: "hashed-key", revoked: true, pub: w.hashed.PublicKey()},
		spec{name: "cert-over-explicit-key", revoked: true, signer: ca, serial: krlFreeSerial, keyID: "x", subject: w.explicit.PublicKey()})
	other, err := newSubjectKey()
	if err != nil {
		return nil, err
	}
	specs = append(specs, spec{name: "unrevoked-key", pub: other})

	var out []krlProbe
	for i, s := range specs {
		pub := s.pub
		if pub == nil {
			c := userCert(s.subject, s.serial, time.Now())
			c.KeyId = s.keyID
			if err := c.SignCert(rand.Reader, s.signer); err != nil {
				return nil, err
			}
			pub = c
		}
		path := filepath.Join(dir, fmt.Sprintf("%02d-%s.pub", i, s.name))
		if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
			return nil, err
		}
		out = append(out, krlProbe{name: s.name, path: path, revoked: s.revoked})
	}
	return out, nil
}

// krlBatch writes n certificate files of the spec's CA under dir, half of
// them with revoked serials, and returns their paths and verdicts.
func krlBatch(dir string, w *krlWorkload, ca ssh.Signer, n int) ([]krlProbe, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var serials []uint64
	for _, op := range w.ops {
		if op.id == "" && op.key == nil {
			serials = append(serials, op.lo)
		}
	}
	sub, err := newSubjectKey()
	if err != nil {
		return nil, err
	}
	var out []krlProbe
	for i := range n {
		serial, revoked := krlFreeSerial+uint64(i), false
		if i%2 == 0 {
			serial, revoked = serials[(i*7919)%len(serials)], true
		}
		c := userCert(sub, serial, time.Now())
		if err := c.SignCert(rand.Reader, ca); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, fmt.Sprintf("cert-%03d.pub", i))
		if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(c), 0o644); err != nil {
			return nil, err
		}
		out = append(out, krlProbe{name: fmt.Sprint(i), path: path, revoked: revoked})
	}
	return out, nil
}

func krlPaths(ps []krlProbe) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.path
	}
	return out
}

// krlVerdicts parses the output of `ssh-keygen -Q` or `sshca krl check`:
// one "FILE[ (comment)]: REVOKED|ok" line per file, in order.
func krlVerdicts(out []byte, n int) ([]bool, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var v []bool
	for _, l := range lines {
		switch {
		case strings.HasSuffix(l, ": REVOKED"):
			v = append(v, true)
		case strings.HasSuffix(l, ": ok"):
			v = append(v, false)
		}
	}
	if len(v) != n {
		return nil, fmt.Errorf("%d verdicts for %d files: %q", len(v), n, krlHead(out))
	}
	return v, nil
}

func krlHead(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// krlLoads runs ssh-keygen -Q on the probes against a KRL and compares the
// verdicts with the expected ones. It returns "" when OpenSSH loads the
// KRL and agrees, or why not.
func krlLoads(ctx context.Context, o *options, limit time.Duration, path string, probes []krlProbe) string {
	p, err := krlExec(ctx, limit, []int{0, 1}, o.Keygen, append([]string{"-Q", "-f", path}, krlPaths(probes)...)...)
	if err != nil {
		return err.Error()
	}
	return krlCompare(p.stdout, probes)
}

// krlCompare checks verdicts against the probes' expectations.
func krlCompare(out []byte, probes []krlProbe) string {
	v, err := krlVerdicts(out, len(probes))
	if err != nil {
		return err.Error()
	}
	var wrong []string
	for i, p := range probes {
		if v[i] != p.revoked {
			wrong = append(wrong, fmt.Sprintf("%s (revoked=%v, want %v)", p.name, v[i], p.revoked))
		}
	}
	if len(wrong) > 0 {
		return "wrong verdicts: " + strings.Join(wrong, ", ")
	}
	return ""
}

// krlScaleResult is what the report needs from one scale.
type krlScaleResult struct {
	mix                      string // "" for the default workload
	n, lines, rounds         int
	keygen, lib, libSpec, cl krlTimes
	keygenRSS, clRSS         int64
	keygenSize, libSize      int
	clSize                   int
	keygenLoads              string // "" or why ssh-keygen's own KRL does not load
	imported                 bool
	importTime               time.Duration
	importRSS                int64
	importErr                string
	clKRL, libKRL            string // paths
}

func runKRL(ctx context.Context, o *options) ([]section, error) {
	b := krlMode(o)
	dir := filepath.Join(o.Work, "krl")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := newCASigner("ed25519")
	if err != nil {
		return nil, err
	}
	otherCA, err := newCASigner("ed25519")
	if err != nil {
		return nil, err
	}
	caPub := filepath.Join(dir, "ca.pub")
	if err := os.WriteFile(caPub, ssh.MarshalAuthorizedKey(ca.PublicKey()), 0o644); err != nil {
		return nil, err
	}

	homes, onTmpfs := filepath.Join(dir, "homes"), false
	if d, err := os.MkdirTemp("/dev/shm", "sshca-bench-krl-"); err == nil {
		// The homes live on tmpfs where there is one, so that disk noise
		// stays out of the figures (the import commits a transaction per
		// 10,000 spec lines; `sshca krl` only reads the store).
		homes, onTmpfs = d, true
		defer os.RemoveAll(d)
	}

	gen := section{
		Title: "KRL generation: sshca against ssh-keygen -k",
		Command: "go run ./bench -suite krl\n" +
			"ssh-keygen -k -f OUT -s ca.pub SPEC                                 # ssh-keygen\n" +
			"sshca --home H revoke --spec SPEC --spec-ca ca.pub; sshca --home H krl --out OUT   # sshca",
		Header: []string{"revoked serials", "spec lines", "tool", "time (median)", "speed vs ssh-keygen -k", "size", "peak RSS"},
	}
	var results []*krlScaleResult
	var lastWorkload *krlWorkload
	for _, n := range b.scales {
		o.logf("krl: %d revoked serials", n)
		r, w, err := krlScale(ctx, o, b, dir, homes, n, krlMixed, ca, otherCA, caPub, &gen)
		if err != nil {
			return nil, fmt.Errorf("%s serials: %w", krlGroup(int64(n)), err)
		}
		results = append(results, r)
		lastWorkload = w
	}
	last := results[len(results)-1]
	scale := krlScaleName(last.n)

	speed := func(name string, t krlTimes) check {
		ratio := float64(last.keygen.median()) / float64(t.median())
		return check{Name: fmt.Sprintf("%s generates a KRL of %s serials ≥ 5× faster than ssh-keygen -k", name, scale),
			OK: ratio >= 5, Timing: true, Detail: fmt.Sprintf("%.1f× (%s against %s)", ratio, krlDur(t.median()), krlDur(last.keygen.median()))}
	}
	gen.Checks = append(gen.Checks, speed("the library (ParseSpec+Apply+Marshal of the same file)", last.libSpec))
	if last.imported {
		gen.Checks = append(gen.Checks, speed("`sshca krl --out` (from the store)", last.cl))
		gen.Checks = append(gen.Checks, check{Name: fmt.Sprintf("`sshca krl` builds the KRL of %s serials in under 256 MiB", scale),
			OK: last.clRSS < krlPeakRSSTarget, Detail: "peak RSS " + krlMiB(last.clRSS)})
	} else {
		gen.Checks = append(gen.Checks, check{Name: fmt.Sprintf("`sshca krl` builds the KRL of %s serials in under 256 MiB", scale),
			OK: false, Detail: "not measured: " + last.importErr})
	}
	// The extremes at the largest size: never slower than ssh-keygen -k.
	if !o.Short {
		for _, mix := range []krlMix{krlRangeHeavy, krlScatterHeavy} {
			o.logf("krl: %d revoked serials, %s", last.n, mix.name)
			r, _, err := krlScale(ctx, o, b, dir, homes, last.n, mix, ca, otherCA, caPub, &gen)
			if err != nil {
				return nil, fmt.Errorf("%s serials, %s: %w", krlGroup(int64(last.n)), mix.name, err)
			}
			results = append(results, r)
			kg := r.keygen.median()
			never := func(name string, t krlTimes) check {
				return check{Name: fmt.Sprintf("%s: %s is never slower than ssh-keygen -k", r.label(), name), Timing: true,
					OK: t.median() <= kg, Detail: fmt.Sprintf("%.2f× (%s against %s)", float64(kg)/float64(t.median()), krlDur(t.median()), krlDur(kg))}
			}
			gen.Checks = append(gen.Checks, never("the library (ParseSpec+Apply+Marshal of the spec)", r.libSpec))
			if r.imported {
				gen.Checks = append(gen.Checks, never("`sshca krl --out` (from the store)", r.cl))
			}
		}
	}
	gen.Notes = append(gen.Notes, krlGenNotes(b, results, onTmpfs)...)

	// The cost of checking keys against the largest KRL.
	chk, err := krlCheckSection(ctx, o, b, dir, last, lastWorkload, ca)
	if err != nil {
		return nil, err
	}
	return []section{gen, chk}, nil
}

// label names a result's row group: its size, and its workload unless the
// default.
func (r *krlScaleResult) label() string {
	if r.mix == "" {
		return krlScaleName(r.n)
	}
	return krlScaleName(r.n) + " " + r.mix
}

func krlScaleName(n int) string {
	switch n {
	case 1e4:
		return "10^4"
	case 1e5:
		return "10^5"
	case 1e6:
		return "10^6"
	}
	return krlGroup(int64(n))
}

// krlScale measures one workload size and appends its rows and checks.
func krlScale(ctx context.Context, o *options, b krlBounds, dir, homes string, n int, mix krlMix, ca, otherCA ssh.Signer, caPub string, sec *section) (*krlScaleResult, *krlWorkload, error) {
	w, err := newKRLMix(n, mix)
	if err != nil {
		return nil, nil, err
	}
	sd := filepath.Join(dir, fmt.Sprint(n)+mix.name)
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return nil, nil, err
	}
	spec := filepath.Join(sd, "revoked.spec")
	if err := w.writeSpec(spec); err != nil {
		return nil, nil, err
	}
	probes, err := krlFiles(filepath.Join(sd, "probes"), w, ca, otherCA)
	if err != nil {
		return nil, nil, err
	}
	r := &krlScaleResult{mix: mix.name, n: n, lines: len(w.ops),
		libKRL: filepath.Join(sd, "library.krl"), clKRL: filepath.Join(sd, "sshca.krl")}
	theirs := filepath.Join(sd, "ssh-keygen.krl")

	// The store import: once, outside the comparison, bounded in time.
	home := filepath.Join(homes, fmt.Sprint(n)+mix.name)
	defer os.RemoveAll(home)
	if _, err := krlExec(ctx, b.cmdLimit, nil, o.SSHCA, "--home", home, "init"); err != nil {
		return nil, nil, err
	}
	o.logf("krl: importing %d spec lines into the store", len(w.ops))
	p, err := krlExec(ctx, b.importLimit, nil, o.SSHCA, "--home", home, "revoke", "--spec", spec, "--spec-ca", caPub, "--reason", "bench")
	r.importTime, r.importRSS = p.elapsed, p.maxRSS
	switch {
	case err == nil:
		r.imported = true
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	default:
		r.importErr = err.Error()
		o.logf("krl: import: %v", err)
	}

	var ours []byte
	r.rounds, err = krlRounds(ctx, b, func() error {
		os.Remove(theirs)
		p, err := krlExec(ctx, b.cmdLimit, nil, o.Keygen, "-q", "-k", "-f", theirs, "-s", caPub, spec)
		if err != nil {
			return err
		}
		r.keygen = append(r.keygen, p.elapsed)
		r.keygenRSS = max(r.keygenRSS, p.maxRSS)

		start := time.Now()
		if ours, err = w.build(ca.PublicKey()); err != nil {
			return err
		}
		r.lib = append(r.lib, time.Since(start))

		start = time.Now()
		fromSpec, err := krlFromSpec(spec, ca.PublicKey())
		if err != nil {
			return err
		}
		r.libSpec = append(r.libSpec, time.Since(start))
		if len(fromSpec) != len(ours) {
			return fmt.Errorf("KRL from the spec file has %d bytes, from the revocations %d", len(fromSpec), len(ours))
		}

		if r.imported {
			p, err := krlExec(ctx, b.cmdLimit, nil, o.SSHCA, "--home", home, "krl", "--out", r.clKRL)
			if err != nil {
				return err
			}
			r.cl = append(r.cl, p.elapsed)
			r.clRSS = max(r.clRSS, p.maxRSS)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(r.libKRL, ours, 0o644); err != nil {
		return nil, nil, err
	}
	r.libSize = len(ours)
	theirData, err := os.ReadFile(theirs)
	if err != nil {
		return nil, nil, err
	}
	r.keygenSize = len(theirData)
	clComment := 0
	if r.imported {
		data, err := os.ReadFile(r.clKRL)
		if err != nil {
			return nil, nil, err
		}
		k, err := krl.Parse(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", r.clKRL, err)
		}
		r.clSize, clComment = len(data), len(k.Comment)
	}

	// Loadability and verdicts: OpenSSH is the oracle.
	name := r.label()
	r.keygenLoads = krlLoads(ctx, o, b.cmdLimit, theirs, probes)
	why := krlLoads(ctx, o, b.cmdLimit, r.libKRL, probes)
	sec.Checks = append(sec.Checks, check{Name: name + ": OpenSSH loads sshca's KRL (library) and agrees on every probe",
		OK: why == "", Detail: krlWhy(why, len(probes))})
	if r.imported {
		why := krlLoads(ctx, o, b.cmdLimit, r.clKRL, probes)
		sec.Checks = append(sec.Checks, check{Name: name + ": OpenSSH loads the KRL `sshca krl` wrote and agrees on every probe",
			OK: why == "", Detail: krlWhy(why, len(probes))})
	}
	sizeCheck := check{Name: name + ": sshca's KRL is never larger than ssh-keygen's", OK: true}
	switch {
	case r.keygenLoads != "":
		sizeCheck.Detail = fmt.Sprintf("ssh-keygen's KRL does not load in OpenSSH (%s); sshca %d B, ssh-keygen %d B", r.keygenLoads, r.libSize, r.keygenSize)
	default:
		sizeCheck.OK = r.libSize <= r.keygenSize
		sizeCheck.Detail = fmt.Sprintf("library %s B, ssh-keygen %s B", krlGroup(int64(r.libSize)), krlGroup(int64(r.keygenSize)))
		if r.imported {
			// `sshca krl` names the CA in the comment, which ssh-keygen
			// leaves empty; compare the revocations, not the comment.
			sizeCheck.OK = sizeCheck.OK && r.clSize-clComment <= r.keygenSize
			sizeCheck.Detail += fmt.Sprintf(", `sshca krl` %s B of which %d B comment", krlGroup(int64(r.clSize)), clComment)
		}
	}
	sec.Checks = append(sec.Checks, sizeCheck)

	// Rows.
	kg := r.keygen.median()
	rel := func(t krlTimes) string { return fmt.Sprintf("%.1f×", float64(kg)/float64(t.median())) }
	serials, lines := krlGroup(int64(n)), krlGroup(int64(r.lines))
	if mix.name != "" {
		serials += " (" + mix.name + ")"
	}
	keygenSize := krlGroup(int64(r.keygenSize)) + " B"
	if r.keygenLoads != "" {
		keygenSize += " (does not load)"
	}
	sec.Rows = append(sec.Rows,
		[]string{serials, lines, "`ssh-keygen -k` (process)", krlDur(kg), "1×", keygenSize, krlMiB(r.keygenRSS)},
		[]string{serials, lines, "sshca library: build + Marshal (in-process)", krlDur(r.lib.median()), rel(r.lib), krlGroup(int64(r.libSize)) + " B", "—"},
		[]string{serials, lines, "sshca library: ParseSpec + Apply + Marshal of the spec file", krlDur(r.libSpec.median()), rel(r.libSpec), krlGroup(int64(r.libSize)) + " B", "—"})
	if r.imported {
		sec.Rows = append(sec.Rows,
			[]string{serials, lines, "`sshca krl --out` (process, from the store)", krlDur(r.cl.median()), rel(r.cl), krlGroup(int64(r.clSize)) + " B", krlMiB(r.clRSS)},
			[]string{serials, lines, fmt.Sprintf("(setup) `sshca revoke --spec`: %s lines/s", krlGroup(int64(float64(r.lines)/r.importTime.Seconds()))), krlDur(r.importTime), "—", "—", krlMiB(r.importRSS)})
	} else {
		sec.Rows = append(sec.Rows,
			[]string{serials, lines, "`sshca krl --out` (process, from the store)", "not measured", "—", "—", "—"},
			[]string{serials, lines, "(setup) `sshca revoke --spec`", fmt.Sprintf("> %s (stopped)", krlDur(r.importTime)), "—", "—", krlMiB(r.importRSS)})
	}
	return r, w, nil
}

func krlWhy(why string, n int) string {
	if why == "" {
		return fmt.Sprintf("ssh-keygen -Q on %d probes (revoked: scattered, CI-batch and range serials, key ID, explicit key, hash, certificate over a revoked key; not revoked: batch gap, after a range, another CA, unrevoked serial/ID/key)", n)
	}
	return why
}

func krlGenNotes(b krlBounds, rs []*krlScaleResult, onTmpfs bool) []string {
	rounds := make([]string, len(rs))
	for i, r := range rs {
		rounds[i] = fmt.Sprintf("%s: %d", r.label(), r.rounds)
	}
	notes := []string{
		"Workload (seeded, the same in every run): of the revoked serials, 15% scattered single serials below 2^40 " +
			"(people who left), 35% in CI batches (runs of 100–1000 serials, about 75% of them revoked, written as maximal " +
			"`serial: A-B` runs, batches 5,000–20,000 apart), 50% in 45 long ranges (compromised issuing windows); plus " +
			"1 key ID per 100 serials, and max(10, n/10^4) plain keys revoked by `key:` and as many by `hash: SHA256:...`. " +
			"Lines are shuffled, as a file appended over the years would be. The spec file is written once, outside the timers, " +
			"and is the input of both `ssh-keygen -k -s ca.pub` and `sshca revoke --spec FILE --spec-ca ca.pub`. " +
			fmt.Sprintf("In long mode the largest size also runs the two extremes: %s (%d%% scattered, %d%% in batches, the rest in "+
				"the long ranges) and %s (%d%%, %d%%, the rest in ranges).", krlRangeHeavy.name, krlRangeHeavy.scatter, krlRangeHeavy.batch,
				krlScatterHeavy.name, krlScatterHeavy.scatter, krlScatterHeavy.batch),
		fmt.Sprintf("Each round runs every tool once in turn, so that they share the machine's noise; a cell is the median over "+
			"the rounds (at most %d, no new round after %s; rounds per scale: %s). Process times include start-up and "+
			"exit; peak RSS is the process's ru_maxrss. The library rows build the same revocations in-process and write "+
			"byte-for-byte what ssh-keygen writes (the file row also parses the spec, as ssh-keygen does). `sshca krl` reads "+
			"the revocations from the SQLite store (imported once by `sshca revoke --spec`, outside the comparison), builds, "+
			"self-checks (decodes and re-encodes) and writes the KRL atomically.", b.reps, b.budget, strings.Join(rounds, ", ")),
	}
	if onTmpfs {
		notes = append(notes, "The sshca homes (SQLite store) are on tmpfs (/dev/shm), to keep disk noise out of the "+
			"one-off import: `sshca revoke --spec` records the spec 10,000 lines per transaction, each line with its own "+
			"audit entry, and with synchronous=FULL on a disk every commit waits for an fsync. `sshca krl` only reads the "+
			"store, from the page cache in either case; the KRL files are written to the ordinary scratch directory.")
	}
	for _, r := range rs {
		if r.keygenLoads != "" {
			notes = append(notes, fmt.Sprintf("At %s serials, ssh-keygen's own KRL does not load in OpenSSH: %s.", r.label(), r.keygenLoads))
		}
		if !r.imported {
			notes = append(notes, fmt.Sprintf("At %s serials the store import (`sshca revoke --spec`, %s lines) did not finish within %s, "+
				"so `sshca krl` was not measured at this size: %s.", r.label(), krlGroup(int64(r.lines)), b.importLimit, r.importErr))
		}
	}
	notes = append(notes, "Load average at the end of the generation runs: "+loadAvg()+".")
	return notes
}

// krlCheckSection measures `sshca krl check --krl F` against
// `ssh-keygen -Q -f F` on the largest KRL, for one file and for a batch.
func krlCheckSection(ctx context.Context, o *options, b krlBounds, dir string, r *krlScaleResult, w *krlWorkload, ca ssh.Signer) (section, error) {
	kpath, which := r.clKRL, "written by `sshca krl`"
	if !r.imported {
		kpath, which = r.libKRL, "built by the sshca library"
	}
	batch, err := krlBatch(filepath.Join(dir, "batch"), w, ca, 100)
	if err != nil {
		return section{}, err
	}
	// One file: a valid certificate, the common case.
	one := batch[1:2]
	sec := section{
		Title: "KRL check: `sshca krl check` against `ssh-keygen -Q`",
		Command: "sshca krl check --krl KRL FILE...\n" +
			"ssh-keygen -Q -f KRL FILE...",
		Header: []string{"KRL", "files per invocation", "`ssh-keygen -Q`", "`sshca krl check`", "sshca ÷ ssh-keygen (time)"},
	}
	agree := ""
	for _, set := range [][]krlProbe{one, batch} {
		var kg, sc krlTimes
		var kgOut, scOut []byte
		args := krlPaths(set)
		rounds, err := krlRounds(ctx, b, func() error {
			p, err := krlExec(ctx, b.cmdLimit, []int{0, 1}, o.Keygen, append([]string{"-Q", "-f", kpath}, args...)...)
			if err != nil {
				return err
			}
			kg, kgOut = append(kg, p.elapsed), p.stdout
			p, err = krlExec(ctx, b.cmdLimit, []int{0, 1}, o.SSHCA, append([]string{"krl", "check", "--krl", kpath}, args...)...)
			if err != nil {
				return err
			}
			sc, scOut = append(sc, p.elapsed), p.stdout
			return nil
		})
		if err != nil {
			return section{}, err
		}
		if why := krlCompare(kgOut, set); why != "" {
			agree += "ssh-keygen -Q: " + why + "; "
		}
		if why := krlCompare(scOut, set); why != "" {
			agree += "sshca krl check: " + why + "; "
		}
		sec.Rows = append(sec.Rows, []string{
			fmt.Sprintf("%s serials, %s B", r.label(), krlGroup(int64(max(r.clSize, r.libSize)))),
			fmt.Sprint(len(set)),
			krlDur(kg.median()), krlDur(sc.median()),
			fmt.Sprintf("%.2f× (%d rounds)", float64(sc.median())/float64(kg.median()), rounds)})
	}
	sec.Checks = append(sec.Checks, check{Name: "`sshca krl check` and `ssh-keygen -Q` agree with the expected verdicts on 100 certificates",
		OK: agree == "", Detail: signErrDetail(errorsFromString(agree), "50 revoked, 50 not, one invocation each")})
	sec.Notes = append(sec.Notes,
		fmt.Sprintf("The KRL is the largest one of the generation table (%s). The single file is a valid (unrevoked) "+
			"certificate; the batch is 100 certificates of the KRL's CA, half of them with revoked serials. "+
			"Times are per invocation (process start, loading the KRL, checking, exit), the median over the rounds, "+
			"both tools in turn in every round. Below 1× sshca is faster.", which),
		"Load average at the end of the suite: "+loadAvg()+".")
	return sec, nil
}

func errorsFromString(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(strings.TrimSuffix(s, "; "))
}

// krlDur formats a duration with three significant digits.
func krlDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

// krlMiB formats a byte count in MiB.
func krlMiB(n int64) string {
	if n <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
