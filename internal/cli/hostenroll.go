package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/atomicfile"
	"github.com/sshca/sshca/internal/client"
)

func newHostEnrollCommand() *command {
	var svc serviceFlags
	var tokenFile, hostKey, principals, ttl string
	var asJSON bool
	return &command{
		name:    "host enroll",
		summary: "get this server's first host certificate with a one-time enrollment token",
		usage:   "--server URL [--ca-fingerprint SHA256:...] --token-file F --host-key KEY [--principals h1,h2] [--json]",
		example: `  sshca host enroll --server https://ca.corp:8443 --token-file /root/enroll.token --host-key /etc/ssh/ssh_host_ed25519_key`,
		flags: func(fs *flag.FlagSet) {
			svc.register(fs)
			fs.StringVar(&tokenFile, "token-file", "", "`file` holding the enrollment token")
			fs.StringVar(&hostKey, "host-key", "", "host private key `file` (its .pub is certified)")
			fs.StringVar(&principals, "principals", "", "host names (default: those the token is bound to)")
			fs.BoolVar(&asJSON, "json", false, "print the JSON certificate object (docs/json.md); the sshd_config hint goes to stderr")
			fs.StringVar(&ttl, "ttl", "", "lifetime (default: the host role's)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if svc.url == "" || tokenFile == "" || hostKey == "" {
				return usagef("host enroll: --server, --token-file and --host-key are required")
			}
			c, err := svc.client("host enroll")
			if err != nil {
				return err
			}
			tok, err := readTokenFile(tokenFile)
			if err != nil {
				return fmt.Errorf("token file: %w", err)
			}
			c.Bearer = strings.TrimSpace(string(tok))
			pubData, err := os.ReadFile(hostKey + ".pub")
			if err != nil {
				return fmt.Errorf("host public key: %w", err)
			}
			pub, _, _, _, err := ssh.ParseAuthorizedKey(pubData)
			if err != nil {
				return fmt.Errorf("%s.pub: not a public key", hostKey)
			}
			resp, cert, err := c.RequestCert(e.ctx, "host", api.CertRequest{PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
				Principals: splitList(principals), TTL: ttl})
			if err != nil {
				return err
			}
			if string(cert.Key.Marshal()) != string(pub.Marshal()) || cert.CertType != ssh.HostCert {
				return errors.New("the service returned a certificate for another key or type")
			}
			path := client.CertPath(hostKey)
			if err := atomicfile.Write(path, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
				return err
			}
			if asJSON {
				out := *resp
				out.File = path
				fmt.Fprintf(e.stderr, "add to sshd_config: HostCertificate %s  (then reload sshd; `sshca sync --host-key %s` renews it)\n", path, hostKey)
				return printJSON(e, out)
			}
			fmt.Fprintf(e.stdout, "wrote %s: serial %d, principals %s, valid until %s\n", path, resp.Serial, strings.Join(resp.Principals, ","), resp.ValidBefore.Format(time.RFC3339))
			fmt.Fprintf(e.stdout, "add to sshd_config: HostCertificate %s  (then reload sshd; `sshca sync --host-key %s` renews it)\n", path, hostKey)
			return nil
		},
	}
}
