package cli_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/audit"
	"github.com/sshca/sshca/internal/store"
	"github.com/sshca/sshca/internal/store/sqlite"
)

func TestTOTPReset(t *testing.T) {
	dir := initHome(t)
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutTOTP(context.Background(), "alice", []byte("0123456789abcdef0123"), audit.Entry{Actor: "oidc:alice", Action: audit.ActionAdmin, Outcome: "ok", Reason: "totp enrolled"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	out := mustRun(t, "--home", dir, "totp", "reset", "--reason", "new phone", "alice")
	if !strings.Contains(out, "removed the TOTP enrollment of alice") {
		t.Fatalf("output %q", out)
	}
	st, err = sqlite.Open(context.Background(), filepath.Join(dir, "sshca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, _, err := st.GetTOTP(context.Background(), "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("enrollment still there: %v", err)
	}
	entries, _ := st.AuditEntries(context.Background(), store.AuditFilter{Action: audit.ActionAdmin})
	if n := len(entries); n == 0 || entries[n-1].Reason != "totp reset" || entries[n-1].Details["user"] != "alice" {
		t.Fatalf("no audit entry for the reset: %+v", entries)
	}
	r := runCLI(t, "--home", dir, "totp", "reset", "alice")
	if r.code != 1 || !strings.Contains(r.stderr, "alice has no TOTP enrollment") {
		t.Fatalf("second reset: exit %d, %q", r.code, r.stderr)
	}
}
