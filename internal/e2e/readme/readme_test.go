// Package readme runs the README's walk-through as a user pastes it, so
// that it cannot rot: the sh blocks of the sections in runSections, in
// order, in one bash in a scratch directory, then real OpenSSH judges what
// they wrote. Every other sh block of the README (Quick start aside) must
// say in its first line what it needs and that the test does not run it.
// The policy files the README shows in full are loaded with sshca's own
// configuration loader.
package readme

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/testkit"
)

// buildLine is the README's first command; the test runs it from the
// repository root into a scratch directory, then the rest there.
const buildLine = `CGO_ENABLED=0 go build -o sshca ./cmd/sshca && export PATH="$PWD:$PATH"   # one static binary`

func TestMain(m *testing.M) { pgtest.Main(m) }

// runSections are the README sections whose sh blocks run, in this order
// (the README's order): a walk-through of the CLI, then revocation, the
// service and the fleet side, CA rotation (the service stops at its end),
// moving the CA to PostgreSQL and back, backup and restore, and explain,
// all on the same CA.
var runSections = []string{"Walk-through", "Revocation", "The certificate service", "The fleet side",
	"CA rotation and emergencies", "Moving and backing up a CA", "Why was my login refused? `sshca explain`"}

// skipSections are the sections whose sh blocks are neither run nor marked:
// Quick start runs the repository's own scripts (scripts/test.sh is what CI
// runs).
var skipSections = []string{"Quick start (fresh Debian machine, as root)"}

// A block the test does not run (one needing an identity provider, root,
// systemd or a git checkout) starts with a line "# Needs WHAT; ... " that
// contains notRunMarker, as the README's Revocation section documents.
const (
	needsPrefix  = "# Needs "
	notRunMarker = "TestReadmeWalkthrough does not run this block"
)

// notRun reports whether block b is marked as not run by the test.
func notRun(b string) bool {
	first, _, _ := strings.Cut(b, "\n")
	return strings.HasPrefix(first, needsPrefix) && strings.Contains(first, notRunMarker)
}

// pgVar is the environment variable the README's migrate block reads the
// PostgreSQL URL from; the test sets it to a database of its own server.
const pgVar = "SSHCA_PG_URL"

// servicePort is the service's address in the README; the test gives the
// service a free port instead, so that it never meets another test's.
const servicePort = "127.0.0.1:8443"

// scriptTimeout bounds the whole walk-through.
const scriptTimeout = 6 * time.Minute

// section returns the text of "## name" up to the next "## " heading.
func section(t *testing.T, readme, name string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n## "+name+"\n")
	if !ok {
		t.Fatalf("README has no section %q", name)
	}
	body, _, _ := strings.Cut(rest, "\n## ")
	return body
}

// blocks returns the fenced blocks of the given language in text.
func blocks(text, lang string) []string {
	var out []string
	for {
		_, rest, ok := strings.Cut(text, "```"+lang+"\n")
		if !ok {
			return out
		}
		block, after, ok := strings.Cut(rest, "```")
		if !ok {
			return out
		}
		out = append(out, block)
		text = after
	}
}

// script returns the README's runnable blocks as one bash script (without
// the build line, which the test runs itself). Without PostgreSQL (outside
// CI) the blocks that use $SSHCA_PG_URL are left out.
func script(t *testing.T, readme string, withPG bool) string {
	t.Helper()
	var parts []string
	for i, name := range runSections {
		run := 0
		for _, b := range blocks(section(t, readme, name), "sh") {
			if notRun(b) {
				continue
			}
			if !withPG && strings.Contains(b, "$"+pgVar) {
				t.Logf("no PostgreSQL: leaving out the %s block that uses $%s", name, pgVar)
				run++
				continue
			}
			if i == 0 && run == 0 {
				first, rest, _ := strings.Cut(b, "\n")
				if first != buildLine {
					t.Fatalf("the walk-through starts with %q; this test knows how to run %q", first, buildLine)
				}
				b = rest
			}
			run++
			parts = append(parts, "# --- "+name+"\n"+b)
		}
		if run == 0 {
			t.Fatalf("section %q has no sh block to run", name)
		}
	}
	return strings.Join(parts, "\n")
}

// plainBlocks returns the fenced blocks of text that have no language,
// walking the fences in order (blocks(text, "") would take a closing fence
// for an opening one).
func plainBlocks(text string) []string {
	var out []string
	var cur []string
	lang, in := "", false
	for _, l := range strings.SplitAfter(text, "\n") {
		switch {
		case !in && strings.HasPrefix(l, "```"):
			in, lang, cur = true, strings.TrimSpace(strings.TrimPrefix(l, "```")), nil
		case in && strings.TrimSpace(l) == "```":
			in = false
			if lang == "" {
				out = append(out, strings.Join(cur, ""))
			}
		case in:
			cur = append(cur, l)
		}
	}
	return out
}

