package cli_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `sshca version` and `sshca --version` print the version,
// the VCS revision and the Go version.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		out := mustRun(t, args...)
		for _, want := range []string{"sshca devel\n", "revision: ", "go: " + runtime.Version()} {
			if !strings.Contains(out, want) {
				t.Errorf("sshca %s: no %q in %q", strings.Join(args, " "), want, out)
			}
		}
	}
	if out := mustRun(t, "version", "--json"); !strings.Contains(out, `"go_version":"`+runtime.Version()+`"`) {
		t.Errorf("version --json: %s", out)
	}
}

// TestHelpTexts: -h shows argument names, not phrases from backquotes, and
// client commands do not offer the CA home's flags.
func TestHelpTexts(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"login", "-h"}, []string{"-ca-fingerprint fingerprint", "-token-file file"}, []string{"sshca serve\n", "-home", "-database"}},
		{[]string{"sync", "-h"}, []string{"-ca-fingerprint fingerprint", "-interval"}, []string{"-ca-fingerprint sshca", "-home", "-database"}},
		{[]string{"host", "enroll", "-h"}, []string{"-ca-fingerprint fingerprint"}, []string{"-ca-fingerprint sshca", "-home", "-database"}},
		{[]string{"help", "status"}, []string{"-key file"}, []string{"-home", "-database"}},
		{[]string{"ssh-config", "-h"}, nil, []string{"-home", "-database"}},
		{[]string{"list", "-h"}, []string{"-home directory", "-database URL"}, nil},
		{[]string{"help", "list"}, []string{"-home directory"}, nil},
	} {
		out := mustRun(t, tc.args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("sshca %s: no %q in\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("sshca %s: shows %q in\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
	// Client commands refuse the flags they do not use.
	if r := runCLI(t, "login", "--home", "/tmp/x", "--server", "https://ca.invalid", "--role", "r"); r.code != 2 {
		t.Errorf("login --home: exit %d, want 2", r.code)
	}
}

// TestClientErrors: token files are called token files, and a service
// whose TLS certificate is not trusted or not the pinned one gets a hint
// about --ca-fingerprint.
func TestClientErrors(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "{}", http.StatusTeapot)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	tok := filepath.Join(dir, "tok")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(tok, []byte("sshca_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pinned := "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"fail/login-missing-token", []string{"login", "--server", srv.URL, "--role", "r", "--key", key, "--no-agent", "--token-file", filepath.Join(dir, "nope")},
			[]string{"sshca: error: token file: open "}},
		{"fail/login-empty-token", []string{"login", "--server", srv.URL, "--role", "r", "--key", key, "--no-agent", "--token-file", empty},
			[]string{"sshca: error: token file: " + empty + " is empty"}},
		{"fail/enroll-missing-token", []string{"host", "enroll", "--server", srv.URL, "--host-key", key, "--token-file", filepath.Join(dir, "nope")},
			[]string{"sshca: error: token file: open "}},
		{"fail/login-untrusted", []string{"login", "--server", srv.URL, "--role", "r", "--key", key, "--no-agent", "--token-file", tok},
			[]string{"certificate", "sshca: hint: this machine does not trust the service's TLS certificate: pin it with --ca-fingerprint"}},
		{"fail/login-pin-mismatch", []string{"login", "--server", srv.URL, "--ca-fingerprint", pinned, "--role", "r", "--key", key, "--no-agent", "--token-file", tok},
			[]string{"not the pinned " + pinned, "sshca: hint: the service presents another TLS certificate than --ca-fingerprint pins"}},
		{"fail/sync-untrusted", []string{"sync", "--server", srv.URL, "--dir", filepath.Join(dir, "sync")},
			[]string{"sshca: hint: this machine does not trust the service's TLS certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, tc.args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "passphrase") {
				t.Errorf("stderr speaks of a passphrase:\n%s", r.stderr)
			}
		})
	}
}

// TestUnknownRoleListsRoles: an unknown role is refused with the roles
// sshca.yaml defines for that kind of certificate.
func TestUnknownRoleListsRoles(t *testing.T) {
	requireKeygen(t)
	h := initHome(t)
	writePolicy(t, h, `roles:
  deploy:
    type: user
    principals: [deploy]
    max_ttl: 1h
  rsync:
    type: user
    principals: [rsync]
    max_ttl: 1h
  servers:
    type: host
    principals: ["*.example.com"]
    max_ttl: 1h
`)
	keys := t.TempDir()
	pub := newKey(t, keys, "id", "-t", "ed25519")
	pub2 := newKey(t, keys, "id2", "-t", "ed25519")
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"sign", "user", "--role", "deplyo", "--id", "x", pub}, "sshca: hint: user roles in sshca.yaml: deploy, rsync\n"},
		{[]string{"sign", "host", "--role", "server", "--id", "x", "--principals", "a.example.com", pub}, "sshca: hint: host roles in sshca.yaml: servers\n"},
		{[]string{"token", "create", "--role", "nope", "--name", "ci"}, "sshca: hint: user roles in sshca.yaml: deploy, rsync\n"},
		{[]string{"sign", "user", "--role", "deplyo", "--id", "x", pub, pub2}, "sshca: hint: user roles in sshca.yaml: deploy, rsync\n"},
	} {
		r := runCLI(t, append([]string{"--home", h}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.hint) {
			t.Errorf("sshca %s: exit %d, stderr:\n%s\nwant %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.hint)
		}
	}
}
