// Package secrets checks sshca's secrets hygiene end to end with the built
// binary: a whole flow (init with a passphrase, serve with debug logging,
// tokens, login, denials, OIDC ID tokens, revocation, signed KRL, audit)
// must never write a CA or user private key, a passphrase, an API token or
// an ID token to any output, log, audit file or database column; CA key
// files must be created private and the service must refuse readable ones.
// It holds tests only and never touches anything outside its temporary
// directories.
package secrets

import (
	"testing"

	"github.com/sshca/sshca/internal/e2e/e2etest"
	"github.com/sshca/sshca/internal/store/postgres/pgtest"
)

// sshcaBin is the sshca binary, built by TestMain (the service's real output
// is what must stay clean). Package state by necessity: TestMain must hand
// it to the tests.
var sshcaBin e2etest.Binary

func TestMain(m *testing.M) {
	_, _ = sshcaBin.Build() // a failure fails the tests that need the binary
	pgtest.Main(m)          // runs the tests, then stops PostgreSQL if one was started
	sshcaBin.Remove()
}
