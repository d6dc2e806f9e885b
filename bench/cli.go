package main

// The cli suite: an operator certifying N keys offline (CI runners, a new
// team) with one `sshca sign user` invocation in batch mode, against what
// they would script instead: a loop of `ssh-keygen -s`, one process per key.
// ssh-keygen given all the keys in one invocation is reported too: it is
// faster still, but records no serial, no audit entry and nothing durably.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/home"
)

// cliTarget is issue 9's target: batch signing of 1,000 keys at least
// this many times faster than a loop of ssh-keygen -s; cliOneTarget is
// issue 17's: at least this many times faster than ssh-keygen -s given all
// the keys in one process.
const (
	cliTarget    = 100
	cliOneTarget = 5
)

// cliPolicy is the policy of the suite's home: what ssh-keygen -s grants by
// default (all five permit-* extensions), one principal, at most an hour.
const cliPolicy = `backdate: 5m
roles:
  bench:
    type: user
    principals: [bench]
    default_ttl: 1h
    max_ttl: 1h
    extensions: [permit-X11-forwarding, permit-agent-forwarding, permit-port-forwarding, permit-pty, permit-user-rc]
`

const cliPrincipal = "bench"

// cliMode is the size of one mode.
type cliMode struct {
	keys   int           // N
	rounds int           // timed runs of each one-invocation form (the median is reported)
	limit  time.Duration // any one process
}

func cliBounds(o *options) cliMode {
	if o.Short {
		return cliMode{keys: 100, rounds: 1, limit: time.Minute}
	}
	return cliMode{keys: 1000, rounds: 3, limit: 2 * time.Minute}
}

// cliRun is one timed form.
type cliRun struct {
	tool    string
	times   krlTimes
	certDir []string // where each round's certificates are (sshca rows)
}

func runCLI(ctx context.Context, o *options) ([]section, error) {
	secs, err := cliCompare(ctx, o, "")
	if err != nil || o.Short {
		return secs, err
	}
	// The same comparison with one core kept busy by another process, as on a
	// machine that does other work.
	hog := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
	if err := hog.Start(); err != nil {
		return nil, fmt.Errorf("cli: start the CPU hog: %w", err)
	}
	defer func() { hog.Process.Kill(); hog.Wait() }()
	more, err := cliCompare(ctx, o, " (another process keeps one core busy)")
	return append(secs, more...), err
}

