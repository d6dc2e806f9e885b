// Package testhome starts CA homes for tests: a fresh home in the test's
// temporary directory with a given policy, opened, and closed when the
// test ends. It is the part of the test kit (package testkit) that needs
// package home, so only the tests of packages above home can import it.
// Test support only: no product code imports it.
package testhome

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/home"
)

// Options adjust New.
type Options struct {
	Actor string           // the audit actor of `init`; default "test"
	Now   func() time.Time // the home's clock (see home.Options.Now); nil for the real one
}

// New runs `sshca init` on a fresh directory (named ca, in a temporary
// directory of t), replaces its sshca.yaml by policy (testkit.Policy for
// the standard one), opens the home and closes it when t ends. It returns
// the open home; its Dir is the directory.
func New(t testing.TB, policy string, o Options) *home.Home {
	t.Helper()
	if o.Actor == "" {
		o.Actor = "test"
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := home.Init(ctx, dir, home.InitOptions{Actor: o.Actor}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, home.ConfigFile), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := home.Open(ctx, dir, home.Options{Now: o.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}
