package testhome_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/testkit"
	"github.com/sshca/sshca/internal/testkit/testhome"
)

// TestNew: the home is initialised by the given actor, runs the given
// policy (not init's example) and the given clock, and is open.
func TestNew(t *testing.T) {
	var clk testkit.Clock
	clk.Advance(48 * time.Hour)
	h := testhome.New(t, testkit.Policy, testhome.Options{Actor: "kit-test", Now: clk.Now})
	if !strings.HasSuffix(h.Dir, "/ca") {
		t.Errorf("home directory %q", h.Dir)
	}
	var roles []string
	for name := range h.Config.Roles {
		roles = append(roles, name)
	}
	slices.Sort(roles)
	if want := []string{"deploy", "other", "personal", "secure", "servers"}; !slices.Equal(roles, want) {
		t.Errorf("roles %v, want testkit.Policy's %v", roles, want)
	}
	entries, err := h.Store.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 || !strings.Contains(entries[0].Actor, "kit-test") {
		t.Fatalf("init not audited as kit-test: %+v", entries)
	}
	if got := h.Authority.Now(); got.Before(time.Now().Add(47 * time.Hour)) {
		t.Errorf("the authority's clock says %v: not the given clock", got)
	}
}

// TestNewDefaultActor: without an actor, init is audited as "test".
func TestNewDefaultActor(t *testing.T) {
	h := testhome.New(t, testkit.Policy, testhome.Options{})
	entries, err := h.Store.AuditEntries(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 || !strings.Contains(entries[0].Actor, "test") {
		t.Fatalf("init not audited as test: %+v", entries)
	}
}