// cliCompare runs the comparison once; title ends the section's title.
func cliCompare(ctx context.Context, o *options, title string) ([]section, error) {
	m := cliBounds(o)
	root := filepath.Join(o.Work, "cli")
	if title != "" {
		root += "-loaded"
	}
	homeDir := filepath.Join(root, "home")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	if _, err := cliExec(ctx, m.limit, "", o.SSHCA, "--home", homeDir, "init"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(homeDir, home.ConfigFile), []byte(cliPolicy), 0o600); err != nil {
		return nil, err
	}
	caKey := filepath.Join(homeDir, home.KeyDir, "user-ca-1")
	caPub, err := cliReadPub(caKey + ".pub")
	if err != nil {
		return nil, fmt.Errorf("user CA key: %w", err)
	}

	// The subject keys, once, outside the timers; every timed run gets its
	// own copy of them so that every tool writes new certificate files.
	o.logf("cli: %d subject keys", m.keys)
	subjects := make([][]byte, m.keys)
	for i := range subjects {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			return nil, err
		}
		subjects[i] = ssh.MarshalAuthorizedKey(sp)
	}
	origDir := filepath.Join(root, "keys")
	if err := os.Mkdir(origDir, 0o700); err != nil {
		return nil, err
	}
	for i, b := range subjects {
		if err := os.WriteFile(filepath.Join(origDir, fmt.Sprintf("id_%04d.pub", i)), b, 0o644); err != nil {
			return nil, err
		}
	}
	n := 0
	keyDir := func() ([]string, string, error) {
		n++
		dir := filepath.Join(root, fmt.Sprintf("keys-%d", n))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, "", err
		}
		paths := make([]string, len(subjects))
		for i := range subjects {
			// Hard links: the copies cost the filesystem no inodes.
			name := fmt.Sprintf("id_%04d.pub", i)
			paths[i] = filepath.Join(dir, name)
			if err := os.Link(filepath.Join(origDir, name), paths[i]); err != nil {
				return nil, "", err
			}
		}
		// Nobody's timer pays for the writeback of the setup.
		syscall.Sync()
		return paths, dir, nil
	}

	// Warm up both binaries (page cache, CA key) on a key of their own.
	warm, _, err := keyDir()
	if err != nil {
		return nil, err
	}
	if _, err := cliExec(ctx, m.limit, "", o.SSHCA, "--home", homeDir, "sign", "user", "--role", "bench", "--id", "warm-up", warm[0]); err != nil {
		return nil, err
	}
	if _, err := cliExec(ctx, m.limit, "", o.Keygen, "-q", "-s", caKey, "-I", "warm-up", "-n", cliPrincipal, "-V", "-5m:+1h", "-z", "1", warm[1]); err != nil {
		return nil, err
	}

	sshcaArgs := []string{"--home", homeDir, "sign", "user", "--role", "bench", "--id", "bench"}
	var outputs [][]byte // every sshca stdout, to check
	var floor krlTimes   // creating N empty files, per round
	runs := []*cliRun{
		{tool: "`ssh-keygen -s`, one process per key"},
		{tool: "`ssh-keygen -s`, all keys in one process"},
		{tool: "`sshca sign user KEY...` (keys as arguments)"},
		{tool: "`sshca sign user --keys-from -` (list on stdin)"},
	}

	// The loop, as an operator would script it.
	o.logf("cli: ssh-keygen loop of %d", m.keys)
	keys, _, err := keyDir()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for i, k := range keys {
		if _, err := cliExec(ctx, m.limit, "", o.Keygen, "-q", "-s", caKey, "-I", "bench", "-n", cliPrincipal,
			"-V", "-5m:+1h", "-z", strconv.Itoa(1_000_000+i), k); err != nil {
			return nil, err
		}
	}
	runs[0].times = append(runs[0].times, time.Since(start))
	loopCerts := cliCountCerts(keys)

	for r := range m.rounds {
		o.logf("cli: round %d of %d", r+1, m.rounds)
		// ssh-keygen, every key in one process (-z +N: one serial each).
		keys, _, err := keyDir()
		if err != nil {
			return nil, err
		}
		args := append([]string{"-q", "-s", caKey, "-I", "bench", "-n", cliPrincipal, "-V", "-5m:+1h", "-z", "+2000000"}, keys...)
		p, err := cliExec(ctx, m.limit, "", o.Keygen, args...)
		if err != nil {
			return nil, err
		}
		runs[1].times = append(runs[1].times, p.elapsed)
		if got := cliCountCerts(keys); got != len(keys) {
			return nil, fmt.Errorf("ssh-keygen with %d keys wrote %d certificates", len(keys), got)
		}

		// sshca, keys as arguments.
		keys, dir, err := keyDir()
		if err != nil {
			return nil, err
		}
		p, err = cliExec(ctx, m.limit, "", o.SSHCA, append(sshcaArgs, keys...)...)
		if err != nil {
			return nil, err
		}
		runs[2].times = append(runs[2].times, p.elapsed)
		runs[2].certDir = append(runs[2].certDir, dir)
		outputs = append(outputs, p.stdout)

		// sshca, the list on stdin.
		keys, dir, err = keyDir()
		if err != nil {
			return nil, err
		}
		p, err = cliExec(ctx, m.limit, strings.Join(keys, "\n")+"\n", o.SSHCA, append(sshcaArgs, "--keys-from", "-")...)
		if err != nil {
			return nil, err
		}
		runs[3].times = append(runs[3].times, p.elapsed)
		runs[3].certDir = append(runs[3].certDir, dir)
		outputs = append(outputs, p.stdout)

		// The floor of any tool that writes N certificate files.
		_, dir, err = keyDir()
		if err != nil {
			return nil, err
		}
		d, err := cliCreateFiles(dir, m.keys)
		if err != nil {
			return nil, err
		}
		floor = append(floor, d)
	}

	sec := section{
		Title:   fmt.Sprintf("Batch signing on the command line: %s keys%s", krlGroup(int64(m.keys)), title),
		Command: "go run ./bench -suite cli",
		Header:  []string{"tool", "keys", "wall time", "certs/s", "vs the ssh-keygen loop"},
	}
	loop := runs[0].times.median()
	for _, r := range runs {
		med := r.times.median()
		label := r.tool
		if len(r.times) > 1 {
			label += fmt.Sprintf(" (median of %d)", len(r.times))
		}
		sec.Rows = append(sec.Rows, []string{label, krlGroup(int64(m.keys)), cliDur(med),
			signRate(float64(m.keys) / med.Seconds()), fmt.Sprintf("%.1f×", loop.Seconds()/med.Seconds())})
	}

	// Correctness of everything sshca wrote.
	var dirs []string
	for _, r := range runs[2:] {
		dirs = append(dirs, r.certDir...)
	}
	sec.Checks = append(sec.Checks, cliVerify(o, caPub, subjects, dirs, outputs))
	sec.Checks = append(sec.Checks, check{Name: "the ssh-keygen loop certified every key", OK: loopCerts == m.keys,
		Detail: fmt.Sprintf("%d of %d certificates written", loopCerts, m.keys)})
	_, err = cliExec(ctx, m.limit, "", o.SSHCA, "--home", homeDir, "audit", "verify")
	sec.Checks = append(sec.Checks, check{Name: "audit log intact after the batches", OK: err == nil,
		Detail: signErrDetail(err, "`sshca audit verify` passes")})
	best := runs[2].times.median()
	ratio := loop.Seconds() / best.Seconds()
	sec.Checks = append(sec.Checks, check{
		Name: fmt.Sprintf("batch CLI signing of %s keys ≥ %d× faster than a loop of `ssh-keygen -s`", krlGroup(int64(m.keys)), cliTarget),
		OK:   ratio >= cliTarget, Timing: true,
		Detail: fmt.Sprintf("%.1f× (%s against %s)", ratio, cliDur(best), cliDur(loop)),
	})

	one := runs[1].times.median()
	sec.Checks = append(sec.Checks, check{
		Name: fmt.Sprintf("batch CLI signing of %s keys ≥ %d× faster than `ssh-keygen -s` given every key in one process", krlGroup(int64(m.keys)), cliOneTarget),
		OK:   one.Seconds() >= cliOneTarget*best.Seconds(), Timing: true,
		Detail: fmt.Sprintf("%.2f× (%s against %s)", one.Seconds()/best.Seconds(), cliDur(best), cliDur(one)),
	})

	var rounds []string
	for _, r := range runs[1:] {
		rounds = append(rounds, r.tool+": "+cliDurs(r.times))
	}
	sec.Notes = append(sec.Notes,
		fmt.Sprintf("Wall time of whole processes, start-up and exit included, over %s fresh ed25519 subject keys "+
			"(each timed run gets its own hard-linked copy, so every tool writes new `<key>-cert.pub` files beside "+
			"them; dirty data is written back with sync(2) before each). The CA is an ed25519 key made by `sshca init`, "+
			"unencrypted, which ssh-keygen reads from the home's keys/ directory. ssh-keygen runs as "+
			"`ssh-keygen -q -s CA -I bench -n %s -V -5m:+1h -z SERIAL KEY.pub` (with `-z +SERIAL` and every key "+
			"in the one-process row); sshca as `sshca sign user --role bench --id bench` under a role that grants "+
			"the same principal, lifetime and extensions. The loop runs once; the one-process forms run %d time(s), "+
			"in turn, and report the median.", krlGroup(int64(m.keys)), cliPrincipal, m.rounds),
		fmt.Sprintf("sshca does more per certificate than ssh-keygen: it checks each key and the policy, reserves the "+
			"serials durably in one block, records every certificate and its hash-chained audit entry in one SQLite "+
			"transaction, and makes the certificate files durable (temp files, one syncfs, a rename each, one "+
			"directory fsync); ssh-keygen records nothing and syncs nothing. Against ssh-keygen given every key in "+
			"one process, the sshca batch takes %.2f× its time. The target compares with the loop, the way "+
			"single-key tools are scripted.", best.Seconds()/runs[1].times.median().Seconds()),
		fmt.Sprintf("The floor: creating %s empty files beside the keys (open O_CREAT|O_EXCL and close, nothing "+
			"else, in this process) took %s (median; rounds %s), %.0f%% of the sshca batch's time. On a filesystem "+
			"where creating a file is slow, that floor, not signing, bounds every batch.",
			krlGroup(int64(m.keys)), cliDur(floor.median()), cliDurs(floor), 100*floor.median().Seconds()/best.Seconds()),
		"Rounds: "+strings.Join(rounds, "; ")+". Load average at the end of the suite: "+loadAvg()+".")
	return []section{sec}, nil
}

