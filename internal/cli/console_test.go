package cli_test

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/policy"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

func TestConsoleLink(t *testing.T) {
	dir := initHome(t)
	t.Run("fail/console-off", func(t *testing.T) {
		r := runCLI(t, "--home", dir, "console", "link", "--user", "alice")
		if r.code != 1 || !strings.Contains(r.stderr, "the console is off") || !strings.Contains(r.stderr, "hint:") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	writePolicy(t, dir, "service:\n  listen: 127.0.0.1:8443\n  console:\n    admins:\n      users: [alice]\nroles: {}\n")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"fail/no-user", nil, 2, "give --user NAME"},
		{"fail/bad-user", []string{"--user", "a b"}, 1, "console link: user"},
		{"fail/ttl-too-long", []string{"--user", "alice", "--ttl", "25h"}, 2, "--ttl must be"},
		{"fail/plain-http", []string{"--user", "alice", "--url", "http://ca.example:8443"}, 1, "is not a base URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, append([]string{"--home", dir, "console", "link"}, tc.args...)...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
		})
	}
	r := runCLI(t, "--home", dir, "console", "link", "--user", "bob", "--ttl", "5m")
	if r.code != 0 || !strings.Contains(r.stderr, "bob is not in service.console.admins") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	u, err := url.Parse(strings.TrimSpace(r.stdout))
	if err != nil || u.Scheme != "https" || u.Host != "127.0.0.1:8443" || u.Path != "/ui/login" {
		t.Fatalf("link %q", r.stdout)
	}
	id, secret, err := ca.SplitToken(u.Query().Get("t"))
	if err != nil {
		t.Fatal(err)
	}
	// Stored hashed, as a one-time console-link token for bob, audited.
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, err := st.GetToken(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Kind != policy.TokenConsoleLink || len(tok.Principals) != 1 || tok.Principals[0] != "bob" || strings.Contains(tok.Hash, secret) ||
		!ca.TokenSecretMatches(tok, secret) || tok.ExpiresAt.Sub(tok.CreatedAt).Minutes() != 5 || tok.CreatedBy != "cli:clitest" {
		t.Fatalf("stored token %+v", tok)
	}
	entries, _ := st.AuditEntries(context.Background(), store.AuditFilter{Action: "token"})
	if n := len(entries); n == 0 || entries[n-1].Details["token"] != id || entries[n-1].Details["kind"] != policy.TokenConsoleLink {
		t.Fatalf("no audit entry for the link: %+v", entries)
	}
}
