package cli_test

import (
	"strings"
	"testing"
)

// TestSSHDConfigRevokedKeys checks the RevokedKeys line for each sshd
// release: one file for OpenSSH before 10.3, the user and host KRLs on one
// line from 10.3 on when a host KRL is given. A real sshd of each release
// loads these lines in internal/e2e/releases.
func TestSSHDConfigRevokedKeys(t *testing.T) {
	const user, host = "/etc/ssh/sshca/revoked.krl", "/etc/ssh/sshca/revoked-host.krl"
	tests := []struct {
		name    string
		args    []string
		code    int
		line    string // the RevokedKeys line
		comment string // a comment that must be there
		err     string
	}{
		{name: "ok/default", line: "RevokedKeys " + user},
		{name: "ok/host-krl-left-out-for-9.2", args: []string{"--host-krl", host}, line: "RevokedKeys " + user,
			comment: "# OpenSSH 9.2 takes one file here, so the host KRL " + host + " is left out"},
		{name: "ok/host-krl-left-out-for-10.2", args: []string{"--host-krl", host, "--sshd-version", "10.2"}, line: "RevokedKeys " + user},
		{name: "ok/both-for-10.3", args: []string{"--host-krl", host, "--sshd-version", "10.3"}, line: "RevokedKeys " + user + " " + host,
			comment: "OpenSSH before 10.3 refuses to start with two files here"},
		{name: "ok/both-for-10.5p1", args: []string{"--host-krl", host, "--sshd-version", "OpenSSH_10.5p1"}, line: "RevokedKeys " + user + " " + host},
		{name: "ok/10.5-without-host-krl", args: []string{"--sshd-version", "10.5"}, line: "RevokedKeys " + user},
		{name: "ok/other-dir", args: []string{"--dir", "/srv/sshca", "--host-krl", "/srv/h.krl", "--sshd-version", "10.5"}, line: "RevokedKeys /srv/sshca/revoked.krl /srv/h.krl"},
		{name: "fail/relative-host-krl", args: []string{"--host-krl", "h.krl"}, code: 2, err: "must be an absolute path"},
		{name: "fail/host-krl-with-blank", args: []string{"--host-krl", "/a b.krl"}, code: 2, err: "must be an absolute path"},
		{name: "fail/host-krl-newline", args: []string{"--host-krl", "/a\nPermitRootLogin yes"}, code: 2, err: "must be an absolute path"},
		{name: "fail/bad-version", args: []string{"--sshd-version", "new"}, code: 2, err: "--sshd-version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, append([]string{"sshd-config"}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.code != 0 {
				if !strings.Contains(r.stderr, tc.err) {
					t.Errorf("stderr lacks %q:\n%s", tc.err, r.stderr)
				}
				return
			}
			var lines []string
			for _, l := range strings.Split(r.stdout, "\n") {
				if strings.HasPrefix(l, "RevokedKeys") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || lines[0] != tc.line {
				t.Errorf("RevokedKeys lines %q, want [%q]\n%s", lines, tc.line, r.stdout)
			}
			if tc.comment != "" && !strings.Contains(r.stdout, tc.comment) {
				t.Errorf("output lacks %q:\n%s", tc.comment, r.stdout)
			}
		})
	}
}