// cliVerify checks every certificate sshca wrote: it parses, is a user
// certificate for its subject key signed by the user CA with a valid
// signature, carries exactly the role's principal, and has a serial no
// other certificate has; each stdout has a line per certificate and a
// summary; and OpenSSH reads a sample.
func cliVerify(o *options, caPub ssh.PublicKey, subjects [][]byte, dirs []string, outputs [][]byte) check {
	name := "every sshca certificate verifies"
	fail := func(format string, a ...any) check {
		return check{Name: name, Detail: fmt.Sprintf(format, a...)}
	}
	for _, out := range outputs {
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(lines) != len(subjects)+1 || !strings.HasPrefix(lines[len(lines)-1], "Signed ") {
			return fail("sshca printed %d lines for %d keys", len(lines), len(subjects))
		}
	}
	serials := map[uint64]bool{}
	total := 0
	for _, dir := range dirs {
		for i, sub := range subjects {
			path := filepath.Join(dir, fmt.Sprintf("id_%04d-cert.pub", i))
			pub, err := cliReadPub(path)
			if err != nil {
				return fail("%s: %v", filepath.Base(path), err)
			}
			c, ok := pub.(*ssh.Certificate)
			if !ok {
				return fail("%s is not a certificate", filepath.Base(path))
			}
			want, _, _, _, _ := ssh.ParseAuthorizedKey(sub)
			cc := ssh.CertChecker{Clock: func() time.Time { return time.Unix(int64(c.ValidAfter)+1, 0) }}
			switch {
			case c.CertType != ssh.UserCert:
				return fail("%s: type %d, want a user certificate", filepath.Base(path), c.CertType)
			case !bytes.Equal(c.SignatureKey.Marshal(), caPub.Marshal()):
				return fail("%s: not signed by the user CA", filepath.Base(path))
			case !bytes.Equal(c.Key.Marshal(), want.Marshal()):
				return fail("%s: certifies another key", filepath.Base(path))
			case !slices.Equal(c.ValidPrincipals, []string{cliPrincipal}):
				return fail("%s: principals %v, want [%s]", filepath.Base(path), c.ValidPrincipals, cliPrincipal)
			case c.Serial == 0 || serials[c.Serial]:
				return fail("%s: serial %d is 0 or repeated", filepath.Base(path), c.Serial)
			}
			if err := cc.CheckCert(cliPrincipal, c); err != nil {
				return fail("%s: %v", filepath.Base(path), err)
			}
			serials[c.Serial] = true
			total++
		}
	}
	if len(dirs) == 0 {
		return fail("no sshca run to check")
	}
	for _, i := range []int{0, len(subjects) - 1} {
		path := filepath.Join(dirs[0], fmt.Sprintf("id_%04d-cert.pub", i))
		if out, err := exec.Command(o.Keygen, "-L", "-f", path).CombinedOutput(); err != nil {
			return fail("ssh-keygen -L %s: %v: %s", filepath.Base(path), err, bytes.TrimSpace(out))
		}
	}
	return check{Name: name, OK: true, Detail: fmt.Sprintf("%s certificates: signature, user CA, subject key, principal [%s], "+
		"distinct serials; one stdout line each; ssh-keygen -L reads a sample", krlGroup(int64(total)), cliPrincipal)}
}

