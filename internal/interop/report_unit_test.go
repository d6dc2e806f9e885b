package interop

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCompareExpectations(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		want, got                map[string]string
		wantRegressed, wantDiffs []string
	}{
		{name: "ok/same", want: map[string]string{"a": statusWorks, "b": statusFails}, got: map[string]string{"a": statusWorks, "b": statusFails}},
		{name: "ok/skipped-client", want: map[string]string{"a": statusWorks}, got: map[string]string{}},
		{name: "ok/improved", want: map[string]string{"a": statusFails}, got: map[string]string{"a": statusWorks}, wantDiffs: []string{"a"}},
		{name: "ok/new-cell", want: map[string]string{}, got: map[string]string{"a": statusFails}, wantDiffs: []string{"a"}},
		{name: "ok/fails-to-unsupported", want: map[string]string{"a": statusFails}, got: map[string]string{"a": statusUnsupported}, wantDiffs: []string{"a"}},
		{name: "fail/works-now-fails", want: map[string]string{"a": statusWorks, "b": statusWorks}, got: map[string]string{"a": statusFails, "b": statusWorks}, wantRegressed: []string{"a"}},
		{name: "fail/refuses-now-accepts", want: map[string]string{"a": statusRefuses}, got: map[string]string{"a": statusAccepts}, wantRegressed: []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, diffs := compareExpectations(tc.want, tc.got)
			if d := cmp.Diff(tc.wantRegressed, reg); d != "" {
				t.Errorf("regressions (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantDiffs, diffs); d != "" {
				t.Errorf("changes (-want +got):\n%s", d)
			}
		})
	}
}

func TestSanitizer(t *testing.T) {
	clean := sanitizer("/tmp/TestMatrix123/001", []int{2222, 40001})
	for _, tc := range []struct {
		name, in, want string
	}{
		{"ok/port", `Server '[127.0.0.1]:40001' not found`, `Server '[127.0.0.1]:PORT' not found`},
		{"ok/port-not-inside-numbers", "serial 400012 on 2222", "serial 400012 on PORT"},
		{"ok/work-dir", "cannot read /tmp/TestMatrix123/001/keys/id", "cannot read $WORK/keys/id"},
		{"ok/sshd-dir", "/tmp/sshdtest-abc123/known_hosts", "$SSHD/known_hosts"},
		{"ok/fingerprint", "fingerprint SHA256:W9l6HouG2Zwcm4ByMD0n8x3USuMvfMmvjJ94tnxqPvs does not match", "fingerprint SHA256:<fingerprint> does not match"},
		{"ok/whitespace", "a\n\t b  ", "a b"},
		{"ok/bounded", strings.Repeat("x", 500), strings.Repeat("x", 400) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := clean(tc.in); got != tc.want {
				t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestMarkdownFailureCarriesVersion checks acceptance criterion 2 on a
// small report: every cell that is not right links to an entry with the
// client's version and message.
func TestMarkdownFailureCarriesVersion(t *testing.T) {
	r := &report{
		clients: []string{"c1", "c2"}, versions: map[string]string{"c1": "c1 1.0", "c2": "c2 2.0"}, debs: map[string]string{"c2": "pkg-c2 2.0-1"},
		sshds: []string{"s9", "s10"}, servers: map[string]string{"s9": "OpenSSH_9.2", "s10": "OpenSSH_10.5", serverGo: "x"},
		caTypes: []string{"ed25519"}, subjects: []string{"ed25519"},
		hostKeyType: "ed25519", keyFileCA: "ed25519", hostTrust: map[string]string{}, guidance: "guide",
		outcomes: map[cellKey]outcome{
			{dirUser, "s9", "ed25519", "ed25519", "c1"}:      {Status: statusWorks},
			{dirUser, "s9", "ed25519", "ed25519", "c2"}:      {Status: statusFails, Error: "boom `x`"},
			{dirHost, "s10", "ed25519", "ed25519", "c2"}:     {Status: statusFails, Error: "boom `x`"},
			{dirHostWild, "s10", "ed25519", "ed25519", "c1"}: {Status: statusFails, Error: "name is not a listed principal"},
			{dirHostWild, "s10", "ed25519", "ed25519", "c2"}: {Status: statusWorks},
		},
	}
	md := string(r.markdown())
	for _, want := range []string{
		"## User certificates, login to OpenSSH sshd s9",
		"## User certificates, login to OpenSSH sshd s10",
		"| ed25519 | ed25519 | works | **fails** ([F1](#f1)) |",
		"| s10 | ed25519 | not run | **fails** ([F1](#f1)) |",
		"**F1** — client c2, version c2 2.0, Debian package pkg-c2 2.0-1 — error: `boom 'x'`",
		"user certificates to s9 sshd (CA ed25519 × subject ed25519); host certificates presented by s10 sshd (host CA ed25519)",
		"- `ed25519`: c2 fails with host certificates.",
		"**F2** — client c1, version c1 1.0 — error: `name is not a listed principal`",
		"- A host certificate with a wildcard principal (a role with `wildcard_principals: true`) works with c2 and not with c1.",
		"- s10: OpenSSH sshd OpenSSH_10.5",
		"- Whatever the CA key type, c2 fails with ed25519 subject keys in user certificates to s9 sshd.",
		"not run",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "F3") {
		t.Errorf("one client with one message should give one failure entry:\n%s", md)
	}
}
