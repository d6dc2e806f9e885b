// Package service tests the certificate service end to end: `sshca serve`
// runs in-process through cli.Run on 127.0.0.1, admin commands work on the
// same home meanwhile, `sshca login` talks to it over HTTPS, and real
// OpenSSH (ssh-agent, ssh, sshd) judges the certificates. PostgreSQL tests use
// a throwaway server started by pgtest.
package service

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
	"github.com/sshca/sshca/internal/testkit"
)

// sshcaBin is the sshca binary, built on first use by the tests that want
// real processes (see binary). Package state by necessity: TestMain removes
// it after the tests.
var sshcaBin e2etest.Binary

func TestMain(m *testing.M) {
	pgtest.Main(m)
	sshcaBin.Remove()
}

// policy is the sshca.yaml of these tests; %s is an optional database line.
const policy = `backdate: 5m
%s
service:
  listen: 127.0.0.1:0
  rate_limit: 1000000
roles:
  deploy:
    type: user
    principals: [role-deploy]
    max_ttl: 1h
    extensions: [permit-pty]
  servers:
    type: host
    principals: ["*.corp"]
    max_ttl: 24h
`

// caHome is an sshca home directory, on SQLite or on PostgreSQL (DB),
// driven through the CLI in-process with an empty environment.
type caHome struct{ *e2etest.Home }

// newHome runs `sshca init` and writes the test policy.
func newHome(t testing.TB, db string) *caHome {
	t.Helper()
	h := &caHome{&e2etest.Home{T: t, Dir: filepath.Join(t.TempDir(), "ca"), DB: db}}
	h.Must("init")
	dbLine := ""
	if db != "" {
		dbLine = "database: " + db
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "sshca.yaml"), []byte(fmt.Sprintf(policy, dbLine)), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// token creates an API token and returns the path of a file holding it.
func (h *caHome) token(args ...string) (secret, path string) {
	h.T.Helper()
	secret = strings.TrimSpace(h.Must(append([]string{"token", "create"}, args...)...))
	path = filepath.Join(h.T.TempDir(), "token")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		h.T.Fatal(err)
	}
	return secret, path
}

// serve starts `sshca serve` in-process and waits until it listens. It is
// stopped (gracefully) at the end of the test unless Stop was called.
func (h *caHome) serve() *e2etest.Server {
	h.T.Helper()
	return h.serveBin("")
}

// serveBin is serve with the built binary bin as a child process (with
// PATH as its whole environment), stopped with SIGTERM; "" serves
// in-process.
func (h *caHome) serveBin(bin string) *e2etest.Server {
	h.T.Helper()
	home := h.Home
	if bin != "" {
		home = h.With(map[string]string{"PATH": os.Getenv("PATH")})
		home.Bin = bin
	}
	rep, err := home.Serve("")
	if err != nil {
		h.T.Fatal(err)
	}
	return rep
}

// binary returns the sshca binary, built once per test run (without the
// race detector, so that a load test measures the service rather than the
// instrumentation), or "" when it cannot be built.
func binary(t testing.TB) string {
	t.Helper()
	bin, err := sshcaBin.Build()
	if err != nil {
		t.Logf("no sshca binary (%v); running serve in-process", err)
	}
	return bin
}

// newKeyLine returns the authorized_keys line of a fresh ed25519 key.
func newKeyLine(t testing.TB) string {
	t.Helper()
	return testkit.AuthorizedKey(testkit.NewSigner(t).PublicKey())
}