// freeAddr returns an address of 127.0.0.1 that nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestReadmeWalkthrough(t *testing.T) {
	testkit.RequireTools(t, "ssh-keygen", "bash", "timeout")
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	pgURL := ""
	if _, err := pgtest.FindBinDir(); err == nil || testkit.CI() {
		pgURL = pgtest.NewDatabase(t) // under CI, a missing PostgreSQL fails here
	}
	body := script(t, readme, pgURL != "")
	if !strings.Contains(section(t, readme, "The certificate service"), "https://"+servicePort) {
		t.Fatalf("the service section no longer uses %s; update servicePort", servicePort)
	}
	addr := freeAddr(t)
	body = strings.ReplaceAll(body, servicePort, addr)

	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "sshca"), "./cmd/sshca")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's build command: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(t.Context(), scriptTimeout)
	defer cancel()
	// The trap stops an ssh-agent the README starts (it leaves the process
	// group) when a command fails before the README's own ssh-agent -k.
	prelude := "set -euo pipefail\nexport PATH=\"$PWD:$PATH\"\n" +
		"trap '[ -z \"${SSH_AGENT_PID:-}\" ] || kill \"$SSH_AGENT_PID\"' EXIT\n"
	cmd := exec.CommandContext(ctx, "bash", "-c", prelude+body+"\n")
	cmd.Dir = dir
	env := e2etest.ChildEnv(dir, e2etest.CurrentUser(t)) // no SSHCA_*, no ssh-agent
	if pgURL != "" {
		env[pgVar] = pgURL
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that a service it started in the
	// background ends with it even when a command fails halfway.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	runErr := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // whatever of it is left
	}
	if runErr != nil {
		t.Fatalf("the walk-through failed: %v\n%s\n--- serve.log\n%s", runErr, out.String(), tail(filepath.Join(dir, "serve.log")))
	}
	got := out.String()
	for _, want := range []string{
		"version",                 // sshca version
		"@cert-authority *.corp ", // ca show --known-hosts
		"alice-cert.pub: ok",      // krl check, before the revocation section
		"revoked",                 // list shows alice-shift revoked
		"audit log intact",        // audit verify
		"Signed host certificate app-01-cert.pub",
		// Revocation.
		"alice-cert.pub: REVOKED", // krl check -v after revoke --serial 1
		"good signature by user CA key",
		"check: revoked-serial", // explain
		// The service.
		"listening on https://127.0.0.1:",
		"wrote client/ci-cert.pub",    // login with the token, then --renew
		"principals:  role-deploy,ci", // status
		// The fleet side.
		"installed principals/deploy",
		"RevokedKeys " + filepath.Join(dir, "app-01-sshca", "revoked.krl"),
		"every live host has KRL version",
		// CA rotation: planned, with an agent-held key, emergency.
		"added user CA generation 2",
		"host CA generation 2 is now active",
		"renewing under the active key",
		"retire: user CA generation 1: certificates it signed are still valid until",
		"retire: host CA generation 1: certificates it signed are still valid until",
		"retired host CA generation 1",
		"Agent pid ",
		"Signed user certificate alice-token-cert.pub",
		"revoked user CA generation 3",
		"alice-token-cert.pub: REVOKED",
		"alice-gen2-cert.pub: ok",
		// Backup and restore.
		"Wrote ca.sshca-backup",
		"Restored the CA into",
		// explain.
		"check: no-principal",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the walk-through's output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "wrote client/ci-cert.pub"); n != 2 {
		t.Errorf("login wrote client/ci-cert.pub %d times, want 2 (token, renewal)", n)
	}
	if pgURL != "" {
		for _, want := range []string{"Copied the CA from SQLite ca/sshca.db to postgres://", "to SQLite ca/sshca.db:"} {
			if !strings.Contains(got, want) {
				t.Errorf("the walk-through's output lacks %q:\n%s", want, got)
			}
		}
		// audit verify: the walk-through's, on PostgreSQL, back on SQLite, the restored home.
		if n := strings.Count(got, "audit log intact"); n != 4 {
			t.Errorf("audit verify said intact %d times, want 4", n)
		}
		// The home is back on its SQLite file.
		if pol := e2etest.ReadFile(t, filepath.Join(dir, "ca", "sshca.yaml")); regexp.MustCompile(`(?m)^database:`).MatchString(pol) {
			t.Errorf("ca/sshca.yaml still names a database:\n%s", pol)
		}
		for _, f := range []string{"ca/sshca.db", "sshca-before-pg.db"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("after store migrate there and back: %v", err)
			}
		}
	}
	// explain prints what the README shows, in the scratch directory
	// instead of /home/you.
	if bs := plainBlocks(section(t, readme, "Why was my login refused? `sshca explain`")); len(bs) == 0 {
		t.Error("the explain section shows no output")
	} else if want := strings.ReplaceAll(bs[0], "/home/you/", dir+"/"); !strings.Contains(got, want) {
		t.Errorf("explain printed something else than the README shows:\n%s\nREADME:\n%s", got, want)
	}
	// The rotation's fleet status: app-01 on host CA generation 2, trusting user gens 1 and 2.
	if !regexp.MustCompile(`(?m)^app-01\.corp\s+\d+s ago\s+\d+/\d+\s+1,2\s+2\s+\S+\s+ok$`).MatchString(got) {
		t.Errorf("fleet status after the host CA promotion does not show app-01.corp on host CA gen 2:\n%s", got)
	}
	// The generations the rotation section leaves, in the restored copy too.
	bin := filepath.Join(dir, "sshca")
	wantGens := "user 1 retiring file\nuser 2 retiring file\nuser 3 revoked agent\nuser 4 active file\nhost 1 retired file\nhost 2 active file"
	for _, home := range []string{"ca", "ca-restored"} {
		if gens := generations(t, bin, filepath.Join(dir, home)); gens != wantGens {
			t.Errorf("%s: CA generations:\n%s\nwant:\n%s", home, gens, wantGens)
		}
	}
	// The README's ssh-agent is gone.
	if m := regexp.MustCompile(`Agent pid (\d+)`).FindStringSubmatch(got); m != nil {
		if pid, _ := strconv.Atoi(m[1]); pid > 0 && running(pid) {
			t.Errorf("the README's ssh-agent (pid %d) still runs", pid)
		}
	}
	// fleet status: app-01.corp at the latest KRL version, nothing flagged.
	if m := regexp.MustCompile(`(?m)^app-01\.corp\s+\d+s ago\s+(\d+)/(\d+)\s.*\sok$`).FindStringSubmatch(got); m == nil || m[1] != m[2] {
		t.Errorf("fleet status does not show app-01.corp current and ok:\n%s", got)
	}
	for _, f := range []string{"alice-cert.pub", "alice-shift-cert.pub", "app-01-cert.pub", "revoked.krl", "revoked.krl.sig",
		"client/ci-cert.pub", "app-01-sshca/trusted_user_ca_keys", "app-01-sshca/revoked.krl", "app-01-sshca/principals/deploy"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the walk-through did not write %s: %v", f, err)
		}
	}
	// The walk-through stopped its service: nothing listens there any more.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("something still listens on the walk-through's service address %s", addr)
	}
	// ssh-keygen -Q is the oracle for the KRLs the walk-through wrote: the
	// CA's (revoked.krl) and the one sync installed on the server.
	krlFile := filepath.Join(dir, "app-01-sshca", "revoked.krl")
	for _, c := range []struct {
		cert    string
		revoked bool
	}{
		{"alice-shift-cert.pub", true}, // key ID, under user CA gen 1 (retiring)
		{"alice-cert.pub", true},       // serial 1, under gen 1
		{"client/ci-cert.pub", true},   // its key
		{"alice-token-cert.pub", true}, // its CA key, gen 3
		{"alice-gen2-cert.pub", false}, // gen 2, retiring: still good
	} {
		q, err := exec.Command("ssh-keygen", "-Q", "-f", krlFile, filepath.Join(dir, c.cert)).CombinedOutput()
		if got := strings.Contains(string(q), ": REVOKED"); got != c.revoked || (err != nil) != c.revoked {
			t.Errorf("ssh-keygen -Q on the server's KRL and %s: %v %s; want revoked=%v", c.cert, err, q, c.revoked)
		}
	}

	t.Run("sshd", func(t *testing.T) { sshdRefuses(t, dir) })
	t.Run("server-config", func(t *testing.T) { serverConfig(t, readme, filepath.Join(dir, "sshca")) })
}

