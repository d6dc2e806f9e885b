package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzInspect runs `sshca inspect` and `sshca inspect --json` on arbitrary
// files (certificates, keys, KRLs): no panic, exit 0 with a description or
// exit 1 with one "sshca: error:" line, and nothing on stdout on failure.
func FuzzInspect(f *testing.F) {
	for _, seed := range []string{
		"ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29t x\n",
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKI8aWot06gDbSapq8+dGoBAfiLb8jVn2375xtw/fxIc x\n",
		"SSHKRL\n\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
		"SSHKRL\n\x00", "", "\xff\xfe",
	} {
		f.Add([]byte(seed), false)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		p := filepath.Join(dir, "input")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"inspect", p}
		if asJSON {
			args = []string{"inspect", "--json", p}
		}
		var stdout, stderr bytes.Buffer
		env := func(string) string { return "" }
		code := Run(context.Background(), args, strings.NewReader(""), &stdout, &stderr, env)
		switch code {
		case 0:
			if stdout.Len() == 0 {
				t.Fatal("exit 0 with no description")
			}
			if asJSON && !utf8.Valid(stdout.Bytes()) {
				t.Fatal("--json output is not UTF-8")
			}
		case 1:
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if stdout.Len() != 0 || len(lines) > 2 || !strings.HasPrefix(lines[0], "sshca: error: ") {
				t.Fatalf("refusal with stdout %q, stderr %q", stdout.String(), stderr.String())
			}
		default:
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	})
}

// FuzzSerialAndFingerprint feeds arbitrary --serial-range and
// --fingerprint values to their parsers: no panic; a range is 1 <= A <= B;
// a fingerprint is 32 bytes.
func FuzzSerialAndFingerprint(f *testing.F) {
	for _, seed := range []string{"1-5", "5-3", "0-1", "1-18446744073709551615", "1-18446744073709551616", "-", "SHA256:S/JAUuf4u2W7qrpBEzzrzGWnYXZYF5oKUO6AiC8fJD4", "SHA256:"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if lo, hi, err := parseSerialRange(s); err == nil && (lo == 0 || hi < lo) {
			t.Fatalf("range %q gave %d-%d", s, lo, hi)
		}
		if b, err := parseFingerprint(s); err == nil && len(b) != 32 {
			t.Fatalf("fingerprint %q gave %d bytes", s, len(b))
		}
	})
}