// cliExec runs a command with stdin and a time limit (start-up and exit
// included in the time).
func cliExec(ctx context.Context, limit time.Duration, stdin, name string, args ...string) (krlProc, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = krlEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	p := krlProc{elapsed: time.Since(start), stdout: stdout.Bytes()}
	if ctx.Err() != nil {
		return p, fmt.Errorf("%s %s: stopped after %s: %w", filepath.Base(name), strings.Join(krlShort(args), " "), limit, ctx.Err())
	}
	if err != nil {
		return p, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(krlShort(args), " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return p, nil
}

// cliReadPub parses a one-line public key or certificate file.
func cliReadPub(path string) (ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil, errors.New("not a public key or certificate")
	}
	return pub, nil
}

// cliCountCerts counts the <key>-cert.pub files beside keys.
func cliCountCerts(keys []string) int {
	n := 0
	for _, k := range keys {
		if _, err := os.Stat(strings.TrimSuffix(k, ".pub") + "-cert.pub"); err == nil {
			n++
		}
	}
	return n
}

// cliDur formats a wall time: ms below 10 s, else seconds.
func cliDur(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func cliDurs(ts krlTimes) string {
	var out []string
	for _, t := range ts {
		out = append(out, cliDur(t))
	}
	return strings.Join(out, ", ")
}

// cliCreateFiles times creating n empty files in dir with bare system calls.
func cliCreateFiles(dir string, n int) (time.Duration, error) {
	start := time.Now()
	for i := range n {
		fd, err := syscall.Open(filepath.Join(dir, fmt.Sprintf("empty_%04d", i)), syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return 0, fmt.Errorf("create file: %w", err)
		}
		syscall.Close(fd)
	}
	return time.Since(start), nil
}
