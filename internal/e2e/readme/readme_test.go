// Package readme runs the README's walk-through as a user pastes it, so
// that it cannot rot: the sh blocks of the sections in runSections, in
// order, in one bash in a scratch directory, then real OpenSSH judges what
// they wrote. The policy files the README shows in full are loaded with
// sshca's own configuration loader.
package readme

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/config"
	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/sshdtest"
	"github.com/sshca/sshca/internal/testkit"
)

// buildLine is the README's first command; the test runs it from the
// repository root into a scratch directory, then the rest there.
const buildLine = `CGO_ENABLED=0 go build -o sshca ./cmd/sshca && export PATH="$PWD:$PATH"   # one static binary`

// runSections are the README sections whose sh blocks run, in this order
// (the README's order): a walk-through of the CLI, then revocation, the
// service and the fleet side on the same CA.
var runSections = []string{"Walk-through", "Revocation", "The certificate service", "The fleet side"}

// idpMarker starts a block that needs an identity provider: shown to the
// reader, not run.
const idpMarker = "# Needs an identity provider"

// servicePort is the service's address in the README; the test gives the
// service a free port instead, so that it never meets another test's.
const servicePort = "127.0.0.1:8443"

// scriptTimeout bounds the whole walk-through.
const scriptTimeout = 4 * time.Minute

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
// the build line, which the test runs itself).
func script(t *testing.T, readme string) string {
	t.Helper()
	var parts []string
	for i, name := range runSections {
		run := 0
		for _, b := range blocks(section(t, readme, name), "sh") {
			if strings.HasPrefix(b, idpMarker) {
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
	body := script(t, readme)
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
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\nexport PATH=\"$PWD:$PATH\"\n"+body+"\n")
	cmd.Dir = dir
	env := e2etest.ChildEnv(dir, e2etest.CurrentUser(t)) // no SSHCA_*, no ssh-agent
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
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the walk-through's output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "wrote client/ci-cert.pub"); n != 2 {
		t.Errorf("login wrote client/ci-cert.pub %d times, want 2 (token, renewal)", n)
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
	q, _ := exec.Command("ssh-keygen", "-Q", "-f", filepath.Join(dir, "app-01-sshca", "revoked.krl"),
		filepath.Join(dir, "alice-shift-cert.pub"), filepath.Join(dir, "alice-cert.pub"), filepath.Join(dir, "client", "ci-cert.pub")).CombinedOutput()
	if strings.Count(string(q), ": REVOKED") != 3 {
		t.Errorf("ssh-keygen -Q: the server's KRL should revoke alice-shift, alice (serial) and ci (key):\n%s", q)
	}

	t.Run("sshd", func(t *testing.T) { sshdRefuses(t, dir) })
	t.Run("server-config", func(t *testing.T) { serverConfig(t, readme, filepath.Join(dir, "sshca")) })
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
