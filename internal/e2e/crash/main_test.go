// Package crash proves that sshca loses nothing and reuses nothing when its
// service dies at a random moment: it SIGKILLs a real `sshca serve` process
// while concurrent clients issue and revoke certificates, on SQLite and on
// PostgreSQL, and after every restart compares the store, the audit chain and
// the KRL with what the clients were told. It holds tests only; it listens
// and connects on 127.0.0.1 alone and never touches anything outside its
// temporary directories and test databases.
package crash

import (
	"testing"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

// sshcaBin is the sshca binary, built by TestMain (a real process is needed
// to deliver a real SIGKILL). Package state by necessity: TestMain must hand
// it to the tests.
var sshcaBin e2etest.Binary

func TestMain(m *testing.M) {
	_, _ = sshcaBin.Build() // a failure fails the tests that need the binary
	pgtest.Main(m)
	sshcaBin.Remove()
}
