package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/opensshtest"
)

// Paths of the clients, as Debian installs them. The pyenv python3 that
// may come first on PATH has no paramiko; Debian's has.
const (
	pythonPath   = "/usr/bin/python3"
	rubyPath     = "/usr/bin/ruby"
	plinkPath    = "/usr/bin/plink"
	puttygenPath = "/usr/bin/puttygen"

	paramikoScript = "clients/paramiko_login.py"
	netsshScript   = "clients/netssh_login.rb"
)

const (
	loginTimeout = 15 * time.Second
	// batchTimeout bounds one interpreter run over many logins.
	batchTimeout = 3 * time.Minute
	// processWorkers is how many ssh or plink processes run at once.
	processWorkers = 3
)

// job is one login attempt of one matrix cell.
type job struct {
	cell       cellKey
	host       string
	port       int
	user       string
	keyPath    string // OpenSSH private key of the subject
	pemPath    string // the same key in PEM format; "" for ed25519
	keyKind    string // "ed25519", "ecdsa" or "rsa"
	ppkPath    string // the same key for PuTTY
	certPath   string // the certificate, authorized-keys format
	signer     ssh.Signer
	cert       *ssh.Certificate
	knownHosts string        // known_hosts: pinned host key or @cert-authority line
	hostKey    ssh.PublicKey // pinned host key; nil in the host direction
	hostCA     ssh.PublicKey // trusted host CA in the host direction
}

// result is the outcome of one job; err is the client's own message.
type result struct {
	ok  bool
	err string
}

// client is one SSH implementation under test.
type client struct {
	name string
	// pkg is the Debian package that provides it ("" for Go).
	pkg string
	// pemKeys gives the client RSA and ECDSA subject keys in PEM format
	// rather than ssh-keygen's default OpenSSH format, which it cannot
	// read; the keyfile direction still tries the OpenSSH format.
	pemKeys bool
	// missing returns why the client cannot run here, or "".
	missing func() string
	// version describes the client's version.
	version func() string
	// run performs the jobs and returns one result per job, in order.
	// An error means the client could not be run at all, not a refusal.
	run func(ctx context.Context, work string, jobs []job) ([]result, error)
}

// clients returns the clients in the order of the matrix columns: the ssh
// of every OpenSSH release, then the others.
func clients(releases []*opensshtest.Flavour) []client {
	var out []client
	for _, f := range releases {
		c := client{name: f.Name, missing: needFiles(f.SSH), version: opensshVersion(f), run: runOpenSSH(f.SSH)}
		if !f.Built {
			c.pkg = "openssh-client"
		}
		out = append(out, c)
	}
	return append(out, []client{
		{name: "go-x-crypto", missing: func() string { return "" }, version: goVersion, run: runGo},
		{name: "paramiko", pkg: "python3-paramiko", missing: paramikoMissing, version: paramikoVersion, run: runParamiko},
		{name: "net-ssh", pkg: "ruby-net-ssh", pemKeys: true, missing: netsshMissing, version: netsshVersion, run: runNetSSH},
		{name: "plink", pkg: "putty-tools", missing: needFiles(plinkPath, puttygenPath), version: plinkVersion, run: runPlink},
	}...)
}

func needFiles(paths ...string) func() string {
	return func() string {
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				return err.Error()
			}
		}
		return ""
	}
}

func paramikoMissing() string {
	if why := needFiles(pythonPath)(); why != "" {
		return why
	}
	if out, err := exec.Command(pythonPath, "-c", "import paramiko").CombinedOutput(); err != nil {
		return fmt.Sprintf("%s cannot import paramiko (install python3-paramiko): %v: %s", pythonPath, err, bytes.TrimSpace(out))
	}
	return ""
}

func netsshMissing() string {
	if why := needFiles(rubyPath)(); why != "" {
		return why
	}
	// ed25519 and bcrypt_pbkdf are what net-ssh needs for ed25519 keys;
	// without them every ed25519 cell would fail for a reason of this
	// machine, not of net-ssh.
	for _, lib := range []string{"net/ssh", "ed25519", "bcrypt_pbkdf"} {
		if out, err := exec.Command(rubyPath, "-e", "require "+strconv.Quote(lib)).CombinedOutput(); err != nil {
			return fmt.Sprintf("ruby cannot require %q (install ruby-net-ssh, ruby-ed25519, ruby-bcrypt-pbkdf): %v: %s", lib, err, bytes.TrimSpace(out))
		}
	}
	return ""
}

// opensshVersion describes an OpenSSH release as a client.
func opensshVersion(f *opensshtest.Flavour) func() string {
	return func() string {
		if f.Built {
			return f.Release + " (built from the upstream source by internal/opensshtest)"
		}
		return f.Release
	}
}

// goModPath is the module's go.mod, which pins the x/crypto the test runs.
const goModPath = "../../go.mod"

