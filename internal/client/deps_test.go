package client_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientMeetsServerOnlyAtAPI: the user client and the fleet agent
// meet the service only through internal/api, so the agent on every server
// links neither the service, the CA, the store nor Prometheus.
func TestClientMeetsServerOnlyAtAPI(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	for _, pkg := range []string{"github.com/sshca/sshca/internal/client", "github.com/sshca/sshca/internal/agent"} {
		out, err := exec.Command(goBin, "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, bad := range []string{"/internal/server", "/internal/store", "/internal/ca", "prometheus", "sqlite", "pgx"} {
				if strings.Contains(dep, bad) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// TestServerHoldsNoAccessRules: the HTTP layer turns requests into callers
// and outcomes into responses; who may do what is decided in package
// policy. The fields that express access rules must not appear in the
// server's code.
func TestServerHoldsNoAccessRules(t *testing.T) {
	files, err := filepath.Glob("../server/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("server sources: %v", err)
	}
	rules := []string{".RequireMFA", ".Allow", ".TemplateGroups", ".MaxSession", ".Renewal", ".MaxTTL", "TokenEnroll", "TokenAdmin", ".UsedAt", ".RevokedAt", ".ExpiresAt", "totp.Verify"}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if strings.Contains(string(src), r) {
				t.Errorf("%s uses %s: access rules belong in package policy", filepath.Base(f), r)
			}
		}
	}
}
