package cli

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

func newSSHConfigCommand() *command {
	var svc serviceFlags
	var hosts, bastion, bastionUser, keyPath, frontDoor, frontDoorRole string
	return &command{
		name:    "ssh-config",
		summary: "print the client side: @cert-authority lines for known_hosts and an ~/.ssh/config block",
		usage:   "--server URL [--ca-fingerprint SHA256:...] [--hosts PATTERN] [--bastion HOST [--bastion-user U]] [--front-door HOST:PORT [--role R]]",
		example: `  sshca ssh-config --server https://ca.corp:8443 --hosts '*.corp' --bastion bastion.corp
  sshca ssh-config --server https://ca.corp:8443 --hosts '*.corp' --front-door ca.corp:2222 --role deploy`,
		flags: func(fs *flag.FlagSet) {
			svc.register(fs)
			fs.StringVar(&hosts, "hosts", "*", "host `patterns` (comma-separated) the host CA vouches for")
			fs.StringVar(&bastion, "bastion", "", "jump host for the ~/.ssh/config block (ProxyJump)")
			fs.StringVar(&bastionUser, "bastion-user", "", "user on the jump host")
			fs.StringVar(&keyPath, "key", "~/.ssh/id_ed25519", "identity file in the config block")
			fs.StringVar(&frontDoor, "front-door", "", "the SSH front door (`HOST:PORT`): add its Host block and a Match exec line that fetches a certificate there when the current one is missing or expired")
			fs.StringVar(&frontDoorRole, "role", "", "role of the certificate the Match exec line fetches (default: the caller's only role)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if svc.url == "" {
				return usagef("ssh-config: --server is required")
			}
			if strings.ContainsAny(hosts, " \t\n") || strings.ContainsAny(bastion+bastionUser+keyPath, " \t\n") {
				return usagef("ssh-config: patterns and names may not contain spaces")
			}
			fdHost, fdPort, err := frontDoorAddr(frontDoor, frontDoorRole, keyPath)
			if err != nil {
				return err
			}
			c, err := svc.client("ssh-config")
			if err != nil {
				return err
			}
			keys, _, err := c.CAKeys(e.ctx, "host")
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				return errors.New("the service published no host CA keys")
			}
			fmt.Fprintln(e.stdout, "# ~/.ssh/known_hosts (or /etc/ssh/ssh_known_hosts): trust host certificates from the sshca host CA")
			for _, k := range keys {
				fmt.Fprintf(e.stdout, "@cert-authority %s %s\n", hosts, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
			}
			if fdHost != "" && !slices.Contains(strings.Split(hosts, ","), fdHost) {
				for _, k := range keys {
					fmt.Fprintf(e.stdout, "@cert-authority %s %s\n", fdHost, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
				}
			}
			fmt.Fprintln(e.stdout)
			if fdHost != "" {
				printFrontDoor(e.stdout, fdHost, fdPort, frontDoorRole, hosts, keyPath)
			}
			fmt.Fprintln(e.stdout, "# ~/.ssh/config. RevokedHostKeys is the host KRL, signed by the host CA: ssh refuses revoked host")
			fmt.Fprintln(e.stdout, "# certificates, and every host while the file is missing. `sshca login --key KEY` (and `sshca known-hosts")
			fmt.Fprintln(e.stdout, "# --file PATH`) fetch it, check the signature and install it; run one from cron to keep it current.")
			fmt.Fprintln(e.stdout, "# ~/.ssh/config")
			block := func(pattern, jump string) {
				fmt.Fprintf(e.stdout, "Host %s\n", pattern)
				fmt.Fprintf(e.stdout, "    IdentityFile %s\n", keyPath)
				fmt.Fprintf(e.stdout, "    CertificateFile %s-cert.pub\n", keyPath)
				fmt.Fprintln(e.stdout, "    StrictHostKeyChecking yes")
				fmt.Fprintf(e.stdout, "    RevokedHostKeys %s\n", hostKRLBeside(keyPath))
				fmt.Fprintf(e.stdout, "    ProxyJump %s\n", jump)
			}
			if bastion == "" {
				block(strings.ReplaceAll(hosts, ",", " "), "none")
				return nil
			}
			// ssh takes the first value it finds, so the bastion's own block
			// comes first: otherwise a pattern matching it would jump through itself.
			block(bastion, "none")
			jump := bastion
			if bastionUser != "" {
				jump = bastionUser + "@" + bastion
			}
			block(strings.ReplaceAll(hosts, ",", " "), jump)
			return nil
		},
	}
}
