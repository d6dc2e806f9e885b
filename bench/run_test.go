package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRunFlags: the program's own command line refuses bad input with one
// error line and a usage exit code, before doing any work.
func TestRunFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"fail/unknown-flag", []string{"-nope"}, 2, "flag provided but not defined"},
		{"fail/extra-argument", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"fail/unknown-suite", []string{"-suite", "sign,nope", "-sshca", "/nonexistent"}, 1, `unknown suite "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("stderr %q lacks %q", errb.String(), tc.want)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout not empty: %q", out.String())
			}
		})
	}
}

// TestRunShortSign runs the program end to end in short mode on one suite
// and checks the Markdown it prints.
func TestRunShortSign(t *testing.T) {
	o := testOptions(t) // builds the sshca binary once
	var out, errb bytes.Buffer
	if code := run([]string{"-short", "-suite", "sign", "-sshca", o.SSHCA}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	md := out.String()
	for _, want := range []string{"### Machine", "| mode | short (CI) |", "### Raw signing", "| ed25519 |", "| rsa-3072 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