// running reports whether process pid exists and has not exited (a zombie
// waiting for init to reap it has).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: the best there is
	}
	i := strings.LastIndex(string(stat), ") ") // after the command name, which may hold ") "
	return i < 0 || !strings.HasPrefix(string(stat)[i+2:], "Z")
}

// generations returns `sshca ca list --json` of home as lines "TYPE GEN
// STATE SIGNER".
func generations(t *testing.T, bin, home string) string {
	t.Helper()
	out, err := exec.Command(bin, "--home", home, "ca", "list", "--json").Output()
	if err != nil {
		t.Fatalf("sshca --home %s ca list --json: %v", home, err)
	}
	var lines []string
	for _, l := range e2etest.Lines(string(out)) {
		var g struct {
			CAType     string `json:"ca_type"`
			Generation int    `json:"generation"`
			State      string `json:"state"`
			Signer     string `json:"signer"`
		}
		if err := json.Unmarshal([]byte(l), &g); err != nil {
			t.Fatalf("ca list --json: %v: %s", err, l)
		}
		lines = append(lines, fmt.Sprintf("%s %d %s %s", g.CAType, g.Generation, g.State, g.Signer))
	}
	return strings.Join(lines, "\n")
}

// directives returns the sshd_config directives of text: its lines that
// are neither empty nor comments.
func directives(text string) []string {
	var out []string
	for _, l := range e2etest.Lines(text) {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return out
}

// serverConfig: the sshd_config of "What a server needs" is what `sshca
// sshd-config` prints, directive for directive.
func serverConfig(t *testing.T, readme, bin string) {
	bs := blocks(section(t, readme, "What a server needs"), "")
	if len(bs) == 0 {
		t.Fatal("What a server needs shows no sshd_config")
	}
	out, err := exec.Command(bin, "sshd-config").Output()
	if err != nil {
		t.Fatalf("sshca sshd-config: %v", err)
	}
	want, got := directives(string(out)), directives(bs[0])
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the README's server configuration:\n%s\nsshca sshd-config prints:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// sshdRefuses starts a real sshd on the files sync installed for app-01
// (trusted CA keys, KRL, the principals of account deploy) and checks that
// it refuses the certificates the walk-through revoked, because they are
// revoked, and accepts a fresh one of the same CA.
func sshdRefuses(t *testing.T, dir string) {
	etc := filepath.Join(dir, "app-01-sshca")
	var principals []string
	for _, l := range e2etest.Lines(e2etest.ReadFile(t, filepath.Join(etc, "principals", "deploy"))) {
		if !strings.HasPrefix(l, "#") {
			principals = append(principals, l)
		}
	}
	account := e2etest.CurrentUser(t) // the account sshd logs the test in as, with deploy's principals
	srv := sshdtest.Start(t, sshdtest.Config{
		TrustedUserCAKeys: e2etest.Lines(e2etest.ReadFile(t, filepath.Join(etc, "trusted_user_ca_keys"))),
		RevokedKeysFile:   filepath.Join(etc, "revoked.krl"),
		Principals:        map[string][]string{account: principals},
	})
	for _, key := range []string{filepath.Join(dir, "alice"), filepath.Join(dir, "client", "ci")} {
		r := srv.Login(t, sshdtest.LoginOptions{User: account, IdentityFile: key})
		if r.OK || !strings.Contains(r.ServerLog, "revoked by file") {
			t.Errorf("sshd and %s: ok=%v; want refused as revoked\n%s\n%s", filepath.Base(key), r.OK, r.Stderr, r.ServerLog)
		}
	}
	// A fresh certificate of the same CA logs in. The walk-through's role
	// allows 10.0.0.0/8 and 192.168.0.0/16 only; the test lets it in from
	// 127.0.0.1 too.
	h := &e2etest.Home{T: t, Dir: filepath.Join(dir, "ca")}
	policyPath := filepath.Join(h.Dir, "sshca.yaml")
	pol := e2etest.ReadFile(t, policyPath)
	const from = "source_address: [10.0.0.0/8, 192.168.0.0/16]"
	if !strings.Contains(pol, from) {
		t.Fatalf("sshca init's policy no longer has %q", from)
	}
	if err := os.WriteFile(policyPath, []byte(strings.Replace(pol, from, "source_address: [10.0.0.0/8, 192.168.0.0/16, 127.0.0.1/32]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	key, _ := h.SignUser(t.TempDir(), "--role", "deploy", "--id", "fresh", "--ttl", "10m")
	if r := srv.Login(t, sshdtest.LoginOptions{User: account, IdentityFile: key}); !r.OK {
		t.Errorf("sshd refused a fresh certificate of the CA: %s\n%s", r.Stderr, r.ServerLog)
	}
}

// TestReadmePolicies loads every sshca.yaml the README shows in full (a
// yaml block whose first line is not indented) with sshca's configuration
// loader, and wants the single sign-on example, with oidc: and accounts:,
// among them.
func TestReadmePolicies(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sawOIDC, loaded := false, 0
	for i, b := range blocks(string(data), "yaml") {
		if b == "" || b[0] == ' ' || b[0] == '#' && !strings.Contains(b, "\nroles:") {
			continue // a fragment of a role
		}
		p := filepath.Join(t.TempDir(), "sshca.yaml")
		if err := os.WriteFile(p, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := config.Load(p)
		if err != nil {
			t.Errorf("README yaml block %d is not a policy sshca accepts: %v\n%s", i+1, err, b)
			continue
		}
		loaded++
		if c.OIDC != nil && len(c.Accounts) > 0 {
			sawOIDC = true
			if c.OIDC.Issuer == "" || len(c.Roles) == 0 {
				t.Errorf("the oidc: example is incomplete:\n%s", b)
			}
		}
	}
	t.Logf("%d full policies loaded", loaded)
	if loaded < 2 {
		t.Errorf("%d full sshca.yaml files in the README; want the policy section's and the single sign-on example", loaded)
	}
	if !sawOIDC {
		t.Error("the README shows no full sshca.yaml with oidc: and accounts:")
	}
}

// tail returns the end of a file, for a failure message.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// blockReport sorts the README's sh blocks: how many TestReadmeWalkthrough
// runs, the first lines of those marked as not run, the run sections in the
// README's order, and problems: an sh block nothing runs nor marks, or a
// shell block under another language tag.
func blockReport(readme string) (run int, marked, order, problems []string) {
	kind := map[string]string{}
	for _, n := range runSections {
		kind[n] = "run"
	}
	for _, n := range skipSections {
		kind[n] = "skip"
	}
	for _, sec := range strings.Split(readme, "\n## ")[1:] {
		name, body, _ := strings.Cut(sec, "\n")
		if kind[name] == "run" {
			order = append(order, name)
		}
		for _, lang := range []string{"bash", "shell", "console", "sh-session"} {
			if n := len(blocks(body, lang)); n > 0 {
				problems = append(problems, fmt.Sprintf("section %q has %d %s block(s): write commands in sh blocks, output in plain ones", name, n, lang))
			}
		}
		for _, b := range blocks(body, "sh") {
			first, _, _ := strings.Cut(b, "\n")
			switch {
			case kind[name] == "skip":
			case notRun(b):
				marked = append(marked, name+": "+first)
			case kind[name] == "run":
				run++
			default:
				problems = append(problems, fmt.Sprintf("section %q has an sh block that TestReadmeWalkthrough does not run and that does not start with %q...%q (add the section to runSections, or mark the block): %s",
					name, needsPrefix, notRunMarker, first))
			}
		}
	}
	return run, marked, order, problems
}

// TestReadmeBlocks: every sh block of the README is run by
// TestReadmeWalkthrough (its section is in runSections and it is not
// marked), sits in Quick start, or starts with the documented marker line;
// so a new block that nothing runs fails here. The run sections appear in
// the README in runSections' order, and the marker is documented there.
func TestReadmeBlocks(t *testing.T) {
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	doc := "`" + needsPrefix + "...; " + notRunMarker + ".`"
	if !strings.Contains(strings.Join(strings.Fields(readme), " "), doc) {
		t.Errorf("the README does not document the marker %s", doc)
	}
	run, marked, order, problems := blockReport(readme)
	for _, p := range problems {
		t.Error(p)
	}
	for _, m := range marked {
		t.Logf("not run: %s", m)
	}
	if strings.Join(order, "\n") != strings.Join(runSections, "\n") {
		t.Errorf("the README's run sections, in its order:\n%s\nwant runSections:\n%s", strings.Join(order, "\n"), strings.Join(runSections, "\n"))
	}
	t.Logf("%d sh blocks run, %d marked as not run", run, len(marked))
	if run < len(runSections) {
		t.Errorf("%d sh blocks run for %d sections", run, len(runSections))
	}

	// The check itself: an unmarked block in a section nobody runs, a
	// marked one, a bash block, a block in Quick start.
	fake := "# x\n\n## Quick start (fresh Debian machine, as root)\n\n```sh\nscripts/demo.sh\n```\n" +
		"\n## New section\n\n```sh\nsshca frobnicate\n```\n\n```sh\n" + needsPrefix + "a moon; " + notRunMarker + ".\nsshca land\n```\n" +
		"\n## Other\n\n```bash\nsshca x\n```\n"
	_, fm, _, fp := blockReport(fake)
	if len(fp) != 2 || !strings.Contains(fp[0], "sshca frobnicate") || !strings.Contains(fp[1], "bash block") || len(fm) != 1 {
		t.Errorf("blockReport on a README with one unrun, one marked and one bash block: marked %q, problems %q", fm, fp)
	}
}
