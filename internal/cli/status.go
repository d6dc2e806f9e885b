package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sshca/sshca/internal/api"
	"github.com/sshca/sshca/internal/client"
)

func newStatusCommand() *command {
	var keyPath string
	var asJSON bool
	return &command{
		name:    "status",
		summary: "show the current certificate: principals and remaining time (exit 1 when expired or missing)",
		usage:   "[--key PATH] [--json]",
		example: `  sshca status
  sshca status --key ~/.ssh/deploy_ed25519
  sshca status --json | jq .remaining_seconds`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&keyPath, "key", "", "private key `file` whose -cert.pub to show (default ~/.ssh/id_ed25519)")
			fs.BoolVar(&asJSON, "json", false, "print the JSON certificate object (docs/json.md)")
		},
		maxArgs: 0,
		run: func(e *env, fs *flag.FlagSet, args []string) error {
			if keyPath == "" {
				keyPath = defaultKeyPath(e)
			}
			data, err := os.ReadFile(client.CertPath(keyPath))
			if err != nil {
				return withHint(fmt.Errorf("no certificate: %w", err), "run `sshca login`")
			}
			cert, err := client.ParseCert(data)
			if err != nil {
				return err
			}
			now := time.Now()
			left := client.Remaining(cert, now)
			if asJSON {
				out := api.CertificateOf(cert, now)
				out.File = client.CertPath(keyPath)
				if err := printJSON(e, out); err != nil {
					return err
				}
				if left <= 0 {
					return &exitCodeError{code: exitError}
				}
				return nil
			}
			fmt.Fprintf(e.stdout, "certificate: %s\n", client.CertPath(keyPath))
			fmt.Fprintf(e.stdout, "key id:      %s\n", cert.KeyId)
			fmt.Fprintf(e.stdout, "serial:      %d\n", cert.Serial)
			fmt.Fprintf(e.stdout, "principals:  %s\n", strings.Join(cert.ValidPrincipals, ","))
			fmt.Fprintf(e.stdout, "valid until: %s\n", time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339))
			if left <= 0 {
				fmt.Fprintln(e.stdout, "remaining:   expired")
				return &exitCodeError{code: exitError}
			}
			fmt.Fprintf(e.stdout, "remaining:   %s\n", left.Round(time.Second))
			return nil
		},
	}
}
