package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/krl"
	"github.com/sshca/sshca/internal/sshsig"
)

// HostKRLPath is where sshca keeps a user's copy of the host KRL, the file
// the ~/.ssh/config block of `sshca ssh-config` names as RevokedHostKeys.
func HostKRLPath(home string) string {
	return filepath.Join(home, ".ssh", "sshca", "revoked_hosts.krl")
}

// HostKRLResult says what UpdateHostKRL did.
type HostKRLResult struct {
	Version   uint64 // the KRL version now installed
	Installed bool   // false: the installed file already held it
}

// UpdateHostKRL fetches the host KRL and its SSHSIG signature and installs
// the KRL at path, atomically, only if the signature verifies against one
// of the published host CA keys, the KRL parses strictly (so every OpenSSH
// release, 9.2 included, loads it), and its version is not lower than the
// installed one. A refused KRL leaves the installed file in place: ssh keeps
// refusing what it refused, and never loses a revocation to a replayed
// older list.
func (c *Client) UpdateHostKRL(ctx context.Context, path string) (HostKRLResult, error) {
	keys, _, err := c.CAKeys(ctx, "host")
	if err != nil {
		return HostKRLResult{}, fmt.Errorf("host KRL: fetch host CA keys: %w", err)
	}
	if len(keys) == 0 {
		return HostKRLResult{}, errors.New("host KRL: the service published no host CA keys to verify it with")
	}
	data, sig, _, _, err := c.KRL(ctx, "host", "")
	if err != nil {
		return HostKRLResult{}, fmt.Errorf("host KRL: fetch: %w", err)
	}
	if _, err := sshsig.Verify(sig, bytes.NewReader(data), sshsig.Namespace, keys); err != nil {
		return HostKRLResult{}, fmt.Errorf("host KRL: refused: the signature does not verify against the host CA keys: %w", err)
	}
	k, err := krl.ParseWith(data, krl.Options{Strict: true})
	if err != nil {
		return HostKRLResult{}, fmt.Errorf("host KRL: refused: %w", err)
	}
	cur, err := os.ReadFile(path)
	switch {
	case err == nil:
		if bytes.Equal(cur, data) {
			return HostKRLResult{Version: k.Version}, nil
		}
		if old, err := krl.Parse(cur); err == nil && k.Version < old.Version {
			return HostKRLResult{Version: old.Version}, fmt.Errorf("host KRL: refused version %d, older than the installed %d; keeping %s", k.Version, old.Version, path)
		}
	case !errors.Is(err, os.ErrNotExist):
		return HostKRLResult{}, fmt.Errorf("host KRL: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return HostKRLResult{}, fmt.Errorf("host KRL: %w", err)
	}
	if err := atomicfile.Write(path, data, 0o644); err != nil {
		return HostKRLResult{}, fmt.Errorf("host KRL: %w", err)
	}
	return HostKRLResult{Version: k.Version, Installed: true}, nil
}