func goVersion() string {
	v := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "golang.org/x/crypto" {
				v = d.Version
			}
		}
	}
	if v == "" {
		// Test binaries may carry no dependency list; go.mod says it.
		if b, err := os.ReadFile(goModPath); err == nil {
			if m := regexp.MustCompile(`(?m)^\s*golang\.org/x/crypto\s+(v\S+)`).FindSubmatch(b); m != nil {
				v = string(m[1])
			}
		}
	}
	if v == "" {
		v = "(version unknown)"
	}
	return "golang.org/x/crypto " + v + ", " + runtime.Version()
}

func paramikoVersion() string { return commandOutput(pythonPath, paramikoScript, "--version") }

func netsshVersion() string { return commandOutput(rubyPath, netsshScript, "--version") }

func plinkVersion() string {
	first, _, _ := strings.Cut(commandOutput(plinkPath, "-V"), "\n")
	return "PuTTY plink " + strings.TrimPrefix(strings.TrimSpace(first), "plink: Release ")
}

// forEach runs f over the jobs with a few workers and collects the results.
func forEach(jobs []job, workers int, f func(i int, j job) result) []result {
	out := make([]result, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = f(i, jobs[i])
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// containsMarker reports whether a login's output proves the command ran.
func containsMarker(out string) bool { return strings.Contains(out, loginMarker) }

// runProcess runs one client process for one login and turns its outcome
// into a result whose error is the client's stderr.
func runProcess(ctx context.Context, env []string, dir, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(ctx, loginTimeout+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	msg := joinLines(stderr.String())
	switch {
	case ctx.Err() != nil:
		return result{err: strings.TrimSpace(msg + " / timed out after " + (loginTimeout + 5*time.Second).String())}
	case err == nil && containsMarker(stdout.String()):
		return result{ok: true}
	case err == nil:
		return result{err: strings.TrimSpace(msg + " / exit 0 without the login marker")}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if msg == "" {
			msg = fmt.Sprintf("exit status %d, no message", ee.ExitCode())
		}
		return result{err: msg}
	}
	return result{err: err.Error()}
}

// joinLines turns a multi-line message into one line.
func joinLines(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " / ")
}

// runOpenSSH runs the ssh program at path.
func runOpenSSH(path string) func(ctx context.Context, work string, jobs []job) ([]result, error) {
	return func(ctx context.Context, work string, jobs []job) ([]result, error) {
		return runOpenSSHJobs(ctx, work, path, jobs)
	}
}

func runOpenSSHJobs(ctx context.Context, work, path string, jobs []job) ([]result, error) {
	return forEach(jobs, processWorkers, func(_ int, j job) result {
		args := []string{
			"-F", "/dev/null", "-T",
			"-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=yes",
			"-o", "UserKnownHostsFile=" + j.knownHosts,
			"-o", "GlobalKnownHostsFile=/dev/null",
			"-o", "UpdateHostKeys=no",
			"-o", "CheckHostIP=no",
			"-o", "PreferredAuthentications=publickey",
			"-o", "IdentitiesOnly=yes",
			"-o", "ConnectTimeout=5",
			"-i", j.keyPath,
			"-o", "CertificateFile=" + j.certPath,
			"-p", strconv.Itoa(j.port), "-l", j.user, "--", j.host, "echo " + loginMarker,
		}
		return runProcess(ctx, []string{"PATH=/usr/bin:/bin", "HOME=" + work}, work, path, args...)
	}), nil
}

func runGo(_ context.Context, _ string, jobs []job) ([]result, error) {
	return forEach(jobs, 1, func(_ int, j job) result {
		certSigner, err := ssh.NewCertSigner(j.cert, j.signer)
		if err != nil {
			return result{err: err.Error()}
		}
		var hk ssh.HostKeyCallback
		if j.hostCA != nil {
			ca := j.hostCA.Marshal()
			checker := &ssh.CertChecker{
				IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return bytes.Equal(auth.Marshal(), ca) },
			}
			hk = checker.CheckHostKey
		} else {
			hk = ssh.FixedHostKey(j.hostKey)
		}
		if err := goLogin(fmt.Sprintf("%s:%d", j.host, j.port), j.user, certSigner, hk); err != nil {
			return result{err: err.Error()}
		}
		return result{ok: true}
	}), nil
}

// scriptJob is what the paramiko and net-ssh scripts read.
type scriptJob struct {
	ID         int    `json:"id"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	User       string `json:"user"`
	Key        string `json:"key"`
	KeyType    string `json:"key_type"`
	Cert       string `json:"cert"`
	KnownHosts string `json:"known_hosts"`
	Command    string `json:"command"`
	Timeout    int    `json:"timeout"`
}

type scriptResult struct {
	ID     int    `json:"id"`
	OK     bool   `json:"ok"`
	Stdout string `json:"stdout"`
	Error  string `json:"error"`
}

// runScript hands every job to one interpreter process, which logs in
// once per job; starting Python or Ruby per login would cost more than the
// logins.
func runScript(ctx context.Context, work, interpreter, script string, jobs []job) ([]result, error) {
	in := make([]scriptJob, len(jobs))
	for i, j := range jobs {
		in[i] = scriptJob{ID: i, Host: j.host, Port: j.port, User: j.user, Key: j.keyPath, KeyType: j.keyKind,
			Cert: j.certPath, KnownHosts: j.knownHosts, Command: "echo " + loginMarker, Timeout: int(loginTimeout / time.Second)}
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, interpreter, script)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + work, "LANG=C.UTF-8"}
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v\n--- stderr\n%s", interpreter, script, err, stderr.String())
	}
	var out []scriptResult
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("%s %s: bad output: %v\n--- stdout\n%s\n--- stderr\n%s", interpreter, script, err, stdout.String(), stderr.String())
	}
	res := make([]result, len(jobs))
	seen := make([]bool, len(jobs))
	for _, r := range out {
		if r.ID < 0 || r.ID >= len(jobs) || seen[r.ID] {
			return nil, fmt.Errorf("%s: result for unknown or repeated job %d", script, r.ID)
		}
		seen[r.ID] = true
		switch {
		case r.OK && containsMarker(r.Stdout):
			res[r.ID] = result{ok: true}
		case r.OK:
			res[r.ID] = result{err: "login marker missing from output " + strconv.Quote(r.Stdout)}
		default:
			res[r.ID] = result{err: joinLines(r.Error)}
		}
	}
	for i, s := range seen {
		if !s {
			return nil, fmt.Errorf("%s: no result for job %d", script, i)
		}
	}
	return res, nil
}

func runParamiko(ctx context.Context, work string, jobs []job) ([]result, error) {
	return runScript(ctx, work, pythonPath, paramikoScript, jobs)
}

// runNetSSH lays every job's key out the way OpenSSH and Capistrano users
// have it, with the certificate beside the key as <key>-cert.pub, where
// net-ssh finds it. (Its keycerts option is not used: it cannot pair a
// certificate with an ECDSA key.)
func runNetSSH(ctx context.Context, work string, jobs []job) ([]result, error) {
	laid := make([]job, len(jobs))
	for i, j := range jobs {
		dir := filepath.Join(work, "net-ssh", strconv.Itoa(i))
		key, err := os.ReadFile(j.keyPath)
		if err != nil {
			return nil, err
		}
		cert, err := os.ReadFile(j.certPath)
		if err != nil {
			return nil, err
		}
		j.keyPath = filepath.Join(dir, "id")
		j.certPath = j.keyPath + "-cert.pub"
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(j.keyPath, key, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(j.certPath, cert, 0o644); err != nil {
			return nil, err
		}
		laid[i] = j
	}
	return runScript(ctx, work, rubyPath, netsshScript, laid)
}

// runPlink runs plink once per job, each with its own HOME so that PuTTY's
// host key cache and host CA list (~/.putty) hold exactly what the job
// trusts: a pinned fingerprint (-hostkey) or one host CA entry.
func runPlink(ctx context.Context, work string, jobs []job) ([]result, error) {
	return forEach(jobs, processWorkers, func(i int, j job) result {
		home := filepath.Join(work, "plink-home", strconv.Itoa(i))
		args := []string{"-ssh", "-batch", "-noagent", "-no-antispoof", "-T",
			"-P", strconv.Itoa(j.port), "-l", j.user, "-i", j.ppkPath, "-cert", j.certPath}
		if j.hostCA != nil {
			if err := writePuTTYHostCA(home, j.hostCA); err != nil {
				return result{err: "test setup: " + err.Error()}
			}
		} else {
			args = append(args, "-hostkey", ssh.FingerprintSHA256(j.hostKey))
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return result{err: "test setup: " + err.Error()}
		}
		args = append(args, j.host, "echo "+loginMarker)
		return runProcess(ctx, []string{"PATH=/usr/bin:/bin", "HOME=" + home}, home, plinkPath, args...)
	}), nil
}

// writePuTTYHostCA trusts ca for every host, the way PuTTY's "Configure host
// CAs" dialog stores it on Unix: ~/.putty/sshhostcas/NAME with key=value
// lines, the public key as base64 of its SSH wire blob.
func writePuTTYHostCA(home string, ca ssh.PublicKey) error {
	dir := filepath.Join(home, ".putty", "sshhostcas")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	body := fmt.Sprintf("PublicKey=%s\nValidity=*\nPermitRSASHA1=0\nPermitRSASHA256=1\nPermitRSASHA512=1\n",
		base64.StdEncoding.EncodeToString(ca.Marshal()))
	return os.WriteFile(filepath.Join(dir, "sshca-interop"), []byte(body), 0o600)
}
