package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/ca"
	"github.com/sshca/sshca/internal/home"
	"github.com/sshca/sshca/internal/policy"
)

// interopPolicy replaces the example policy that `sshca init` writes: one
// user role whose only principal the test servers map to the login
// account, one host role for servers on the loopback address, and one that
// opts in to wildcard host principals for them.
const interopPolicy = `backdate: 5m
roles:
  interop:
    type: user
    principals: [interop-user]
    default_ttl: 1h
    max_ttl: 1h
    extensions: [permit-pty]
  hosts:
    type: host
    principals: ["127.0.0.0/8", "localhost"]
    max_ttl: 1h
  hosts-wildcard:
    type: host
    principals: ["127.0.0.*"]
    wildcard_principals: true
    max_ttl: 1h
`

// wildcardPrincipal is the only principal of the wildcard host certificate.
const wildcardPrincipal = "127.0.0.*"

// principal is the one principal of every user certificate in the matrix.
const principal = "interop-user"

// hostPrincipals returns the principals of every host certificate.
func hostPrincipals() []string { return []string{"127.0.0.1", "localhost"} }

// authority is one sshca CA home made by `sshca init --key-type keyType`.
type authority struct {
	keyType string
	home    *home.Home
	userCA  ssh.PublicKey
	hostCA  ssh.PublicKey
}

// newAuthorities creates one CA home per key type, as `sshca init
// --key-type` does, in parallel (RSA key generation dominates), installs
// interopPolicy and opens each home.
func newAuthorities(t *testing.T, dir string, keyTypes []string) map[string]*authority {
	t.Helper()
	ctx := t.Context()
	out := make(map[string]*authority, len(keyTypes))
	errs := make([]error, len(keyTypes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, kt := range keyTypes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := openAuthority(ctx, filepath.Join(dir, "ca-"+kt), kt)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", kt, err)
				return
			}
			mu.Lock()
			out[kt] = a
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, a := range out {
		t.Cleanup(func() { a.home.Close() })
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

func openAuthority(ctx context.Context, dir, keyType string) (*authority, error) {
	if err := home.Init(ctx, dir, home.InitOptions{KeyType: keyType, Actor: "test:interop"}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, home.ConfigFile), []byte(interopPolicy), 0o600); err != nil {
		return nil, err
	}
	h, err := home.Open(ctx, dir, home.Options{})
	if err != nil {
		return nil, err
	}
	a := &authority{keyType: keyType, home: h}
	for _, c := range []struct {
		caType string
		dst    *ssh.PublicKey
	}{{"user", &a.userCA}, {"host", &a.hostCA}} {
		k, err := ca.ActiveKey(ctx, h.Store, c.caType)
		if err != nil {
			h.Close()
			return nil, err
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("%s CA public key: %w", c.caType, err)
		}
		*c.dst = pub
	}
	return a, nil
}

// signUser issues a user certificate for pub through sshca's authority.
func (a *authority) signUser(t *testing.T, pub ssh.PublicKey, keyID string) *ssh.Certificate {
	t.Helper()
	cert, err := a.home.Authority.Sign(t.Context(), ca.Request{Type: policy.UserCert, Role: "interop", KeyID: keyID, PublicKey: pub, Caller: ca.Admin("test:interop")})
	if err != nil {
		t.Fatalf("sign user certificate with the %s CA: %v", a.keyType, err)
	}
	return cert
}

// signHost issues a host certificate for pub, in authorized-keys format,
// as sshdtest.Config.SignHostKey wants it.
func (a *authority) signHost(ctx context.Context, pub ssh.PublicKey) ([]byte, error) {
	return a.signHostNames(ctx, pub, hostPrincipals())
}

// signHostNames is signHost with other principals.
func (a *authority) signHostNames(ctx context.Context, pub ssh.PublicKey, names []string) ([]byte, error) {
	return a.signHostRole(ctx, "hosts", pub, names)
}

// signHostRole issues a host certificate under role.
func (a *authority) signHostRole(ctx context.Context, role string, pub ssh.PublicKey, names []string) ([]byte, error) {
	cert, err := a.home.Authority.Sign(ctx, ca.Request{Type: policy.HostCert, Role: role, KeyID: "interop-host-" + a.keyType,
		Principals: names, PublicKey: pub, Caller: ca.Admin("test:interop")})
	if err != nil {
		return nil, err
	}
	return ssh.MarshalAuthorizedKey(cert), nil
}

// loginAccount is the local account the clients log in to on sshd: the
// current user, to which sshd maps the certificate principal.
func loginAccount(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// commandOutput runs a program and returns its trimmed combined output, or
// "" when it cannot be run.
func commandOutput(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// debianVersion returns the installed version of a Debian package, or "".
func debianVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// signHostFunc adapts signHost to sshdtest.Config.SignHostKey.
func (a *authority) signHostFunc(ctx context.Context) func(ssh.PublicKey) ([]byte, error) {
	return func(pub ssh.PublicKey) ([]byte, error) { return a.signHost(ctx, pub) }
}
