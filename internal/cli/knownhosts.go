package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sshca/sshca/internal/client"
)

// hostKRLDefault is the user's host KRL, as ssh-config names it for
// RevokedHostKeys (ssh expands the ~).
const hostKRLDefault = "~/.ssh/sshca/revoked_hosts.krl"

// hostKRLPath is the user's host KRL file: ~/.ssh/sshca/revoked_hosts.krl.
func hostKRLPath(e *env) string {
	home := e.getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return client.HostKRLPath(home)
}

// hostKRLBeside is the host KRL that belongs with the identity keyPath:
// sshca/revoked_hosts.krl in the key's directory, so the default key
// ~/.ssh/id_ed25519 goes with ~/.ssh/sshca/revoked_hosts.krl. ssh-config
// names it as RevokedHostKeys in the block for that key, and login keeps it
// current.
func hostKRLBeside(keyPath string) string {
	return filepath.Join(filepath.Dir(keyPath), "sshca", "revoked_hosts.krl")
}

// updateHostKRL is login's last step: install the current host KRL beside
// the key. A failure is a warning; the certificate is written either way.
func updateHostKRL(e *env, c *client.Client, keyPath string) {
	path := hostKRLBeside(keyPath)
	res, err := c.UpdateHostKRL(e.ctx, path)
	switch {
	case err != nil:
		fmt.Fprintf(e.stderr, "sshca: warning: %v\n", err)
	case res.Installed:
		fmt.Fprintf(e.stdout, "installed host KRL version %d at %s\n", res.Version, path)
	}
}

func newKnownHostsCommand() *command {
	var svc serviceFlags
	var file string
	return &command{
		name:    "known-hosts",
		summary: "fetch the host KRL, verify its signature by the host CA, and install it where RevokedHostKeys points",
		usage:   "--server URL [--ca-fingerprint SHA256:...] [--file PATH]",
		example: `  sshca known-hosts --server https://ca.corp:8443 --ca-fingerprint SHA256:...
  sshca known-hosts --server https://ca.corp:8443 --file /etc/ssh/sshca_revoked_hosts.krl   # for every user (as root)`,
		flags: func(fs *flag.FlagSet) {
			svc.register(fs)
			fs.StringVar(&file, "file", "", "install the host KRL at this `path` (default "+hostKRLDefault+")")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			c, err := svc.client("known-hosts")
			if err != nil {
				return err
			}
			if file == "" {
				file = hostKRLPath(e)
			}
			res, err := c.UpdateHostKRL(e.ctx, file)
			if err != nil {
				return withHint(err, "the installed host KRL, if any, stays in place")
			}
			if res.Installed {
				fmt.Fprintf(e.stdout, "installed host KRL version %d at %s\n", res.Version, file)
			} else {
				fmt.Fprintf(e.stdout, "host KRL version %d at %s is current\n", res.Version, file)
			}
			return nil
		},
	}
}
