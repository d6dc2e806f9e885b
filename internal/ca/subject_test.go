package ca_test

import (
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/testkit"
)

func TestParseSubjectKey(t *testing.T) {
	dir := t.TempDir()
	gen := func(args ...string) string {
		t.Helper()
		p := filepath.Join(dir, strings.Join(args, "_"))
		out, err := exec.Command("ssh-keygen", append([]string{"-q", "-N", "", "-f", p}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen %v: %v %s", args, err, out)
		}
		return p
	}
	testkit.RequireTool(t, "ssh-keygen")
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ed := gen("-t", "ed25519")
	ec := gen("-t", "ecdsa", "-b", "384")
	rsaOK := gen("-t", "rsa", "-b", "2048")
	caKey := gen("-t", "ed25519", "-C", "ca")
	if out, err := exec.Command("ssh-keygen", "-q", "-s", caKey, "-I", "x", "-n", "a", ed+".pub").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallPub, _ := ssh.NewPublicKey(&small.PublicKey)
	// DSA: a syntactically valid ssh-dss public key (ssh-keygen 9.2 can still make one).
	dsa := gen("-t", "dsa")

	edLine := read(ed + ".pub")
	for _, tc := range []struct {
		name, data, wantErr string
	}{
		{"ok/ed25519", string(edLine), ""},
		{"ok/ecdsa", string(read(ec + ".pub")), ""},
		{"ok/rsa-2048", string(read(rsaOK + ".pub")), ""},
		{"ok/no-comment-trailing-newlines", strings.Join(strings.Fields(string(edLine))[:2], " ") + "\n\n", ""},
		{"fail/private-key", string(read(ed)), "private key"},
		{"fail/certificate", string(read(ed + "-cert.pub")), "certificate"},
		{"fail/dsa", string(read(dsa + ".pub")), "DSA"},
		{"fail/rsa-1024", string(ssh.MarshalAuthorizedKey(smallPub)), "1024 bits"},
		{"fail/empty", "", "empty"},
		{"fail/garbage", "hello world", "not a valid"},
		{"fail/truncated", string(edLine[:40]), "not a valid"},
		{"fail/options", `command="/bin/sh" ` + string(edLine), "options"},
		{"fail/two-keys", string(edLine) + string(read(ec+".pub")), "more than one"},
		{"fail/huge", strings.Repeat("A", ca.MaxKeyFileLen+1), "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := ca.ParseSubjectKey([]byte(tc.data))
			if tc.wantErr == "" {
				if err != nil || pub == nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
			}
			if !ca.IsKeyError(err) {
				t.Fatalf("err %T is not a KeyError", err)
			}
		})
	}
}

func FuzzParseSubjectKey(f *testing.F) {
	for _, s := range []string{
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x",
		"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx",
		"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----",
		"ssh-dss AAAAB3NzaC1kc3MAAACBAP",
		"", "\x00\x01", "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABB",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pub, err := ca.ParseSubjectKey(data)
		if err != nil {
			if pub != nil {
				t.Fatal("key returned with error")
			}
			return
		}
		//lint:ignore SA1019 DSA is named only to refuse it
		if _, isCert := pub.(*ssh.Certificate); isCert || pub.Type() == ssh.KeyAlgoDSA {
			t.Fatalf("accepted %s", pub.Type())
		}
		if err := ca.CheckSubjectKey(pub); err != nil {
			t.Fatalf("accepted key fails CheckSubjectKey: %v", err)
		}
	})
}
